"""The availability row: one profile's state as its table holds it, and the rule that judges a
lease by it.

Apart from ``ledger._domain.view`` (which makes the row from a profile's state) so that a read
of the table (``custody status``, a worker's lease check) imports neither the events nor the
state machine: the row is checked by its model when read, whatever made it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime

from ledger._domain.model import DenialReason, Frozen, ProfileState, past_deadline


class Availability(Frozen):
    """One row per profile: state, holder, deadline, reason and last user. Its times carry
    their UTC offset."""

    # A stored time without its offset is a junk value, so its row is unreadable, as damaged
    # as any (rev36: a naive ``until`` was read, and every read that compared it with the
    # clock failed with a TypeError).

    profile_id: str
    account_id: str
    proxy_id: str
    region: str | None
    state: ProfileState
    reason: DenialReason | None
    cause: str | None
    since: AwareDatetime | None
    until: AwareDatetime | None
    holder_worker: str | None
    holder_run: str | None
    holder_task: str | None
    lease_id: str | None
    fencing_token: int | None
    heartbeat_at: AwareDatetime | None
    last_worker: str | None
    last_run: str | None
    last_lease_id: str | None
    last_ending: str | None
    last_ended_at: AwareDatetime | None
    version: int

    def overdue_at(self, now: datetime) -> bool:
        """The row's lease missed its deadline (``past_deadline``, as ``Lease.overdue_at``)."""
        leased = self.state is ProfileState.LEASED
        return leased and self.until is not None and past_deadline(self.until, now)


class ResentAvailability(Availability):
    """The answer to a resent operator or review command (its ``--command-id`` recognised):
    the row as that command left it, as recorded (``state``, ``since``, ``version``: then's,
    the profile may have moved on since), marked ``resent`` so that no reader takes it for
    the profile now (rev34: "p1 is now quarantined" of a profile leased since)."""

    resent: bool = True


class LeaseCheck(Frozen):
    """Whether a lease is still its profile's live lease, as the availability row says: what
    a worker polls for while it holds a lease. ``why`` says why not (None while live)."""

    lease_id: str
    live: bool
    profile_state: ProfileState
    why: str | None


def lease_check(row: Availability, lease_id: str, now: datetime) -> LeaseCheck:
    """Judge ``lease_id`` against its profile's row at ``now`` (the store's time): live while
    the row holds it, it is not marked stale and its renewal deadline has not passed (past it
    a heartbeat is refused as lost, and the next sweep marks it stale)."""
    pid = row.profile_id
    if row.lease_id == lease_id:
        overdue = row.overdue_at(now)
        live = row.state is ProfileState.LEASED and not overdue
        why = None if live else f"the ledger marked {lease_id} {row.state.value}"
        if overdue and row.until is not None:
            deadline = row.until.isoformat()
            why = f"{lease_id} missed its renewal deadline {deadline}: a heartbeat is refused, "
            why += "and the next sweep marks it stale"
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
            if latest
            else f"{pid} has never been leased"
        )
    return LeaseCheck(lease_id=lease_id, live=live, profile_state=row.state, why=why)
