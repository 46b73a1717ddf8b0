"""One handler per command: what the aggregate is asked, by whom, and what the caller gets back.

A handler names the profile stream a command acts on and the ``Decision`` it asks of the
aggregate (one of ``Profile``'s command methods, with the command's arguments, acting as whom),
hands both to the unit of work, and makes the caller's answer from what the unit of work says
was done. Loading, saving, retrying and replaying are the unit of work's; the rules themselves
are the aggregate's. ``handle`` dispatches a command to its handler.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any, TypeVar, cast

from ledger import _commands as cmds
from ledger._domain import events as ev
from ledger._domain.acting import Forbidden
from ledger._domain.errors import InvalidInput, LedgerError, NotAllowed, StoreUnavailable
from ledger._domain.model import Lease, ProfileRecord, ProfileState, Role, storable
from ledger._domain.policies import ReleaseReport
from ledger._domain.profile import CheckoutRequest, Profile
from ledger._domain.results import (
    ReleaseResult,
    SweepFailure,
    SweepReport,
    SweepResult,
    current_lease,
    release_result,
)
from ledger._domain.row import ResentAvailability
from ledger._domain.view import Availability, availability_of
from ledger._unit_of_work import Acting, Creation, Decision, Done, UnitOfWork

R = TypeVar("R")


def handle(uow: UnitOfWork, command: cmds.Command[R]) -> R:
    """Run ``command`` through its handler (``KeyError`` for a class with none); the caller
    has made it what validation makes (``Door.as_validated``: ``Ledger.handle`` and
    ``handle_together`` do, before the store is reached)."""
    return cast(R, HANDLERS[type(command)](uow, command))


def register(uow: UnitOfWork, c: cmds.RegisterProfile) -> ProfileRecord:
    """Registering the same record again is a no-op; another record for the id is refused."""
    record = ProfileRecord.model_validate(c.model_dump(exclude={"command_id", "actor"}))
    acting = Acting(Role.OPERATOR, c.actor, reason="registered")
    confirm = Decision(partial(Profile.confirm_registration, record=record), acting)
    creation = Creation(partial(Profile.register, record), confirm)
    return uow.run(c, c.profile_id, creation).profile.registration()


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
    acting = Acting(Role.WORKER, c.worker_id, correlation_id=c.correlation_id or c.run_id)
    decision = Decision(partial(Profile.checkout, request=request), acting)
    done = uow.run(c, c.profile_id, decision)
    return current_lease(done.profile, done.lease_now)


def heartbeat(uow: UnitOfWork, c: cmds.Heartbeat) -> Lease:
    """Renew the lease and record its step and URL; ``LeaseLost`` if it is not live."""
    acting = Acting(Role.WORKER, lease_id=c.lease_id)  # the lease's worker, on its run
    decision = Decision(
        partial(
            Profile.heartbeat,
            lease_id=c.lease_id,
            fencing_token=c.fencing_token,
            step=c.step,
            url=c.url,
            safe=c.safe,
            mutating=c.mutating,
            worker_id=c.worker_id,
        ),
        acting,
    )
    done = uow.run(c, c.profile_id, decision)
    return current_lease(done.profile, done.lease_now)


def extend(uow: UnitOfWork, c: cmds.Extend) -> Lease:
    """Give the live lease a new TTL, counted from now."""
    act = partial(
        Profile.extend,
        lease_id=c.lease_id,
        fencing_token=c.fencing_token,
        ttl_seconds=c.ttl_seconds,
        worker_id=c.worker_id,
    )
    acting = Acting(Role.WORKER, reason=f"extend to {c.ttl_seconds}s", lease_id=c.lease_id)
    done = uow.run(c, c.profile_id, Decision(act, acting))
    return current_lease(done.profile, done.lease_now)


def release(uow: UnitOfWork, c: cmds.Release) -> ReleaseResult:
    """End the lease with the worker's report; the rules decide pool, review or quarantine."""
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
    act = partial(
        Profile.release,
        lease_id=c.lease_id,
        fencing_token=c.fencing_token,
        report=report,
        worker_id=c.worker_id,
    )
    acting = Acting(Role.WORKER, reason=c.reason or "", lease_id=c.lease_id)
    released = uow.run(c, c.profile_id, Decision(act, acting))
    return release_result(released.profile, resent=released.replayed)


def force_release(uow: UnitOfWork, c: cmds.ForceRelease) -> ReleaseResult:
    """End the live lease by hand; the profile goes to review (or quarantine)."""
    acting = Acting(Role.OPERATOR, c.actor, reason=c.reason)
    done = uow.run(c, c.profile_id, Decision(Profile.force_release, acting))
    return release_result(done.profile, resent=done.replayed)


def quarantine(uow: UnitOfWork, c: cmds.Quarantine) -> Availability:
    """Quarantine the profile, ending any live lease."""
    return _operator(uow, c, Profile.quarantine)


def disable(uow: UnitOfWork, c: cmds.Disable) -> Availability:
    """Take the profile out of rotation, ending any live lease."""
    return _operator(uow, c, Profile.disable)


def enable(uow: UnitOfWork, c: cmds.Enable) -> Availability:
    """Bring a disabled profile back to the state it was disabled from."""
    return _operator(uow, c, Profile.enable)


def _operator(
    uow: UnitOfWork, c: cmds.OperatorCommand[Availability], method: Callable[..., object]
) -> Availability:
    acting = Acting(Role.OPERATOR, c.actor, reason=c.reason)
    return _row_answer(uow.run(c, c.profile_id, Decision(method, acting)))


def review(uow: UnitOfWork, c: cmds.Review) -> Availability:
    """A reviewer's verdict on a profile in review or quarantine."""
    act = partial(
        Profile.review,
        decision=c.decision,
        note=c.note,
        browser=c.browser,
        expected_version=c.expected_version,
    )
    decision = Decision(act, Acting(Role.REVIEWER, c.reviewer, reason=c.note))
    return _row_answer(uow.run(c, c.profile_id, decision))


def record_browser_stop(uow: UnitOfWork, c: cmds.RecordBrowserStop) -> Availability:
    """Append ``BrowserStopped``; the profile's state is unchanged (the row shows the version)."""
    act = partial(
        Profile.record_browser_stop,
        host=c.host,
        pid=c.pid,
        user_data_dir=c.user_data_dir,
        signal=c.signal,
    )
    acting = Acting(c.acts_as, c.actor, reason=f"orphaned browser: {c.signal}")
    return _row_answer(uow.run(c, c.profile_id, Decision(act, acting)))


def _row_answer(done: Done) -> Availability:
    """The row a command answers with: as the command left the profile; for a resent command
    id, as recorded then, and marked so (``ResentAvailability``)."""
    row = availability_of(done.profile)
    return ResentAvailability(**dict(row)) if done.replayed else row


def settle_overdue(uow: UnitOfWork, c: cmds.SettleOverdue) -> SweepResult | None:
    """Mark the profile's overdue lease stale and send it to review or quarantine; None when
    there was nothing to settle (renewed meanwhile, or another sweeper was first)."""
    acting = Acting(Role.SCHEDULER, c.actor)  # the reason is the sweep's: ``Profile.sweep``
    done = uow.run(c, c.profile_id, Decision(Profile.sweep, acting))
    ending = next((e for e in done.appended if isinstance(e, _ENDINGS)), None)
    if ending is None or ending.lease_id is None:
        return None
    return _settled_by(ending)  # as a resend of a sweep cut short reads it from the log


# How many overdue profiles one sweep settles in one transaction (``UnitOfWork.together``).
SWEEP_BATCH = 100


def sweep(uow: UnitOfWork, c: cmds.Sweep) -> SweepReport:
    """Settle every lease past its deadline, each profile on its own: one that fails is
    reported with its id and the others are still swept (only a store that cannot be reached
    stops the sweep). Each candidate (``Repository.sweep_candidates``) is re-judged on its
    aggregate, so a lease renewed since its row was read is left alone. The profiles'
    writes share a transaction, ``SWEEP_BATCH`` at a time (group commit). Sent with other
    commands (``together``), it runs on its own after them.

    A command id is taken before the sweep writes anything (``_begun``): recorded only after
    its last write, it named nothing while the sweep ran, so another command took it meanwhile
    (rev37: a heartbeat under a running sweep's id was accepted, and the id named two
    commands), and a sweep cut short between its transactions (SIGINT, a store gone) had
    settled leases under an id it never recorded, which a resend then swept again under. Its
    whole answer is recorded once it ends (``_answered``); a resend answers from that, or, for
    a sweep that never ended, from the settlements its id is on (``_swept``)."""
    uow.alone()
    uow.require(Role.SCHEDULER)  # a login that may not sweep fails once, not per profile
    try:
        return _sweep(uow, c)
    except Forbidden as e:
        if e.by_database:  # the scheduler role, taken since it was read: said so, once
            uow.require(Role.SCHEDULER, fresh=True)
        raise


def _sweep(uow: UnitOfWork, c: cmds.Sweep) -> SweepReport:
    if c.command_id is None:
        return _swept_now(uow, c)
    first = _swept(uow, c)
    if first is not None:
        return first
    with _only_copy(uow, c.command_id):
        # A copy of it that held the lock before this one may have swept and answered since.
        first = _swept(uow, c)
        if first is not None:
            return first
        # Or been cut short (its id taken, its answer never recorded): it is carried out now,
        # under its id, and answers every lease settled under it (rev37's review: a resend
        # answered the few the first had settled, and left the rest overdue, exit 0).
        resumed = _cut_short(uow, c.command_id)
        if resumed is None:
            _begun(uow, c, c.command_id)
        report = _swept_now(uow, c)
        if resumed is not None:
            report = SweepReport(
                settled=_settled_since(uow, c.command_id, resumed), failed=report.failed
            )
        # Once every profile's writes are kept.
        recorded = f"{c.fingerprint()}\n{report.model_dump_json()}"
        uow.repository.record_sweep(_answered(c.command_id), recorded)
        return report


def _answered(command_id: str) -> str:
    """The key a sweep's whole answer is recorded under, once it ends, beside its id's row
    (the custody roles may insert a row but not update one): the id and a newline, which no
    command id holds (``CommandId``: no control characters), so no command can take it."""
    return f"{command_id}\n"


def _begun(uow: UnitOfWork, c: cmds.Sweep, command_id: str) -> None:
    """Take ``command_id`` for the sweep, before it writes: its row holds the fingerprint and
    the log position the sweep begins after (every event of it is past that), which a resend
    of a sweep cut short answers from. ``InvalidInput`` if another command took it since it
    was looked up (its own write then meets this row, and is refused in turn)."""
    begun = json.dumps({"begun_at": uow.repository.event_count()})
    if not uow.repository.record_sweep(command_id, f"{c.fingerprint()}\n{begun}"):
        _swept(uow, c)  # refuses an id another command took
        msg = f"{command_id!r} was already used: send a new id"
        raise InvalidInput("command_id", msg)


@contextmanager
def _only_copy(uow: UnitOfWork, command_id: str) -> Iterator[None]:
    """Held while the sweep named ``command_id`` runs, in one process at a time: a copy sent
    meanwhile is ``NotAllowed`` at once, having swept nothing, and a resend once the first has
    ended answers as it did. The id and its ON CONFLICT record were not one step: two copies
    both swept, and both were accepted, with different answers (rev28). A copy does not wait
    for the first: in ``custody serve`` it would hold the one writer thread, and every
    heartbeat behind it, for as long (rev28's second read: 11.6 s)."""
    name = f"sweep-{hashlib.sha256(command_id.encode()).hexdigest()[:16]}"  # a file's name
    with ExitStack() as held:
        try:
            held.enter_context(uow.repository.exclusive(name))
        except NotAllowed:
            msg = (
                f"a sweep with command id {command_id!r} is still running in another process; "
                "resend it when it ends to get its answer"
            )
            raise NotAllowed(msg) from None
        yield


def _swept_now(uow: UnitOfWork, c: cmds.Sweep) -> SweepReport:
    """Sweep now: every candidate judged, ``SWEEP_BATCH`` to a transaction."""
    settled, failed = [], []
    sweep_id = c.issued_id()  # on every event of the sweep: its id finds them all
    candidates = uow.repository.sweep_candidates(uow.now())
    for start in range(0, len(candidates), SWEEP_BATCH):
        chunk = candidates[start : start + SWEEP_BATCH]
        calls = [partial(_settle, uow, profile_id, c.actor, sweep_id) for profile_id in chunk]
        for profile_id, answer in zip(chunk, uow.together(calls), strict=True):
            if isinstance(answer, StoreUnavailable):
                raise answer
            if isinstance(answer, Forbidden) and not answer.by_database:
                raise answer  # the scheduler role, taken since it was read: once, not per profile
            # A refusal of one profile's write (the database's, say: a lease whose deadline
            # is not in custody's time form) is that profile's failure: raising it left every
            # other overdue lease unswept, sweep after sweep, and named no profile (rev37). A
            # login that may not sweep at all was refused above, before any profile.
            if isinstance(answer, Exception):
                # Text every store and export keeps: a damaged stream's error may quote bytes
                # that were never UTF-8 (lone surrogates), which no JSON encoder writes.
                error = storable(f"{type(answer).__name__}: {answer}")
                failed.append(SweepFailure(profile_id=profile_id, error=error))
            elif answer is not None:
                settled.append(answer)
    return SweepReport(settled=settled, failed=failed)


def _swept(uow: UnitOfWork, c: cmds.Sweep) -> SweepReport | None:
    """The answer of the sweep that ``c``'s command id already names, recorded whole when it
    ended (or by a custody from before rev37, which recorded the id only then): a resend, so
    nothing is swept again, and leases overdue since are left to the next sweep. None for a
    new id, none given, or a sweep that took its id and has not ended (running, or cut short:
    ``_cut_short``). ``InvalidInput`` when the id names another command."""
    if c.command_id is None:
        return None
    record = uow.repository.command_record(c.command_id)
    if record is None:
        return None
    fingerprint, _, answer = record.command.partition("\n")
    if record.profile_id or fingerprint != c.fingerprint():
        used = f"on profile {record.profile_id}" if record.profile_id else "for another sweep"
        raise InvalidInput("command_id", f"{c.command_id!r} was already used {used}: send a new id")
    begun = _begun_at(answer)
    if begun is None:
        return SweepReport.model_validate_json(answer)
    ended = uow.repository.command_record(_answered(c.command_id))
    if ended is not None:
        return SweepReport.model_validate_json(ended.command.partition("\n")[2])
    return None


def _cut_short(uow: UnitOfWork, command_id: str) -> int | None:
    """The log position a sweep that took ``command_id`` began after, if it never recorded
    its answer (cut short: SIGINT, a store gone, between its transactions); None otherwise.
    Asked under ``_only_copy``'s lock, after ``_swept``: no copy of it runs now."""
    record = uow.repository.command_record(command_id)
    if record is None or record.profile_id:
        return None
    if uow.repository.command_record(_answered(command_id)) is not None:
        return None  # it ended: ``_swept`` answers it
    return _begun_at(record.command.partition("\n")[2])


def _settled_since(uow: UnitOfWork, command_id: str, begun: int) -> list[SweepResult]:
    """Every lease a sweep under ``command_id`` settled, from the log past ``begun``: its
    settlements carry its id. What went wrong with a profile is on no event: a sweep carried
    out over two runs answers the failures of the last."""
    endings = uow.repository.sweep_endings(command_id, begun)
    settled = [_settled_by(e) for e in endings if isinstance(e, _ENDINGS) and e.lease_id]
    return sorted(settled, key=lambda s: s.profile_id)


def _begun_at(recorded: str) -> int | None:
    """The log position a sweep's id row says it began after (``_begun``); None for a row
    holding its whole answer (a custody from before rev37 recorded the id only then)."""
    if not recorded.startswith('{"begun_at":'):
        return None
    return int(json.loads(recorded)["begun_at"])


_ENDINGS = (ev.ReviewRequested, ev.ProfileQuarantined)


def _settled_by(ending: ev.ReviewRequested | ev.ProfileQuarantined) -> SweepResult:
    """The answer's line for a lease a sweep ended with ``ending``, as ``settle_overdue``
    made it (the answer lists them in the sweep's order: by profile id)."""
    quarantined = isinstance(ending, ev.ProfileQuarantined)
    return SweepResult(
        profile_id=ending.profile_id,
        lease_id=ending.lease_id or "",
        profile_state=ProfileState.QUARANTINED if quarantined else ProfileState.REVIEW_REQUIRED,
        cause=ending.cause,
        at=ending.at,
    )


def _settle(
    uow: UnitOfWork, profile_id: str, actor: str, sweep_id: str
) -> SweepResult | Exception | None:
    """One profile's settlement, or what went wrong with it (the ledger's refusals are given
    back by ``together``; anything else, a damaged stream say, is given back here)."""
    try:
        settle = cmds.SettleOverdue(profile_id=profile_id, actor=actor, sweep_id=sweep_id)
        return settle_overdue(uow, settle)
    except LedgerError:
        raise
    except Exception as e:  # one profile's failure must not stop the sweep
        return e


HANDLERS: dict[type[cmds.Command[Any]], Callable[[UnitOfWork, Any], Any]] = {
    cmds.RegisterProfile: register,
    cmds.Checkout: checkout,
    cmds.Heartbeat: heartbeat,
    cmds.Extend: extend,
    cmds.Release: release,
    cmds.ForceRelease: force_release,
    cmds.Quarantine: quarantine,
    cmds.Disable: disable,
    cmds.Enable: enable,
    cmds.Review: review,
    cmds.RecordBrowserStop: record_browser_stop,
    cmds.Sweep: sweep,
}
