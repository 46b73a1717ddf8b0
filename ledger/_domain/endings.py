"""How a lease ended, in one word: the rule every answer uses, the aggregate's and the read
side's alike.

| ending | the lease |
|---|---|
| ``clean`` | was released with ``success`` and its evidence |
| ``expected_failure`` | was released with ``expected_failure`` and its reason |
| ``review`` / ``quarantine`` | was released, and the rules sent the profile there |
| ``stale`` | missed its deadline; the sweep settled it (review or quarantine) |
| ``forced`` | was ended by an operator's force-release (or by disabling the profile) |
| ``revoked`` | was ended by an operator quarantining the profile |

Beside the word goes the cause the ending event recorded (``lease_expired``,
``force_release``, ...), for every ending but the explainable ones.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from ledger._domain.model import Cause, LeaseStatus, Outcome, past_deadline

if TYPE_CHECKING:
    from ledger._domain import events as ev


class LeaseEnding(StrEnum):
    """How a lease ended (see the module's table)."""

    CLEAN = "clean"
    EXPECTED_FAILURE = "expected_failure"
    REVIEW = "review"
    QUARANTINE = "quarantine"
    STALE = "stale"
    FORCED = "forced"
    REVOKED = "revoked"


# An explainable ending returns the profile to the pool; an unclean one sends it to a reviewer.
EXPLAINABLE_ENDINGS: tuple[str, ...] = (LeaseEnding.CLEAN.value, LeaseEnding.EXPECTED_FAILURE.value)
UNCLEAN_ENDINGS: tuple[str, ...] = tuple(
    e.value for e in LeaseEnding if e.value not in EXPLAINABLE_ENDINGS
)
# Endings no worker reported: the sweep or an operator ended the run, so how it went is unknown.
ENDED_UNKNOWN: tuple[str, ...] = (
    LeaseEnding.STALE.value,
    LeaseEnding.FORCED.value,
    LeaseEnding.REVOKED.value,
)

# A lease not ended yet, past its deadline, as a read judges it at a moment: no worker may act
# on it any more (a heartbeat or a release is lease lost), so how its run went is unknown, and
# the sweep or an operator will end it ``stale``, ``forced`` or ``revoked``.
OVERDUE = "overdue"


def lease_status_at(status: str, deadline: datetime, now: datetime) -> str:
    """A lease's status as a read reports it at ``now``: ``OVERDUE`` for an ``active`` one
    past its deadline then (``past_deadline``), though nothing has marked it stale yet;
    any other status as it is. The moment is the caller's (the store's time, or the moment
    a report is asked about): nothing here reads the clock."""
    if status == LeaseStatus.ACTIVE and past_deadline(deadline, now):
        return OVERDUE
    return status


class Ended(NamedTuple):
    """A lease's ending and the cause beside it (None for an explainable ending)."""

    ending: LeaseEnding
    cause: Cause | None


def lease_ending(event: ev.ProfileEvent, *, stale: bool) -> Ended | None:
    """How ``event`` ends the live lease, which was marked stale if ``stale``; None for an
    event that ends no lease. Review or quarantine after a missed deadline is ``stale``
    whatever the cause; an operator's revocation is ``forced`` or ``revoked`` even of a stale
    lease, since the operator ended it before the sweep did."""
    from ledger._domain import events as ev  # imported by whoever holds an event already

    if isinstance(event, ev.LeaseReleasedCleanly):
        clean = event.outcome is Outcome.SUCCESS
        return Ended(LeaseEnding.CLEAN if clean else LeaseEnding.EXPECTED_FAILURE, None)
    if isinstance(event, ev.LeaseRevoked):
        forced = event.cause is Cause.FORCE_RELEASE
        return Ended(LeaseEnding.FORCED if forced else LeaseEnding.REVOKED, event.cause)
    if isinstance(event, ev.ReviewRequested | ev.ProfileQuarantined):
        if stale:
            return Ended(LeaseEnding.STALE, event.cause)
        sent = isinstance(event, ev.ReviewRequested)
        return Ended(LeaseEnding.REVIEW if sent else LeaseEnding.QUARANTINE, event.cause)
    return None


def ending_text(ending: str | None, cause: Cause | str | None) -> str:
    """An ending as a person reads it: ``stale (lease_expired)``, ``clean``; ``-`` for none."""
    if ending is None:
        return "-"
    return ending if cause is None else f"{ending} ({cause})"
