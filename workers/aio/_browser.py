"""A leased profile's browser on Playwright's async API: the same guard, watch and final
screenshot as ``workers._browser``, for a task on an event loop.

The guards are a ``context.route`` and a ``context.route_web_socket`` handler running on the
event loop (see ``workers._browser``): a request made
while the loop is blocked (or the process stopped) waits for it, and it asks the guard, which
reads the clock, so past the deadline the request is aborted without reaching the network.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import (
    BrowserContext,
    Error as PlaywrightError,
    Frame,
    Page,
    Route,
    WebSocketRoute,
)

from workers._browser_watch import BrowserWatch
from workers._guard import LeaseGuard, Progress
from workers._launch import (
    ALL_URLS,
    BLOCKED,
    EvidenceWatch,
    LaunchPlan,
    Navigations,
    final_page,
    kill_browser,
)


class BrowserSession:
    """A launched context under a lease, used from its event loop only. ``install`` before
    any page loads."""

    def __init__(
        self,
        context: BrowserContext,
        guard: LeaseGuard,
        navigations: Navigations,
        progress: Progress,
        user_data_dir: Path,
        watch: BrowserWatch,
    ) -> None:
        self.context = context
        self._watchdog = watch
        self._user_data_dir = user_data_dir
        self.closed = False
        self._guard = guard
        self._navigations = navigations
        self._progress = progress
        self._last_page: Page | None = None
        self._evidence = EvidenceWatch(progress)

    async def install(self) -> None:
        """The request guard on every request, and the navigation watch on every page."""
        self.context.on("close", self._evidence.context_closed)
        await self.context.route(ALL_URLS, self._route)
        await self.context.route_web_socket(ALL_URLS, self._route_socket)
        for page in self.context.pages:
            self._watch(page)
        self.context.on("page", self._watch)

    async def _route(self, route: Route) -> None:
        if self._guard.held():
            await route.fallback()
        else:
            await route.abort(BLOCKED)

    async def _route_socket(self, socket: WebSocketRoute) -> None:
        if not self._guard.held():
            await socket.close()
            return
        server = socket.connect_to_server()

        async def from_page(message: str | bytes) -> None:
            if self._guard.held():
                server.send(message)
            else:
                await server.close()
                await socket.close()

        socket.on_message(from_page)

    def _watch(self, page: Page) -> None:
        def navigated(frame: Frame) -> None:
            main_frame = frame.parent_frame is None
            if main_frame:
                self._last_page = page
            self._navigations.navigated(frame.url, main_frame=main_frame)

        page.on("framenavigated", navigated)

    async def screenshot(self, launch: LaunchPlan) -> None:
        """As ``workers._browser.BrowserSession.screenshot``."""
        if self._evidence.gone_before_capture():
            return
        page = final_page(self._last_page, self.context.pages)
        if page is None:
            return
        try:
            launch.screenshot.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=launch.screenshot, timeout=launch.screenshot_timeout_ms)
        except Exception as failed:
            self._evidence.capture_failed(failed, browser=isinstance(failed, PlaywrightError))
            return
        launch.file_screenshot(self._progress)

    async def close(self) -> None:
        """As ``workers._browser.BrowserSession.close``: under a lost lease, or after a
        screenshot the browser did not answer, the browser is killed before the close."""
        if self.closed:
            return
        self.closed = True
        killed = False
        if not self._guard.held() or self._evidence.unanswered:
            killed = kill_browser(self._user_data_dir) is not None
        try:
            await self.context.close()
        except PlaywrightError as failed:
            self._evidence.close_failed(failed, expected=killed)
        finally:
            await asyncio.to_thread(self._watchdog.done)
