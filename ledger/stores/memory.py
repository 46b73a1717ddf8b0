"""The in-memory store: the library's POPO recorder plus an availability dict, for tests.

Stores are named (``memory://NAME``): every ledger opened on one name in this process shares it,
as processes share a file or a server. Nothing survives the process.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, EventStore, IntegrityError, StoredEvent
from eventsourcing.popo import POPOAggregateRecorder, POPOApplicationRecorder

from ledger.domain.directories import overlap
from ledger.domain.model import ProfileState
from ledger.domain.profile import Profile
from ledger.domain.view import Availability
from ledger.stores.memory_views import MemoryViews
from ledger.stores.recorders import refuse_overlaps
from ledger.stores.settings import StoreSettings
from ledger.stores.store import (
    AGGREGATE_CACHE_SIZE,
    CommandRecord,
    DirectoryRecord,
    LedgerApplication,
    Store,
)


class MemoryLedgerRecorder(POPOApplicationRecorder):
    """Writes the availability row under the same lock as the events, so they never part."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, Availability] = {}
        self.commands: dict[str, CommandRecord] = {}
        self.directories: dict[str, str] = {}  # profile id: its normalised directory
        self.snapshots = POPOAggregateRecorder()  # shared by every ledger on this store

    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events, **kwargs)
        if any(row[0] in self.commands for row in kwargs.get("commands", ())):
            raise IntegrityError("command id already recorded")
        refuse_overlaps(kwargs.get("directories", ()), self.overlapping)

    def overlapping(self, directory: str) -> list[tuple[str, str]]:
        """The recorded (profile, directory) rows overlapping the normalised ``directory``."""
        with self._database_lock:
            return sorted(
                ((pid, d) for pid, d in self.directories.items() if overlap(directory, d)),
                key=lambda row: (row[1], row[0]),
            )

    def _update_table(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._update_table(stored_events, **kwargs)
        self.upsert(kwargs.get("availability", ()))
        for command_id, profile_id, version, command in kwargs.get("commands", ()):
            self.commands[command_id] = CommandRecord(profile_id, version, command)
        for profile_id, directory in kwargs.get("directories", ()):
            self.directories.setdefault(profile_id, directory)
        return ids

    def upsert(self, rows: Sequence[Availability]) -> None:
        with self._database_lock:
            for row in rows:
                self.rows[row.profile_id] = row

    def stream_version(self, originator_id: str) -> int:
        with self._database_lock:
            return max(self._stored_events_index.get(originator_id, {0: 0}))


class _MemoryApplication(LedgerApplication):
    def __init__(self, recorder: MemoryLedgerRecorder, env: dict[str, str]) -> None:
        self._given_recorder = recorder
        super().__init__(env=env)

    def construct_recorder(self) -> ApplicationRecorder:
        return self._given_recorder

    def construct_snapshot_store(self) -> EventStore[UUID]:
        return EventStore(mapper=self.mapper, recorder=self._given_recorder.snapshots)


_STORES: dict[str, MemoryLedgerRecorder] = {}
_STORES_LOCK = threading.Lock()


class MemoryStore(Store):
    """A store that lives in this process, shared by name."""

    def __init__(self, settings: StoreSettings, recorder: MemoryLedgerRecorder) -> None:
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.popo",
            "AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_SIZE),
        }
        super().__init__(settings, _MemoryApplication(recorder, env))
        self._recorder = recorder

    @classmethod
    def connect(cls, settings: StoreSettings) -> MemoryStore:
        with _STORES_LOCK:
            recorder = _STORES.setdefault(settings.path, MemoryLedgerRecorder())
        return cls(settings, recorder)

    def now(self) -> datetime:
        return datetime.now(UTC)

    def command_record(self, command_id: str) -> CommandRecord | None:
        with self._recorder._database_lock:
            return self._recorder.commands.get(command_id)

    def directories(self) -> list[DirectoryRecord]:
        with self._recorder._database_lock:
            return [DirectoryRecord(p, d) for p, d in sorted(self._recorder.directories.items())]

    def overlapping(self, directory: str) -> list[DirectoryRecord]:
        return [DirectoryRecord(p, d) for p, d in self._recorder.overlapping(directory)]

    def scan_availability(self) -> tuple[list[Availability], dict[str, str]]:
        # Only valid models are ever stored here: a memory row cannot be damaged.
        with self._recorder._database_lock:
            return [self._recorder.rows[pid] for pid in sorted(self._recorder.rows)], {}

    def availability_row(self, profile_id: str) -> Availability | str | None:
        with self._recorder._database_lock:
            return self._recorder.rows.get(profile_id)

    def replace_availability(self, row: Availability) -> bool:
        with self._recorder._database_lock:
            stream = str(Profile.create_id(row.profile_id))
            if self._recorder.stream_version(stream) != row.version:
                return False
            self._recorder.rows[row.profile_id] = row
            return True

    def overdue(self, now: datetime) -> list[str]:
        return [
            r.profile_id
            for r in self.availability()
            if r.state is ProfileState.STALE or r.overdue_at(now)
        ]

    def write_availability(self, rows: list[Availability]) -> None:
        self._recorder.upsert(rows)

    @functools.cached_property
    def views(self) -> MemoryViews:
        return MemoryViews(self.settings.path, self._recorder)

    def delete_availability(self, profile_id: str) -> None:
        with self._recorder._database_lock:
            self._recorder.rows.pop(profile_id, None)
