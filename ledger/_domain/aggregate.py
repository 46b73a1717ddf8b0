"""The root of the Profile aggregate: one event stream per browser profile.

An ``AggregateRoot`` holds the state its events established (``ProfileStateMachine``) and the
events its commands triggered and have yet to be saved. Command methods (``ledger._domain.leasing``,
``ledger._domain.profile``) decide, then ``_trigger`` events; they never read a clock or make
ids: the time and the command's ids arrive in a ``Context``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger._domain import events as ev
from ledger._domain.authority import check_records
from ledger._domain.errors import NotAllowed
from ledger._domain.model import INVISIBLE, Envelope, Role, in_line, stream_id
from ledger._domain.state import ProfileStateMachine


@dataclass(frozen=True)
class Context:
    """Who issues a command, when (on the store's clock) and under which ids."""

    actor_id: str
    role: Role
    now: datetime
    command_id: str
    correlation_id: str
    causation_id: str
    reason: str = ""
    command: str = ""  # what was asked, as a fingerprint: a reused command id must match it


class AggregateRoot(ProfileStateMachine):
    """A profile's state and the events its commands triggered, not yet saved. Satisfies
    eventsourcing's aggregate protocol (``collect_events``, ``id``, ``version``)."""

    def __init__(self, originator_id: UUID) -> None:
        super().__init__(originator_id)
        self._pending: list[ev.ProfileEvent] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> AggregateRoot:
        copied = super().__deepcopy__(memo)
        assert isinstance(copied, AggregateRoot)
        copied._pending = list(self._pending)
        return copied

    @staticmethod
    def create_id(profile_id: str) -> UUID:
        """The aggregate id is derived from the profile's own id, so no lookup is needed."""
        return stream_id(profile_id)

    def collect_events(self) -> Sequence[ev.ProfileEvent]:
        collected, self._pending = self._pending, []
        return collected

    @property
    def pending_events(self) -> list[ev.ProfileEvent]:
        return list(self._pending)

    def _trigger(self, cls: type[ev.ProfileEvent], ctx: Context, **payload: Any) -> None:
        check_records(ctx.role, cls.event_type)  # the table the database enforces too
        # Events after the first in one command are caused by the one before them.
        previous = self._pending[-1] if self._pending else None
        same_command = previous is not None and previous.envelope.command_id == ctx.command_id
        causation = previous.event_id if previous and same_command else ctx.causation_id
        envelope = Envelope(
            actor_id=ctx.actor_id,
            actor_role=ctx.role,
            reason=ctx.reason,
            correlation_id=ctx.correlation_id,
            causation_id=causation,
            command_id=ctx.command_id,
            command=ctx.command,
            at=ctx.now,
        )
        event = cls(
            originator_id=self.id,
            originator_version=self.version + 1,
            profile_id=payload.pop("profile_id", self.profile_id),
            envelope=envelope,
            **payload,
        )
        event = event.link_after(self.head)  # its place in the chain, after the last event
        self.apply(event)
        self._pending.append(event)


def same_identity(a: str, b: str) -> bool:
    """Two spellings of one identity: compared after Unicode compatibility folding and case
    folding, and without the characters nothing shows, so "W4", a full-width w4 or a w4 with
    a zero-width space inside cannot pass for someone other than w4."""
    return _folded(a) == _folded(b)


def _folded(identity: str) -> str:
    shown = INVISIBLE.sub("", unicodedata.normalize("NFKC", identity))
    # Normalised again: what stood between a letter and its accent no longer does.
    return unicodedata.normalize("NFKC", shown).casefold().strip()


def require(ctx: Context, *roles: Role) -> None:
    if ctx.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        acts = f"{in_line(ctx.actor_id)} acts as {ctx.role.value}"
        raise NotAllowed(f"{acts}; this needs the {allowed} role")
