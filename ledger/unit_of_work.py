"""The unit of work: load a profile, let the aggregate decide, save, in one place.

It owns what every command needs around the decision: the store's clock, the idempotent replay
of a command id already applied, and the retry after a version conflict (another writer appended
to the stream first: reload, decide again). A lost race therefore surfaces as a domain answer
(``CheckoutDenied``, ``LeaseLost``), never as a driver error.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from ledger.commands import Command
from ledger.domain.errors import InvalidInput, StoreUnavailable, UnknownProfile
from ledger.domain.events import ProfileEvent
from ledger.domain.model import Lease, Role
from ledger.domain.profile import Context, Profile
from ledger.domain.view import availability_of
from ledger.stores.store import Store, StreamConflict

T = TypeVar("T")
Clock = Callable[[], datetime]

# A command that loses this many version races in a row gives up (as StoreUnavailable: the
# caller may retry); with backoff and one stream per profile that takes a storm of writers.
MAX_ATTEMPTS = 30


@dataclass(frozen=True)
class Issued:
    """A command as issued: its id, its fingerprint and, once decided, the store's time."""

    command_id: str
    command: str
    now: datetime

    def context(
        self, actor: str, role: Role, correlation_id: str | None = None, *, reason: str = ""
    ) -> Context:
        return Context(
            actor_id=actor,
            role=role,
            now=self.now,
            command_id=self.command_id,
            correlation_id=correlation_id or self.command_id,
            causation_id=self.command_id,
            reason=reason,
            command=self.command,
        )


@dataclass(frozen=True)
class Done:
    """What an answer is made from: the profile right after the command (as it was then, for
    a replayed command id) and the events this run appended (none when it changed nothing or
    was a replay)."""

    profile: Profile
    appended: Sequence[ProfileEvent] = ()
    replayed: bool = False


Decide = Callable[[Profile, Issued], None]
Create = Callable[[Issued], Profile]
Answer = Callable[[Done], T]


class UnitOfWork:
    """Runs commands against one store. Not shared across threads."""

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self._clock = clock
        self.conflicts = 0  # version races lost and retried, for tests and metrics

    def now(self) -> datetime:
        """The clock every deadline is judged on (the store's, unless a test injects one)."""
        now = self._clock() if self._clock is not None else self.store.now()
        return now.astimezone(UTC)

    def load(self, profile_id: str, version: int | None = None) -> Profile:
        profile = self.store.load(profile_id, version)
        if profile is None:
            raise UnknownProfile(profile_id)
        return profile

    def run(
        self,
        profile_id: str,
        command: Command,
        decide: Decide,
        answer: Answer[T],
        *,
        create: Create | None = None,
    ) -> T:
        """Load, decide, save; on a version conflict back off, reload and decide again.

        A command id this profile already applied returns the answer as of that command and
        appends nothing, so a worker may safely resend after a timeout; the same id with other
        arguments is refused as ``InvalidInput``. ``create`` starts a new stream when the
        profile does not exist (else ``UnknownProfile``).
        """
        given = command.command_id
        command_id, fingerprint = command.issued_id(), command.fingerprint()
        recorded = None if given is None else (given, fingerprint)
        for attempt in range(MAX_ATTEMPTS):
            if given is not None and (resent := self._resent(given, fingerprint, profile_id)):
                return answer(resent)
            profile = self.store.load(profile_id)
            issued = Issued(command_id, fingerprint, self.now())
            if profile is None:
                if create is None:
                    raise UnknownProfile(profile_id)
                profile = create(issued)
            else:
                decide(profile, issued)
            events = profile.pending_events
            if not events:
                return answer(Done(profile))
            try:
                self.store.save(profile, availability_of(profile), recorded)
            except StreamConflict:  # another writer took the version, or this command id
                self.conflicts += 1
                # Jitter keeps the losers of one race from colliding again.
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))  # noqa: S311
                continue
            return answer(Done(profile, events))
        msg = f"profile {profile_id} is busy: {MAX_ATTEMPTS} conflicting writes in a row; retry"
        raise StoreUnavailable(msg)

    def _resent(self, command_id: str, fingerprint: str, profile_id: str) -> Done | None:
        """A caller's command id names one command in the whole store. Recorded for this very
        command on this profile: the answer as of that command, appending nothing. Recorded
        for another profile or another command: ``InvalidInput``. Not recorded: None."""
        record = self.store.command_record(command_id)
        if record is None:
            return None
        if record.profile_id != profile_id:
            msg = f"{command_id!r} was already used on profile {record.profile_id}: send a new id"
            raise InvalidInput("command_id", msg)
        if record.command != fingerprint:
            first = record.command.split(":", 1)[0] or "another command"
            msg = f"{command_id!r} was already used on {profile_id} for {first}"
            raise InvalidInput("command_id", msg)
        return Done(self.load(profile_id, record.version), (), True)

    def lease_now(self, lease: Lease) -> Lease:
        """The lease as it stands now (a replayed answer must not say a lease is active that
        has since ended): the live or last lease, else the lease found ending in the history."""
        profile = self.load(lease.profile_id)
        for held in (profile.lease, profile.last_lease):
            if held is not None and held.lease_id == lease.lease_id:
                return held
        folded = Profile(profile.id)
        for event in self.store.history(lease.profile_id):
            folded.apply(event)
            ended = folded.last_lease
            if ended is not None and ended.lease_id == lease.lease_id:
                return ended
        return lease
