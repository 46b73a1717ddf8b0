"""``Ledger``: the Python entry point, a thin façade over the command handlers.

Each method validates its arguments into a command model (``InvalidInput`` names the field;
nothing is written) and hands it to its handler; the unit of work loads, decides, saves and
retries. Reads return public read models, never the aggregate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ledger import commands as cmds
from ledger import handlers
from ledger.domain.browser import BrowserCheck, StopSignal
from ledger.domain.model import (
    Lease,
    Outcome,
    ProfileRecord,
    ReleaseResult,
    ReviewDecision,
    SweepReport,
)
from ledger.domain.policies import (
    DEFAULT_RELEASE_POLICY,
    DEFAULT_UNCLEAN_LIMIT,
    DEFAULT_UNCLEAN_WINDOW_SECONDS,
)
from ledger.domain.view import Availability
from ledger.reads import LedgerReads
from ledger.unit_of_work import UnitOfWork

C = TypeVar("C", bound=cmds.Command)
R = TypeVar("R")


class Ledger(LedgerReads):
    """Open with ``Ledger.open(store_url)`` (or ``Ledger.init``); close when done. One per
    thread. The commands are below; opening and the reads are ``LedgerReads``'."""

    def register_profile(
        self,
        profile_id: str,
        *,
        account_id: str,
        proxy_id: str,
        region: str | None = None,
        user_data_dir: str | None = None,
        release_policy: str = DEFAULT_RELEASE_POLICY,
        unclean_limit: int = DEFAULT_UNCLEAN_LIMIT,
        unclean_window_seconds: int = DEFAULT_UNCLEAN_WINDOW_SECONDS,
        max_lease_seconds: int | None = None,
        actor: str = "operator",
        command_id: str | None = None,
    ) -> ProfileRecord:
        """Register a profile with its account context; the same record again is a no-op, a
        different one for an existing profile raises ``NotAllowed``. ``max_lease_seconds``:
        the hard limit of every lease of the profile (None: none)."""
        return self._run(handlers.register, cmds.RegisterProfile, locals(), creating=True)

    def checkout(
        self,
        profile_id: str,
        *,
        worker_id: str,
        run_id: str,
        task_type: str,
        ttl_seconds: int = 300,
        account_id: str | None = None,
        proxy_id: str | None = None,
        command_id: str | None = None,
        correlation_id: str | None = None,
        max_duration_seconds: int | None = None,
    ) -> Lease:
        """Lease the profile to a worker, or raise ``CheckoutDenied`` with the reason.

        ``max_duration_seconds`` is the lease's hard limit (within the profile's
        ``max_lease_seconds``, the tighter wins): no renewal moves its deadline past it, and
        from then on heartbeats, extends and the release raise ``LeaseLost`` saying so; the
        lease then goes stale and the sweep settles it."""
        return self._run(handlers.checkout, cmds.Checkout, locals())

    def heartbeat(
        self,
        lease_id: str,
        *,
        fencing_token: int,
        step: str | None = None,
        url: str | None = None,
        safe: bool = False,
        mutating: bool = False,
        command_id: str | None = None,
    ) -> Lease:
        """Renew the lease's deadline and record the step and URL; ``LeaseLost`` if it is gone."""
        return self._run(handlers.heartbeat, cmds.Heartbeat, locals())

    def extend(
        self, lease_id: str, *, fencing_token: int, ttl_seconds: int, command_id: str | None = None
    ) -> Lease:
        """Give a live lease a new TTL, counted from now."""
        return self._run(handlers.extend, cmds.Extend, locals())

    def release(
        self,
        lease_id: str,
        *,
        fencing_token: int,
        outcome: Outcome | str,
        reason: str | None = None,
        final_url: str | None = None,
        screenshot: str | None = None,
        screenshot_sha256: str | None = None,
        prompt_seen: bool = False,
        observed_proxy: str | None = None,
        observed_account: str | None = None,
        evidence_problem: str | None = None,
        command_id: str | None = None,
    ) -> ReleaseResult:
        """End the lease with the worker's report; the rules decide pool, review or quarantine.

        ``screenshot_sha256`` is the hex digest of the screenshot file's bytes, computed by
        whoever holds the file (the ledger never reads a worker's disk); it needs ``screenshot``.
        ``evidence_problem`` says why the evidence could not be collected: such an ending is
        unproven (``evidence_failed``), never a clean one.
        """
        return self._run(handlers.release, cmds.Release, locals())

    def force_release(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> ReleaseResult:
        """End the live lease by hand; the profile goes to review (or quarantine)."""
        return self._run(handlers.force_release, cmds.ForceRelease, locals())

    def quarantine(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> Availability:
        """Quarantine the profile (ending any live lease) until a reviewer clears it."""
        return self._run(handlers.quarantine, cmds.Quarantine, locals())

    def disable(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> Availability:
        """Take the profile out of rotation (ending any live lease, which then needs review)."""
        return self._run(handlers.disable, cmds.Disable, locals())

    def enable(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> Availability:
        """Bring a disabled profile back to the state it was disabled from."""
        return self._run(handlers.enable, cmds.Enable, locals())

    def review(
        self,
        profile_id: str,
        *,
        reviewer: str,
        decision: ReviewDecision | str,
        note: str,
        browser: BrowserCheck | None = None,
        command_id: str | None = None,
    ) -> Availability:
        """A reviewer returns the profile to the pool, keeps it quarantined, or disables it.
        ``browser``: what an inspection of the profile's directory found (``workers.inspector``);
        a browser still alive there makes a return ``NotAllowed``."""
        return self._run(handlers.review, cmds.Review, locals())

    def record_browser_stop(
        self,
        profile_id: str,
        *,
        actor: str,
        host: str,
        pid: int,
        user_data_dir: str,
        signal: StopSignal | str,
        command_id: str | None = None,
    ) -> Availability:
        """Record an orphaned browser stopped on the profile's registered directory (the
        stopping is the caller's: ``workers.inspector.stop_orphan``)."""
        return self._run(handlers.record_browser_stop, cmds.RecordBrowserStop, locals())

    def sweep(self, *, actor: str = "sweeper") -> SweepReport:
        """Mark every lease past its deadline stale and send its profile to review or
        quarantine, each profile on its own; reports what it settled and what it could not."""
        return self._run(handlers.sweep, cmds.Sweep, locals())

    def _run(
        self,
        handler: Callable[[UnitOfWork, C], R],
        cls: type[C],
        arguments: dict[str, Any],
        *,
        creating: bool = False,
    ) -> R:
        """Validate the method's arguments (its ``locals()``; ``None`` means not given) into a
        command first, so bad input never opens the store; then hand it to its handler."""
        given = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        command = cmds.parse(cls, **{k: v for k, v in given.items() if v is not None})
        return handler(self._open(creating=creating), command)
