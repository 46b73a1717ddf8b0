"""A dict-backed fake of the ledger's write-side port (``ledger.ports.Repository``).

It keeps each profile's events in a list and folds them on every load, as the real stores do
from their tables; a save appends all of a profile's pending events or none. It touches no
library internals and no I/O, so the service layer's rules (conflict retry, command-id replay,
refusal of a reused id) are unit-tested against it in milliseconds; the conformance suite
(``tests/integration/test_repository.py``) holds it and the real stores to the same contract.

``before_save`` lets a test act between a command's load and its save, as another writer
would: it is called with the profile about to be saved.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from ledger._domain.directories import first_overlap, normalised, refusal
from ledger._domain.errors import InvalidInput, NotAllowed
from ledger._domain.events import (
    ProfileEvent,
    ProfileQuarantined,
    ProfileRegistered,
    ReviewRequested,
)
from ledger._domain.model import Lease, LeaseStatus, ProfileState, Role
from ledger._domain.profile import Profile, replay
from ledger._domain.view import Availability
from ledger._stores.recorders import in_directory_order
from ledger.ports import Authority, CommandRecord, LateSave, Save, StreamConflict


class FakeRepository:
    """Profiles' event streams, availability rows, command ids and directories, in dicts."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.streams: dict[str, list[ProfileEvent]] = {}
        self.log: list[ProfileEvent] = []  # every event, in the order kept (the stores' log)
        self.rows: dict[str, Availability] = {}
        self.commands: dict[str, CommandRecord] = {}
        self.held: set[str] = set()
        self.directories: dict[str, str] = {}  # profile id -> normalised directory
        self.saves = 0
        self.before_save: Callable[[Profile], None] | None = None
        self._clock = clock or (lambda: datetime.now(UTC))
        self.roles = frozenset(Role)

    def now(self) -> datetime:
        return self._clock()

    def authority(self, *, fresh: bool = False) -> Authority:
        return Authority("fake", self.roles)

    def load(self, profile_id: str, version: int | None = None) -> Profile | None:
        events = self.streams.get(profile_id)
        if not events:
            return None
        return replay(None, events if version is None else events[:version])

    def cached(self, profile_id: str) -> Profile | None:
        return None  # the fake holds nothing between calls: every decision loads afresh

    def save(
        self,
        profile: Profile,
        row: Availability,
        command: tuple[str, str] | None = None,
        *,
        in_time: float | None = None,
    ) -> None:
        self.save_together([(profile, row, command)], in_time=in_time)

    def save_together(self, saves: Sequence[Save], *, in_time: float | None = None) -> None:
        if self.before_save is not None:
            hook, self.before_save = self.before_save, None  # once: a writer then steps aside
            hook(saves[0][0])
        if in_time is not None and time.monotonic() > in_time:  # decided before a deadline
            raise LateSave(saves[0][0].profile_id)  # passed since
        # As the stores write a batch: in profile order, each save judged against the store
        # and the saves before it in the batch (a version or a command id taken by an
        # earlier one conflicts, as their keys do; rev36: the fake kept one command id twice).
        saves = sorted(saves, key=lambda save: save[0].profile_id)
        lengths: dict[str, int] = {}  # each stream's length with the batch's earlier saves
        used: set[str] = set()
        claims: list[tuple[str, str]] = []
        for profile, _, command in saves:  # all checked before anything is kept
            profile_id, pending = profile.profile_id, profile.pending_events
            length = lengths.get(profile_id, len(self.streams.get(profile_id, [])))
            if pending and pending[0].originator_version != length + 1:
                raise StreamConflict(profile_id)
            lengths[profile_id] = length + len(pending)
            if command is not None:
                if command[0] in self.commands or command[0] in used:
                    raise StreamConflict(profile_id)
                used.add(command[0])
            claimed = self._claimed(profile_id, pending, claims)
            if claimed is not None:
                claims.append((profile_id, claimed))
        for profile, row, command in saves:
            events = list(profile.collect_events())
            self.streams[profile.profile_id] = [*self.streams.get(profile.profile_id, []), *events]
            self.log.extend(events)
            self.rows[profile.profile_id] = row
            if command is not None:
                command_id, fingerprint = command
                self.commands[command_id] = CommandRecord(
                    profile.profile_id, profile.version, fingerprint
                )
        self.directories.update(claims)
        self.saves += 1

    def _claimed(
        self, profile_id: str, pending: list[ProfileEvent], batch: list[tuple[str, str]]
    ) -> str | None:
        """The directory a registration claims; ``InvalidInput`` if another profile's
        overlaps it, recorded or claimed earlier in the ``batch`` (the invariant one
        aggregate cannot keep), naming the first by directory, then profile, as the stores
        do."""
        for event in pending:
            if isinstance(event, ProfileRegistered) and event.user_data_dir is not None:
                directory = normalised(event.user_data_dir)
                others = [(p, d) for p, d in [*self.directories.items(), *batch] if p != profile_id]
                found = first_overlap(directory, in_directory_order(others))
                if found is not None:
                    holder, theirs = found
                    raise InvalidInput(
                        "user_data_dir", refusal(profile_id, directory, holder, theirs)
                    )
                return directory
        return None

    def history(self, profile_id: str) -> list[ProfileEvent]:
        return list(self.streams.get(profile_id, []))

    def event_at(self, profile_id: str, version: int) -> ProfileEvent | None:
        found = [e for e in self.streams.get(profile_id, []) if e.originator_version == version]
        return found[0] if found else None

    def command_record(self, command_id: str) -> CommandRecord | None:
        return self.commands.get(command_id)

    def record_sweep(self, command_id: str, command: str) -> bool:
        if command_id in self.commands:
            return False
        self.commands[command_id] = CommandRecord("", 0, command)
        return True

    def event_count(self) -> int:
        return len(self.log)

    def sweep_endings(self, sweep_id: str, after: int) -> list[ProfileEvent]:
        endings = (ReviewRequested, ProfileQuarantined)
        return [
            e
            for e in self.log[after:]
            if isinstance(e, endings) and e.envelope.command_id == sweep_id
        ]

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        if name in self.held:
            raise NotAllowed(f"{name} is already running in another process")
        self.held.add(name)
        try:
            yield
        finally:
            self.held.discard(name)

    def sweep_candidates(self, now: datetime) -> list[str]:
        overdue = {
            pid
            for pid, row in self.rows.items()
            if row.state is ProfileState.STALE or row.overdue_at(now)
        }
        unseen = set(self.streams) - set(self.rows)
        return sorted(overdue | unseen)


def held_lease(
    token: int = 1, profile_id: str = "p1", worker_id: str = "w", run_id: str = "r"
) -> Lease:
    """A worker's active lease as a test holds it, without a store."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Lease(
        lease_id=f"lease-{token}@{profile_id}",
        profile_id=profile_id,
        account_id="a",
        worker_id=worker_id,
        run_id=run_id,
        task_type="t",
        proxy_id="x",
        lease_status=LeaseStatus.ACTIVE,
        lease_started_at=at,
        heartbeat_at=at,
        expires_at=at,
        ttl_seconds=30,
        release_policy="manual_review_on_unknown_state",
        fencing_token=token,
    )


# The lease the renewal tests hold, and the monotonic clock they move by hand.
LEASE = held_lease()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
