"""The revocation watch: a held lease learns within a poll that the ledger took it back.

A force-release, an operator's quarantine or disable, or the sweep's stale mark ends a lease in
the ledger; the worker used to learn it only at its next renewal (up to a third of the TTL, 100 s
at the default) and its browser kept working meanwhile. The watch runs on a thread of its own,
with a ledger of its own, so it learns whatever the task's thread is doing (blocked in a page
call, busy in the event loop): every ``poll`` seconds it asks ``Ledger.check_lease``, and the
first time the lease is not live it loses the lease with the ledger's reason ("revoked: ...").
The guard's watchers then stop the browser at once (its watchdog kills it), and the task's next
SDK call raises ``LeaseLost``.

One thread and one ledger serve every lease a process holds on a store (``watches_for``), as
the renewal hub does for heartbeats: a ledger per lease held a pool of PostgreSQL connections
per lease (rev41: 27 connections for 8 leases, and a role's connection limit sized from the
documentation cost three processes of four their leases). Cost: one indexed read of the
profile's availability row per lease and poll, 2 reads a second per held lease at the default
0.5 s, on the one ledger's connection. PostgreSQL could push, but every append notifies one
channel for the whole store, so listening would wake every worker at every commit of every
other: a fixed poll keeps the cost per worker bounded. A worker that is frozen runs no thread:
its browser is stopped by the watchdog at the lease's local deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Protocol

from ledger import LeaseCheck, StoreUnavailable
from workers._guard import LeaseGuard
from workers._per_process import OwnLedgerThread, PerProcess

POLL_SECONDS = 0.5
log = logging.getLogger("custody.workers")


class LeaseChecks(Protocol):
    """The part of ``ledger.Ledger`` the watch needs."""

    def check_lease(self, lease_id: str) -> LeaseCheck: ...

    def close(self) -> None: ...


class RevocationWatch:
    """The watch of one held lease, served by the process's ``RevocationWatches`` for its
    store: ``start`` with the lease, ``stop`` before releasing it (the worker's own release
    must not read as a revocation)."""

    def __init__(
        self, watches: RevocationWatches, guard: LeaseGuard, poll: float = POLL_SECONDS
    ) -> None:
        self.guard = guard
        self.poll = poll
        self.due_at = 0.0  # monotonic time of the next check
        self._watches = watches

    def start(self) -> None:
        self._watches.join(self)

    def stop(self, timeout: float | None = None) -> bool:
        """Watch no more; True once no check of this lease is on its way (False when that
        took longer than ``timeout`` seconds: the check's answer is then dropped)."""
        return self._watches.leave(self, timeout)

    @property
    def alive(self) -> bool:
        """Whether the lease is still watched, or a check of it still on its way."""
        return self._watches.busy_with(self)


class RevocationWatches(OwnLedgerThread[LeaseChecks]):
    """The revocation watches of the leases one process holds on one store (``watches_for``):
    one thread, started at the first ``join`` and ended once no lease is left, which opens its
    own ledger with ``open_ledger`` and closes it when it ends. Thread-safe."""

    def __init__(self, open_ledger: Callable[[], LeaseChecks]) -> None:
        super().__init__(open_ledger, "custody revocation watch")
        self._watches: list[RevocationWatch] = []
        self._checking: RevocationWatch | None = None  # the check on its way

    def join(self, watch: RevocationWatch) -> None:
        """Check ``watch``'s lease every ``watch.poll`` seconds from now on."""
        with self._changed:
            watch.due_at = time.monotonic() + watch.poll
            self._watches.append(watch)
            self._changed.notify_all()
            self._start()

    def leave(self, watch: RevocationWatch, timeout: float | None = None) -> bool:
        """Check ``watch``'s lease no more. True once no check of it is on its way."""
        until = None if timeout is None else time.monotonic() + timeout
        self._drop(watch)
        with self._changed:
            while self._checking is watch:
                left = None if until is None else until - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def busy_with(self, watch: RevocationWatch) -> bool:
        with self._changed:
            return self._checking is watch or (watch in self._watches and self._thread is not None)

    def _serve(self, ledger: LeaseChecks) -> None:
        """Check each lease when due, sleep until the next is (or a lease joins or leaves),
        until no lease is left."""
        while True:
            with self._changed:
                watching = list(self._watches)
            # Outside the lock: a lease found lost calls its guard's watchers.
            for gone in [w for w in watching if not w.guard.held()]:
                self._drop(gone)
            with self._changed:
                if not self._watches:
                    self._thread = None
                    return
                watch = min(self._watches, key=lambda w: w.due_at)
                wait = watch.due_at - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                watch.due_at = time.monotonic() + watch.poll
                self._checking = watch
            try:
                self._check(ledger, watch)
            finally:
                with self._changed:
                    self._checking = None
                    self._changed.notify_all()

    def _drop(self, watch: RevocationWatch) -> None:
        with self._changed:
            if watch in self._watches:
                self._watches.remove(watch)
                self._changed.notify_all()

    def _check(self, ledger: LeaseChecks, watch: RevocationWatch) -> None:
        """One check of ``watch``'s lease; a lease not live is revoked, unless its worker
        stopped watching it meanwhile (its own release is no revocation)."""
        try:
            check = ledger.check_lease(watch.guard.lease_id)
        except StoreUnavailable:
            return  # the store comes back, or the deadline decides
        except Exception:  # one lease's failure ends its watch, not every other lease's
            log.exception("the revocation watch of %s ended", watch.guard.lease_id)
            self._drop(watch)
            return
        with self._changed:
            revoked = not check.live and watch in self._watches
        if revoked:  # outside the lock: the guard's watchers stop the browser
            watch.guard.revoked(check.why or "not live")


_watches: PerProcess[Hashable, RevocationWatches] = PerProcess()


def watches_for(store: Hashable, open_ledger: Callable[[], LeaseChecks]) -> RevocationWatches:
    """The process's revocation watches for ``store`` (a parsed store URL), made on first use
    with ``open_ledger``; a forked child's leases start watches of their own."""
    return _watches.get(store, lambda: RevocationWatches(open_ledger))
