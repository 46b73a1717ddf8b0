"""What the sync and the asyncio SDK share: a worker's configuration (``WorkerConfig``) and the
state of one held lease (``HeldLease``). Neither calls the ledger or Playwright."""

from __future__ import annotations

import logging
import os
import signal
import time
from functools import partial
from pathlib import Path
from typing import Self

from playwright.sync_api import Error as PlaywrightError

from ledger import InvalidInput, Lease, Ledger, ReleaseResult
from ledger.rules import checked_identity, says_something
from workers import _evidence as evidence
from workers._evidence import MAX_REASON, Evidence
from workers._guard import Clock, LeaseGuard, Progress
from workers._hub import RenewalHub, hub_for
from workers._launch import Navigations
from workers._reasons import reason_of, storable
from workers._revocation import RevocationWatch, RevocationWatches, watches_for
from workers._settings import BrowserSettings, default_evidence_dir
from workers._termination import Signalled, Terminated

log = logging.getLogger("custody.workers")
# How long leaving a held lease waits for its last heartbeat and its watch; once the process was
# stopped, less (``HeldLease.store_wait``, ``watch_wait``); a lost lease, not at all (it sends
# nothing more: rev38, a watch stuck on a frozen store held the block for 30 s).
STOP_TIMEOUT = 30.0


def not_released(error: BaseException, failure: Exception, lease_id: str) -> None:
    """The release failed while the task's own exception was on its way out: that exception
    goes on (it is the one the caller must see), carrying a note that says why the lease was
    not released; the failure is logged too. The sweep settles the lease at its deadline."""
    why = reason_of(failure)
    error.add_note(f"custody: {lease_id} was not released: {why}")
    log.warning("%s was not released (%s) while %s propagated", lease_id, why, reason_of(error))


class WorkerConfig:
    """Who the worker is, which store it uses, how it launches browsers."""

    def __init__(
        self,
        store_url: str | None,
        worker_id: str,
        settings: BrowserSettings,
        clock: Clock = time.monotonic,
    ) -> None:
        # Named now, whatever directory the process is in when a thread opens it again.
        self.store_url = Ledger.anchored_url(store_url)
        # Checked now, as every checkout would check it (rev48: a worker id no command can
        # carry was taken here and refused at each checkout, after the door was opened).
        self.worker_id = checked_identity("worker_id", worker_id)
        self.settings = settings
        self.clock = clock
        chosen = settings.evidence_dir
        self.evidence_dir = (
            Path(chosen).absolute() if chosen is not None else default_evidence_dir()
        )

    @classmethod
    def open(
        cls,
        store_url: str | None = None,
        *,
        worker_id: str,
        settings: BrowserSettings | None = None,
        clock: Clock = time.monotonic,
    ) -> Self:
        """Leases on a store (None: ``$CUSTODY_STORE``, else ``./custody.db``), which must exist
        (``InvalidInput`` for a malformed URL or a worker id the ledger refuses at once,
        ``StoreUnavailable`` at the checkout)."""
        return cls(store_url, worker_id, settings or BrowserSettings(), clock)

    def open_ledger(self) -> Ledger:
        """A new ledger on this store, for the calling thread."""
        return Ledger.open(self.store_url, create=False)

    @property
    def renewals(self) -> RenewalHub:
        """The process's renewal hub for this store and clock (``workers._hub``): every lease the
        process holds there, from any ``ProfileLeases`` of either flavour, is renewed by its one
        thread, the leases due together in one transaction."""
        opened = self.open_ledger()  # not connected: what the URL names, as a key
        return hub_for(
            opened.settings, partial(Ledger.open, self.store_url, create=False), self.clock
        )

    @property
    def revocations(self) -> RevocationWatches:
        """The process's revocation watches for this store (``workers._revocation``): every
        lease the process holds there is watched by its one thread, on its one ledger."""
        opened = self.open_ledger()  # not connected: what the URL names, as a key
        return watches_for(opened.settings, partial(Ledger.open, self.store_url, create=False))


class HeldLease:
    """One checked-out lease as its task sees it.

    ``lost`` is a ``threading.Event`` set once the lease is lost; ``why_lost`` says why. After
    the checkout block, ``evidence`` and ``result`` hold what the release reported and how the
    ledger judged it (both None if the lease was lost)."""

    def __init__(
        self, lease: Lease, guard: LeaseGuard, config: WorkerConfig, signalled: Signalled
    ) -> None:
        self.lease = lease
        self.lost = guard.lost
        self.evidence: Evidence | None = None
        self.result: ReleaseResult | None = None
        self._guard = guard
        self._progress = Progress()
        self._expected_failure: str | None = None
        # Pages seen in a launched browser and pages a task reports go through the same door.
        self._navigations = Navigations(self._progress, config.settings.prompt_matcher())
        self._revocations = RevocationWatch(config.revocations, guard)
        self._evidence_dir = config.evidence_dir
        self._signalled = signalled  # what SIGTERM did, from the checkout on
        self._taker = os.getpid()  # the process that took the lease (``_taken_here``)

    @property
    def lease_id(self) -> str:
        return self.lease.lease_id

    def _taken_here(self) -> bool:
        """Whether this process took the lease. Not in a process forked inside the checkout
        block (``os.fork``, a multiprocessing pool's worker): its copies of the lease, the
        browser and its watchdog are its parent's, which holds them on. There, leaving the
        block releases nothing and files no evidence, a step sends no heartbeat, and leaving
        the browser's block neither screenshots nor closes the browser (rev35: a child's
        ``sys.exit(0)`` released the parent's live lease as a failure, "SystemExit: 0", and
        the parent's next step raised ``LeaseLost``)."""
        return os.getpid() == self._taker

    @property
    def fencing_token(self) -> int:
        return self.lease.fencing_token

    @property
    def why_lost(self) -> str:
        return self._guard.why

    @property
    def terminated(self) -> signal.Signals | None:
        """The signal that came while the lease was held (SIGTERM), if one did."""
        return self._signalled.signal

    def note(self, signum: int) -> None:
        """SIGTERM, with the application's own handler deciding (``workers._termination``)."""
        self._signalled.note(signum)

    def stop(self, signum: int) -> None:
        """SIGTERM, with a lease held inside this one's block interrupting the run."""
        self._signalled.stop(signum)

    def terminate(self, signum: int) -> bool:
        """SIGTERM, with the SDK stopping the run (``workers._termination``)."""
        return self._signalled.terminate(signum)

    def stop_if_terminated(self, failure: Exception | None = None) -> None:
        """``Terminated`` once SIGTERM stopped the run (after a release it did not cut short);
        with the ``failure`` that kept the release from the ledger noted on it, if one did."""
        if self._signalled.must_stop and self._signalled.signal is not None:
            terminated = Terminated(self._signalled.signal)
            if failure is not None:
                not_released(terminated, failure, self.lease_id)
            raise terminated from failure

    def store_wait(self, seconds: float) -> float:
        """How long leaving the lease waits for a heartbeat on its way: ``seconds``, cut to
        what the stop leaves (``Signalled.store_wait``); 0 for a lost lease, which sends
        nothing more."""
        if not self._guard.held():
            return 0.0
        return self._signalled.store_wait(seconds)

    def watch_wait(self) -> float:
        """How long leaving the lease waits for its revocation watch to end: ``STOP_TIMEOUT``,
        so its ledger is closed before the release; 0 for a lost lease or a stopped process.
        Not waiting is safe: the watch reads its stop flag after its check, so the worker's
        own release never reads as a revocation, and a watch still in a store call ends by
        itself (a daemon thread, touching the guard only, never the browser)."""
        if not self._guard.held() or self._signalled.stopped_at is not None:
            return 0.0
        return STOP_TIMEOUT

    def instead_of(self, error: BaseException) -> BaseException | None:
        """What the checkout block raises instead of ``error`` (from it), or None to let it
        propagate: ``Terminated`` once SIGTERM stopped the run (the cancellation or browser
        error it caused is not the task's); ``LeaseLost`` when ``error`` is the browser failing
        because the lease was lost (the watchdog or the guard killed it)."""
        if self._signalled.must_stop and not isinstance(error, Terminated):
            assert self._signalled.signal is not None
            return Terminated(self._signalled.signal)
        if isinstance(error, PlaywrightError) and not self._guard.held():
            return self._guard.lost_error()
        return None

    def _settle(self, error: BaseException | None) -> Evidence | None:
        """The evidence to release with (``evidence.settle``), a run stopped by SIGTERM saying
        so and naming the step it reached."""
        report = self._progress.now()
        failure = self._signalled.reason(report.step, error) if error is not None else None
        return evidence.settle(
            self.lease,
            self._guard,
            report,
            error,
            self._expected_failure,
            self._evidence_dir,
            failure,
        )

    def visited(self, url: str) -> None:
        """Report a page the task reached without ``browser()`` (an HTTP client, a browser the
        SDK did not launch), as a navigation there would: the URL goes with the next heartbeat
        and is the final URL unless another follows; a URL matching the worker's prompt
        patterns is the prompt seen, which sends the profile to review at release. Recorded
        without its userinfo (``workers._guard.recorded_url``); ``InvalidInput`` at once for
        anything but a URL's text (None, empty, blank). After the checkout block, ``LeaseLost``
        as ``step`` raises then (``_refuse_after_block``)."""
        self._refuse_after_block()
        if not isinstance(url, str) or not url.strip():
            raise InvalidInput("url", "a page the task reached: a URL, not empty")
        self._navigations.navigated(url, main_frame=True)

    def _refuse_after_block(self) -> None:
        """Once the checkout block is left, raise what ``step`` raises then (``LeaseGuard.
        refusal``): the lease is released or lost, and a report now would be recorded nowhere
        (rev39: ``visited`` and ``expected_failure`` after the block were accepted in silence)."""
        refusal = self._guard.refusal() if self._guard.retired else None
        if refusal is not None:
            raise refusal

    def expected_failure(self, reason: str) -> None:
        """End the lease as an expected failure with ``reason`` when the checkout block is left
        (an exception raised later still makes it a failure). ``InvalidInput`` at once for a
        reason the ledger would refuse (one that says nothing, such as a zero-width space
        alone, or longer than it keeps); a NUL or a lone
        surrogate in it is escaped (``workers._reasons.storable``); not a string (None) is
        ``InvalidInput`` too. After the checkout block, ``LeaseLost`` as ``step`` raises then
        (``_refuse_after_block``)."""
        self._refuse_after_block()
        reason = storable(reason) if isinstance(reason, str) else ""
        if not says_something(reason) or len(reason) > MAX_REASON:
            raise InvalidInput(
                "reason", f"an expected failure's reason: 1 to {MAX_REASON} characters"
            )
        self._expected_failure = reason
