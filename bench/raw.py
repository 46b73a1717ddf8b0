"""The raw baselines: the ledger's I/O written by hand with plain ``sqlite3`` / ``psycopg``.

A raw append is what an honest hand-written ledger would do for one command, in one transaction:
read the stream's current version (``SELECT max(originator_version)``), insert the new event
rows (JSON encoded here, in Python), and upsert the profile's availability row. The tables have
the library's shape and names (``stored_events`` on SQLite, ``custody_events`` with a
``bigserial`` notification id on PostgreSQL) and the availability DDL and upsert are the
ledger's own, so the two sides do the same I/O; what the raw side leaves out is the library:
loading and replaying the stream, the store clock's offset measurement, pydantic models,
PostgreSQL's ``LOCK TABLE ... IN EXCLUSIVE MODE`` and ``NOTIFY``.

Each raw row has the size of custody's own event of its type: ``custody_sizes`` measures them
at run time, on events made by the commands ``bench/leases.py`` times (``bench/run.py`` checks
the rows each store holds against custody's after every run).

``insert_plain`` is the even rawer floor: one single-row autocommit INSERT of a heartbeat-sized
row built before the clock starts (``plain_rows``), so that the floor is the INSERT alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import psycopg

from ledger._stores.recorders import AVAILABILITY_COLUMNS, availability_ddl, upsert_availability_sql

Event = tuple[str, bytes]
# (stream, profile id, events, availability state): one append's arguments
Append = tuple[uuid.UUID, str, Sequence[Event], str]

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


_SIZES_ENV = "CUSTODY_BENCH_EVENT_SIZES"  # measured once; the processes started after inherit it


@functools.cache
def custody_sizes() -> dict[str, int]:
    """Stored bytes of custody's own event of each type, by topic: a profile registered, checked
    out, heartbeated and released by ``bench/leases.py``'s commands on a throwaway SQLite
    store, so that the raw rows cannot drift from custody's events as these change. Measured
    once per run: the figure is left in the environment for the worker processes it starts
    (call this before starting them, and before any clock)."""
    if known := os.environ.get(_SIZES_ENV):
        return {topic: int(size) for topic, size in json.loads(known).items()}
    import leases  # bench/leases.py: the custody side's commands

    from ledger import Ledger

    with tempfile.TemporaryDirectory(prefix="custody-bench-sizes-") as directory:
        url = f"sqlite:///{directory}/sizes.db"
        Ledger.init(url).close()
        with Ledger.open(url) as ledger:
            lease = leases.fresh_lease(ledger, "bench-hb")
            leases.heartbeats(ledger, lease, 100)  # step-0 to step-99: the runs' usual digits
            leases.release(ledger, lease)
            sizes = {topic: round(size) for topic, size in leases.event_sizes(ledger).items()}
    os.environ[_SIZES_ENV] = json.dumps(sizes)
    return sizes


def _blank(at: str, cid: str) -> dict[str, Any]:
    return {
        "class_version": 1,
        "envelope": {
            "actor_id": "bench-worker",
            "actor_role": "worker",
            "at": at,
            "causation_id": cid,
            "command_id": cid,
            "correlation_id": "bench-run",
            "reason": "",
        },
        "pad": "",
    }


@functools.cache
def _pad(topic: str) -> str:
    """The padding that brings an event row of ``topic`` to the size of custody's."""
    blank = _blank(datetime.now(UTC).isoformat(), uuid.uuid4().hex)
    return "x" * max(0, custody_sizes()[topic] - len(json.dumps(blank, separators=(",", ":"))))


def event(topic: str) -> Event:
    """An event row of ``topic``: a JSON envelope like custody's, padded to the size of custody's
    own event of that type, built as a hand-written ledger would (a new id, the time, JSON)."""
    state = _blank(datetime.now(UTC).isoformat(), uuid.uuid4().hex)
    state["pad"] = _pad(topic)
    return topic, json.dumps(state, separators=(",", ":"), sort_keys=True).encode()


def plain_rows(n: int) -> list[Event]:
    """``n`` heartbeat rows for ``plain_inserts``, built before its clock starts."""
    return [event("lease_heartbeat") for _ in range(n)]


def stored_sizes(kind: str, target: str) -> dict[str, float]:
    """Mean stored bytes of the raw event rows of each topic a raw store holds."""
    table = RawSQLite.events_table if kind == "sqlite" else RawPostgres.events_table
    sql = f"SELECT topic, avg(length(state)) FROM {table} GROUP BY topic"
    connect: Any = sqlite3.connect if kind == "sqlite" else psycopg.connect
    with contextlib.closing(connect(target)) as conn:
        return {topic: float(size) for topic, size in conn.execute(sql).fetchall()}


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

    def append_together(self, appends: Sequence[Append]) -> None:
        """Each of ``appends`` as ``append`` does it, all in one transaction (group commit)."""

    def insert_plain(self, stream: uuid.UUID, version: int, row: Event) -> None:
        """One event row, built beforehand, in its own autocommit INSERT."""

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
        return self._in_transaction([(stream, profile_id, events, state)])[0]

    def append_together(self, appends: Sequence[Append]) -> None:
        self._in_transaction(appends)

    def _in_transaction(self, appends: Sequence[Append]) -> list[int]:
        versions = []
        # IMMEDIATE: a read-then-write transaction must take the write lock up front, or a
        # concurrent writer makes it fail with SQLITE_BUSY instead of waiting.
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for stream, profile_id, events, state in appends:
                oid = stream.hex
                (version,) = self.conn.execute(self._max, (oid,)).fetchone()
                version = version or 0
                for offset, (topic, blob) in enumerate(events, start=1):
                    self.conn.execute(self._insert, (oid, version + offset, topic, blob))
                version += len(events)
                self.conn.execute(self._upsert, availability_row(profile_id, version, state))
                versions.append(int(version))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")
        return versions

    def insert_plain(self, stream: uuid.UUID, version: int, row: Event) -> None:
        self.conn.execute(self._plain, (stream.hex, version, *row))

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
        return self._in_transaction([(stream, profile_id, events, state)])[0]

    def append_together(self, appends: Sequence[Append]) -> None:
        self._in_transaction(appends)

    def _in_transaction(self, appends: Sequence[Append]) -> list[int]:
        versions = []
        with self.conn.transaction():
            for stream, profile_id, events, state in appends:
                row = self.conn.execute(self._max, (stream,)).fetchone()
                version = (row[0] if row else None) or 0
                for offset, (topic, blob) in enumerate(events, start=1):
                    params = (stream, version + offset, topic, blob)
                    self.conn.execute(self._insert, params).fetchone()
                version += len(events)
                self.conn.execute(self._upsert, availability_row(profile_id, version, state))
                versions.append(int(version))
        return versions

    def insert_plain(self, stream: uuid.UUID, version: int, row: Event) -> None:
        self.conn.execute(self._plain, (stream, version, *row))

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
    raw.append(stream, name, [event("profile_registered")], "available")
    raw.append(stream, name, [event("lease_acquired")], "leased")
    return stream, name


def heartbeats(raw: RawStore, stream: uuid.UUID, profile_id: str, n: int) -> None:
    for _ in range(n):
        raw.append(stream, profile_id, [event("lease_heartbeat")], "leased")


def heartbeats_together(raw: RawStore, held: Sequence[tuple[uuid.UUID, str]], rounds: int) -> None:
    """A heartbeat on each of ``held``'s streams per round, a round in one transaction."""
    for _ in range(rounds):
        raw.append_together(
            [(stream, pid, [event("lease_heartbeat")], "leased") for stream, pid in held]
        )


def plain_inserts(raw: RawStore, stream: uuid.UUID, rows: Sequence[Event]) -> None:
    """The floor: ``rows`` (from ``plain_rows``), each in its own INSERT; nothing else."""
    for version, row in enumerate(rows, start=1):
        raw.insert_plain(stream, version, row)


def cycles(raw: RawStore, stream: uuid.UUID, profile_id: str, n: int) -> None:
    """Checkout (one event) then clean release (two events), each in its own transaction."""
    for _ in range(n):
        raw.append(stream, profile_id, [event("lease_acquired")], "leased")
        released = [event("lease_release_requested"), event("lease_released_cleanly")]
        raw.append(stream, profile_id, released, "available")
