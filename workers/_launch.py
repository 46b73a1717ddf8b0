"""What a launch of a leased profile needs, decided before any browser starts, and the
bookkeeping its callbacks do; shared by the sync and the asyncio flavours.

Nothing here calls Playwright: ``plan`` refuses a launch the profile or the worker's
configuration does not allow, and ``Navigations`` turns a frame's navigation into a string in
``Progress`` (Playwright runs the callback on its own thread; it must not block or do I/O).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ledger import BrowserStatus, Lease
from ledger.files import written_whole
from workers import _evidence as evidence
from workers._guard import Progress
from workers._inspector import LocalHost, inspect
from workers._reasons import reason_of
from workers._settings import BrowserSettings, LaunchRefused

# The abort reason Chromium shows for a request the lease guard refused.
BLOCKED = "blockedbyclient"
ALL_URLS = "**/*"
# Chrome reads its WebRTC IP handling policy from the profile's preferences (the
# --force-webrtc-ip-handling-policy switch is read by content_shell and the old headless shell
# only: measured, Debian's Chromium 156 sends STUN from the host with it).
PREFERENCES = Path("Default") / "Preferences"
WEBRTC_POLICY = "disable_non_proxied_udp"
# How long a browser has to answer a question (its cookies) after its final screenshot failed,
# before it counts as frozen (and is killed rather than closed).
ANSWER_TIMEOUT_MS = 2_000


@dataclass(frozen=True)
class LaunchPlan:
    """Where and how to launch, and where the final screenshot goes."""

    user_data_dir: Path
    proxy_id: str
    arguments: dict[str, Any]
    evidence_dir: Path
    lease_dir: Path
    screenshot: Path
    screenshot_timeout_ms: float

    def file_screenshot(self, progress: Progress) -> None:
        """The screenshot was saved: record its path and the sha256 of its bytes."""
        progress.update(
            screenshot=evidence.recorded_path(self.screenshot, self.evidence_dir),
            screenshot_sha256=evidence.sha256_of(self.screenshot),
        )


class _Page(Protocol):
    def is_closed(self) -> bool: ...


P = TypeVar("P", bound=_Page)


def final_page(navigated: Sequence[P], pages: Sequence[P]) -> P | None:
    """The page the final screenshot shows: of the pages ``navigated`` (in the order their
    last navigations came), the latest still open, else the last one open (rev30: the last
    one open, opened first or not, stood for a closed popup's opener)."""
    return next((p for p in (*reversed(navigated), *reversed(pages)) if not p.is_closed()), None)


def shows_a_page(url: str) -> bool:
    """Whether a frame found already open shows a page (not the blank one a new tab starts
    with): its URL counts as a navigation."""
    return url not in ("", "about:blank")


def plan(
    lease: Lease,
    user_data_dir: str | None,
    settings: BrowserSettings,
    evidence_dir: Path,
    options: Mapping[str, Any],
) -> LaunchPlan:
    """The launch for ``lease`` on the profile's registered directory. ``LaunchRefused`` when
    the profile has no registered directory, this worker cannot resolve its proxy id, or an
    option would choose the directory or the proxy."""
    if not user_data_dir:
        # A registration never changes (rev26: the old advice, to register it with a
        # directory, was refused as registering it differently): what can be done is said.
        pid = lease.profile_id
        msg = (
            f"profile {pid} was registered without a user_data_dir, and a registration never "
            "changes: register the browser profile under a new id with --user-data-dir DIR, "
            f"and retire this one (custody disable {pid} --actor NAME --reason TEXT)"
        )
        raise LaunchRefused(msg)
    proxy = settings.resolve_proxy(lease.proxy_id)
    lease_dir = evidence.lease_directory(evidence_dir, lease)
    return LaunchPlan(
        user_data_dir=Path(user_data_dir),
        proxy_id=lease.proxy_id,
        arguments=settings.launch_arguments(proxy, options),
        evidence_dir=evidence_dir,
        lease_dir=lease_dir,
        screenshot=lease_dir / "final.png",
        screenshot_timeout_ms=settings.screenshot_timeout_ms,
    )


def pin_webrtc_policy(user_data_dir: Path) -> None:
    """Set the profile's WebRTC IP handling policy to ``disable_non_proxied_udp`` in
    ``Default/Preferences`` (made if missing; every other preference kept), before each launch:
    without it WebRTC sends UDP (STUN, media) straight from the host, around the profile's
    proxy and the lease's guard; with it WebRTC uses only what goes through the proxy.
    ``LaunchRefused`` when the file cannot be read as a JSON object (Chromium would start the
    profile afresh: a person should look first)."""
    # Through a symlink to the file it names; written with the file's own mode (Chromium's is
    # 0600: the preferences are the profile's, no other user's to read).
    path = (user_data_dir / PREFERENCES).resolve()
    try:
        prefs = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o600
    except (OSError, ValueError) as e:
        raise LaunchRefused(f"cannot read {path} to pin WebRTC to the proxy: {e}") from None
    if not isinstance(prefs, dict):
        raise LaunchRefused(f"{path} does not hold a JSON object: Chromium would reset it")
    webrtc = prefs.get("webrtc")
    if not isinstance(webrtc, dict):
        webrtc = prefs["webrtc"] = {}
    if webrtc.get("ip_handling_policy") == WEBRTC_POLICY:
        return
    webrtc["ip_handling_policy"] = WEBRTC_POLICY
    path.parent.mkdir(parents=True, exist_ok=True)
    with written_whole(path, mode=mode) as file:  # a file there keeps its mode
        os.fchmod(file.fileno(), mode)  # whatever the umask took away
        file.write(json.dumps(prefs).encode())


def kill_browser(user_data_dir: Path, launched: int | None) -> int | None:
    """SIGKILL the process group of the Chromium running on ``user_data_dir`` on this host (the
    pid its ``SingletonLock`` names, checked by the inspector) if it is the browser this
    session ``launched`` (its pid); the pid, or None if that browser no longer runs there.

    Never another: a worker that wakes up long after losing its lease (stopped, frozen) may
    find its own browser long killed by its watchdog and the profile leased again on this
    host, a later lease's browser on the directory: that one is not the waking worker's to
    stop. A session that never learnt its browser's pid kills nothing (it closes it).

    This is how a browser under a lost lease is stopped. A graceful ``context.close()`` is not
    enough: Playwright stops answering routed requests once the context is closing, and as
    Chromium shuts down it lets the requests still waiting for an answer go out to the network
    (seen in the zombie test: a handful of requests reaching the site 0.1 to 0.3 s after the
    worker resumed). Killed, the browser sends nothing more; its recent cookies are lost, which
    matters little for a profile that goes to review anyway."""
    check = inspect(str(user_data_dir))
    if check.status is not BrowserStatus.ALIVE or check.pid is None:
        return None
    if check.pid != launched:  # another lease's browser, or one never known here
        return None
    with contextlib.suppress(ProcessLookupError):
        LocalHost().send(check.pid, signal.SIGKILL, group=True)
    return check.pid


class EvidenceWatch:
    """What went wrong with a launched browser's evidence, said in ``Progress`` for the
    release (its ``evidence_problem``): a browser gone before the final screenshot (a crash,
    a dead driver), no page left open to capture, a screenshot that failed, a close that
    failed. ``unanswered``: the browser
    did not answer the screenshot (frozen, or its driver gone), so it is killed, not closed."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._gone = False
        self.unanswered = False

    def context_closed(self, *_: object) -> None:
        """Playwright's ``close`` event (its own thread): the browser went away."""
        self._gone = True

    def gone_before_capture(self) -> bool:
        if self._gone:
            self._progress.evidence_failed("the browser was gone before the final screenshot")
        return self._gone

    def no_page_left(self) -> None:
        """Every page was closed before the final screenshot (the task's own ``page.close()``
        of its last one): there is nothing to capture, which is said, not skipped (rev47)."""
        self._progress.evidence_failed("no page was left open for the final screenshot")

    def capture_failed(self, error: Exception, *, browser: bool) -> None:
        """The screenshot raised ``error``; ``browser``: the browser's side failed (not,
        say, the disk)."""
        self._progress.evidence_failed(f"final screenshot failed: {reason_of(error)}")
        self.unanswered = self.unanswered or browser

    def close_failed(self, error: Exception, *, expected: bool) -> None:
        """The context's close raised; ``expected`` after the browser was killed on purpose."""
        if not expected:
            self._progress.evidence_failed(f"browser close failed: {reason_of(error)}")


class Navigations:
    """Records navigations: the main frame's URL as the page's URL, any frame's URL that looks
    like a prompt as the prompt seen."""

    def __init__(self, progress: Progress, is_prompt: Callable[[str], bool]) -> None:
        self._progress = progress
        self._is_prompt = is_prompt

    def navigated(self, url: str, *, main_frame: bool) -> None:
        if self._is_prompt(url):
            self._progress.prompt(url)
        if main_frame:
            self._progress.update(url=url)
