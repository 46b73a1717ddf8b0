"""The worker SDK on asyncio: ``workers._leases`` with the same names, awaited.

The ledger's calls block, and a ``Ledger`` must stay on one thread: each ``ProfileLeases`` owns
a single-thread executor, and its ledger is made and used on that thread only (checkout,
steps, heartbeats and release all run there, one at a time). Heartbeats are an asyncio task
that sleeps until the next renewal is due and hands the renewal to that thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Self, TypeVar

from playwright.async_api import BrowserContext, Playwright

from ledger import Checkout, Lease, LeaseLost, Ledger
from workers import (
    _evidence as evidence,
    _launch as launch,
    _profile_dir as profile_dir,
    _renewal as renewal,
    _routing as routing,
    _termination as termination,
)
from workers._browser_watch import BrowserWatch
from workers._guard import Clock, LeaseGuard
from workers._held import STOP_TIMEOUT, HeldLease, WorkerConfig, not_released
from workers._settings import BrowserSettings
from workers.aio._browser import BrowserSession

R = TypeVar("R")


class WorkerLease(HeldLease):
    """One checked-out lease (see ``HeldLease``), used from its event loop."""

    def __init__(self, lease: Lease, leases: ProfileLeases, guard: LeaseGuard) -> None:
        super().__init__(lease, guard, leases)
        self._leases = leases
        self._session: BrowserSession | None = None
        self._stop = threading.Event()  # interrupts a renewal's retries on the ledger thread
        self._heartbeats: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None  # the task running the checkout block
        self._closing = False

    @property
    def heartbeat_task_running(self) -> bool:
        return self._heartbeats is not None and not self._heartbeats.done()

    async def step(self, name: str, *, safe: bool = False, mutating: bool = False) -> None:
        """As ``workers._leases.WorkerLease.step``."""
        await self._ensure_held()
        url = self._progress.now().url
        beat = renewal.heartbeat(self.lease, step=name, url=url, safe=safe, mutating=mutating)
        if await self._leases.call(
            lambda ledger: renewal.renew(
                ledger, beat, self._guard, wait=self._stop.wait, clock=self._leases.clock
            )
        ):
            self._progress.stepped(name, safe=safe, mutating=mutating)
        await self._ensure_held()

    @asynccontextmanager
    async def browser(self, pw: Playwright, **launch_options: Any) -> AsyncIterator[BrowserContext]:
        """As ``workers._leases.WorkerLease.browser``, on the async API."""
        await self._ensure_held()
        profile_id = self.lease.profile_id
        record = await self._leases.call(lambda ledger: ledger.view(profile_id).record)
        leases = self._leases
        plan = launch.plan(
            self.lease, record.user_data_dir, leases.settings, leases.evidence_dir, launch_options
        )
        await self.step("browser_launch")
        await asyncio.to_thread(profile_dir.claim, plan.user_data_dir, self.lease)
        session = self._session = await self._launch(pw, plan)
        try:
            await session.install()
            yield session.context
        finally:  # the final screenshot is evidence of a failure as much as of a success
            if self._guard.held():
                await session.screenshot(plan)
            await session.close()
            self._session = None

    async def _launch(self, pw: Playwright, plan: launch.LaunchPlan) -> BrowserSession:
        """Start the browser's watchdog, then launch the browser (``install`` guards it)."""
        watch = BrowserWatch(plan.user_data_dir, self._guard, self._leases.clock)
        try:
            context = await pw.chromium.launch_persistent_context(
                plan.user_data_dir, **plan.arguments
            )
        except BaseException:
            await asyncio.to_thread(watch.done)
            raise
        watch.launched()
        self._progress.update(observed_proxy=plan.proxy_id)
        return BrowserSession(
            context, self._guard, self._navigations, self._progress, plan.user_data_dir, watch
        )

    async def _ensure_held(self) -> None:
        if self._guard.held():
            return
        await self._close_browser()
        raise LeaseLost(self.lease_id, self._guard.why)

    async def _close_browser(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _start(self) -> None:
        self._task = asyncio.current_task()
        self._heartbeats = asyncio.create_task(self._renew_while_held())
        self._revocations.start()

    def terminate(self, signum: int) -> bool:
        """SIGTERM (``workers._termination``): cancel the task running the checkout block, once,
        unless it is already leaving it; the block then releases and raises ``Terminated``."""
        first = not self._signalled.must_stop
        self._signalled.terminate(signum)
        if first and not self._closing and self._task is not None:
            self._task.get_loop().call_soon_threadsafe(self._task.cancel)
        return False

    async def _renew_while_held(self) -> None:
        """The heartbeat task: renew every interval until the lease is lost or left."""
        timing, clock = self._guard.timing, self._leases.clock
        while True:
            await asyncio.sleep(max(0.0, self._guard.renewed_at + timing.interval - clock()))
            if self._stop.is_set() or not self._guard.held():
                return
            report = self._progress.now()
            beat = renewal.heartbeat(self.lease, step=report.step, url=report.url)
            renew = partial(
                renewal.renew, beat=beat, guard=self._guard, wait=self._stop.wait, clock=clock
            )
            try:
                await self._leases.call(renew)
            except Exception as error:  # the deadline, not a surprise, decides
                self._guard.failed(f"{type(error).__name__}: {error}")
                await asyncio.sleep(timing.retry_period)

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

    async def _end(self, error: BaseException | None) -> None:
        """As ``workers._leases.WorkerLease._end``: heartbeats stop before the release."""
        self._stop.set()
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats
        await asyncio.to_thread(self._revocations.stop, STOP_TIMEOUT)
        await self._close_browser()
        self.evidence = self._settle(error)
        if self.evidence is not None:
            record = self.evidence
            self.result, sent = await self._leases.call(
                lambda ledger: renewal.release(ledger, self.lease, self._guard, record)
            )
            self.evidence = sent
            if sent is not record:  # the ledger refused part of it: keep what it took
                sent.write(evidence.lease_directory(self._leases.evidence_dir, self.lease))


class ProfileLeases(WorkerConfig):
    """A worker's door to the ledger on asyncio (``ProfileLeases.open``; nothing is opened
    until the first checkout)."""

    def __init__(
        self,
        store_url: str | None,
        worker_id: str,
        settings: BrowserSettings,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(store_url, worker_id, settings, clock)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="custody-ledger")
        self._ledger: Ledger | None = None  # made and used on the executor's thread only

    async def call(self, use: Callable[[Ledger], R]) -> R:
        """Run ``use(ledger)`` on the ledger's own thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._on, use)

    def _on(self, use: Callable[[Ledger], R]) -> R:
        if self._ledger is None:
            self._ledger = self.open_ledger()
        return use(self._ledger)

    @asynccontextmanager
    async def checkout(
        self,
        profile_id: str,
        *,
        run_id: str,
        task_type: str,
        ttl_seconds: int = 300,
        account_id: str | None = None,
        proxy_id: str | None = None,
        correlation_id: str | None = None,
        max_duration_seconds: int | None = None,
    ) -> AsyncIterator[WorkerLease]:
        """As ``workers._leases.ProfileLeases.checkout``, entered with ``async with``."""
        started = self.clock()

        def send(ledger: Ledger) -> Lease:
            return renewal.checkout(
                lambda command_id: ledger.handle(
                    Checkout(
                        profile_id=profile_id,
                        worker_id=self.worker_id,
                        run_id=run_id,
                        task_type=task_type,
                        ttl_seconds=ttl_seconds,
                        account_id=account_id,
                        proxy_id=proxy_id,
                        command_id=command_id,
                        correlation_id=correlation_id,
                        max_duration_seconds=max_duration_seconds,
                    )
                ),
                clock=self.clock,
            )

        lease = await self.call(send)
        async with self._holding(lease, started) as held:
            yield held

    @asynccontextmanager
    async def checkout_for(
        self,
        *,
        account_id: str,
        run_id: str,
        task_type: str,
        region: str | None = None,
        ttl_seconds: int = 300,
        proxy_id: str | None = None,
    ) -> AsyncIterator[WorkerLease]:
        """As ``workers._leases.ProfileLeases.checkout_for``, entered with ``async with``."""
        started = self.clock()
        route = partial(
            routing.checkout_for,
            worker_id=self.worker_id,
            run_id=run_id,
            task_type=task_type,
            account_id=account_id,
            region=region,
            ttl_seconds=ttl_seconds,
            proxy_id=proxy_id,
        )
        lease = await self.call(route)
        async with self._holding(lease, started) as held:
            yield held

    @asynccontextmanager
    async def _holding(self, lease: Lease, started: float) -> AsyncIterator[WorkerLease]:
        """Renew the lease in a task; release it when the block is left."""
        held = WorkerLease(lease, self, LeaseGuard.for_lease(lease, started, self.clock))
        with termination.handling(held):
            held._start()
            try:
                yield held
            except BaseException as error:
                try:
                    await held._close_out(error)
                except Exception as failure:  # never instead of the task's own exception
                    not_released(error, failure, held.lease_id)
                instead = held.instead_of(error)
                if instead is not None:
                    raise instead from error
                raise
            await held._close_out(None)
            held.stop_if_terminated()

    async def close(self) -> None:
        """Close the ledger on its thread (if one was opened), then the thread."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
