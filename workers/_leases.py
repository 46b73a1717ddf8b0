"""The worker SDK on Playwright's sync API: check a profile out, work under the lease, release
it with the evidence collected.

    leases = ProfileLeases.open(store_url=None, worker_id="worker_03")
    with leases.checkout("profile_shop_17", run_id="run_0945", task_type="check") as lease:
        with lease.browser(pw) as context:
            ...
            lease.step("dashboard_loaded", safe=True)

Leaving the checkout block releases the lease: success with the final URL and screenshot; an
exception as a failure naming it; ``lease.expected_failure(reason)`` as an expected failure.
A lease that is lost (the ledger says so, or it could not be renewed before its deadline) is
never released by the worker: the sweep settles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import greenlet
from playwright.sync_api import BrowserContext, Error as PlaywrightError, Playwright

from ledger import Checkout, Lease, LeaseLost
from workers import (
    _evidence as evidence,
    _launch as launch,
    _profile_dir as profile_dir,
    _renewal as renewal,
    _routing as routing,
    _termination as termination,
)
from workers._browser import BrowserSession
from workers._browser_watch import BrowserWatch
from workers._guard import Clock, LeaseGuard
from workers._held import STOP_TIMEOUT, HeldLease, WorkerConfig, not_released
from workers._renewal import Renewer, heartbeat, renew
from workers._settings import BrowserSettings
from workers._termination import Terminated


class WorkerLease(HeldLease):
    """One checked-out lease (see ``HeldLease``). Use it on the thread that checked it out."""

    def __init__(self, lease: Lease, leases: ProfileLeases, guard: LeaseGuard) -> None:
        super().__init__(lease, guard, leases)
        self._leases = leases
        self._renewer = Renewer(leases.open_ledger, lease, guard, self._progress, leases.clock)
        self._session: BrowserSession | None = None

    @property
    def heartbeat_thread_alive(self) -> bool:
        return self._renewer.alive

    def step(self, name: str, *, safe: bool = False, mutating: bool = False) -> None:
        """Record the step in the ledger now, as a heartbeat naming it (with the page's last
        URL): ``safe`` marks a point where the account is in a known state (the last safe
        step), ``mutating`` a step that may change the account. ``LeaseLost`` (the browser
        closed first) once the lease is lost; ``InvalidInput`` for a name the ledger refuses."""
        self._ensure_held()
        url = self._progress.now().url
        beat = heartbeat(self.lease, step=name, url=url, safe=safe, mutating=mutating)
        with self._signalled.sdk_call():
            if renew(self._leases.ledger, beat, self._guard, wait=_sleep, clock=self._leases.clock):
                self._progress.stepped(name, safe=safe, mutating=mutating)
        self._ensure_held()

    @contextmanager
    def browser(self, pw: Playwright, **launch_options: Any) -> Iterator[BrowserContext]:
        """A persistent context on the profile's registered directory, with its proxy.

        Before launching: ``LaunchRefused`` if the profile has no directory or this worker
        cannot resolve its proxy id; a heartbeat proves the lease current (``LeaseLost``); the
        fencing token is written to the directory's marker (``LeaseLost`` if a later lease's
        token is there). Leaving the block takes the final screenshot (unless the lease was
        lost) and always closes the context."""
        self._ensure_held()
        with self._signalled.sdk_call():
            record = self._leases.ledger.view(self.lease.profile_id).record
            plan = launch.plan(
                self.lease,
                record.user_data_dir,
                self._leases.settings,
                self._leases.evidence_dir,
                launch_options,
            )
            self.step("browser_launch")
            profile_dir.claim(plan.user_data_dir, self.lease)
        session = self._session = self._launch(pw, plan)
        try:
            yield session.context
        finally:  # the final screenshot is evidence of a failure as much as of a success
            if self._guard.held():
                session.screenshot(plan)
            session.close()
            self._session = None

    def _launch(self, pw: Playwright, plan: launch.LaunchPlan) -> BrowserSession:
        """Start the browser's watchdog, launch the browser, guard its context; a failure on
        the way leaves neither running."""
        watch = BrowserWatch(plan.user_data_dir, self._guard, self._leases.clock)
        try:
            context = pw.chromium.launch_persistent_context(plan.user_data_dir, **plan.arguments)
        except BaseException:
            watch.done()
            raise
        watch.launched()
        self._progress.update(observed_proxy=plan.proxy_id)
        try:
            return BrowserSession(
                context, self._guard, self._navigations, self._progress, plan.user_data_dir, watch
            )
        except BaseException:
            with contextlib.suppress(PlaywrightError):
                context.close()
            watch.done()
            raise

    def _ensure_held(self) -> None:
        """Raise ``LeaseLost`` once the lease is lost, closing the browser first."""
        if self._guard.held():
            return
        self._close_browser()
        raise LeaseLost(self.lease_id, self._guard.why)

    def _close_browser(self) -> None:
        if self._session is not None:
            self._session.close()

    def _start(self) -> None:
        self._greenlet = greenlet.getcurrent()  # where the task runs: where SIGTERM is raised
        self._renewer.start()
        self._revocations.start()

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

    def _end(self, error: BaseException | None) -> None:
        """Stop the heartbeats, close the browser, then release with the evidence (or, for a
        lost lease, release nothing: ``LeaseLost`` when no other error is on its way)."""
        self._renewer.stop(STOP_TIMEOUT)
        self._revocations.stop(STOP_TIMEOUT)
        self._close_browser()
        self.evidence = self._settle(error)
        if self.evidence is not None:
            ledger = self._leases.ledger
            sent = self.evidence
            self.result, self.evidence = renewal.release(ledger, self.lease, self._guard, sent)
            if self.evidence is not sent:  # the ledger refused part of it: keep what it took
                self.evidence.write(evidence.lease_directory(self._leases.evidence_dir, self.lease))


class ProfileLeases(WorkerConfig):
    """A worker's door to the ledger (``ProfileLeases.open``). Holds a ``Ledger``: use it on
    one thread (each lease's heartbeat thread opens a ledger of its own on the same store)."""

    def __init__(
        self,
        store_url: str | None,
        worker_id: str,
        settings: BrowserSettings,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(store_url, worker_id, settings, clock)
        self.ledger = self.open_ledger()

    @contextmanager
    def checkout(
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
    ) -> Iterator[WorkerLease]:
        """Lease the profile (``CheckoutDenied`` with the reason), renew it in the background,
        and release it when the block is left (see the module's docstring).
        ``max_duration_seconds``: the lease's hard limit (``Ledger.checkout``); the worker
        loses the lease at it on its own clock, and its browser is stopped."""
        started = self.clock()
        lease = renewal.checkout(
            lambda command_id: self.ledger.handle(
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
        with self._holding(lease, started) as held:
            yield held

    @contextmanager
    def checkout_for(
        self,
        *,
        account_id: str,
        run_id: str,
        task_type: str,
        region: str | None = None,
        ttl_seconds: int = 300,
        proxy_id: str | None = None,
    ) -> Iterator[WorkerLease]:
        """Lease any available profile of the account (``workers._routing.checkout_for``:
        candidates in random order, the next one after a lost race, ``NoProfileAvailable``
        with the aggregated reasons when none is left), then as ``checkout``. Not resent after
        ``StoreUnavailable``: routing is not idempotent."""
        started = self.clock()
        lease = routing.checkout_for(
            self.ledger,
            worker_id=self.worker_id,
            run_id=run_id,
            task_type=task_type,
            account_id=account_id,
            region=region,
            ttl_seconds=ttl_seconds,
            proxy_id=proxy_id,
        )
        with self._holding(lease, started) as held:
            yield held

    @contextmanager
    def _holding(self, lease: Lease, started: float) -> Iterator[WorkerLease]:
        """Renew the lease in the background; release it when the block is left."""
        held = WorkerLease(lease, self, LeaseGuard.for_lease(lease, started, self.clock))
        with termination.handling(held):
            held._start()
            try:
                yield held
            except BaseException as error:
                try:
                    held._close_out(error)
                except Exception as failure:  # never instead of the task's own exception
                    not_released(error, failure, held.lease_id)
                instead = held.instead_of(error)
                if instead is not None:
                    raise instead from error
                raise
            held._close_out(None)
            held.stop_if_terminated()

    def close(self) -> None:
        self.ledger.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False
