"""The raw baselines: the ledger's I/O written by hand with plain ``sqlite3`` / ``psycopg``.

A raw append is what an honest hand-written ledger would do for one command, in one transaction:
read the stream's current version (``SELECT max(originator_version)``), insert the new event
rows (JSON encoded here, in Python), and upsert the profile's availability row. The tables have
the library's shape and names (``stored_events`` on SQLite, ``custody_events`` with a
``bigserial`` notification id on PostgreSQL) and the availability DDL and upsert are the
ledger's own, so the two sides do the same I/O; what the raw side leaves out is the library:
loading and replaying the stream, the store clock's offset measurement, pydantic models,
PostgreSQL's ``LOCK TABLE ... IN EXCLUSIVE MODE`` and ``NOTIFY``.

``insert_plain`` is the even rawer floor: one single-row autocommit INSERT.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg

from ledger._stores.recorders import AVAILABILITY_COLUMNS, availability_ddl, upsert_availability_sql

# Sizes in bytes of the custody events each raw row stands in for, as the benchmark's own
# custody events measure (bench/run.py prints the measured sizes with every run).
REGISTERED, ACQUIRED, HEARTBEAT = 550, 942, 534
RELEASE_REQUESTED, RELEASED = 597, 420

Event = tuple[str, bytes]

_SQLITE_EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS {table} (originator_id TEXT, originator_version INTEGER, "
    "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
)
_PG_EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS {table} (originator_id uuid NOT NULL, "
    "originator_version bigint NOT NULL, topic text, state bytea, notification_id bigserial, "
    "PRIMARY KEY (originator_id, originator_version))"
)
_PG_NOTIFICATION_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS {table}_notification_id_idx ON {table} (notification_id ASC)"
)


def event(topic: str, size: int) -> Event:
    """An event row of ``size`` bytes: a JSON envelope like custody's, padded to size."""
    cid = uuid.uuid4().hex
    state: dict[str, Any] = {
        "class_version": 1,
        "envelope": {
            "actor_id": "bench-worker",
            "actor_role": "worker",
            "at": datetime.now(UTC).isoformat(),
            "causation_id": cid,
            "command_id": cid,
            "correlation_id": "bench-run",
            "reason": "",
        },
        "pad": "",
    }
    blank = len(json.dumps(state, separators=(",", ":")))
    state["pad"] = "x" * max(0, size - blank)
    return topic, json.dumps(state, separators=(",", ":"), sort_keys=True).encode()


def availability_row(profile_id: str, version: int, state: str) -> tuple[Any, ...]:
    """Parameters for the availability upsert, in ``AVAILABILITY_COLUMNS`` order."""
    now = datetime.now(UTC)
    leased = state == "leased"
    values: dict[str, Any] = dict.fromkeys(AVAILABILITY_COLUMNS)
    values.update(
        profile_id=profile_id,
        account_id="bench-account",
        proxy_id="bench-proxy",
        state=state,
        since=now.isoformat(timespec="microseconds"),
        version=version,
    )
    if leased:
        values.update(
            until=(now + timedelta(days=1)).isoformat(timespec="microseconds"),
            holder_worker="bench-worker",
            holder_run="bench-run",
            holder_task="bench",
            lease_id=f"lease-1@{profile_id}",
            fencing_token=1,
            heartbeat_at=now.isoformat(timespec="microseconds"),
        )
    return tuple(values[c] for c in AVAILABILITY_COLUMNS)


class RawStore(Protocol):
    def append(
        self, stream: uuid.UUID, profile_id: str, events: Sequence[Event], state: str
    ) -> int:
        """Read the version, insert ``events`` after it, upsert the row; the new version."""

    def insert_plain(self, stream: uuid.UUID, version: int) -> None:
        """One heartbeat-sized event row in its own autocommit INSERT."""

    def close(self) -> None: ...


class RawSQLite:
    """Plain ``sqlite3`` in WAL mode with the default ``synchronous``, as the library runs it."""

    events_table = "stored_events"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self._max = (
            f"SELECT max(originator_version) FROM {self.events_table} WHERE originator_id = ?"
        )
        self._insert = f"INSERT INTO {self.events_table} VALUES (?, ?, ?, ?)"
        self._plain = "INSERT INTO plain_events VALUES (?, ?, ?, ?)"
        self._upsert = upsert_availability_sql("?")

    @classmethod
    def create(cls, path: str) -> None:
        raw = cls(path)
        for table in (cls.events_table, "plain_events"):
            raw.conn.execute(_SQLITE_EVENTS_DDL.format(table=table))
        for statement in availability_ddl():
            raw.conn.execute(statement)
        raw.close()

    def append(
        self, stream: uuid.UUID, profile_id: str, events: Sequence[Event], state: str
    ) -> int:
        oid = stream.hex
        # IMMEDIATE: a read-then-write transaction must take the write lock up front, or a
        # concurrent writer makes it fail with SQLITE_BUSY instead of waiting.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self.conn.execute(self._max, (oid,)).fetchone()
            version = version or 0
            for offset, (topic, blob) in enumerate(events, start=1):
                self.conn.execute(self._insert, (oid, version + offset, topic, blob))
            version += len(events)
            self.conn.execute(self._upsert, availability_row(profile_id, version, state))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return int(version)

    def insert_plain(self, stream: uuid.UUID, version: int) -> None:
        topic, blob = event("lease_heartbeat", HEARTBEAT)
        self.conn.execute(self._plain, (stream.hex, version, topic, blob))

    def close(self) -> None:
        self.conn.close()


class RawPostgres:
    """Plain ``psycopg``: one connection, explicit BEGIN/COMMIT, no pipeline, no table lock."""

    events_table = "custody_events"

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self._max = (
            f"SELECT max(originator_version) FROM {self.events_table} WHERE originator_id = %s"
        )
        self._insert = (
            f"INSERT INTO {self.events_table} (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s) RETURNING notification_id"
        )
        self._plain = (
            "INSERT INTO plain_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)"
        )
        self._upsert = upsert_availability_sql("%s")

    @classmethod
    def create(cls, url: str) -> None:
        raw = cls(url)
        for table in (cls.events_table, "plain_events"):
            raw.conn.execute(_PG_EVENTS_DDL.format(table=table))
            raw.conn.execute(_PG_NOTIFICATION_INDEX.format(table=table))
        for statement in availability_ddl():
            raw.conn.execute(statement)
        raw.close()

    def append(
        self, stream: uuid.UUID, profile_id: str, events: Sequence[Event], state: str
    ) -> int:
        with self.conn.transaction():
            row = self.conn.execute(self._max, (stream,)).fetchone()
            version = (row[0] if row else None) or 0
            for offset, (topic, blob) in enumerate(events, start=1):
                params = (stream, version + offset, topic, blob)
                self.conn.execute(self._insert, params).fetchone()
            version += len(events)
            self.conn.execute(self._upsert, availability_row(profile_id, version, state))
        return int(version)

    def insert_plain(self, stream: uuid.UUID, version: int) -> None:
        topic, blob = event("lease_heartbeat", HEARTBEAT)
        self.conn.execute(self._plain, (stream, version, topic, blob))

    def close(self) -> None:
        self.conn.close()


def open_raw(kind: str, target: str) -> RawStore:
    """A raw store on an SQLite file path or a PostgreSQL URL."""
    return RawSQLite(target) if kind == "sqlite" else RawPostgres(target)


def create_raw(kind: str, target: str) -> None:
    if kind == "sqlite":
        RawSQLite.create(target)
    else:
        RawPostgres.create(target)


# -- the raw equivalents of the custody commands ------------------------------------------------


def fresh_stream(raw: RawStore, name: str) -> tuple[uuid.UUID, str]:
    """A new stream holding a registration and a lease, like a freshly checked-out profile."""
    stream = uuid.uuid4()
    raw.append(stream, name, [event("profile_registered", REGISTERED)], "available")
    raw.append(stream, name, [event("lease_acquired", ACQUIRED)], "leased")
    return stream, name


def heartbeats(raw: RawStore, stream: uuid.UUID, profile_id: str, n: int) -> None:
    for _ in range(n):
        raw.append(stream, profile_id, [event("lease_heartbeat", HEARTBEAT)], "leased")


def plain_inserts(raw: RawStore, stream: uuid.UUID, n: int) -> None:
    for version in range(1, n + 1):
        raw.insert_plain(stream, version)


def cycles(raw: RawStore, stream: uuid.UUID, profile_id: str, n: int) -> None:
    """Checkout (one event) then clean release (two events), each in its own transaction."""
    for _ in range(n):
        raw.append(stream, profile_id, [event("lease_acquired", ACQUIRED)], "leased")
        released = [
            event("lease_release_requested", RELEASE_REQUESTED),
            event("lease_released_cleanly", RELEASED),
        ]
        raw.append(stream, profile_id, released, "available")
