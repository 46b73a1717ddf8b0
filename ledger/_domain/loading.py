"""The one fold of every load: a profile's stream, or its latest snapshot and the events after
it, folded by the state machine. A command's load makes the aggregate
(``ledger._domain.profile.replay``); a read's makes the state alone, and imports neither the
aggregate's commands nor the snapshot's model when its stream has no snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar
from uuid import UUID

from ledger._domain import events as ev
from ledger._domain.state import ProfileStateMachine

if TYPE_CHECKING:
    from ledger._domain.snapshot import ProfileSnapshot


S = TypeVar("S", bound=ProfileStateMachine)


def fold(
    initial: S | None,
    events: Iterable[ev.ProfileEvent | ProfileSnapshot],
    make: Callable[[UUID], S],
) -> S | None:
    """Fold a stream onto ``initial`` (None: a new profile, made by ``make``), or onto the
    snapshot that comes first: the one fold of every load. A command's load makes the
    aggregate (``ledger._domain.profile.replay``); a read's, the state alone."""
    profile = initial
    for event in events:
        if not isinstance(event, ev.ProfileEvent):  # a snapshot: the repository gives it first
            profile = make(event.originator_id)
            event.restore(profile)
            continue
        if profile is None:
            profile = make(event.originator_id)
        profile.apply(event)
    return profile
