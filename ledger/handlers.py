"""One handler per command: turn a validated command into a decision on the aggregate.

Each handler names the profile stream it acts on, what the aggregate is asked, who acts in
which role, and what the caller gets back. Loading, saving, retrying and replaying are the unit
of work's (``ledger.unit_of_work``); the rules themselves are the aggregate's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ledger import commands as cmds
from ledger.domain import events as ev
from ledger.domain.errors import NotAllowed, StoreUnavailable
from ledger.domain.model import (
    Lease,
    ProfileRecord,
    ReleaseResult,
    Role,
    SweepFailure,
    SweepReport,
    SweepResult,
    parse_lease_id,
)
from ledger.domain.policies import ReleaseReport
from ledger.domain.profile import CheckoutRequest, Context, Profile
from ledger.domain.results import current_lease, release_result
from ledger.domain.view import Availability, availability_of
from ledger.unit_of_work import Done, Issued, UnitOfWork

R = TypeVar("R")


def _lease_context(profile: Profile, lease_id: str, issued: Issued, reason: str) -> Context:
    """Lease commands act as the lease's worker and correlate on its run."""
    lease = profile.lease if profile.lease and profile.lease.lease_id == lease_id else None
    worker = lease.worker_id if lease else "unknown"
    return issued.context(worker, Role.WORKER, lease.run_id if lease else None, reason=reason)


def _lease(uow: UnitOfWork) -> Callable[[Done], Lease]:
    """The lease the command acted on; for a replayed command id, as it stands now, so a
    worker that resends learns at once that its lease is gone."""

    def answer(done: Done) -> Lease:
        lease = current_lease(done.profile)
        return uow.lease_now(lease) if done.replayed else lease

    return answer


def _released(done: Done) -> ReleaseResult:
    return release_result(done.profile)


def _availability(done: Done) -> Availability:
    return availability_of(done.profile)


def register(uow: UnitOfWork, c: cmds.RegisterProfile) -> ProfileRecord:
    """Registering the same record again is a no-op; another record for the id is refused."""
    record = ProfileRecord.model_validate(c.model_dump(exclude={"command_id", "actor"}))

    def create(issued: Issued) -> Profile:
        return Profile.register(record, issued.context(c.actor, Role.OPERATOR, reason="registered"))

    def decide(profile: Profile, _: Issued) -> None:
        existing = profile.registration()
        if existing != record:
            msg = (
                f"profile {record.profile_id} is already registered differently "
                f"(account {existing.account_id}, proxy {existing.proxy_id})"
            )
            raise NotAllowed(msg)

    return uow.run(c.profile_id, c, decide, lambda done: done.profile.registration(), create=create)


def checkout(uow: UnitOfWork, c: cmds.Checkout) -> Lease:
    """Lease the profile to the worker, or ``CheckoutDenied`` with the reason."""
    request = CheckoutRequest(
        worker_id=c.worker_id,
        run_id=c.run_id,
        task_type=c.task_type,
        ttl_seconds=c.ttl_seconds,
        account_id=c.account_id,
        proxy_id=c.proxy_id,
        max_duration_seconds=c.max_duration_seconds,
    )

    def decide(profile: Profile, issued: Issued) -> None:
        correlation = c.correlation_id or c.run_id
        profile.checkout(request, issued.context(c.worker_id, Role.WORKER, correlation))

    return uow.run(c.profile_id, c, decide, _lease(uow))


def heartbeat(uow: UnitOfWork, c: cmds.Heartbeat) -> Lease:
    def decide(profile: Profile, issued: Issued) -> None:
        ctx = _lease_context(profile, c.lease_id, issued, "")
        profile.heartbeat(
            c.lease_id,
            c.fencing_token,
            ctx,
            step=c.step,
            url=c.url,
            safe=c.safe,
            mutating=c.mutating,
        )

    return uow.run(_profile_of(c), c, decide, _lease(uow))


def extend(uow: UnitOfWork, c: cmds.Extend) -> Lease:
    def decide(profile: Profile, issued: Issued) -> None:
        ctx = _lease_context(profile, c.lease_id, issued, f"extend to {c.ttl_seconds}s")
        profile.extend(c.lease_id, c.fencing_token, c.ttl_seconds, ctx)

    return uow.run(_profile_of(c), c, decide, _lease(uow))


def release(uow: UnitOfWork, c: cmds.Release) -> ReleaseResult:
    report = ReleaseReport(
        outcome=c.outcome,
        final_url=c.final_url,
        screenshot=c.screenshot,
        screenshot_sha256=c.screenshot_sha256,
        prompt_seen=c.prompt_seen,
        observed_proxy=c.observed_proxy,
        observed_account=c.observed_account,
        evidence_problem=c.evidence_problem,
    )

    def decide(profile: Profile, issued: Issued) -> None:
        ctx = _lease_context(profile, c.lease_id, issued, c.reason or "")
        profile.release(c.lease_id, c.fencing_token, report, ctx)

    return uow.run(_profile_of(c), c, decide, _released)


def _operate(
    method: Callable[[Profile, Context], object], answer: Callable[[Done], R]
) -> Callable[[UnitOfWork, cmds.OperatorCommand], R]:
    """The handler of an operator's command: ``method`` decides, as the operator, with the
    command's reason."""

    def handle(uow: UnitOfWork, c: cmds.OperatorCommand) -> R:
        def decide(profile: Profile, issued: Issued) -> None:
            method(profile, issued.context(c.actor, Role.OPERATOR, reason=c.reason))

        return uow.run(c.profile_id, c, decide, answer)

    return handle


quarantine = _operate(Profile.quarantine, _availability)
disable = _operate(Profile.disable, _availability)
enable = _operate(Profile.enable, _availability)
force_release = _operate(Profile.force_release, _released)


def review(uow: UnitOfWork, c: cmds.Review) -> Availability:
    def decide(profile: Profile, issued: Issued) -> None:
        ctx = issued.context(c.reviewer, Role.REVIEWER, reason=c.note)
        profile.review(c.decision, c.note, ctx, c.browser)

    return uow.run(c.profile_id, c, decide, _availability)


def record_browser_stop(uow: UnitOfWork, c: cmds.RecordBrowserStop) -> Availability:
    """Append ``BrowserStopped``; the profile's state is unchanged (the row shows the version)."""

    def decide(profile: Profile, issued: Issued) -> None:
        ctx = issued.context(c.actor, Role.OPERATOR, reason=f"orphaned browser: {c.signal}")
        profile.record_browser_stop(c.host, c.pid, c.user_data_dir, c.signal, ctx)

    return uow.run(c.profile_id, c, decide, _availability)


def settle_overdue(uow: UnitOfWork, c: cmds.SettleOverdue) -> SweepResult | None:
    """Mark the profile's overdue lease stale and send it to review or quarantine; None when
    there was nothing to settle (renewed meanwhile, or another sweeper was first)."""

    def decide(profile: Profile, issued: Issued) -> None:
        profile.sweep(issued.context(c.actor, Role.SCHEDULER, reason="renewal deadline missed"))

    def answer(done: Done) -> SweepResult | None:
        endings = (ev.ReviewRequested, ev.ProfileQuarantined)
        ending = next((e for e in done.appended if isinstance(e, endings)), None)
        if ending is None or ending.lease_id is None:
            return None
        return SweepResult(
            profile_id=done.profile.profile_id,
            lease_id=ending.lease_id,
            profile_state=done.profile.state,
            cause=ending.cause,
        )

    return uow.run(c.profile_id, c, decide, answer)


def sweep(uow: UnitOfWork, c: cmds.Sweep) -> SweepReport:
    """Settle every lease past its deadline, each profile on its own: one that fails is
    reported with its id and the others are still swept (only a store that cannot be reached
    stops the sweep). Candidates are the rows showing a lease overdue, plus every profile whose
    row is missing or unreadable, so a damaged read model cannot hide an overdue lease; each
    is re-judged on its aggregate, so a lease renewed since the row was read is left alone."""
    store = uow.store
    readable, _ = store.scan_availability()
    unseen = set(store.profile_ids()) - {r.profile_id for r in readable}
    settled, failed = [], []
    for profile_id in sorted(set(store.overdue(uow.now())) | unseen):
        try:
            result = settle_overdue(uow, cmds.SettleOverdue(profile_id=profile_id, actor=c.actor))
        except StoreUnavailable:
            raise
        except Exception as e:  # one profile's failure must not stop the sweep
            failed.append(SweepFailure(profile_id=profile_id, error=f"{type(e).__name__}: {e}"))
            continue
        if result is not None:
            settled.append(result)
    return SweepReport(settled=settled, failed=failed)


def _profile_of(c: cmds.LeaseCommand) -> str:
    return parse_lease_id(c.lease_id)[0]
