"""Current availability of a profile, derived purely from its state (no clock).

The store writes this row in the same transaction as the events that produced it, so it never
lags; a rebuild from the events must reproduce it exactly.
"""

from __future__ import annotations

from datetime import datetime

from ledger._domain.denials import standing_reason, state_denial
from ledger._domain.model import (
    Denial,
    DenialReason,
    Frozen,
    Lease,
    ProfileRecord,
    ProfileState,
)
from ledger._domain.state import Block, Disabled, LastReview, ProfileStateMachine


class Availability(Frozen):
    """One row per profile: state, holder, deadline, reason and last user."""

    profile_id: str
    account_id: str
    proxy_id: str
    region: str | None
    state: ProfileState
    reason: DenialReason | None
    cause: str | None
    since: datetime | None
    until: datetime | None
    holder_worker: str | None
    holder_run: str | None
    holder_task: str | None
    lease_id: str | None
    fencing_token: int | None
    heartbeat_at: datetime | None
    last_worker: str | None
    last_run: str | None
    last_lease_id: str | None
    last_ending: str | None
    last_ended_at: datetime | None
    version: int

    def overdue_at(self, now: datetime) -> bool:
        """The row's lease missed its deadline (the same rule as ``Lease.overdue_at``)."""
        return self.state is ProfileState.LEASED and self.until is not None and now > self.until


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


class LeaseCheck(Frozen):
    """Whether a lease is still its profile's live lease, as the availability row says: what
    a worker polls for while it holds a lease. ``why`` says why not (None while live)."""

    lease_id: str
    live: bool
    profile_state: ProfileState
    why: str | None


def lease_check(row: Availability, lease_id: str) -> LeaseCheck:
    """Judge ``lease_id`` against its profile's row: live while the row holds it and it is
    not marked stale. Reads no clock: a lease past its deadline but not yet marked is the
    worker's own deadline to notice."""
    pid = row.profile_id
    if row.lease_id == lease_id:
        live = row.state is ProfileState.LEASED
        why = None if live else f"the ledger marked {lease_id} {row.state.value}"
    elif row.last_lease_id == lease_id and row.lease_id is None:
        at = row.last_ended_at.isoformat() if row.last_ended_at else "an unknown time"
        why = f"the ledger ended {lease_id} ({row.last_ending}) at {at}; {pid} is {row.state.value}"
        live = False
    else:
        live = False
        latest = row.lease_id or row.last_lease_id
        why = (
            f"{pid} is now held under {latest}"
            if row.lease_id
            else f"{pid}'s latest lease is {latest}"
        )
    return LeaseCheck(lease_id=lease_id, live=live, profile_state=row.state, why=why)


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
