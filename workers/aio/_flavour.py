"""What the asyncio flavour does its own way. The rest of the SDK is written once, in
``workers.aio._leases`` and ``workers.aio._browser`` (from which ``scripts/unasync.py`` makes
the sync flavour, whose own ways are in ``workers._flavour``, with the same names as here).

- The ledger's calls block, and a ``Ledger`` must stay on one thread: each ``ProfileLeases``
  owns a single-thread executor, and its ledger is made and used on that thread only
  (checkout, steps and release all run there, one at a time): ``LedgerDoor.call``.
  Other blocking work (the directory's marker, the watchdog's goodbye) runs on a thread of
  its own, off the event loop: ``blocking``.
- Heartbeats are the process's renewal hub's (``workers._hub``), as in the sync flavour: one
  thread with a ledger of its own renews every lease the process holds on the store, the
  leases due together in one transaction; the event loop only joins it and leaves it (the
  leaving, which may wait for a batch on its way, off the loop).
- SIGTERM cancels the task running the checkout block (``workers._termination``); the
  close-out is carried through any cancellation (``TaskLease._close_out``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from ledger import Lease, Ledger
from workers._guard import Clock, LeaseGuard
from workers._held import STOP_TIMEOUT, HeldLease, WorkerConfig
from workers._hub import Renewal
from workers._settings import BrowserSettings
from workers._termination import Signalled

R = TypeVar("R")


async def blocking(work: Callable[..., R], *args: Any) -> R:
    """``work(*args)`` on a thread of its own, off the event loop."""
    return await asyncio.to_thread(work, *args)


def _ledger_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="custody-ledger")


class LedgerDoor(WorkerConfig):
    """A worker's configuration and its ledger on a thread of its own (nothing is opened until
    the first call)."""

    def __init__(
        self,
        store_url: str | None,
        worker_id: str,
        settings: BrowserSettings,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(store_url, worker_id, settings, clock)
        self._executor = _ledger_thread()
        self._pid = os.getpid()
        self._ledger: Ledger | None = None  # made and used on the executor's thread only
        self._held: set[asyncio.Future[None]] = set()  # leases held through it: see ``close``

    async def call(self, use: Callable[[Ledger], R]) -> R:
        """Run ``use(ledger)`` on the ledger's own thread (a forked child starts one of its own:
        it has none of its parent's threads, and waited for ever on the parent's, rev31)."""
        if self._pid != os.getpid():
            self._executor, self._pid = _ledger_thread(), os.getpid()
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._on, use)

    def _on(self, use: Callable[[Ledger], R]) -> R:
        if self._ledger is None:
            self._ledger = self.open_ledger()
        return use(self._ledger)

    async def close(self) -> None:
        """Wait for the leases held through this door to be left (their releases go through
        it), carried through any cancellation meanwhile, which is passed on once done; then
        close the ledger on its thread (if one was opened), then the thread. (``asyncio.run``
        stops its loop once a lease's ``Terminated`` leaves its main task: a door closed then
        under another lease, still releasing (85e43b2) or still in its block's own cleanup
        (review 268), left that lease live, unsaid.) Called inside a lease's own block, it
        waits for ever: close the leases after their blocks."""
        cancelled = False
        while self._held:
            try:
                await asyncio.wait(set(self._held))
            except asyncio.CancelledError:
                cancelled = True
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)
        if cancelled:
            raise asyncio.CancelledError

    @contextmanager
    def held_through(self) -> Iterator[None]:
        """While a lease is held through this door, from its checkout's answer until it is
        released: ``close`` waits for it."""
        left = asyncio.get_running_loop().create_future()
        self._held.add(left)
        try:
            yield
        finally:
            self._held.discard(left)
            left.set_result(None)

    def _close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None


class TaskLease(HeldLease, ABC):
    """A held lease whose task runs on an event loop: how it calls the ledger, blocks, renews
    in the background, stops on SIGTERM and closes out."""

    def __init__(
        self, lease: Lease, leases: LedgerDoor, guard: LeaseGuard, signalled: Signalled
    ) -> None:
        super().__init__(lease, guard, leases, signalled)
        self._leases = leases
        self._stop = threading.Event()  # interrupts a renewal's retries on the ledger thread
        self._renewal: Renewal | None = None
        self._task: asyncio.Task[Any] | None = None  # the task running the checkout block
        self._closing = False

    @property
    def heartbeat_task_running(self) -> bool:
        """True while the renewal hub's thread renews this lease."""
        return self._renewal is not None and self._renewal.renewing

    async def _call(self, use: Callable[[Ledger], R]) -> R:
        """``use(ledger)`` on the ledger's thread."""
        return await self._leases.call(use)

    @staticmethod
    async def _blocking(work: Callable[..., R], *args: Any) -> R:
        """``work(*args)`` off the event loop."""
        return await blocking(work, *args)

    def _pause(self, seconds: float) -> bool:
        """How a renewal waits before a retry (on the ledger's thread): True once the lease is
        being left."""
        return self._stop.wait(seconds)

    def _start(self) -> None:
        self._task = asyncio.current_task()
        self._renewal = self._leases.renewals.join(self.lease, self._guard, self._progress)
        self._revocations.start()

    async def _stop_heartbeats(self) -> None:
        self._stop.set()
        if self._renewal is not None:  # it may wait for a batch on its way: off the loop
            await blocking(self._renewal.leave, self.store_wait(STOP_TIMEOUT))

    def terminate(self, signum: int) -> bool:
        """SIGTERM (``workers._termination``): cancel the task running the checkout block, once,
        unless it is already leaving it; the block then releases and raises ``Terminated``."""
        first = not self._signalled.must_stop
        self._signalled.terminate(signum)
        if first and not self._closing and self._task is not None:
            self._task.get_loop().call_soon_threadsafe(self._task.cancel)
        return False

    async def _close_out(self, error: BaseException | None) -> None:
        """``_end``, carried through whatever cancels the task meanwhile (a cancellation during
        a release must not leave the lease live and unrenewed): the cancellation is passed on
        once the lease is released."""
        self._closing = True
        ending = asyncio.ensure_future(self._end(error))
        cancelled = False
        while not ending.done():
            try:
                await asyncio.shield(ending)
            except asyncio.CancelledError:
                cancelled = True
        ending.result()
        if cancelled:
            raise asyncio.CancelledError

    @abstractmethod
    async def _end(self, error: BaseException | None) -> None:
        """Stop the heartbeats, close the browser, release (``WorkerLease``)."""
