# The source of the sync flavour's workers/_leases.py: edit this file, then run
# `python scripts/unasync.py` (tests/e2e/test_unasync.py fails while that file is stale).
"""The worker SDK: check a profile out, work under the lease, release it with the evidence
collected.

    leases = ProfileLeases.open(store_url=None, worker_id="worker_03")
    async with leases.checkout("profile_shop_17", run_id="run_0945", task_type="check") as lease:
        async with lease.browser(pw) as context:
            ...
            await lease.step("dashboard_loaded", safe=True)

Leaving the checkout block releases the lease: success with the final URL and screenshot; an
exception as a failure naming it; ``lease.expected_failure(reason)`` as an expected failure.
A lease that is lost (the ledger says so, or it could not be renewed before its deadline) is
never released by the worker: the sweep settles it.

The lease's life is written here once, for both flavours; what a flavour does its own way
(where the ledger's calls run, how heartbeats run, how SIGTERM stops the task) is in its
``_flavour`` module.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Self

from playwright.async_api import BrowserContext, Error as PlaywrightError, Playwright

from ledger import Checkout, Lease, Ledger
from workers import (
    _evidence as evidence,
    _launch as launch,
    _profile_dir as profile_dir,
    _renewal as renewal,
    _routing as routing,
    _termination as termination,
)
from workers._browser_watch import BrowserWatch
from workers._guard import LeaseGuard
from workers._held import not_released
from workers._hub import stepping
from workers._termination import Signalled, Terminated
from workers.aio._browser import BrowserSession
from workers.aio._flavour import LedgerDoor, TaskLease, blocking


class WorkerLease(TaskLease):
    """One checked-out lease (see ``HeldLease``), used by the task that checked it out."""

    def __init__(
        self, lease: Lease, leases: ProfileLeases, guard: LeaseGuard, signalled: Signalled
    ) -> None:
        super().__init__(lease, leases, guard, signalled)
        self._session: BrowserSession | None = None

    async def step(self, name: str, *, safe: bool = False, mutating: bool = False) -> None:
        """Record the step in the ledger now, as a heartbeat naming it (with the page's URL as
        of the step, the browser's pending events delivered first: ``BrowserSession.catch_up``):
        ``safe`` marks a point where the account is in a known state (the last safe step),
        ``mutating`` a step that may change the account. ``LeaseLost`` (the browser closed
        first) once the lease is lost, ``.ended`` when the ledger ended it, and after the
        checkout block, saying the worker released it (no heartbeat sent); ``InvalidInput`` for
        a name the ledger refuses. In a process forked inside the block, nothing: the lease is
        its parent's."""
        if not self._taken_here():
            return
        await self._ensure_held()
        url = await self._page_url()
        beat = renewal.heartbeat(self.lease, step=name, url=url, safe=safe, mutating=mutating)

        def send(ledger: Ledger) -> None:  # the step is the run's once the ledger has it
            with stepping(self._renewal):  # lands after, and before, the hub's heartbeats
                if renewal.renew(
                    ledger, beat, self._guard, wait=self._pause, clock=self._leases.clock
                ):
                    self._progress.stepped(name, safe=safe, mutating=mutating)

        await self._call(send)
        await self._ensure_held()

    async def _page_url(self) -> str | None:
        """The run's URL once the browser has delivered the page events it holds."""
        if self._session is not None:
            await self._session.catch_up()
        return self._progress.now().url

    @asynccontextmanager
    async def browser(self, pw: Playwright, **launch_options: Any) -> AsyncIterator[BrowserContext]:
        """A persistent context on the profile's registered directory, with its proxy.

        Before launching: ``LaunchRefused`` if the profile has no directory or this worker
        cannot resolve its proxy id; a heartbeat proves the lease current (``LeaseLost``); the
        fencing token is written to the directory's marker (``LaunchRefused`` if a later lease's
        token is there: ``workers._profile_dir``). Leaving the block takes the final screenshot
        (unless the lease was lost) and always closes the context."""
        await self._ensure_held()
        profile_id, leases = self.lease.profile_id, self._leases
        record = await self._call(lambda ledger: ledger.view(profile_id).record)
        plan = launch.plan(
            self.lease, record.user_data_dir, leases.settings, leases.evidence_dir, launch_options
        )
        await self.step("browser_launch")
        await self._blocking(profile_dir.claim, plan.user_data_dir, self.lease)
        await self._blocking(launch.pin_webrtc_policy, plan.user_data_dir)
        session = self._session = await self._launch(pw, plan)
        try:
            yield session.context
        finally:  # the final screenshot is evidence of a failure as much as of a success
            if self._taken_here():  # a forked child's copy of the browser is its parent's
                if self._guard.held():
                    await session.screenshot(plan)
                await session.close()
                self._session = None

    async def _launch(self, pw: Playwright, plan: launch.LaunchPlan) -> BrowserSession:
        """Start the browser's watchdog, launch the browser, guard its context; a failure on
        the way leaves neither running."""
        watch = BrowserWatch(plan.user_data_dir, self._guard, self._leases.clock)
        try:
            context = await pw.chromium.launch_persistent_context(
                plan.user_data_dir, **plan.arguments
            )
        except BaseException:
            await blocking(watch.done)
            raise
        watch.launched()
        self._progress.update(observed_proxy=plan.proxy_id)
        session = BrowserSession(
            context, self._guard, self._navigations, self._progress, plan.user_data_dir, watch
        )
        try:
            await session.install()
        except BaseException:
            with contextlib.suppress(PlaywrightError):
                await context.close()
            await blocking(watch.done)
            raise
        return session

    async def _ensure_held(self) -> None:
        """Raise ``LeaseLost`` once the lease is lost, closing the browser first, or once its
        checkout block was left (``LeaseGuard.refusal``: nothing is sent under a lease the
        worker released)."""
        refusal = self._guard.refusal()
        if refusal is None:
            return
        await self._close_browser()
        raise refusal

    async def _close_browser(self) -> None:
        if self._session is not None and self._taken_here():
            await self._session.close()

    async def _end(self, error: BaseException | None) -> None:
        """Stop the heartbeats and the revocation watch, close the browser, then release with
        the evidence (or, for a lost lease, release nothing: ``LeaseLost`` when no other error
        is on its way)."""
        self._signalled.left_by(error)  # SIGINT stops the process as SIGTERM does
        await self._stop_heartbeats()
        # No renewal comes now: whether the lease is held is asked as the release needs it,
        # never set by the deadline's timer behind a release that then succeeds (rev33).
        self._guard.retire()
        await self._blocking(self._revocations.stop, self.watch_wait())
        await self._close_browser()
        self.evidence = await blocking(self._settle, error)  # its files written off the loop
        if self.evidence is not None:
            record = self.evidence
            release = partial(
                renewal.release,
                lease=self.lease,
                guard=self._guard,
                record=record,
                signalled=self._signalled,
            )
            self.result, sent = await self._call(release)
            self.evidence = sent
            if sent is not record:  # the ledger refused part of it: keep what it took
                directory = evidence.lease_directory(self._leases.evidence_dir, self.lease)
                await blocking(evidence.rewrite, sent, directory)


class ProfileLeases(LedgerDoor):
    """A worker's door to the ledger (``ProfileLeases.open``; see ``LedgerDoor`` for when its
    ledger is opened and where it is used)."""

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
        """Lease the profile (``CheckoutDenied`` with the reason), renew it in the background,
        and release it when the block is left (see the module's docstring).
        ``max_duration_seconds``: the lease's hard limit (``Ledger.checkout``); the worker
        loses the lease at it on its own clock, and its browser is stopped."""
        started = self.clock()
        order = partial(
            Checkout,
            profile_id=profile_id,
            worker_id=self.worker_id,
            run_id=run_id,
            task_type=task_type,
            ttl_seconds=ttl_seconds,
            account_id=account_id,
            proxy_id=proxy_id,
            correlation_id=correlation_id,
            max_duration_seconds=max_duration_seconds,
        )

        def send(ledger: Ledger) -> Lease:
            return renewal.checkout(
                lambda command_id: ledger.handle(order(command_id=command_id)), clock=self.clock
            )

        async with self._leasing(send, started) as held:
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
        """Lease any available profile of the account (``workers._routing.checkout_for``:
        candidates in random order, the next one after a lost race, ``NoProfileAvailable``
        with the aggregated reasons when none is left), then as ``checkout``. Not resent after
        ``StoreUnavailable``: routing is not idempotent."""
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
        async with self._leasing(route, started) as held:
            yield held

    @asynccontextmanager
    async def _leasing(
        self, send: Callable[[Ledger], Lease], started: float
    ) -> AsyncIterator[WorkerLease]:
        """The lease ``send`` obtains, held for the block. SIGTERM is the SDK's from before the
        checkout is sent: one arriving while the ledger decides waits for its answer, then a
        lease granted is released before the block runs ("before its first step") and a
        denial or failure gives way to ``Terminated``; never a lease left to go stale."""
        signalled = Signalled()
        with termination.handling(signalled):
            with signalled.sdk_call(then_raise=False):
                try:
                    lease = await self.call(send)
                except Exception as error:
                    if signalled.must_stop and signalled.signal is not None:
                        raise Terminated(signalled.signal) from error
                    raise
            async with self._holding(lease, started, signalled) as held:
                yield held

    @asynccontextmanager
    async def _holding(
        self, lease: Lease, started: float, signalled: Signalled
    ) -> AsyncIterator[WorkerLease]:
        """Renew the lease in the background; release it when the block is left."""
        guard = LeaseGuard.for_lease(lease, started, self.clock)
        held = WorkerLease(lease, self, guard, signalled)
        try:
            with self.held_through(), termination.handed_over(signalled, held):
                held._start()
                try:
                    held.stop_if_terminated()  # SIGTERM came during the checkout
                    yield held
                except BaseException as error:
                    if not held._taken_here():  # a forked child leaving: the parent's lease
                        raise
                    try:
                        await held._close_out(error)
                    except Exception as failure:  # never instead of the task's own exception
                        not_released(error, failure, held.lease_id)
                    instead = held.instead_of(error)
                    if instead is not None:
                        raise instead from error
                    raise
                if held._taken_here():  # not a forked child's to release
                    try:
                        await held._close_out(None)
                    except Exception as failure:  # SIGTERM came during the release
                        held.stop_if_terminated(failure)
                        raise
                    held.stop_if_terminated()
        finally:
            guard.retire()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
