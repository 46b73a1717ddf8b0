"""The revocation watch: a held lease learns within a poll that the ledger took it back.

A force-release, an operator's quarantine or disable, or the sweep's stale mark ends a lease in
the ledger; the worker used to learn it only at its next renewal (up to a third of the TTL, 100 s
at the default) and its browser kept working meanwhile. The watch is a thread of its own, with
a ledger of its own, so it learns whatever the task's thread is doing (blocked in a page call,
busy in the event loop): every ``poll`` seconds it asks ``Ledger.check_lease``, and the first
time the lease is not live it loses the lease with the ledger's reason ("revoked: ..."). The
guard's watchers then stop the browser at once (its watchdog kills it), and the task's next
SDK call raises ``LeaseLost``.

Cost: one indexed read of the profile's availability row per poll, 2 reads a second per held
lease at the default 0.5 s, on one connection of the watch's own. PostgreSQL could push, but
every append notifies one channel for the whole store, so listening would wake every worker
at every commit of every other: a fixed poll keeps the cost per worker bounded. A worker that is
frozen runs no thread: its browser is stopped by the watchdog at the lease's local deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ledger import LeaseCheck, StoreUnavailable
from workers._guard import LeaseGuard
from workers._lease_thread import LeaseThread

POLL_SECONDS = 0.5


class LeaseChecks(Protocol):
    """The part of ``ledger.Ledger`` the watch needs."""

    def check_lease(self, lease_id: str) -> LeaseCheck: ...

    def close(self) -> None: ...


class RevocationWatch(LeaseThread[LeaseChecks]):
    """The watch of one held lease, on a ledger of its own (``LeaseThread``); ``start`` with
    the lease, ``stop`` before releasing it (the worker's own release must not read as a
    revocation)."""

    def __init__(
        self,
        open_ledger: Callable[[], LeaseChecks],
        guard: LeaseGuard,
        poll: float = POLL_SECONDS,
    ) -> None:
        super().__init__(f"revocation watch {guard.lease_id}", open_ledger)
        self._guard = guard
        self._poll = poll

    def _watch(self, ledger: LeaseChecks) -> None:
        while not self._stop.wait(self._poll) and self._guard.held():
            self._check(ledger)

    def _check(self, ledger: LeaseChecks) -> None:
        try:
            check = ledger.check_lease(self._guard.lease_id)
        except StoreUnavailable:
            return  # the store comes back, or the deadline decides
        if not check.live and not self._stop.is_set():
            self._guard.revoked(check.why or "not live")
