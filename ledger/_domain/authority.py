"""Who may record what: the events each role's commands append.

One table, read three times: the aggregate refuses to trigger an event its acting role may not
record (a command method calling the wrong ``_trigger`` fails in every test that reaches it),
the ledger refuses a command whose role its store login does not hold (``Forbidden``, before
anything is loaded), and on PostgreSQL the events table's insert trigger refuses a row whose
recorded role is not one of the session's, or whose type that role may not record
(``ledger._stores.access`` writes the trigger from this table). What the store login may act
as (``Forbidden``, ``check_acts``) needs no event: it lives in ``ledger._domain.acting``, so a
store opened to read imports none.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger._domain import events as ev
from ledger._domain.errors import NotAllowed
from ledger._domain.model import Role

# An unclean ending sends the profile to review or quarantine in the same command that ended
# the lease, so the worker's release and the scheduler's sweep record those too.
_ENDINGS = (ev.ReviewRequested, ev.ProfileQuarantined)

ROLE_EVENTS: Mapping[Role, frozenset[str]] = {
    Role.WORKER: frozenset(
        e.event_type
        for e in (
            ev.LeaseAcquired,
            ev.LeaseHeartbeat,
            ev.LeaseExtended,
            ev.LeaseReleaseRequested,
            ev.LeaseReleasedCleanly,
            *_ENDINGS,
        )
    ),
    Role.SCHEDULER: frozenset(e.event_type for e in (ev.LeaseMarkedStale, *_ENDINGS)),
    Role.REVIEWER: frozenset(
        e.event_type
        for e in (
            ev.ProfileReviewed,
            ev.ProfileReturnedToPool,
            ev.ProfileQuarantined,
            ev.ProfileDisabled,
        )
    ),
    Role.OPERATOR: frozenset(
        e.event_type
        for e in (
            ev.ProfileRegistered,
            ev.LeaseRevoked,
            ev.ProfileQuarantined,
            ev.ProfileDisabled,
            ev.ProfileEnabled,
            ev.BrowserStopped,
            ev.ReviewRequested,  # a force-release's review
            # Not a stale mark: the sweep is the scheduler's alone; an operator ends a lease by
            # hand with a force-release (rev28: roles.md said both, no command let it).
        )
    ),
}


def check_records(role: Role, event_type: str) -> None:
    """``NotAllowed`` unless ``role`` may record an event of ``event_type``."""
    if event_type not in ROLE_EVENTS[role]:
        raise NotAllowed(f"the {role.value} role may not record {event_type}")
