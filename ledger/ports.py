"""The ledger's port: what the write side needs of a store.

``Repository`` is all the service layer (the unit of work and the handlers) may ask: load a
profile, save what it decided, its history, a caller's command id, the clock, and which profiles
the sweep must look at. The SQL stores (SQLite and PostgreSQL) implement it, and so does the
dict-backed fake the unit tests run the service layer on (``tests/fakes.py``); one conformance
suite holds all of them to the same contract (``tests/integration/test_repository.py``).

The reads need more of a store (the availability rows, the registered profiles, the read
models' database): they use the SQL store itself (``ledger._stores``), which is also the
repository the ledger's commands run on.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, Protocol

from ledger._domain.acting import Forbidden
from ledger._domain.model import Role
from ledger._domain.row import Availability

if TYPE_CHECKING:  # a store opened to read its tables imports neither
    from ledger._domain.events import ProfileEvent
    from ledger._domain.profile import Profile


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
class CommandRecord(NamedTuple):
    """A caller's command id as the store recorded it with its events: the profile, the
    version the command's last event reached and the fingerprint of what was asked."""

    profile_id: str
    version: int
    command: str


class DirectoryRecord(NamedTuple):
    """A profile's registered ``user_data_dir``, normalised, as the store recorded it."""

    profile_id: str
    user_data_dir: str


class Authority(NamedTuple):
    """Whom the store is opened as: its ``login`` and the custody roles it may act in (every
    role on SQLite, where the file's permissions are the boundary, and for the owner of a
    PostgreSQL store; the login's granted roles otherwise). ``barred``, when not empty, is why
    no command may be recorded here whatever the roles (one line, with what to do): a
    PostgreSQL store whose guards name a role that is not its owner."""

    login: str
    roles: frozenset[Role]
    barred: str = ""

    def refuse_if_barred(self) -> None:
        """``Forbidden`` (exit 7) with ``barred`` as its line, on a store that may record
        nothing: before every command, and before a rebuild writes a read model."""
        if self.barred:
            raise Forbidden(self.barred)


# One profile's save: the profile with its pending events, its availability row, and the
# caller's command (id, fingerprint) if it gave one.
Save = tuple["Profile", Availability, tuple[str, str] | None]


class StreamConflict(Exception):
    """Another writer appended to the profile's stream first (or recorded the same command id);
    nothing of this save was kept."""


class Misdated(StreamConflict):
    """The store refused the save's events as dated too far from its clock (PostgreSQL's
    insert check, for any login but the owner's): decided before a stall, or on a clock that
    stepped since it was measured. Nothing was kept; the command is decided again at a fresh
    time, the clock measured again first."""


class LateSave(StreamConflict):
    """The save held the store's locks only after the time its decision stood until (a
    worker's on its lease: that lease's deadline), measured on the monotonic clock (and on
    PostgreSQL on the server's too). Nothing was kept; the command is decided again at a
    fresh time, as the lease then stands. ``by_the_store``: the store judged it so, not this
    process before sending it."""

    def __init__(self, message: str, *, by_the_store: bool = False) -> None:
        super().__init__(message)
        self.by_the_store = by_the_store


class DeadlineRefused(StreamConflict):
    """The store judged the lease the save acts on by its own clock and refused it (nothing
    kept): a worker's event past the lease's deadline, a scheduler's stale mark before it
    (PostgreSQL's insert check on a login's events). Decided again at a fresh time like any
    conflict; refused so again, the command is refused as the lease stands on the store's
    clock (``ledger._unit_of_work``). Its text is the store's."""


class Repository(Protocol):
    """What the service layer asks of a store. Every call is bounded by the store's timeout
    and raises ``StoreUnavailable`` when the store cannot answer, never a driver's error."""

    def now(self) -> datetime:
        """The clock every deadline is judged on (the database's, where it has one)."""
        ...

    def authority(self, *, fresh: bool = False) -> Authority:
        """Whom the store is opened as, and the roles its commands may act in (``fresh``: read
        again now, not as remembered: the owner may have granted or taken them since)."""
        ...

    def load(self, profile_id: str, version: int | None = None) -> Profile | None:
        """The profile as its events leave it (as of ``version``), or None if never
        registered."""
        ...

    def cached(self, profile_id: str) -> Profile | None:
        """A copy of the profile as this store last loaded or saved it, read from nothing
        (None when it holds none). It may be behind the store: a save of a decision made on
        it conflicts if it is, so a write may trust it; a refusal may not."""
        ...

    def save(
        self,
        profile: Profile,
        row: Availability,
        command: tuple[str, str] | None = None,
        *,
        in_time: float | None = None,
    ) -> None:
        """Append the profile's pending events, write its availability ``row``, record the
        caller's ``command`` (id, fingerprint) and the directory a registration claims, all
        or nothing. ``StreamConflict`` if another writer took the version or the command id
        first, or if the save holds the store's locks only after ``in_time`` (a
        ``time.monotonic()`` time; None: any time): the decision stood on a lease's deadline
        that has passed; ``InvalidInput`` if a registered directory overlaps another
        profile's."""
        ...

    def save_together(self, saves: Sequence[Save], *, in_time: float | None = None) -> None:
        """``save`` for several profiles (each at most once) in one transaction: all or
        nothing. ``StreamConflict`` if another writer took any of their versions or command
        ids first, or the locks are held only after ``in_time``."""
        ...

    def history(self, profile_id: str) -> list[ProfileEvent]:
        """Every event on the profile's stream, oldest first (empty if none)."""
        ...

    def event_at(self, profile_id: str, version: int) -> ProfileEvent | None:
        """The profile's event at ``version`` (None: there is none), read alone."""
        ...

    def command_record(self, command_id: str) -> CommandRecord | None:
        """Where and how a caller's command id was used, if it was."""
        ...

    def record_sweep(self, command_id: str, command: str) -> bool:
        """Record a sweep's command id with ``command`` (its fingerprint, then what the sweep
        recorded: a sweep appends to many profiles, none of which is its own); False, and
        nothing written, if the id is recorded already. ``command_record`` then names no
        profile for it."""
        ...

    def event_count(self) -> int:
        """The log's last position (0: empty): every event appended later is past it."""
        ...

    def sweep_endings(self, sweep_id: str, after: int) -> list[ProfileEvent]:
        """The events past log position ``after`` that ended a lease for the sweep
        ``sweep_id`` (``ReviewRequested``, ``ProfileQuarantined`` carrying it as their command
        id), in log order."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Hold the lock ``name`` (one holder across every process on the store) for a block;
        ``NotAllowed`` at once if it is held. A holder that dies releases it."""
        ...

    def sweep_candidates(self, now: datetime) -> list[str]:
        """The profiles a sweep at ``now`` must judge, in id order: every one whose row says
        stale or shows a lease past its deadline, and every one whose row is missing or
        unreadable (a damaged row must not hide an overdue lease)."""
        ...
