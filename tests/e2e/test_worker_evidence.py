"""Evidence that cannot be collected at release, with a real Chromium: a frozen browser and a
dead Playwright driver. The release says what went wrong, and the profile does not go back to
the pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from local_site import LocalSite, browsers_on
from playwright.async_api import Error as AsyncPlaywrightError, async_playwright
from playwright.sync_api import Error as PlaywrightError, Playwright, sync_playwright
from worker_harness import PROFILE, store_with_profile, wait_until

from ledger import BrowserStatus, Ledger
from ledger._domain import events as ev
from workers import DIRECT, BrowserSettings, ProfileLeases, aio, inspect

pytestmark = pytest.mark.browser
# The frozen browser's runs: a lease whose local deadline is 40 s away, and the bound on the whole
# run (launch, the screenshot's 1.5 s, the browser's 2 s to answer, the kill), far before it.
TTL = 60
FROZEN_WITHIN = 25.0


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


def release_of(store: str) -> ev.LeaseReleaseRequested:
    with Ledger.open(store, create=False) as ledger:
        (release,) = [e for e in ledger.history(PROFILE) if isinstance(e, ev.LeaseReleaseRequested)]
    return release


def driver_of_this_process() -> int:
    """The Playwright driver (node, ``run-driver``) this process started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if parent == os.getpid() and b"run-driver" in args:
            return int(entry.name)
    raise AssertionError("no Playwright driver among this process's children")


def freeze(user_data_dir: Path) -> None:
    """Stop the browser on the directory (SIGSTOP): it answers nothing from now on."""
    browser = inspect(str(user_data_dir)).pid
    assert browser is not None
    os.kill(browser, signal.SIGSTOP)


def thaw_later(user_data_dir: Path) -> threading.Timer:
    """Once ``FROZEN_WITHIN`` has passed, SIGCONT the browser on the directory if it still runs:
    a run that waits for the frozen browser, rather than killing it, then ends (and fails on its
    time) instead of hanging, its lease renewed all along."""

    def thaw() -> None:
        check = inspect(str(user_data_dir))
        if check.status is BrowserStatus.ALIVE and check.pid is not None:
            os.kill(check.pid, signal.SIGCONT)

    timer = threading.Timer(FROZEN_WITHIN, thaw)
    timer.start()
    return timer


def run_sync(store: str, settings: BrowserSettings, url: str, user_data_dir: Path) -> Any:
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t", ttl_seconds=TTL) as lease,
        lease.browser(pw) as context,
    ):
        context.new_page().goto(url)
        freeze(user_data_dir)
    return lease


async def run_async(store: str, settings: BrowserSettings, url: str, user_data_dir: Path) -> Any:
    async with (
        aio.ProfileLeases.open(store, worker_id="worker_03", settings=settings) as leases,
        async_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t", ttl_seconds=TTL) as lease,
        lease.browser(pw) as context,
    ):
        await (await context.new_page()).goto(url)
        freeze(user_data_dir)
    return lease


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_frozen_browser_is_recorded_killed_and_sent_to_review(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """The task succeeds, then its Chromium stops answering (SIGSTOP) before the block is
    left: the final screenshot times out, the release says so (no screenshot, the evidence
    problem names the timeout) and the profile goes to review, not the pool; the frozen
    browser is killed rather than waited for (it has 2 s to answer a question, its cookies)."""
    store, user_data_dir = store_with_profile(tmp_path)
    settings = BrowserSettings(
        proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence", screenshot_timeout_ms=1500
    )
    args = (store, settings, f"{site.url}/orders", user_data_dir)
    started = time.monotonic()
    thaw = thaw_later(user_data_dir)
    try:
        lease = run_sync(*args) if flavour == "sync" else asyncio.run(run_async(*args))
    finally:
        thaw.cancel()
    assert time.monotonic() - started < FROZEN_WITHIN
    assert lease.result is not None
    assert (lease.result.profile_state, lease.result.cause) == (
        "review_required",
        "evidence_failed",
    )
    release = release_of(store)
    assert (release.outcome, release.final_url) == ("success", f"{site.url}/orders")
    assert release.screenshot is None
    assert release.evidence_problem is not None
    assert "final screenshot failed" in release.evidence_problem
    assert "Timeout" in release.evidence_problem
    assert not browsers_on(str(user_data_dir))


def test_a_dead_driver_is_recorded_and_sent_to_review(tmp_path: Path, site: LocalSite) -> None:
    """The task succeeds, then the Playwright driver dies (SIGKILL) before the block is left:
    the screenshot and the close fail, the release says both, and the profile goes to review;
    the browser, its pipe gone, does not outlive the run."""
    store, user_data_dir = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        context.new_page().goto(f"{site.url}/orders")
        os.kill(driver_of_this_process(), signal.SIGKILL)
    assert lease.result is not None
    assert (lease.result.profile_state, lease.result.cause) == (
        "review_required",
        "evidence_failed",
    )
    release = release_of(store)
    assert release.outcome == "success"
    assert release.screenshot is None
    problem = release.evidence_problem or ""
    assert "final screenshot failed: TargetClosedError" in problem
    assert wait_until(lambda: not browsers_on(str(user_data_dir)), 10)


STALLED_FONT = """<style>@font-face { font-family: F; src: url(/font/stalled) }
body { font-family: F }</style><p>logged in</p>"""


def test_a_screenshot_stalled_by_a_web_font_closes_the_browser_and_keeps_its_cookies(
    tmp_path: Path, site: LocalSite
) -> None:
    """The last page waits for a web font that never arrives, so the final screenshot times out
    on a healthy browser: the release says so (review), but the browser, which still answers,
    is closed rather than killed, so the login cookie the run just set is flushed to the
    profile's cookie store."""
    store, user_data_dir = store_with_profile(tmp_path)
    settings = BrowserSettings(
        proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence", screenshot_timeout_ms=1500
    )
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{site.url}/login")
        page.set_content(STALLED_FONT, wait_until="domcontentloaded")
    release = release_of(store)
    assert release.outcome == "success"
    assert "final screenshot failed: TimeoutError" in (release.evidence_problem or "")
    assert lease.result is not None
    assert lease.result.profile_state == "review_required"
    assert "browser close failed" not in (release.evidence_problem or "")
    with sqlite3.connect(user_data_dir / "Default" / "Cookies") as cookies:
        names = [name for (name,) in cookies.execute("SELECT name FROM cookies")]
    assert names == ["session"]


def crash_sync(store: str, settings: BrowserSettings, url: str) -> Any:
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(url)
        with page.expect_event("crash"), contextlib.suppress(PlaywrightError):
            page.goto("chrome://crash")
    return lease


async def crash_async(store: str, settings: BrowserSettings, url: str) -> Any:
    async with (
        aio.ProfileLeases.open(store, worker_id="worker_03", settings=settings) as leases,
        async_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = await context.new_page()
        await page.goto(url)
        async with page.expect_event("crash"):
            with contextlib.suppress(AsyncPlaywrightError):
                await page.goto("chrome://crash")
    return lease


def cookies_in(pw: Playwright, user_data_dir: Path) -> list[str]:
    """The names of the cookies a browser launched again on the profile has."""
    context = pw.chromium.launch_persistent_context(
        user_data_dir, executable_path=BrowserSettings().executable_path
    )
    try:
        return [cookie["name"] for cookie in context.cookies()]
    finally:
        context.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_crashed_last_tab_closes_the_browser_and_keeps_its_cookies(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """The last page's renderer crashes (an "Aw, Snap!") after the run logged in: the final
    screenshot fails at once ("Target crashed"), which the release says (review), but the
    browser itself still answers, so it is closed rather than killed and the login cookie the
    run set is in the profile when it is launched again (rev43: killed, the cookie was lost)."""
    store, user_data_dir = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    args = (store, settings, f"{site.url}/login")
    lease = crash_sync(*args) if flavour == "sync" else asyncio.run(crash_async(*args))
    assert lease.result is not None
    assert (lease.result.profile_state, lease.result.cause) == (
        "review_required",
        "evidence_failed",
    )
    release = release_of(store)
    assert (release.outcome, release.final_url) == ("success", f"{site.url}/login")
    assert "final screenshot failed" in (release.evidence_problem or "")
    assert "Target crashed" in (release.evidence_problem or "")
    assert "browser close failed" not in (release.evidence_problem or "")
    assert not browsers_on(str(user_data_dir))
    with sync_playwright() as pw:
        assert cookies_in(pw, user_data_dir) == ["session"]


NOISE = """() => {
  const canvas = document.createElement("canvas");
  canvas.width = 1280; canvas.height = 720;
  const g = canvas.getContext("2d"), image = g.createImageData(1280, 720);
  for (let i = 0; i < image.data.length; i++) image.data[i] = Math.random() * 256;
  g.putImageData(image, 0, 0);
  document.body.prepend(canvas);
}"""
# A file size past which this process may write nothing: above every offset the small store's
# files reach, below the noisy screenshot's 2-3 MB.
WRITABLE = 1 << 20


@contextlib.contextmanager
def disk_full_past(size: int) -> Iterator[None]:
    """This process refused any write past ``size`` bytes of a file (EFBIG, which it is told
    of rather than killed), as a full disk refuses one: the browser and Playwright's driver,
    started before, are not limited."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_screenshot_the_disk_cuts_short_leaves_no_file_and_is_said(
    tmp_path: Path, site: LocalSite
) -> None:
    """The final screenshot is written whole or not at all (rev44: a full evidence disk left a
    0-byte ``final.png`` beside a release that said no screenshot was kept): a write the disk
    refuses midway leaves no ``final.png`` and no part of one, the release says the screenshot
    failed, and ``evidence.json``, small enough, is kept whole beside it."""
    store, _ = store_with_profile(tmp_path)
    evidence = tmp_path / "evidence"
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=evidence)
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        contextlib.ExitStack() as full,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{site.url}/orders")
        page.evaluate(NOISE)
        full.enter_context(disk_full_past(WRITABLE))  # until the screenshot is taken, at exit
    release = release_of(store)
    assert release.screenshot is None
    assert "final screenshot failed: OSError" in (release.evidence_problem or "")
    (record,) = evidence.rglob("evidence.json")
    assert sorted(p.name for p in record.parent.iterdir()) == ["evidence.json"]
    assert json.loads(record.read_text())["evidence_problem"] == release.evidence_problem
