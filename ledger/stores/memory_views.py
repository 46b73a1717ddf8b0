"""The memory store's read models: an SQLite database in this process, so every read model's
SQL is the same on all three stores (``ledger.stores.views`` has the port and the SQL stores)."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ledger.stores.views import (
    StoredNotification,
    StreamCount,
    ViewCursor,
    Views,
    held,
    insert_sql,
    stream_key,
)

if TYPE_CHECKING:
    import pandas as pd


class _MemoryCursor:
    def __init__(self, conn: sqlite3.Connection, log: Any) -> None:
        self._conn = conn
        self._log = log

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(statement, tuple(params))

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._conn.executemany(statement, [tuple(r) for r in rows])

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        key: str | None = None,
    ) -> None:
        self.executemany(insert_sql(table, columns, key), rows)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(row) for row in self._conn.execute(statement, tuple(params)).fetchall()]

    def tuples(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._conn.cursor()
        cursor.row_factory = None
        return list(cursor.execute(statement, tuple(params)).fetchall())

    def head(self) -> int:
        return int(self._log.max_notification_id() or 0)

    def stream_counts(self, upto: int) -> dict[str, StreamCount]:
        found: dict[str, StreamCount] = {}
        for n in self._log.select_notifications(1, max(upto, 0), stop=upto):
            key = stream_key(n.originator_id)
            seen = found.get(key, StreamCount(0, 0, 0))
            found[key] = StreamCount(
                seen.events + 1,
                max(seen.last_version, n.originator_version),
                seen.leases + (n.topic == "lease_acquired"),
            )
        return found

    def table_columns(self, table: str) -> list[str]:
        return [str(r["name"]) for r in self.query(f"PRAGMA table_info({table})")]

    def notifications(self, after: int, limit: int) -> list[StoredNotification]:
        return [
            StoredNotification(
                id=n.id,
                originator_id=n.originator_id,
                version=n.originator_version,
                topic=n.topic,
                state=n.state,
            )
            for n in self._log.select_notifications(after + 1, limit)
        ]


class MemoryViews(Views):
    """Read models of a memory store, in an SQLite database in this process."""

    dialect = "sqlite"

    def __init__(self, name: str, log: Any) -> None:
        super().__init__()
        with _MEMORY_LOCK:
            if name not in _MEMORY_DATABASES:
                conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                conn.row_factory = sqlite3.Row
                _MEMORY_DATABASES[name] = (conn, threading.RLock())
            self._conn, self._lock = _MEMORY_DATABASES[name]
        self._name = name
        self._log = log

    @contextmanager
    def transaction(self) -> Iterator[ViewCursor]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield _MemoryCursor(self._conn, self._log)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[ViewCursor]:
        with self._lock:
            yield _MemoryCursor(self._conn, self._log)

    def snapshot(self) -> contextlib.AbstractContextManager[ViewCursor]:
        return self.reading()  # its lock keeps every read model's writer out meanwhile

    def head(self) -> int:
        return int(self._log.max_notification_id() or 0)

    def count_after(self, position: int) -> int:
        count, start = 0, position + 1
        while batch := self._log.select_notifications(start, 1000):
            count += len(batch)
            start = batch[-1].id + 1
        return count

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        with _MEMORY_LOCK:
            lock = _MEMORY_EXCLUSIVE.setdefault((self._name, name), threading.Lock())
        if not lock.acquire(blocking=False):
            raise held(name)
        try:
            yield
        finally:
            lock.release()

    def read_frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        import pandas as pd

        with self._lock:
            return pd.read_sql(statement, self._conn, params=tuple(params))


_MEMORY_LOCK = threading.Lock()
_MEMORY_DATABASES: dict[str, tuple[sqlite3.Connection, threading.RLock]] = {}
_MEMORY_EXCLUSIVE: dict[tuple[str, str], threading.Lock] = {}
