"""The HTML report in a real Chromium: it renders every section, its chart draws one bar per
lease (capped on a large fleet), it logs no console error and it makes no request but the
page's own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chromium_process import require_chromium
from cli_process import custody, ok
from fleet_store import many_leases_store, scripted_store
from playwright.sync_api import Browser, Page, sync_playwright

from reports._chart import BARS

pytestmark = pytest.mark.browser

SECTIONS = ("fleet", "blocked", "leases", "health", "checklist")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=require_chromium())
        yield launched
        launched.close()


@dataclass
class Opened:
    page: Page
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def open_page(browser: Browser, path: Path) -> Opened:
    """Open ``path`` over file://, recording every request and every console error or
    uncaught page error."""
    page = browser.new_page()
    opened = Opened(page)
    page.on("request", lambda r: opened.requests.append(r.url))
    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.errors.append(str(e)))
    page.goto(path.as_uri(), wait_until="load")
    page.wait_for_timeout(300)  # a late fetch (a font, a lazy script) would show by now
    return opened


def write_report(cwd: Path, store: str) -> Path:
    target = cwd / "fleet.html"
    ok(custody("report", "--html", str(target), cwd=cwd, store=store))
    return target


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("report")
    store, _ = scripted_store(cwd)
    return write_report(cwd, store)


def test_the_report_renders_its_sections_and_one_bar_per_lease(
    browser: Browser, scripted: Path
) -> None:
    """The title and the five sections are shown; the chart is an SVG drawn with one bar
    per lease (8), each with a size on screen."""
    opened = open_page(browser, scripted)
    page = opened.page
    assert page.title() == "custody fleet report"
    for section in SECTIONS:
        assert page.locator(f"section#{section} h2").is_visible(), section
    bars = page.locator('section#leases svg g[id^="lease-"]')
    assert bars.count() == 8
    box = bars.first.bounding_box()
    assert box is not None
    assert box["width"] > 0
    assert box["height"] > 0
    assert page.locator("span.badge.bad", has_text="quarantined: 1").is_visible()
    assert page.locator("#check-4 .verdict.attention").is_visible()
    page.close()


def test_the_report_logs_no_console_error(browser: Browser, scripted: Path) -> None:
    """Opening the page logs no console error and raises no page error (a blocked or failed
    load, a script error or a policy violation would each log one)."""
    opened = open_page(browser, scripted)
    assert opened.errors == []
    opened.page.close()


def test_the_report_requests_nothing_but_itself(browser: Browser, scripted: Path) -> None:
    """The only request made is the page's own file: no script, style, font or image is
    fetched, from the network or from disk."""
    opened = open_page(browser, scripted)
    assert opened.requests == [scripted.as_uri()]
    opened.page.close()


def test_a_fleet_of_600_leases_is_drawn_capped_and_quietly(
    browser: Browser, tmp_path: Path
) -> None:
    """600 leases on 60 profiles: the chart draws the cap (400 bars on 40 profiles), says
    so, and the page still logs no error and requests nothing else."""
    store = many_leases_store(tmp_path)
    target = write_report(tmp_path, store)
    opened = open_page(browser, target)
    page = opened.page
    assert page.locator('section#leases svg g[id^="lease-"]').count() == BARS
    caption = page.locator("section#leases figcaption").inner_text()
    assert caption.startswith(f"{BARS} of 600 leases on 40 of 60 profiles (capped")
    assert opened.errors == []
    assert opened.requests == [target.as_uri()]
    page.close()


def test_an_empty_fleet_renders_without_a_chart(browser: Browser, tmp_path: Path) -> None:
    """A store with no profile: every section still renders, the chart says there is no
    lease yet, and nothing errs."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("init", cwd=tmp_path, store=store))
    opened = open_page(browser, write_report(tmp_path, store))
    page = opened.page
    for section in SECTIONS:
        assert page.locator(f"section#{section}").count() == 1
    assert page.locator("section#leases svg").count() == 0
    assert "No lease yet" in page.locator("section#leases figcaption").inner_text()
    assert opened.errors == []
    page.close()
