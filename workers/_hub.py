"""The process's heartbeats: one renewal hub per store (and clock) in a process, a thread with a
ledger of its own that renews every lease the process holds there, for both flavours (issue 16,
group commit). The leases due within a small window of each other are renewed in one
transaction (``Ledger.handle_together``); a lease due alone sends one ``Heartbeat``.

Each lease keeps what a heartbeat thread of its own gave it:

- a heartbeat under a command id of its own; after ``StoreUnavailable`` the same heartbeat (same
  id) is sent again a retry period later, while the lease is held, so one that landed is
  applied once; unless the run's step or URL moved on meanwhile (a step the task sent landed):
  then a new heartbeat, under a new id, says where the run is now, so the ledger's last step
  never goes back to an older one;
- a step the task sends (``stepping``) and the hub's heartbeat for the same lease are never on
  their way together: the step waits for a heartbeat in flight, and the hub leaves the lease out
  of a batch while a step is on its way, so the two land in the order they were made;
- an error nobody expected is noted in the guard and waited out for a retry period, then a new
  heartbeat is sent: only the deadline decides when to give up;
- the ledger's ``LeaseLost`` tells that lease's guard alone; the others in the batch are judged
  on their own answers and go on;
- ``Renewal.leave`` ends the lease's renewals: once it returns nothing more is sent for it, not
  even a batch already on its way (it waits for that batch's answer);
- the hub never touches a Playwright object: it reads ``Progress`` and tells ``LeaseGuard``.

A due renewal waits for no other: what is due now is sent with every lease due within half its
interval (``WINDOW_SHARE``), which renews those early. Leases renewed together stay due
together, and two groups of one TTL merge within an interval (whichever is due first, the other
is due within half an interval of it then or at its own turn), so a process's leases soon share
each transaction; each early renewal costs its lease one heartbeat sooner than it needed, never
a later deadline. A retry keeps its own time (a retry period after the failure, no earlier), and
retries are scheduled, never slept, so a lease whose renewal failed holds back no other lease's.
Revocation is still watched per lease (``workers._revocation``).

The thread starts with the first lease and ends, closing its ledger, when the last one leaves.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger import Heartbeat, Lease, LeaseLost, StoreUnavailable
from workers._guard import Clock, LeaseGuard, Progress
from workers._per_process import OwnLedgerThread, PerProcess
from workers._renewal import Handles, ended, heartbeat

WINDOW_SHARE = 0.5  # how early, in intervals, a lease is renewed to join a batch due now


class HandlesTogether(Handles, Protocol):
    """The part of ``ledger.Ledger`` the hub needs (a fake in the unit tests)."""

    def handle_together(self, commands: Sequence[Any]) -> list[Any]: ...


def send(ledger: HandlesTogether, beats: Sequence[Heartbeat]) -> list[Any]:
    """The heartbeats' answers in order, each a lease or the ``LedgerError`` it met: one alone
    as one command, several in one transaction. Raises what the store raised for them all
    (``StoreUnavailable``)."""
    if len(beats) == 1:
        return [ledger.handle(beats[0])]
    return ledger.handle_together(beats)


@dataclass(eq=False)
class Renewal:
    """One lease renewed by a hub, from ``RenewalHub.join`` until ``leave``. ``renewals``:
    how many of its heartbeats the hub has had accepted."""

    lease: Lease
    guard: LeaseGuard
    progress: Progress
    hub: RenewalHub = field(repr=False)
    renewals: int = 0
    beat: Heartbeat | None = None  # sent, not yet accepted: resent under its id
    started: float = 0.0  # when ``beat`` was first sent
    retry_at: float | None = None  # after a failure, when to try again
    # Held by the hub while this lease's heartbeat is on its way, and by a step the task sends.
    alone: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def renewing(self) -> bool:
        """True while the hub renews this lease and its thread runs."""
        return self.hub.renews(self)

    def leave(self, timeout: float | None = None) -> bool:
        """End this lease's renewals (``RenewalHub.leave``)."""
        return self.hub.leave(self, timeout)

    @property
    def window(self) -> float:
        """How soon before it is due the lease goes with a batch due now (a retry: not at all)."""
        return 0.0 if self.retry_at is not None else self.guard.timing.interval * WINDOW_SHARE

    def due_in(self, now: float) -> float:
        """Seconds until the next try: a retry period after a failure, else ``interval`` after
        the start of the last renewal that succeeded (a step the task sent counts)."""
        if self.retry_at is not None:
            return max(0.0, self.retry_at - now)
        return max(0.0, self.guard.renewed_at + self.guard.timing.interval - now)

    def prepared(self, now: float) -> Heartbeat | None:
        """The heartbeat to send now: the one not yet accepted (under its command id), unless
        the step or URL the run reports moved on since it was made, else a new one with them;
        None (the error noted, a retry scheduled) when none can be made."""
        report = self.progress.now()
        if self.beat is not None and (self.beat.step, self.beat.url) != (report.step, report.url):
            self.beat = None  # it may have landed: before the step, which waited for it
        if self.beat is None:
            try:
                self.beat = heartbeat(self.lease, step=report.step, url=report.url)
            except Exception as error:
                self.failed(error, now)
                return None
            self.started = now
        return self.beat

    def answered(self, answer: object, now: float) -> bool:
        """Judge the ledger's answer to ``beat``, sent at ``now``; False once the lease is lost
        (the guard says why), so the hub lets it go."""
        if isinstance(answer, LeaseLost):
            self.guard.refused(answer)  # "revoked: ..." when the ledger ended the lease
            return False
        if isinstance(answer, StoreUnavailable):  # the same heartbeat, a retry period on
            self.guard.failed(str(answer))
            self.retry_at = now + self.guard.timing.retry_period
        elif isinstance(answer, BaseException):
            self.failed(answer, now)
        elif isinstance(answer, Lease) and (why := ended(answer)) is not None:
            self.guard.revoked(why)
            return False
        else:
            self.guard.renewed(self.started)
            self.beat, self.retry_at = None, None
            self.renewals += 1
        return True

    def failed(self, error: BaseException, now: float) -> None:
        """An error nobody expected: noted in the guard (for the loss's message, should the
        deadline pass), and a new heartbeat tried a retry period on."""
        self.guard.failed(f"{type(error).__name__}: {error}")
        self.beat, self.retry_at = None, now + self.guard.timing.retry_period


class RenewalHub(OwnLedgerThread[HandlesTogether]):
    """The renewals of the leases one process holds on one store (``hub_for``): ``join`` a lease
    when it is granted, ``leave`` before releasing it. Thread-safe; its thread opens its own
    ledger with ``open_ledger``."""

    def __init__(
        self, open_ledger: Callable[[], HandlesTogether], clock: Clock, *, run: bool = True
    ) -> None:
        """``run=False``: no thread; the caller renews with ``renew_due`` (as the unit tests
        do, one round at a time)."""
        super().__init__(open_ledger, "custody heartbeats")
        self._run_thread = run
        self._clock = clock
        self._renewals: list[Renewal] = []
        self._sending: list[Renewal] = []
        self._generation = 0  # moves at every join and leave: a wait must look again
        self.store_calls = 0  # heartbeats sent, and the store calls (transactions) they took
        self.heartbeats_sent = 0

    def join(self, lease: Lease, guard: LeaseGuard, progress: Progress) -> Renewal:
        """Renew ``lease`` from now on, when due; the hub's thread starts if it is not running."""
        renewal = Renewal(lease, guard, progress, self)
        with self._changed:
            self._renewals.append(renewal)
            self._moved()
            if self._run_thread:
                self._start()
        return renewal

    def leave(self, renewal: Renewal, timeout: float | None = None) -> bool:
        """Renew the lease no more. True once nothing is on its way for it (a batch carrying it
        was answered); False when that took longer than ``timeout`` seconds."""
        until = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            self._forget(renewal)
            while renewal in self._sending:
                left = None if until is None else until - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def renews(self, renewal: Renewal) -> bool:
        with self._changed:
            return renewal in self._renewals and self._thread is not None

    def _moved(self) -> None:
        self._generation += 1
        self._changed.notify_all()

    def _forget(self, renewal: Renewal) -> None:
        if renewal in self._renewals:
            self._renewals.remove(renewal)
            self._moved()

    def renew_due(self, ledger: HandlesTogether) -> float:
        """One round: the leases no longer held are let go; if one is due, it and every lease
        due within its window are renewed in one store call (``send``), each answer judged
        alone. Returns the seconds until the next is due (``inf`` with no lease left)."""
        with self._changed:
            renewals = list(self._renewals)
        held = self._held(renewals)  # outside the lock: a loss calls the guard's watchers
        now = self._clock()
        if any(r.due_in(now) <= 0 for r in held):
            with self._changed:  # a lease that left meanwhile is not sent
                self._sending = [
                    r for r in held if r.due_in(now) <= r.window and r in self._renewals
                ]
            self._send(ledger, self._sending, now)
            now = self._clock()
        with self._changed:
            return min((r.due_in(now) for r in self._renewals), default=math.inf)

    def _serve(self, ledger: HandlesTogether) -> None:
        """Renew what is due, sleep until the next is (or a lease joins or leaves), until no
        lease is left."""
        while True:
            with self._changed:
                generation = self._generation
            wait = self.renew_due(ledger)
            with self._changed:
                if not self._renewals:
                    self._thread = None
                    return
                if generation == self._generation and wait > 0:
                    self._changed.wait(wait)

    def _held(self, renewals: list[Renewal]) -> list[Renewal]:
        """The leases still held; the others (lost, or past their deadline) are let go."""
        held = [r for r in renewals if r.guard.held()]
        if len(held) < len(renewals):
            with self._changed:
                for renewal in renewals:
                    if renewal not in held:
                        self._forget(renewal)
        return held

    def _send(self, ledger: HandlesTogether, due: list[Renewal], now: float) -> None:
        """Send the due leases' heartbeats in one store call and judge each answer alone. A
        lease whose step the task is sending is left out (the step renews it)."""
        lost: list[Renewal] = []
        alone = [r for r in due if r.alone.acquire(blocking=False)]
        for held_back in (r for r in due if r not in alone):  # looked at again, not spun on
            held_back.retry_at = now + held_back.guard.timing.retry_period
        try:
            ready = [(r, beat) for r in alone if (beat := r.prepared(now)) is not None]
            answers = self._answers(ledger, [beat for _, beat in ready])
            lost = [r for (r, _), a in zip(ready, answers, strict=True) if not r.answered(a, now)]
        finally:
            for renewal in alone:
                renewal.alone.release()
            with self._changed:
                for renewal in lost:
                    self._forget(renewal)
                self._sending = []
                self._changed.notify_all()

    def _answers(self, ledger: HandlesTogether, beats: list[Heartbeat]) -> list[Any]:
        """Each heartbeat's answer; what the store raised for them all is each one's answer."""
        if not beats:
            return []
        self.store_calls += 1
        self.heartbeats_sent += len(beats)
        try:
            return send(ledger, beats)
        except Exception as error:
            return [error] * len(beats)


def stepping(renewal: Renewal | None) -> AbstractContextManager[object]:
    """Hold: a step the task sends for this lease is on its way (waiting first for a heartbeat
    of the hub's in flight); the hub sends none for it meanwhile. Record the step in the run's
    ``Progress`` before leaving, so no heartbeat made afterwards carries the older one."""
    return renewal.alone if renewal is not None else contextlib.nullcontext()


_hubs: PerProcess[tuple[Hashable, Clock], RenewalHub] = PerProcess()


def hub_for(
    store: Hashable, open_ledger: Callable[[], HandlesTogether], clock: Clock
) -> RenewalHub:
    """The process's renewal hub for ``store`` (a parsed store URL) and ``clock``, made on first
    use with ``open_ledger``; a forked child's leases start hubs of their own."""
    return _hubs.get((store, clock), lambda: RenewalHub(open_ledger, clock))
