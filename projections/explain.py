"""Answers for a person: *why* is this profile blocked, and *who* used it last."""

from __future__ import annotations

from datetime import datetime

from ledger import (
    DenialReason,
    Frozen,
    Holder,
    Lease,
    Ledger,
    Profile,
    ProfileState,
    state_denial,
)


class Explanation(Frozen):
    """The state, the reason and what unblocks it, with the lease and run that led there."""

    profile_id: str
    account_id: str
    proxy_id: str
    state: ProfileState
    reason: DenialReason | None
    message: str
    since: datetime | None
    until: datetime | None
    holder: Holder | None
    cause: str | None
    trigger: str | None
    blocked_by: str | None
    last_review: str | None
    lease: Lease | None
    unclean_leases: list[str]
    remediation: str | None


class Usage(Frozen):
    """The current holder, or the last one and how that lease ended."""

    profile_id: str
    current: bool
    lease: Lease | None
    ending: str | None
    ended_at: datetime | None


def explain(ledger: Ledger, profile_id: str) -> Explanation:
    """Why the profile is (or is not) available right now, judged on the store's clock."""
    profile = ledger.profile(profile_id)
    denial = state_denial(profile, ledger.now())
    block = profile.block if profile.state in _BLOCKED else None
    lease = profile.lease or profile.last_lease
    return Explanation(
        profile_id=profile.profile_id,
        account_id=profile.account_id,
        proxy_id=profile.proxy_id,
        state=profile.state,
        reason=denial.reason if denial else None,
        message=denial.message if denial else "available: a checkout will be granted",
        since=denial.since if denial else profile.since,
        until=denial.until if denial else None,
        holder=denial.holder if denial else None,
        cause=block.cause.value if block else None,
        trigger=block.trigger.value if block and block.trigger else None,
        blocked_by=f"{block.actor_id} ({block.actor_role.value})" if block else None,
        last_review=_review_line(profile),
        lease=lease,
        unclean_leases=list(block.unclean_leases) if block else [],
        remediation=denial.remediation if denial else None,
    )


def _review_line(profile: Profile) -> str | None:
    review = profile.last_review
    if review is None:
        return None
    return f"{review.decision} by {review.reviewer} at {review.at.isoformat()}: {review.note}"


_BLOCKED = (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED, ProfileState.DISABLED)


def who(ledger: Ledger, profile_id: str) -> Usage:
    """Who holds the profile now, or who held it last and how that lease ended."""
    profile = ledger.profile(profile_id)
    if profile.lease is not None:
        return Usage(
            profile_id=profile.profile_id,
            current=True,
            lease=profile.lease,
            ending=None,
            ended_at=None,
        )
    last = profile.last_lease
    return Usage(
        profile_id=profile.profile_id,
        current=False,
        lease=last,
        ending=last.ending if last else None,
        ended_at=last.ended_at if last else None,
    )
