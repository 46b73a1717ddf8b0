"""What the worker records of a page, with a real Chromium: the release's final URL names the
page its final screenshot shows, and a step names the URL the page is at when it is taken,
whichever way the page got there."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_site import LocalSite
from PIL import Image
from playwright.async_api import async_playwright
from playwright.sync_api import sync_playwright
from worker_harness import PROFILE, store_with_profile

from ledger import Ledger
from ledger._domain import events as ev
from workers import DIRECT, BrowserSettings, ProfileLeases, aio

pytestmark = pytest.mark.browser

RED, GREEN = (255, 0, 0), (0, 160, 0)
PAINT = "colour => { document.body.style.background = colour; }"
# The popup closes itself, as a 3-D Secure or OAuth window does once it is done.
CLOSE_SOON = "() => { setTimeout(() => window.close(), 300); }"
# The page moves itself, without a new document, a moment after the task last called
# Playwright: what a single-page app does.
MOVES = {
    "pushState": ("() => setTimeout(() => history.pushState({}, '', '/cart/pay'), 200)", "/pay"),
    "hash": ("() => setTimeout(() => { location.hash = 'card'; }, 200)", "#card"),
}


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


def history(store: str) -> list[object]:
    with Ledger.open(store, create=False) as ledger:
        return list(ledger.history(PROFILE))


def centre_colour(screenshot: str) -> tuple[int, int, int]:
    with Image.open(screenshot) as image:
        rgb = image.convert("RGB")
        red, green, blue = rgb.getpixel((rgb.width // 2, rgb.height // 2))  # type: ignore[misc]
    return red, green, blue


def popup_closed_sync(store: str, settings: BrowserSettings, base: str) -> None:
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{base}/checkout")
        page.evaluate(PAINT, "rgb(255, 0, 0)")
        with context.expect_page() as popped:
            page.evaluate("url => { window.open(url); }", f"{base}/3ds/challenge")
        popup = popped.value
        popup.wait_for_load_state()
        popup.evaluate(PAINT, "rgb(0, 160, 0)")
        popup.evaluate(CLOSE_SOON)
        popup.wait_for_event("close")
    leases.close()


async def popup_closed_async(store: str, settings: BrowserSettings, base: str) -> None:
    async with (
        aio.ProfileLeases.open(store, worker_id="worker_03", settings=settings) as leases,
        async_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = await context.new_page()
        await page.goto(f"{base}/checkout")
        await page.evaluate(PAINT, "rgb(255, 0, 0)")
        async with context.expect_page() as popped:
            await page.evaluate("url => { window.open(url); }", f"{base}/3ds/challenge")
        popup = await popped.value
        await popup.wait_for_load_state()
        await popup.evaluate(PAINT, "rgb(0, 160, 0)")
        await popup.evaluate(CLOSE_SOON)
        await popup.wait_for_event("close")


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_popup_that_closed_itself_is_not_the_final_url(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """The last page navigated is a popup that closes itself (a 3-D Secure window): the final
    screenshot shows the page still open (the checkout), and the release's final URL and
    ``evidence.json`` name that page too. rev30: they named the closed popup, while the
    screenshot filed in the same release showed the checkout."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    if flavour == "sync":
        popup_closed_sync(store, settings, site.url)
    else:
        asyncio.run(popup_closed_async(store, settings, site.url))
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.screenshot is not None
    assert centre_colour(release.screenshot) == RED  # the checkout, not the popup
    assert release.final_url == f"{site.url}/checkout"
    (filed,) = (tmp_path / "evidence").rglob("evidence.json")
    assert json.loads(filed.read_text())["final_url"] == f"{site.url}/checkout"


def test_a_page_the_task_closed_is_not_the_final_url(tmp_path: Path, site: LocalSite) -> None:
    """The task closes the page it worked on: the final screenshot shows the page left open
    (the blank one the browser started with), and the final URL says that page, not the
    closed one."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{site.url}/orders")
        page.evaluate(PAINT, "rgb(255, 0, 0)")
        page.close()
        left = [p.url for p in context.pages]
    leases.close()
    assert left == ["about:blank"]
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.screenshot is not None
    assert centre_colour(release.screenshot) != RED
    assert release.final_url == "about:blank"


def last_page_closed_sync(store: str, settings: BrowserSettings, base: str) -> object:
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.pages[0]
        page.goto(f"{base}/orders")
        page.close()
    leases.close()
    return lease


async def last_page_closed_async(store: str, settings: BrowserSettings, base: str) -> object:
    async with (
        aio.ProfileLeases.open(store, worker_id="worker_03", settings=settings) as leases,
        async_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.pages[0]
        await page.goto(f"{base}/orders")
        await page.close()
    return lease


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_no_page_left_for_the_final_screenshot_is_said(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """The task closes its last page (its ``page.close()`` at the end): there is no page to
    capture, and the release says so as its evidence problem (so the profile goes to review,
    as for any evidence not collected); its final URL stays the page last navigated. rev47:
    released cleanly with no screenshot and nothing said."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    if flavour == "sync":
        lease = last_page_closed_sync(store, settings, site.url)
    else:
        lease = asyncio.run(last_page_closed_async(store, settings, site.url))
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.screenshot is None
    assert "no page was left open for the final screenshot" in (release.evidence_problem or "")
    assert release.final_url == f"{site.url}/orders"
    result = lease.result  # type: ignore[attr-defined]
    assert (result.profile_state, result.cause) == ("review_required", "evidence_failed")


def moved_sync(store: str, settings: BrowserSettings, base: str, move: str) -> None:
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{base}/cart")
        page.evaluate(move)
        time.sleep(1.0)  # the task's own work: no Playwright call
        lease.step("pay", mutating=True)
    leases.close()


async def moved_async(store: str, settings: BrowserSettings, base: str, move: str) -> None:
    async with (
        aio.ProfileLeases.open(store, worker_id="worker_03", settings=settings) as leases,
        async_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = await context.new_page()
        await page.goto(f"{base}/cart")
        await page.evaluate(move)
        time.sleep(1.0)  # the task's own blocking work, as some tasks do
        await lease.step("pay", mutating=True)


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("move", sorted(MOVES))
def test_a_step_names_the_url_the_page_moved_to_while_the_task_was_busy(
    tmp_path: Path, site: LocalSite, move: str, flavour: str
) -> None:
    """The page moves itself (``history.pushState``, a hash change) while the task does its own
    work, outside any Playwright call; the task's next step names the URL the page is at.
    rev30: with the sync SDK the step named the URL the page had left a second earlier
    (Playwright delivers a navigation only inside one of its calls), so a mutating step was
    placed on the wrong page."""
    script, path = MOVES[move]
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    if flavour == "sync":
        moved_sync(store, settings, site.url, script)
    else:
        asyncio.run(moved_async(store, settings, site.url, script))
    beats = [e for e in history(store) if isinstance(e, ev.LeaseHeartbeat) and e.step == "pay"]
    assert [b.url for b in beats] == [f"{site.url}/cart{path}"]


def test_a_run_that_navigated_nowhere_keeps_the_url_it_reported(
    tmp_path: Path, site: LocalSite
) -> None:
    """A task that opens a page but navigates it nowhere, and reports the page it reached
    otherwise (``lease.visited``): the final URL is that one, as ``visited`` promises, not the
    blank page the screenshot shows (only a page last navigated that was closed gives way to
    the page left open)."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        context.new_page()
        lease.visited(f"{site.url}/api/orders")
    leases.close()
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.final_url == f"{site.url}/api/orders"


@pytest.mark.parametrize("help_tab", [False, True])
def test_a_step_after_the_last_page_closed_names_the_page_left_open(
    tmp_path: Path, site: LocalSite, help_tab: bool
) -> None:
    """The popup last navigated closes itself, then the task steps on the page that opened it:
    the step and the release name that page (the one the final screenshot shows), not the
    closed popup (rev30: the step's heartbeat named the popup, gone a second earlier). With a
    help tab opened after the task's and sent to /help before the task's went to /checkout,
    still /checkout, the page navigated latest of those open (rev30's second reading: both
    named /help, the tab opened last)."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        if help_tab:
            context.new_page().goto(f"{site.url}/help")
        page.goto(f"{site.url}/checkout")
        with context.expect_page() as popped:
            page.evaluate("url => { window.open(url); }", f"{site.url}/3ds/challenge")
        popped.value.wait_for_load_state()
        popped.value.evaluate(CLOSE_SOON)
        time.sleep(1.0)  # the task's own work: the popup closes meanwhile
        lease.step("paid", mutating=True)
    leases.close()
    events = history(store)
    beats = [e for e in events if isinstance(e, ev.LeaseHeartbeat) and e.step == "paid"]
    assert [b.url for b in beats] == [f"{site.url}/checkout"]
    (release,) = [e for e in events if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.final_url == f"{site.url}/checkout"


def test_a_step_from_another_thread_is_recorded_with_the_url_last_seen(
    tmp_path: Path, site: LocalSite
) -> None:
    """A helper thread steps while the task's thread holds the browser: the step is recorded,
    with the URL Playwright last delivered (Playwright answers on its own thread only).
    rev30's second reading: the step's catch-up raised greenlet's "Cannot switch to a
    different thread" and nothing was recorded."""
    import threading

    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    failed: list[BaseException] = []

    def step(lease: object) -> None:
        try:
            lease.step("from_a_helper", safe=True)  # type: ignore[attr-defined]
        except BaseException as e:  # the test says what it was
            failed.append(e)

    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        context.new_page().goto(f"{site.url}/checkout")
        helper = threading.Thread(target=step, args=(lease,))
        helper.start()
        helper.join()
    leases.close()
    assert failed == []
    beats = [e for e in history(store) if isinstance(e, ev.LeaseHeartbeat)]
    assert [b.url for b in beats if b.step == "from_a_helper"] == [f"{site.url}/checkout"]


# A single-page app that keeps moving: its URL names the page's clock, every 20 ms.
TICKS = "() => setInterval(() => history.pushState({}, '', '/at/' + Date.now()), 20)"


def ticking_sync(store: str, settings: BrowserSettings, base: str) -> None:
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{base}/cart")
        page.evaluate(TICKS)
        page.wait_for_timeout(300)
    leases.close()


async def ticking_async(store: str, settings: BrowserSettings, base: str) -> None:
    async with (
        aio.ProfileLeases.open(store, worker_id="worker_03", settings=settings) as leases,
        async_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = await context.new_page()
        await page.goto(f"{base}/cart")
        await page.evaluate(TICKS)
        await page.wait_for_timeout(300)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_the_final_url_is_the_page_s_at_the_capture(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """A page that keeps moving (``history.pushState`` every 20 ms) while the SDK takes the
    final screenshot and closes the browser: the final URL is the page's as of the capture,
    from before the screenshot's file was written. rev47: the navigations delivered while the
    browser closed moved it on, 61-252 ms past the screenshot."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    if flavour == "sync":
        ticking_sync(store, settings, site.url)
    else:
        asyncio.run(ticking_async(store, settings, site.url))
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.screenshot is not None
    assert release.final_url is not None
    at_ms = int(release.final_url.rsplit("/at/", 1)[1])
    written_ms = Path(release.screenshot).stat().st_mtime_ns / 1e6
    assert at_ms <= written_ms
    (filed,) = (tmp_path / "evidence").rglob("evidence.json")
    assert json.loads(filed.read_text())["final_url"] == release.final_url
