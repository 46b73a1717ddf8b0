"""What the sync flavour does its own way. The rest of the SDK is written once, in
``workers.aio._leases`` and ``workers.aio._browser``, from which ``scripts/unasync.py`` makes
``workers._leases`` and ``workers._browser``; the asyncio flavour's own ways are in
``workers.aio._flavour``, with the same names as here.

- The task runs on the thread that checked the lease out (Playwright's sync API is bound to
  it), and so does the worker's ledger, opened with ``ProfileLeases``: ``LedgerDoor.call``.
- Heartbeats are the process's renewal hub's (``workers._hub``): one thread with a ledger of its
  own renews every lease the process holds on the store, the leases due together in one
  transaction.
- SIGTERM raises ``Terminated`` in the task (``workers._termination``), never in the middle of
  one of the SDK's own ledger calls or blocking steps (``TaskLease._call``, ``_blocking``),
  nor during the close-out (``TaskLease._close_out``).
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import greenlet

from ledger import Lease, Ledger
from workers._guard import Clock, LeaseGuard
from workers._held import STOP_TIMEOUT, HeldLease, WorkerConfig
from workers._hub import Renewal
from workers._settings import BrowserSettings
from workers._termination import Signalled, Terminated

R = TypeVar("R")


def blocking(work: Callable[..., R], *args: Any) -> R:
    """``work(*args)``, here and now (the asyncio flavour moves it off the event loop)."""
    return work(*args)


class LedgerDoor(WorkerConfig):
    """A worker's configuration and its ledger, opened at once (``InvalidInput`` for a
    malformed store URL, ``StoreUnavailable`` for a store that cannot be reached). Use it on
    one thread: the process's renewal hub and its revocation watches open ledgers of
    their own on the same store."""

    def __init__(
        self,
        store_url: str | None,
        worker_id: str,
        settings: BrowserSettings,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(store_url, worker_id, settings, clock)
        self.ledger = self.open_ledger()

    def call(self, use: Callable[[Ledger], R]) -> R:
        """``use(ledger)``, on the calling thread."""
        return use(self.ledger)

    def close(self) -> None:
        self.ledger.close()

    @contextmanager
    def held_through(self) -> Iterator[None]:
        """While a lease is held (the asyncio flavour's ``close`` waits for one another task
        holds; here leases are held on the thread that closes)."""
        yield


class TaskLease(HeldLease, ABC):
    """A held lease whose task runs on the thread that checked it out: how it calls the
    ledger, blocks, renews in the background, stops on SIGTERM and closes out."""

    def __init__(
        self, lease: Lease, leases: LedgerDoor, guard: LeaseGuard, signalled: Signalled
    ) -> None:
        super().__init__(lease, guard, leases, signalled)
        self._leases = leases
        self._renewal: Renewal | None = None

    @property
    def heartbeat_thread_alive(self) -> bool:
        """True while the renewal hub's thread renews this lease."""
        return self._renewal is not None and self._renewal.renewing

    def _call(self, use: Callable[[Ledger], R]) -> R:
        """``use(ledger)``; a SIGTERM meanwhile raises ``Terminated`` once it returns."""
        with self._signalled.sdk_call():
            return self._leases.call(use)

    def _blocking(self, work: Callable[..., R], *args: Any) -> R:
        """``work(*args)``; a SIGTERM meanwhile raises ``Terminated`` once it returns."""
        with self._signalled.sdk_call():
            return work(*args)

    def _pause(self, seconds: float) -> bool:
        """How a renewal the task sends waits before a retry: True (no more retries) once
        SIGTERM stopped the run, whose ``Terminated`` then follows the step."""
        if self._signalled.must_stop:
            return True
        time.sleep(seconds)
        return self._signalled.must_stop

    def _start(self) -> None:
        self._greenlet = greenlet.getcurrent()  # where the task runs: where SIGTERM is raised
        self._renewal = self._leases.renewals.join(self.lease, self._guard, self._progress)
        self._revocations.start()

    def _stop_heartbeats(self) -> None:
        if self._renewal is not None:
            self._renewal.leave(self.store_wait(STOP_TIMEOUT))

    def terminate(self, signum: int) -> bool:
        """SIGTERM (``workers._termination``): ``Terminated`` is raised in the task at once when
        the signal finds it running, or just after the SDK call under way. Found inside
        Playwright's dispatcher (the task waits in a page call), it is thrown into the task
        from the event loop's next callback, never in the middle of a message."""
        if not self._signalled.terminate(signum):
            return False
        if greenlet.getcurrent() is self._greenlet:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return True
        loop.call_soon_threadsafe(self._greenlet.throw, Terminated(signum))
        return False

    def _close_out(self, error: BaseException | None) -> None:
        """``_end``, which a SIGTERM does not cut short (``Terminated`` follows it)."""
        with self._signalled.sdk_call(then_raise=False):
            self._end(error)

    @abstractmethod
    def _end(self, error: BaseException | None) -> None:
        """Stop the heartbeats, close the browser, release (``WorkerLease``)."""
