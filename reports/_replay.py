"""Incident replay: a profile as it stood at a moment, and the events around that moment."""

from __future__ import annotations

from datetime import datetime

from ledger import Block, DenialReason, Holder, InvalidInput, Lease, ProfileState
from ledger.rules import holder_of
from projections import EVENTS_AROUND, ReadResult, TimelineRow
from projections.queries import around, version_at
from reports._frames import Moment, Source, as_of, moment, opened


class Replay(ReadResult):
    """ "Why was this profile unavailable at 14:02, and who held it?": the state its events
    gave at ``at`` (judged at ``at``: a lease past its deadline then reads as stale), the
    lease then current (or the last one), and the events just before and after. ``holder``
    is who held a lease at ``at``; with none held, ``last_user`` is whose lease came last."""

    profile_id: str
    at: datetime
    version: int
    state: ProfileState
    since: datetime | None
    reason: DenialReason | None
    message: str
    holder: Holder | None
    last_user: Holder | None
    deadline: datetime | None
    cause: str | None
    block: Block | None
    lease: Lease | None
    last_lease: Lease | None
    before: list[TimelineRow]
    after: list[TimelineRow]


def replay(profile: str, *, at: Moment, events: int = 5, ledger: Source = None) -> Replay:
    """The profile at time ``at`` (a date alone: its first instant): its events up to ``at``
    folded (the stream version is found through the timeline's (profile, time) index, not a
    scan), then judged at ``at``; with up to ``events`` events at or before ``at`` and after
    it. ``InvalidInput`` if ``at`` is missing, has no UTC instant, is after the store's time
    (the events cannot tell the future) or before the profile was registered;
    ``UnknownProfile`` if it never was; ``InvalidInput`` naming ``events`` for a count out of
    ``projections.EVENTS_AROUND`` (0 to 1,000, as ``custody replay --events``)."""
    EVENTS_AROUND.checked(events)
    when = moment("at", at)
    if when is None:
        raise InvalidInput("at", "a time is required")
    with opened(ledger) as source:
        source.require(profile)  # UnknownProfile before anything else, without a scan
        as_of(source, when)
        version = version_at(source, profile, when)
        if version is None:
            msg = f"{profile} was not registered yet at {when.isoformat()}"
            raise InvalidInput("at", msg)
        view = source.view_as_of(profile, version, when)
        before, after = around(source, profile, version, events)
    denial = view.denial
    blocked = view.state in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED)
    return Replay(
        profile_id=profile,
        at=when,
        version=version,
        state=view.state,
        # A lease past its deadline at ``at`` is stale since that deadline (rev37: the lease's
        # start), as ``why`` says.
        since=denial.since if denial else view.since,
        reason=denial.reason if denial else None,
        message=denial.message if denial else "available: a checkout would have been granted",
        holder=holder_of(view.lease),
        last_user=None if view.lease else holder_of(view.last_lease),
        deadline=view.lease.expires_at if view.lease else None,
        cause=view.block.cause.value if blocked and view.block else None,
        block=view.block if blocked else None,
        lease=view.lease,
        last_lease=view.last_lease,
        before=before,
        after=after,
    )
