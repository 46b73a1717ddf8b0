"""The events table as an attacker who owns the database sees it: the append-only triggers gone
around, every row readable and writable by position.

On SQLite the triggers are dropped (``custody init`` makes them again); on PostgreSQL the
session, a superuser's, sets the guards aside within its transaction (``guards_aside``: they
are enabled ALWAYS, which ``session_replication_role = replica`` alone does not pass over). A row is
``(position, stream id, version, topic, state)``: the position is SQLite's rowid or
PostgreSQL's notification_id, the stream id the ``originator_id`` as text.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any, NamedTuple
from uuid import UUID

import psycopg
from guards_aside import guards_aside

from ledger._domain.chain import split
from ledger._domain.profile import Profile
from ledger._stores.access import append_only_ddl

# Far above any position a test's log reaches: rows are moved past it and back to open a gap.
_ASIDE = 1_000_000


class RawRow(NamedTuple):
    position: int
    stream: str
    version: int
    topic: str
    state: bytes

    @property
    def profile_id(self) -> str:
        return str(json.loads(split(self.state)[0])["profile_id"])

    def fields(self) -> dict[str, Any]:
        """The stored JSON (the link under ``~chain`` included)."""
        return dict(json.loads(self.state))


def dump(fields: dict[str, Any]) -> bytes:
    """JSON as custody stores it (compact, keys sorted: ``~chain`` stays last)."""
    return json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()


class RawLog:
    """Reads and rewrites the events table of the store at ``url``, bypassing its guards."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = url.startswith("postgresql")
        self.table = "custody_events" if self.pg else "stored_events"
        self.position = "notification_id" if self.pg else "rowid"

    @contextmanager
    def _cursor(self, *, writing: bool = False) -> Iterator[Any]:
        """A cursor committed at the end; ``writing``: with the guards gone around."""
        if self.pg:
            with psycopg.connect(self.url) as conn, conn.cursor() as cursor:
                if writing:
                    with guards_aside(cursor):
                        yield cursor
                else:
                    yield cursor
            return
        path = self.url.removeprefix("sqlite:///")
        with closing(sqlite3.connect(path)) as conn:
            if writing:
                for op in ("update", "delete", "replace"):
                    conn.execute(f"DROP TRIGGER IF EXISTS custody_events_no_{op}")
            yield conn.cursor()
            if writing:  # put back as custody installs them: verify's check of them passes
                for statement in append_only_ddl(self.table, "custody_availability", owner=None):
                    conn.execute(statement)
            conn.commit()

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.pg else statement

    def _run(self, *statements: tuple[str, Sequence[Any]]) -> None:
        with self._cursor(writing=True) as cursor:
            for statement, params in statements:
                cursor.execute(self._sql(statement), tuple(params))

    def run(self, statement: str, *params: Any) -> None:
        """Any statement, as the attacker's session runs it (``?`` for parameters)."""
        self._run((statement, params))

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with self._cursor() as cursor:
            cursor.execute(self._sql(statement), params)
            return list(cursor.fetchall())

    def stream_id(self, profile_id: str) -> Any:
        """The originator_id the store keys ``profile_id``'s stream by."""
        return self.stored_id(Profile.create_id(profile_id))

    def stored_id(self, stream: UUID) -> Any:
        return stream if self.pg else stream.hex

    def rows(self) -> list[RawRow]:
        """Every stored event, in log order, exactly as stored."""
        with self._cursor() as cursor:
            cursor.execute(
                f"SELECT {self.position}, originator_id, originator_version, topic, state "
                f"FROM {self.table} ORDER BY {self.position}"
            )
            return [
                RawRow(int(p), str(o), int(v), str(t), bytes(s))
                for p, o, v, t, s in cursor.fetchall()
            ]

    def row(self, profile_id: str, version: int) -> RawRow:
        (found,) = [r for r in self.rows() if r.profile_id == profile_id and r.version == version]
        return found

    def set_state(self, position: int, state: bytes) -> None:
        self._run(
            (f"UPDATE {self.table} SET state = ? WHERE {self.position} = ?", (state, position))
        )

    def edit(self, position: int, **fields: Any) -> None:
        """Rewrite fields of the stored JSON (``envelope`` merged key by key)."""
        (row,) = [r for r in self.rows() if r.position == position]
        stored = row.fields()
        envelope = fields.pop("envelope", {})
        stored.update(fields)
        stored["envelope"] = {**stored["envelope"], **envelope}
        self.set_state(position, dump(stored))

    def set_column(self, position: int, column: str, value: Any) -> None:
        self._run(
            (f"UPDATE {self.table} SET {column} = ? WHERE {self.position} = ?", (value, position))
        )

    def delete(self, *positions: int) -> None:
        self._run(
            *((f"DELETE FROM {self.table} WHERE {self.position} = ?", (p,)) for p in positions)
        )

    def swap(self, a: int, b: int) -> None:
        """Exchange two events' places in the log."""
        where = f"WHERE {self.position} = ?"
        self._run(
            (f"UPDATE {self.table} SET {self.position} = ? {where}", (-1, a)),
            (f"UPDATE {self.table} SET {self.position} = ? {where}", (a, b)),
            (f"UPDATE {self.table} SET {self.position} = ? {where}", (b, -1)),
        )

    def insert(self, position: int, stream: Any, version: int, topic: str, state: bytes) -> None:
        """Store an event at ``position``, moving the events from there on one place later."""
        p = self.position
        self._run(
            (f"UPDATE {self.table} SET {p} = {p} + ? WHERE {p} >= ?", (_ASIDE, position)),
            (f"UPDATE {self.table} SET {p} = {p} - ? WHERE {p} >= ?", (_ASIDE - 1, _ASIDE)),
            (
                f"INSERT INTO {self.table} ({p}, originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?, ?)",
                (position, stream, version, topic, state),
            ),
        )

    def restore(self, rows: list[RawRow]) -> None:
        """Put back exactly ``rows`` (what ``rows()`` read before the tampering)."""
        p = self.position
        self._run(
            (f"DELETE FROM {self.table}", ()),
            *(
                (
                    f"INSERT INTO {self.table} ({p}, originator_id, originator_version, topic, "
                    "state) VALUES (?, ?, ?, ?, ?)",
                    (r.position, self._stream_value(r.stream), r.version, r.topic, r.state),
                )
                for r in rows
            ),
        )

    def _stream_value(self, stream: str) -> Any:
        return UUID(stream) if self.pg else stream

    # -- the snapshots table (no triggers guard it: any login that writes it may) ------------

    @property
    def snapshot_table(self) -> str:
        return "custody_snapshots" if self.pg else "stored_snapshots"

    def snapshots(self) -> list[tuple[Any, int, str, bytes]]:
        """Every stored snapshot as stored: (stream id, version, topic, state), in order."""
        rows = self.query(
            f"SELECT originator_id, originator_version, topic, state FROM {self.snapshot_table} "
            "ORDER BY originator_id, originator_version"
        )
        return [(o, int(v), str(t), bytes(s)) for o, v, t, s in rows]

    def snapshot(self, profile_id: str, version: int) -> dict[str, Any]:
        """The stored JSON of ``profile_id``'s snapshot at ``version``."""
        stream = self.stream_id(profile_id)
        (found,) = [s for o, v, _, s in self.snapshots() if o == stream and v == version]
        return dict(json.loads(found))

    def put_snapshot(self, stream: Any, version: int, fields: dict[str, Any]) -> None:
        """Store ``fields`` as the snapshot of ``stream`` at ``version``, replacing any."""
        table = self.snapshot_table
        with self._cursor() as cursor:
            cursor.execute(
                self._sql(
                    f"DELETE FROM {table} WHERE originator_id = ? AND originator_version = ?"
                ),
                (stream, version),
            )
            cursor.execute(
                self._sql(
                    f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                    "VALUES (?, ?, ?, ?)"
                ),
                (stream, version, "profile_snapshot", dump(fields)),
            )

    def restore_snapshots(self, rows: list[tuple[Any, int, str, bytes]]) -> None:
        """Put back exactly ``rows`` (what ``snapshots()`` read before the tampering)."""
        table = self.snapshot_table
        with self._cursor() as cursor:
            cursor.execute(f"DELETE FROM {table}")
            for row in rows:
                cursor.execute(
                    self._sql(
                        f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
                        "VALUES (?, ?, ?, ?)"
                    ),
                    row,
                )

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every table of the store with all its rows, sorted: what "writes nothing" compares."""
        with self._cursor() as cursor:
            if self.pg:
                cursor.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            else:
                cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            names = sorted(str(r[0]) for r in cursor.fetchall())
            found = {}
            for name in names:
                cursor.execute(f"SELECT * FROM {name}")
                found[name] = sorted(tuple(map(repr, r)) for r in cursor.fetchall())
            return found

    def append_only(self) -> bool:
        """Whether the database refuses an UPDATE of an event (its triggers are in place), asked
        in an ordinary session and rolled back either way."""
        if self.pg:
            with psycopg.connect(self.url) as conn:
                try:
                    conn.execute(f"UPDATE {self.table} SET topic = topic")
                except psycopg.errors.InsufficientPrivilege:
                    return True
                finally:
                    conn.rollback()
                return False
        with closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as conn:
            try:
                conn.execute(f"UPDATE {self.table} SET topic = topic")
            except sqlite3.IntegrityError:
                return True
            finally:
                conn.rollback()
            return False
