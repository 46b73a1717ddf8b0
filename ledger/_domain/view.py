"""Current availability of a profile, derived purely from its state (no clock), and the
profile's public read model.

The store writes the availability row (``ledger._domain.row``) in the same transaction as the
events that produced it, so it never lags; a rebuild from the events must reproduce it exactly.
"""

from __future__ import annotations

from datetime import datetime

from ledger._domain.denials import standing_reason, state_denial
from ledger._domain.model import Denial, Frozen, Lease, ProfileRecord, ProfileState
from ledger._domain.row import (
    Availability as Availability,
    LeaseCheck as LeaseCheck,
    lease_check as lease_check,
)
from ledger._domain.state import Block, Disabled, LastReview, ProfileStateMachine


def availability_of(p: ProfileStateMachine) -> Availability:
    """The availability row for a profile's current state."""
    lease, last = p.lease, p.last_lease
    recent: Lease | None = lease or last
    blocked = p.state in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED)
    cause = p.block.cause.value if blocked and p.block is not None else None
    return Availability(
        profile_id=p.profile_id,
        account_id=p.account_id,
        proxy_id=p.proxy_id,
        region=p.region,
        state=p.state,
        reason=standing_reason(p),
        cause=cause,
        since=p.since,
        until=lease.expires_at if lease else None,
        holder_worker=lease.worker_id if lease else None,
        holder_run=lease.run_id if lease else None,
        holder_task=lease.task_type if lease else None,
        lease_id=lease.lease_id if lease else None,
        fencing_token=lease.fencing_token if lease else None,
        heartbeat_at=lease.heartbeat_at if lease else None,
        last_worker=recent.worker_id if recent else None,
        last_run=recent.run_id if recent else None,
        last_lease_id=recent.lease_id if recent else None,
        last_ending=last.ending if last and not lease else None,
        last_ended_at=last.ended_at if last and not lease else None,
        version=p.version,
    )


class ProfileView(Frozen):
    """A profile as its events leave it, judged at a moment: the ledger's public read model
    of one profile (the aggregate itself stays inside the ledger)."""

    record: ProfileRecord
    state: ProfileState
    since: datetime | None
    version: int
    lease: Lease | None
    last_lease: Lease | None
    block: Block | None
    disabled: Disabled | None
    last_review: LastReview | None
    denial: Denial | None  # what a checkout at ``at`` would be told (None: it is granted)
    at: datetime


def view_of(p: ProfileStateMachine, record: ProfileRecord, now: datetime) -> ProfileView:
    return ProfileView(
        record=record,
        state=p.state,
        since=p.since,
        version=p.version,
        lease=p.lease,
        last_lease=p.last_lease,
        block=p.block,
        disabled=p.disabled,
        last_review=p.last_review,
        denial=state_denial(p, now),
        at=now,
    )
