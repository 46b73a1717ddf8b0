"""Why a profile cannot be checked out now, said for a person and coded for a program."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ledger._domain.model import (
    UNKNOWN_ENDING_CAUSES,
    Denial,
    DenialReason,
    Holder,
    Lease,
    ProfileState,
    carries_password,
    in_line,
    quoted,
    told_apart,
)

if TYPE_CHECKING:  # the rules read a profile's state; ``ledger.rules`` imports none
    from ledger._domain.state import ProfileStateMachine


def holder_of(lease: Lease | None) -> Holder | None:
    if lease is None:
        return None
    return Holder(
        worker_id=lease.worker_id,
        run_id=lease.run_id,
        task_type=lease.task_type,
        lease_id=lease.lease_id,
    )


def _review_hint(profile_id: str) -> str:
    return (
        f"a reviewer inspects the profile, then runs: custody review {profile_id} "
        "--reviewer NAME --decision return|quarantine|disable --note TEXT"
    )


def context_denial(
    p: ProfileStateMachine, account_id: str | None, proxy_id: str | None
) -> Denial | None:
    """A checkout whose account or proxy differs from the profile's registration."""
    if account_id is not None and account_id != p.account_id:
        return Denial(
            profile_id=p.profile_id,
            reason=DenialReason.ACCOUNT_MISMATCH,
            # The caller's value quoted as every refusal quotes one: a short prefix, then its
            # length (rev34: a 200-character account made a 553-character line).
            message=f"profile belongs to account {p.account_id!r}, not {quoted(account_id)}"
            + told_apart(p.account_id, account_id),
            remediation=f"check out a profile registered for account {quoted(account_id)}",
        )
    if proxy_id is not None and proxy_id != p.proxy_id:
        # A proxy given with its password is not repeated (a terminal, a log, an HTTP answer).
        given = "one with a password in it" if carries_password(proxy_id, bare=True) else None
        return Denial(
            profile_id=p.profile_id,
            reason=DenialReason.PROXY_MISMATCH,
            message=f"profile expects proxy {p.proxy_id!r}, not {given or quoted(proxy_id)}"
            + ("" if given else told_apart(p.proxy_id, proxy_id)),
            remediation=f"launch through proxy {p.proxy_id!r}, or use another profile",
        )
    return None


def also_blocked(p: ProfileStateMachine, denial: Denial, now: datetime) -> Denial:
    """``denial`` as a checkout is told it at ``now``: a context that differs from the
    registration is named first (``checkout`` tries ``context_denial`` before
    ``state_denial``), as it is the caller's to mend whatever the state, but a profile its
    state blocks too says what else unblocks it: a quarantined profile checked out through
    the wrong proxy was told only to launch through the right one, which earned the
    quarantine's denial (rev28). The block's holder, since and until come along with its
    remediation: told to wait for the holder, a caller saw no holder and no time (rev39)."""
    if denial.reason not in (DenialReason.ACCOUNT_MISMATCH, DenialReason.PROXY_MISMATCH):
        return denial
    state = state_denial(p, now)
    if state is None:
        return denial
    # By its reason's code: "also previous run unknown" read as a typo (rev29).
    also = f"; the profile is also blocked ({state.reason.value}): {state.remediation}"
    held = {"holder": state.holder, "since": state.since, "until": state.until}
    denial = denial.model_copy(update=held)
    return denial.model_copy(update={"remediation": denial.remediation + also})


_REASON_BY_STATE = {
    ProfileState.LEASED: DenialReason.ALREADY_LEASED,
    ProfileState.STALE: DenialReason.STALE,
    ProfileState.QUARANTINED: DenialReason.QUARANTINED,
    ProfileState.DISABLED: DenialReason.DISABLED,
}


def standing_reason(p: ProfileStateMachine) -> DenialReason | None:
    """The reason the state alone gives, without a clock: what the availability row records.
    A review after a run whose ending nobody knows says previous_run_unknown."""
    if p.state is ProfileState.REVIEW_REQUIRED:
        unknown = p.block is not None and p.block.cause in UNKNOWN_ENDING_CAUSES
        return DenialReason.PREVIOUS_RUN_UNKNOWN if unknown else DenialReason.REVIEW_REQUIRED
    return _REASON_BY_STATE.get(p.state)


def reason_at(reason: DenialReason | None, overdue: bool) -> DenialReason | None:
    """The reason a checkout is denied for at a moment, given the one the state records
    (``standing_reason``) and whether the live lease missed its deadline by then: a lease past
    its deadline denies as stale even before the sweep has marked it."""
    return DenialReason.STALE if overdue and reason is DenialReason.ALREADY_LEASED else reason


def state_denial(p: ProfileStateMachine, now: datetime) -> Denial | None:
    """The denial the profile's state imposes at ``now``, or None when it is available."""
    reason = reason_at(standing_reason(p), p.lease is not None and p.lease.overdue_at(now))
    if reason is None:
        return None
    revoked = p.revoked_alone()
    if revoked is not None:  # appended past the ledger: no command follows it but a block
        return _revoked_alone(p, reason, revoked)
    if reason is DenialReason.DISABLED:
        return _disabled(p)
    if reason is DenialReason.ALREADY_LEASED:
        return _leased(p)
    if reason is DenialReason.STALE:
        return _stale(p)
    return _blocked(p, reason)


def _disabled(p: ProfileStateMachine) -> Denial:
    """A profile disabled from review or quarantine returns there when enabled, so its denial
    says so and names the review too: told only ``custody enable``, a program that enabled it
    met a second denial (rev28)."""
    disabled = p.disabled
    assert disabled is not None
    enable = f"an operator runs: custody enable {p.profile_id} --actor NAME --reason TEXT"
    was = disabled.previous_state
    if was is not ProfileState.AVAILABLE:
        enable += (
            f"; it is then {was.value.replace('_', ' ')} again, and {_review_hint(p.profile_id)}"
        )
    return Denial(
        profile_id=p.profile_id,
        reason=DenialReason.DISABLED,
        message=(
            f"disabled by {in_line(disabled.actor_id)} (it was {was.value}): {disabled.reason}"
        ),
        since=disabled.since,
        holder=holder_of(p.last_lease),
        remediation=enable,
    )


def _leased(p: ProfileStateMachine) -> Denial:
    lease = p.lease
    assert lease is not None
    return Denial(
        profile_id=p.profile_id,
        reason=DenialReason.ALREADY_LEASED,
        message=(
            f"leased to worker {in_line(lease.worker_id)} for run {in_line(lease.run_id)} "
            f"({in_line(lease.task_type)}) until {lease.expires_at.isoformat()}"
        ),
        since=lease.lease_started_at,
        until=lease.expires_at,
        holder=holder_of(lease),
        remediation=(
            "wait for the holder to release; an operator can end the lease with: "
            f"custody force-release {p.profile_id} --actor NAME --reason TEXT"
        ),
    )


def _stale(p: ProfileStateMachine) -> Denial:
    lease = p.lease
    assert lease is not None
    missed = (
        "reached its hard limit" if lease.ended_by_hard_limit() else "missed its renewal deadline"
    )
    return Denial(
        profile_id=p.profile_id,
        reason=DenialReason.STALE,
        message=(
            f"lease {lease.lease_id} of worker {in_line(lease.worker_id)} {missed} "
            f"{lease.expires_at.isoformat()}; the run's ending is unknown"
        ),
        since=lease.expires_at,
        holder=holder_of(lease),
        # Who runs each: a reviewer's login may not sweep (fixrev 294: told to run it, refused).
        remediation="the scheduler runs: custody sweep; then a reviewer reviews the profile",
    )


def _revoked_alone(p: ProfileStateMachine, reason: DenialReason, revoked: str) -> Denial:
    return Denial(
        profile_id=p.profile_id,
        reason=reason,
        message=f"{p.state.value} with no lease: {revoked}, which the ledger never records",
        since=p.since,
        holder=holder_of(p.last_lease),
        remediation=(
            f"an operator quarantines it (custody quarantine {p.profile_id} --actor NAME "
            "--reason TEXT), then a reviewer reviews it; custody verify names the event"
        ),
    )


def _blocked(p: ProfileStateMachine, reason: DenialReason) -> Denial:
    block = p.block
    assert block is not None
    said = f": {block.reason}" if block.reason else ""
    return Denial(
        profile_id=p.profile_id,
        reason=reason,
        message=(
            f"{p.state.value.replace('_', ' ')} ({block.cause}) by {in_line(block.actor_id)}{said}"
        ),
        # Since it entered the state, as status and the fleet say: an enable back into review
        # keeps the block from before the disabling, not its time (rev30).
        since=p.since or block.since,
        holder=holder_of(p.last_lease),
        remediation=_review_hint(p.profile_id),
    )
