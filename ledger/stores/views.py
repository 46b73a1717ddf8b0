"""Where read models live: their tables on the store's own database, the notification log read
inside their transactions, a lock per rebuild, and the pandas read path.

``Views`` is the store-side half of ``ledger.feed``: one implementation per database. SQL is
written with ``?`` placeholders on every backend. The memory store keeps its read models in an
in-process SQLite database (``ledger.stores.memory_views``), so every read model's SQL is the
same on all three stores.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote
from urllib.request import pathname2url
from uuid import UUID

from ledger.domain.errors import NotAllowed
from ledger.stores.settings import StoreSettings
from ledger.stores.store import store_errors, store_failure
from ledger.stores.wakeups import Announce, Wakeups

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class StoredNotification:
    """One row of the notification log, not yet decoded."""

    id: int
    originator_id: UUID | str
    version: int
    topic: str
    state: bytes


class ViewCursor(Protocol):
    """A transaction's cursor as a read model sees it: ``?`` placeholders, rows as dicts."""

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None: ...

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        key: str | None = None,
    ) -> None: ...

    def notifications(self, after: int, limit: int) -> list[StoredNotification]: ...

    def head(self) -> int: ...


def insert_sql(table: str, columns: Sequence[str], key: str | None) -> str:
    """One row's INSERT (``?`` placeholders); with ``key``, a conflict overwrites the row."""
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    if key is None:
        return sql
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
    return f"{sql} ON CONFLICT ({key}) DO UPDATE SET {updates}"


class Views:
    """The read models' side of one store."""

    dialect: str  # "sqlite" or "postgresql": the SQL a read model may rely on
    positions_made = False  # the read models' positions table was seen (``Feed.standing``)

    def transaction(self) -> contextlib.AbstractContextManager[ViewCursor]:
        """One read-write transaction: committed when the block ends, rolled back if it
        raises. Its first write waits at most the store's timeout for a lock."""
        raise NotImplementedError

    def reading(self) -> contextlib.AbstractContextManager[ViewCursor]:
        """Reads that write nothing: one read-only transaction on SQLite, statements in
        autocommit on PostgreSQL (``read_cursor``)."""
        raise NotImplementedError

    def head(self) -> int:
        """The last notification id committed (0 for an empty log)."""
        raise NotImplementedError

    def count_after(self, position: int) -> int:
        """How many notifications come after ``position``."""
        raise NotImplementedError

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lock called ``name`` for the block, or raise ``NotAllowed`` at once if
        another process (or thread) holds it. A holder that dies releases it."""
        raise NotImplementedError

    def read_frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """A query's rows as a pandas DataFrame, read by the fastest path pandas supports
        for this database without a warning."""
        raise NotImplementedError

    def wakeups(self, interval: float, announce: Announce) -> Wakeups:
        """Wake-ups for a catch-up loop, polling every ``interval`` seconds (see
        ``ledger.stores.wakeups``); ``announce`` hears each switch between push and polling."""
        announce(f"polling every {interval:g} s (only a PostgreSQL store pushes)")
        return Wakeups(interval)


def held(name: str) -> NotAllowed:
    return NotAllowed(f"{name} is already running in another process; try again when it ends")


# -- SQLite and PostgreSQL ------------------------------------------------------------------


class _SqlCursor:
    def __init__(
        self, cursor: Any, postgres: bool, events_table: str, *, replan: bool = False
    ) -> None:
        self._cursor = cursor
        self._pg = postgres
        self._events = events_table
        # psycopg prepares a statement run five times, and PostgreSQL may then keep one generic
        # plan for it, made from the statistics of that moment. A catch-up fills a read model
        # from empty within minutes, before any analyze: a plan made on the empty table scanned
        # the whole of it for every batch (8.8 ms a batch against 0.7 ms, 300,000 events).
        # A transaction that writes read models plans each statement afresh.
        self._prepare = {"prepare": False} if postgres and replan else {}

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._pg else statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(self._sql(statement), tuple(params), **self._prepare)

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(self._sql(statement), [tuple(r) for r in rows])

    def head(self) -> int:
        column = "notification_id" if self._pg else "rowid"
        rows = self.query(f"SELECT max({column}) AS head FROM {self._events}")
        return int(rows[0]["head"] or 0)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        key: str | None = None,
    ) -> None:
        if not self._pg:
            self.executemany(insert_sql(table, columns, key), rows)
        elif rows:
            _copy_in(self._cursor, table, columns, rows, key, self._prepare)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._cursor.execute(self._sql(statement), tuple(params), **self._prepare)
        return [dict(row) for row in self._cursor.fetchall()]

    def notifications(self, after: int, limit: int) -> list[StoredNotification]:
        column = "notification_id" if self._pg else "rowid"
        rows = self.query(
            f"SELECT {column} AS id, originator_id, originator_version, topic, state "
            f"FROM {self._events} WHERE {column} > ? ORDER BY {column} LIMIT ?",
            (after, limit),
        )
        return [
            StoredNotification(
                id=int(r["id"]),
                originator_id=r["originator_id"],
                version=int(r["originator_version"]),
                topic=str(r["topic"]),
                state=bytes(r["state"]),
            )
            for r in rows
        ]


def _copy_in(
    cursor: Any,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    key: str | None,
    prepare: dict[str, bool],
) -> None:
    """COPY the rows in: one stream instead of a round trip (and a parse) per row. An upsert
    copies into a temporary table of the session first, merges it in one statement, and
    empties it."""
    names = ", ".join(columns)
    target = table if key is None else f"{table}__load"
    if key is not None:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {target} (LIKE {table}) ON COMMIT DELETE ROWS",
            **prepare,
        )
    with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    if key is not None:
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != key)
        cursor.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM {target} "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}",
            **prepare,
        )
        # Emptied now, not at commit: a transaction may upsert several batches (a rebuild's
        # last step), and a later batch must not carry an earlier one's rows in again.
        cursor.execute(f"TRUNCATE {target}", **prepare)


@contextmanager
def read_cursor(datastore: Any, *, postgres: bool) -> Iterator[Any]:
    """A cursor for reads. On PostgreSQL no transaction is opened: the pool's connections
    are in autocommit, each statement sees its own snapshot under READ COMMITTED either way,
    and BEGIN and ROLLBACK would be two more round trips around every read. SQLite's read
    transaction is kept: it is in-process, and it gives a page of statements one snapshot."""
    if not postgres:
        with datastore.transaction(commit=False) as cursor:
            yield cursor
        return
    with datastore.get_connection() as conn, conn.cursor() as cursor:
        yield cursor


class SqlViews(Views):
    """Read models in the store's own database, beside the events."""

    def __init__(
        self, settings: StoreSettings, datastore: Any, events_table: str, channel: str = ""
    ) -> None:
        self.settings = settings
        self._channel = channel  # PostgreSQL: what every append NOTIFYs
        self.dialect = settings.kind
        self._datastore = datastore
        self._events = events_table
        self._pg = settings.kind == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[ViewCursor]:
        with store_errors(self.settings), self._datastore.transaction(commit=True) as cursor:
            if self._pg:  # a claim waits behind another transaction at most the timeout
                cursor.execute(f"SET LOCAL lock_timeout = '{self.settings.timeout}s'")
            yield _SqlCursor(cursor, self._pg, self._events, replan=True)

    @contextmanager
    def reading(self) -> Iterator[ViewCursor]:
        with store_errors(self.settings), read_cursor(self._datastore, postgres=self._pg) as cursor:
            yield _SqlCursor(cursor, self._pg, self._events)

    def _query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self.reading() as cursor:
            return cursor.query(statement, params)

    def head(self) -> int:
        with self.reading() as cursor:
            return cursor.head()

    def count_after(self, position: int) -> int:
        column = "notification_id" if self._pg else "rowid"
        rows = self._query(
            f"SELECT count(*) AS n FROM {self._events} WHERE {column} > ?", (position,)
        )
        return int(rows[0]["n"])

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        if self._pg:
            with self._advisory_lock(name):
                yield
            return
        # A lock file beside the database: the kernel drops the lock when its holder dies.
        path = Path(f"{self.settings.sqlite_file()}.{name}.lock")
        with store_errors(self.settings), _locked_file(path, name):
            yield

    @contextmanager
    def _advisory_lock(self, name: str) -> Iterator[None]:
        # A session lock on a connection of its own (never one of the pool's, which would
        # keep the lock after the connection went back): closing it, or dying, releases it.
        s = self.settings
        with store_errors(s):
            conn = postgres_connection(s)
        with closing(conn):
            key = zlib.crc32(name.encode()) - 2**31
            with store_errors(s):
                got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (_LOCK_SPACE, key))
                row = got.fetchone()
            if not (row and row[0]):
                raise held(name)
            yield

    def read_frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        if self._pg:
            return self._adbc_frame(statement, params)
        import pandas as pd

        # pandas reads a sqlite3 connection natively (no SQLAlchemy, no warning).
        uri = f"file:{pathname2url(str(self.settings.sqlite_file().resolve()))}?mode=ro"
        with store_errors(self.settings):
            conn = sqlite3.connect(uri, uri=True, timeout=self.settings.timeout)
            with closing(conn):
                return pd.read_sql(statement, conn, params=tuple(params))

    def wakeups(self, interval: float, announce: Announce) -> Wakeups:
        if not self._pg:  # SQLite cannot tell another process that it appended: poll
            return super().wakeups(interval, announce)
        from ledger.stores.listen import ListeningWakeups

        listening = ListeningWakeups(self.settings, self._channel, interval, announce)
        listening.listen()
        return listening

    def _adbc_frame(self, statement: str, params: Sequence[Any]) -> pd.DataFrame:
        # ADBC hands the rows over as Arrow columns: about 9x faster than pandas.read_sql on a
        # SQLAlchemy engine here. pandas.read_sql refuses parameters on an ADBC connection,
        # so the cursor is used directly; it binds $1, $2, ... placeholders.
        import adbc_driver_postgresql.dbapi as adbc

        numbered = statement
        for n in range(1, len(params) + 1):
            numbered = numbered.replace("?", f"${n}", 1)
        try:
            with adbc.connect(self._uri()) as conn, conn.cursor() as cursor:
                cursor.execute(numbered, tuple(params))
                frame: pd.DataFrame = cursor.fetch_arrow_table().to_pandas()
                return frame
        except adbc.Error as e:
            raise store_failure(self.settings, e) from None

    def _uri(self) -> str:
        s = self.settings
        password = f":{quote(s.password, safe='')}" if s.password else ""
        return (
            f"postgresql://{quote(s.user, safe='')}{password}@{s.host}:{s.port}/"
            f"{quote(s.dbname, safe='')}?connect_timeout={s.connect_timeout}"
            f"&options={quote(s.postgres_options(), safe='')}"
        )


@contextmanager
def _locked_file(path: Path, name: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path``, removed again when released. A file unlinked by
    the holder before this process locked it is not the lock any more: try the new one."""
    while True:
        handle = path.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise held(name) from None
        try:
            same = os.fstat(handle.fileno()).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def postgres_connection(settings: StoreSettings, **options: Any) -> Any:
    """A direct connection of its own (autocommit), outside the library's pool; ``options``
    are further libpq parameters."""
    import psycopg

    return psycopg.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password or None,
        dbname=settings.dbname,
        connect_timeout=settings.connect_timeout,
        autocommit=True,
        options=settings.postgres_options(),
        **options,
    )


# Namespace of custody's advisory locks (the first half of the two-key form).
_LOCK_SPACE = 0x6375
