# Generated from workers/aio/_browser.py by scripts/unasync.py: do not edit it by hand. Edit the
# source, then run `python scripts/unasync.py` (tests/e2e/test_unasync.py fails while this
# file is stale).
"""A leased profile's browser: the lease guard on every request, the navigation watch, and the
final screenshot.

Every request of the context, whichever page or frame makes it, passes ``context.route``'s
handler, which lets it through only while the lease is held and aborts it once the lease is
lost (a shared worker's would pass none: the browser is launched without shared workers,
``workers._settings.GUARD_SWITCHES``); every WebSocket passes ``context.route_web_socket``'s,
which connects it only while the lease is held and closes it at the first message the page
sends after the loss.

Playwright holds a routed request (or message) until the handler has answered, and the handler
runs where the task's Playwright calls run (its thread, or its event loop), so one made while
the task is busy elsewhere, or while the process is stopped, waits; when the handler runs it
asks the guard, which reads the clock: past the deadline it is refused without reaching the
network. The browser itself is stopped by the task, at its next SDK call or when the block is
left (killed, not closed: see ``launch.kill_browser``); until then it can reach nothing. Not
covered: a route the task installs itself that calls ``continue_()`` (its handlers run before
these: use ``fallback()``), and ``context.request`` (Playwright's own HTTP client, which passes
no route).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from playwright.sync_api import (
    BrowserContext,
    Error as PlaywrightError,
    Frame,
    Page,
    Route,
    WebSocketRoute,
)

from workers._browser_watch import BrowserWatch
from workers._evidence import write_whole
from workers._flavour import blocking
from workers._guard import LeaseGuard, Progress
from workers._launch import (
    ALL_URLS,
    ANSWER_TIMEOUT_MS,
    BLOCKED,
    EvidenceWatch,
    LaunchPlan,
    Navigations,
    final_page,
    kill_browser,
    shows_a_page,
)


class BrowserSession:
    """A launched context under a lease, used by the lease's task only. ``install`` before any
    page loads."""

    def __init__(
        self,
        context: BrowserContext,
        guard: LeaseGuard,
        navigations: Navigations,
        progress: Progress,
        user_data_dir: Path,
        watch: BrowserWatch,
    ) -> None:
        """``watch``: the browser's watchdog, told ``done`` once the browser is closed."""
        self.context = context
        self._watchdog = watch
        self._user_data_dir = user_data_dir
        self.closed = False
        self._guard = guard
        self._navigations = navigations
        self._progress = progress
        self._last_page: Page | None = None
        # Every page navigated, in the order of their last navigations (the last is
        # ``_last_page`` until it closes): the one to fall back on is the latest open.
        self._navigated: list[Page] = []
        self._evidence = EvidenceWatch(progress)
        # Set at the final capture: what the page does next (a single-page app's pushState
        # while the browser closes) is not the run's URL (rev47: the final URL moved on).
        self._captured = False
        # Playwright's objects answer on the thread that made them only (the sync API's
        # greenlets): a step taken on another thread does not call them (rev30).
        self._thread = threading.get_ident()

    def install(self) -> None:
        """The request guard on every request, and the navigation watch on every page."""
        self.context.on("close", self._evidence.context_closed)
        self.context.route(ALL_URLS, self._route)
        self.context.route_web_socket(ALL_URLS, self._route_socket)
        for page in self.context.pages:
            self._watch(page)
        self.context.on("page", self._watch)

    def _route(self, route: Route) -> None:
        if self._guard.held():
            route.fallback()
        else:
            route.abort(BLOCKED)

    def _route_socket(self, socket: WebSocketRoute) -> None:
        if not self._guard.held():
            socket.close()
            return
        server = socket.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if self._guard.held():
                server.send(message)
            else:
                server.close()
                socket.close()

        socket.on_message(from_page)

    def _watch(self, page: Page) -> None:
        """Record the page's navigations from now on, and what its frames already show as
        navigations too: Playwright reports a popup (``context.on("page")``) only once its
        first navigation has committed, with the frames it loaded, so that first page (a
        verification page opened with ``window.open``) would otherwise never be seen."""

        def navigated(frame: Frame) -> None:
            main_frame = frame.parent_frame is None
            if main_frame and not self._captured:
                self._last_page = page
                # One assignment: a step on another thread reads the list whole, never without
                # this page between a removal and an append (rev30's fourth reading).
                self._navigated = [*(p for p in self._navigated if p is not page), page]
            self._navigations.navigated(frame.url, main_frame=main_frame and not self._captured)

        page.on("framenavigated", navigated)
        for frame in page.frames:
            if shows_a_page(frame.url):
                navigated(frame)

    def catch_up(self) -> None:
        """Have Playwright deliver the page events it holds, so the run's URL is the page's as of
        now: one round trip to Playwright's driver (a timer of 0 ms, which no page's renderer
        answers, so a busy or frozen page does not hold it up). The sync API delivers events
        only inside one of its calls: a page that moved without a new document
        (``history.pushState``, a hash change) while the task was busy elsewhere was seen only
        at the task's next call, so a step named the page it had left (rev30). A page or a
        browser gone meanwhile has nothing more to deliver; that is the evidence's to say.

        Once the page last navigated is closed (a popup that closed itself), the page left open
        (the one the final screenshot would show) becomes the last page and its URL the run's:
        a step names the page the task is on, never one gone."""
        page = final_page(self._navigated, self.context.pages)
        if page is None:
            return
        if threading.get_ident() == self._thread:  # else: the URL last delivered
            with contextlib.suppress(PlaywrightError):
                page.wait_for_timeout(0)
        shown = final_page(self._navigated, self.context.pages)
        if self._last_page is not None and shown is not None and shown is not self._last_page:
            self._last_page = shown
            self._progress.update(url=shown.url)

    def screenshot(self, launch: LaunchPlan) -> None:
        """Save the final page (the last navigated one, or, once that one is closed, the last
        one open) as the final screenshot and record its path and sha256. Once the page last
        navigated was closed (a popup that closed itself, the task's own ``close``), the run's
        URL (the release's final URL) is the final page's, so both name one page (rev30: the
        closed page was the final URL of a screenshot showing another); a run that navigated
        no page keeps the URL it reported (``visited``), or none. No page left open (the task
        closed its last one) and a capture that fails are recorded as the evidence problem
        (``EvidenceWatch``); after a Playwright error (a timeout, a crashed tab) the browser is
        asked whether it answers (``_answers``): one that does not is killed at ``close``, one
        that does is closed."""
        if self._evidence.gone_before_capture():
            self._captured = True
            return
        page = final_page(self._navigated, self.context.pages)
        if page is None:
            self._captured = True
            self._evidence.no_page_left()
            return
        shown = page.url
        try:
            launch.screenshot.parent.mkdir(parents=True, exist_ok=True)
            try:
                taken = page.screenshot(timeout=launch.screenshot_timeout_ms)
            finally:  # the run's URL is the page's as of the capture, frozen from now on
                self._captured = True
                shown = page.url
            blocking(write_whole, launch.screenshot, taken)  # whole, as evidence.json
        except Exception as failed:
            self._captured = True  # a directory that could not be made: no capture either
            unanswered = isinstance(failed, PlaywrightError) and not self._answers()
            self._evidence.capture_failed(failed, browser=unanswered)
        else:
            launch.file_screenshot(self._progress)
        # Read at the capture, which delivered the events Playwright held.
        if self._last_page is not None and page is not self._last_page:
            self._progress.update(url=shown)

    def _answers(self) -> bool:
        """Whether the browser still answers, after a screenshot that failed: a screenshot
        waits for the page's web fonts, so one font that never arrives times it out on a healthy
        browser, and a tab whose renderer crashed fails it at once ("Target crashed") while the
        browser runs on; either must be closed (the only way its cookies are flushed), not
        killed. Asked for the context's cookies, which the browser answers whatever its pages
        do. No Playwright call on a context takes a timeout, so a browser that has not
        answered within ``ANSWER_TIMEOUT_MS`` (frozen) is killed, which ends the question."""
        late = threading.Event()

        def kill() -> None:
            late.set()
            kill_browser(self._user_data_dir, self._watchdog.browser)

        timer = threading.Timer(ANSWER_TIMEOUT_MS / 1000, kill)
        timer.start()
        try:
            self.context.cookies()
        except PlaywrightError:
            return False
        finally:
            timer.cancel()
            blocking(timer.join)  # a kill under way is over before the answer is read
        return not late.is_set()

    def close(self) -> None:
        """Close the context (the only way Chromium flushes recent cookies). Under a lost
        lease, or after a screenshot the browser did not answer, kill the browser first
        (``launch.kill_browser`` says why; a frozen browser would never answer the close).
        Idempotent; a close that fails is recorded as an evidence problem."""
        if self.closed:
            return
        self.closed = True
        killed = False
        if not self._guard.held() or self._evidence.unanswered:
            killed = kill_browser(self._user_data_dir, self._watchdog.browser) is not None
        try:
            self.context.close()
        except PlaywrightError as failed:
            self._evidence.close_failed(failed, expected=killed)
        finally:
            blocking(self._watchdog.done)
