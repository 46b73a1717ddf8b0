"""What a worker knows about its lease, shared by the task's thread, Playwright's callbacks
and the heartbeat thread: every method here is thread-safe and none does I/O (a watcher the
guard calls may: the browser's watchdog, ``workers._watchdog``).

``LeaseGuard`` says whether the lease is still held. It is held until ``lose`` is called, and
never past its local deadline: ``held()`` reads the clock itself, so a worker that was paused
(SIGSTOP, a long GC, a suspended VM) and resumes past its deadline finds the lease gone at the
first question it asks (a route handler deciding a request, the next ``step``), before its
heartbeat thread has had a chance to run. ``Progress`` is what the run reported: the step, the
page's URL, a prompt, the evidence filed at the end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ledger import Lease, LeaseLost
from ledger.rules import carries_password, without_nested_passwords, without_userinfo
from workers._reasons import storable
from workers._timing import RenewalTiming

Clock = Callable[[], float]
Moved = Callable[[float], None]  # the local deadline moved to this reading of the clock
Lost = Callable[[str], None]  # the lease was lost, for this reason
# How long after the local deadline its timer asks (``LeaseGuard._arm``): past it, surely.
DEADLINE_TIMER_SLACK = 0.01
MAX_URL = 4096  # what the ledger accepts for a URL; a longer page URL is cut, not refused
# The last character of a URL cut to ``MAX_URL``: the record says it is not the whole URL
# (review 275: a cut URL read as the page's own).
CUT_MARK = "\u2026"
UNRECORDABLE = "(a URL the ledger would refuse)"  # a prompt seen at one, in evidence.json
# Where Chromium shows a navigation that failed (refused, DNS, net::ERR_*): its own page, whose
# URL (chrome-error://chromewebdata/) names none the run tried. rev27: it was the final URL.
ERROR_PAGE = "chrome-error://"
# How ``why_lost`` begins when the ledger took the lease back (docs/operations/workers.md).
REVOKED = "revoked: "
# Why a task's call under a lease is refused once its checkout block was left and the lease not
# lost: the worker released it (or tried to, the sweep settling it if not), and sends nothing
# more under it. Not a loss: ``why_lost`` stays as it was (rev39: a step sent after the release
# met the ledger's ending and read as a revocation, "revoked: lease ended review ...").
BLOCK_LEFT = (
    "its checkout block was left: released by this worker (or, if the release failed, left to "
    "the sweep); nothing more is sent under it"
)


def recorded_url(url: str) -> str | None:
    """``url`` as the worker records it (heartbeats, the release, ``evidence.json``), escaped
    (``storable``), cut to ``MAX_URL`` (its last character then ``CUT_MARK``, an ellipsis)
    and without userinfo by the ledger's own rule
    (``ledger.rules.without_userinfo``: ``http://user:pass@host/`` is ``http://host/``, and so
    is the same URL without slashes, with backslashes or after spaces), nor a nested URL's
    (``without_nested_passwords``, the rule of a failure's reason: ``/login?next=http://bob:pw@
    intranet/`` is ``/login?next=http://intranet/``, percent-encoded too): the ledger is
    append-only, and a password written there stays, so it refuses one, and a heartbeat it
    refuses loses the lease. A query's or a fragment's token (``#access_token=...``) stays.
    None for a URL the ledger would refuse all the same (empty)."""
    kept = without_nested_passwords(without_userinfo(storable(url)))
    if len(kept) > MAX_URL:
        kept = kept[: MAX_URL - 1] + CUT_MARK
    return kept if kept and not carries_password(kept) else None


class LeaseGuard:
    """Held or lost, for one lease. Once lost it stays lost."""

    def __init__(
        self,
        lease_id: str,
        timing: RenewalTiming,
        started: float,
        clock: Clock = time.monotonic,
        max_duration: float | None = None,
    ) -> None:
        """``started``: the clock's reading just before the checkout was sent;
        ``max_duration``: the lease's hard limit in seconds from its start (None: none)."""
        self.lease_id = lease_id
        self.timing = timing
        self.lost = threading.Event()
        self.max_duration = max_duration
        self.hard_limit = None if max_duration is None else started + max_duration
        self._clock = clock
        self._lock = threading.Lock()
        self._renewed_at = started
        self._why = ""
        self._ended = False
        self._last_error = ""
        self._watchers: list[tuple[Moved, Lost]] = []
        self._timer: threading.Timer | None = None
        self._retired = False
        self._arm()

    @classmethod
    def for_lease(cls, lease: Lease, started: float, clock: Clock = time.monotonic) -> LeaseGuard:
        """The guard of a lease just granted, its timing from the TTL. Its hard limit counts
        from ``started``, which is before the ledger's start of the lease, so the worker stops
        before the ledger refuses it."""
        duration = None
        if lease.hard_limit_at is not None:
            duration = (lease.hard_limit_at - lease.lease_started_at).total_seconds()
        timing = RenewalTiming.from_ttl(lease.ttl_seconds)
        return cls(lease.lease_id, timing, started, clock, duration)

    @property
    def why(self) -> str:
        """Why the lease was lost ("" while it is held)."""
        with self._lock:
            return self._why

    @property
    def ended(self) -> bool:
        """Whether the lease was lost because the ledger ended it or marked it stale
        (``revoked``: ``why`` begins ``REVOKED``); False while held and for a loss of the
        worker's own."""
        with self._lock:
            return self._ended

    @property
    def renewed_at(self) -> float:
        """The start of the last renewal that succeeded (the checkout counts as one)."""
        with self._lock:
            return self._renewed_at

    @property
    def valid_until(self) -> float:
        """The local deadline: ``renew_deadline`` after the last renewal's start, and never
        past the hard limit."""
        with self._lock:
            until = self._renewed_at + self.timing.renew_deadline
        return until if self.hard_limit is None else min(until, self.hard_limit)

    def held(self) -> bool:
        """True while the lease is neither lost nor past its local deadline; the first call
        past the deadline loses it."""
        if self.lost.is_set():
            return False
        now = self._clock()
        if now < self.valid_until:
            return True
        if self.hard_limit is not None and now >= self.hard_limit:
            self.lose(f"hard limit of {self.max_duration:g}s reached: stop the run")
            return False
        error = f" (last renewal error: {self._last_error})" if self._last_error else ""
        self.lose(f"not renewed within {self.timing.renew_deadline:g}s{error}")
        return False

    def _arm(self) -> None:
        """Ask ``held`` again at the local deadline, on a timer of its own: a question no one
        else may ask in time (rev33: the heartbeat thread blocked in a store call that waits
        the store's timeout, ``lost`` was set 3 to 25 s past the ledger's own deadline, while
        a task watching ``lease.lost`` worked on). Each renewal arms it again."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            if self.lost.is_set() or self._retired:
                self._timer = None
                return
            until = self._renewed_at + self.timing.renew_deadline
            if self.hard_limit is not None:
                until = min(until, self.hard_limit)
            wait = max(until - self._clock(), 0.0) + DEADLINE_TIMER_SLACK
            self._timer = threading.Timer(wait, self._at_deadline)
            self._timer.daemon = True
            self._timer.start()

    def _at_deadline(self) -> None:
        if self.held():  # renewed meanwhile, or the clock is a test's: ask again later
            self._arm()

    def retire(self) -> None:
        """The lease's block is over (released, or left lost): its deadline asks nothing more,
        and a later call under it is refused (``refusal``)."""
        with self._lock:
            self._retired = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    @property
    def retired(self) -> bool:
        """Whether the lease's block is over (``retire``)."""
        with self._lock:
            return self._retired

    def check(self) -> None:
        """Raise ``LeaseLost`` unless ``held()``."""
        if not self.held():
            raise self.lost_error()

    def lost_error(self) -> LeaseLost:
        """The ``LeaseLost`` the SDK raises for this lost lease, whichever call heard of the
        loss first: ``why`` and, as ``.ended``, whether the ledger ended it (``revoked``), so
        the message and the flag agree (rev39: a step that heard after the revocation watch
        raised "revoked: ..." with ``ended`` False, a release that heard first the ledger's own
        error, without "revoked: ")."""
        with self._lock:
            return LeaseLost(self.lease_id, self._why, ended=self._ended)

    def refusal(self) -> LeaseLost | None:
        """Why the task may not call the ledger under the lease now, as the ``LeaseLost`` to
        raise (None: it may): lost (``lost_error``); or its checkout block left (``retire``)
        and not lost, ``BLOCK_LEFT``, ``ended`` False (the worker ended it, not the ledger),
        the lease not lost by it and no heartbeat sent."""
        with self._lock:
            left = self._retired
        if self.lost.is_set():
            return self.lost_error()
        if left:  # asked before held(): past its deadline it would lose a released lease
            return LeaseLost(self.lease_id, BLOCK_LEFT)
        return None if self.held() else self.lost_error()

    def watch(self, moved: Moved, lost: Lost) -> Callable[[], None]:
        """Call ``moved(valid_until)`` after each renewal and ``lost(why)`` once the lease is
        lost (at once if it already is), on the thread that renewed or lost it, outside the
        guard's lock; returns the function that ends the calls."""
        watcher = (moved, lost)
        with self._lock:
            self._watchers.append(watcher)
        if self.lost.is_set():
            lost(self.why)

        def unwatch() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._watchers.remove(watcher)

        return unwatch

    def renewed(self, started: float) -> None:
        """A renewal sent at ``started`` succeeded: the deadline moves (never backwards)."""
        with self._lock:
            if self.lost.is_set():
                return
            self._renewed_at = max(self._renewed_at, started)
            self._last_error = ""
            watchers = list(self._watchers)
        self._arm()
        until = self.valid_until
        for moved, _ in watchers:
            moved(until)

    def failed(self, error: str) -> None:
        """A renewal failed in a way that may pass; remembered for the loss's message."""
        with self._lock:
            self._last_error = error

    def revoked(self, why: str) -> None:
        """The ledger ended the lease or marked it stale, and not at this worker's asking (it
        sends nothing under a lease it released): lost, the reason beginning ``REVOKED``, and
        ``ended``."""
        self._lose(f"{REVOKED}{why}", ended=True)

    def refused(self, lost: LeaseLost) -> None:
        """The ledger answered ``LeaseLost``: ``revoked`` when it ended the lease or marked it
        stale (``LeaseLost.ended``: a force-release, an operator's quarantine or disable, the
        sweep), whichever of the worker's calls met it first (a heartbeat, a step, the release);
        else lost with the ledger's reason as it is (the worker's own: its deadline or hard
        limit passed, a fencing token not the lease's)."""
        if lost.ended:
            self.revoked(lost.why)
        else:
            self.lose(lost.why)

    def lose(self, why: str) -> None:
        """The lease is gone (the ledger said so, or the deadline passed); the first reason
        given is kept."""
        self._lose(why, ended=False)

    def _lose(self, why: str, *, ended: bool) -> None:
        with self._lock:
            if self.lost.is_set():
                return
            self._why = why
            self._ended = ended
            self.lost.set()
            watchers = list(self._watchers)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        for _, lost in watchers:
            lost(why)


@dataclass(frozen=True)
class Report:
    """A snapshot of what the run reported so far."""

    step: str | None = None
    last_safe_step: str | None = None
    mutating_step: str | None = None
    url: str | None = None
    prompt_url: str | None = None
    observed_proxy: str | None = None
    screenshot: str | None = None
    screenshot_sha256: str | None = None
    evidence_problem: str | None = None


class Progress:
    """The run's report, updated from any thread (a navigation callback only stores a string).
    Page URLs are kept storable (``workers._reasons.storable``) and within the ledger's limit,
    so no heartbeat or release is ever refused for one, and without userinfo (``recorded_url``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report = Report()

    def now(self) -> Report:
        with self._lock:
            return self._report

    def update(self, **changes: str | None) -> None:
        """Record ``changes``; a page's URL as ``recorded_url`` makes it, except Chromium's
        page for a navigation that failed (``ERROR_PAGE``), which is not the run's page: the
        URL stays the last page committed, one an investigator can open."""
        url = changes.get("url")
        if url is not None and url.startswith(ERROR_PAGE):
            del changes["url"]
        elif url is not None:
            changes["url"] = recorded_url(url)
        with self._lock:
            self._report = replace(self._report, **changes)

    def evidence_failed(self, what: str) -> None:
        """Something the evidence needed went wrong (a screenshot, the browser's close); each
        such line is kept, in order."""
        with self._lock:
            earlier = self._report.evidence_problem
            said = f"{earlier}; {what}" if earlier else what
            self._report = replace(self._report, evidence_problem=said)

    def stepped(self, step: str, *, safe: bool, mutating: bool) -> None:
        """Record a step the ledger accepted, with the ledger's rule for safe and mutating."""
        with self._lock:
            r = self._report
            if mutating:
                self._report = replace(r, step=step, mutating_step=step)
            elif safe:
                self._report = replace(r, step=step, last_safe_step=step, mutating_step=None)
            else:
                self._report = replace(r, step=step)

    def prompt(self, url: str) -> None:
        """A login or verification page was navigated to; the first one is kept."""
        with self._lock:
            if self._report.prompt_url is None:
                kept = recorded_url(url) or UNRECORDABLE  # the prompt was seen all the same
                self._report = replace(self._report, prompt_url=kept)
