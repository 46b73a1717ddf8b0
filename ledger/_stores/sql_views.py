"""Read models on SQLite and PostgreSQL: their tables in the store's own database, beside the
events (``ledger._stores.views`` has the port). The cursor takes ``?`` placeholders and gives
rows as dicts; bulk inserts are a COPY on PostgreSQL; the notification log is read inside the
read model's own transaction."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ledger._domain.errors import RowConflict
from ledger._stores.connections import postgres_connection, read_cursor, store_errors, store_failure
from ledger._stores.settings import CLIENT_ENCODING, StoreSettings
from ledger._stores.settled import (
    RUNNING_QUERY,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_QUERY,
    Running,
    read_settled,
)
from ledger._stores.views import (
    FrameReader,
    StoredNotification,
    StreamCount,
    ViewCursor,
    Views,
    held,
    insert_sql,
    stream_key,
)
from ledger._stores.wakeups import Announce, Wakeups

if TYPE_CHECKING:
    import pandas as pd


class SqlCursor:
    def __init__(
        self,
        cursor: Any,
        postgres: bool,
        events_table: str,
        *,
        replan: bool = False,
        wait: float = 0.0,
        given_up: dict[int, float] | None = None,
    ) -> None:
        self._cursor = cursor
        self._pg = postgres
        self._events = events_table
        self._wait = wait  # how long a read of the log waits for a gap to settle (``settled``)
        self._given_up = given_up  # the store's: transactions a read waited out (``settled``)
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
        try:
            if not self._pg:
                self.executemany(insert_sql(table, columns, key), rows)
            elif rows:
                _copy_in(self._cursor, table, columns, rows, key, self._prepare)
        except _integrity_errors(self._pg) as e:
            raise RowConflict(f"a row of {table} is there already: {e}") from e

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        self._cursor.execute(self._sql(statement), tuple(params), **self._prepare)
        return [dict(row) for row in self._cursor.fetchall()]

    def tuples(
        self, statement: str, params: Sequence[Any] = (), *, binary: bool = False
    ) -> list[tuple[Any, ...]]:
        """``binary``: PostgreSQL sends the rows in its binary format (the same Python values;
        a bytea arrives as itself, not as hex text twice its size, which halves a read of the
        log's states)."""
        # Each driver's cursor makes its rows with a factory of its own, switched for this.
        raw = self._cursor if self._pg else self._cursor.sqlite_cursor
        made = raw.row_factory
        raw.row_factory = _tuple_row() if self._pg else None
        try:
            if self._pg and binary:
                raw.execute(self._sql(statement), tuple(params), binary=True)
            else:
                raw.execute(self._sql(statement), tuple(params))
            return list(raw.fetchall())
        finally:
            raw.row_factory = made

    def first_versions_after(self, position: int) -> dict[str, int]:
        column = "notification_id" if self._pg else "rowid"
        rows = self.tuples(
            f"SELECT originator_id, min(originator_version) FROM {self._events} "
            f"WHERE {column} > ? GROUP BY originator_id",
            (position,),
        )
        return {stream_key(stream): int(version) for stream, version in rows}

    def frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        import pandas as pd

        rows = self.tuples(statement, params, binary=self._pg)
        raw = self._cursor if self._pg else self._cursor.sqlite_cursor
        columns = [d[0] for d in raw.description]
        # What pandas.read_sql makes of a DB-API cursor's rows on SQLite, on either store.
        return pd.DataFrame.from_records(rows, columns=columns, coerce_float=True)

    def stream_counts(self, upto: int) -> dict[str, StreamCount]:
        column = "notification_id" if self._pg else "rowid"
        rows = self.query(
            "SELECT originator_id, count(*) AS events, max(originator_version) AS last, "
            "sum(CASE WHEN topic = 'lease_acquired' THEN 1 ELSE 0 END) AS leases "
            f"FROM {self._events} WHERE {column} <= ? GROUP BY originator_id",
            (upto,),
        )
        return {
            stream_key(r["originator_id"]): StreamCount(
                int(r["events"]), int(r["last"]), int(r["leases"])
            )
            for r in rows
        }

    def lease_versions(self, upto: int, topics: Sequence[str]) -> dict[str, dict[int, int]]:
        column = "notification_id" if self._pg else "rowid"
        # Each event numbered by the leases its stream acquired up to it: the lease live then.
        rows = self.tuples(
            "SELECT originator_id, lease, max(originator_version) FROM (SELECT originator_id, "
            "originator_version, topic, sum(CASE WHEN topic = 'lease_acquired' THEN 1 ELSE 0 "
            "END) OVER (PARTITION BY originator_id ORDER BY originator_version) AS lease "
            f"FROM {self._events} WHERE {column} <= ?) AS numbered "
            f"WHERE lease > 0 AND topic IN ({', '.join('?' * len(topics))}) "
            "GROUP BY originator_id, lease",
            (upto, *topics),
        )
        found: dict[str, dict[int, int]] = {}
        for stream, lease, last in rows:
            found.setdefault(stream_key(stream), {})[int(lease)] = int(last)
        return found

    def table_columns(self, table: str) -> list[str]:
        if not self._pg:
            return [str(r["name"]) for r in self.query(f"PRAGMA table_info({table})")]
        rows = self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema() ORDER BY ordinal_position",
            (table,),
        )
        return [str(r["column_name"]) for r in rows]

    def table_indexes(self, table: str) -> list[str]:
        if not self._pg:
            statement = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
        else:
            statement = (
                "SELECT indexname AS name FROM pg_indexes WHERE tablename = ? "
                "AND schemaname = current_schema()"
            )
        return sorted(str(r["name"]) for r in self.query(statement, (table,)))

    def log_tuples(
        self, columns: str, after: int | None, limit: int, *, strict: bool = False
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` events after position ``after`` (None: from the first, whatever its
        position) in log order, as tuples of ``columns`` (the first: the position); on
        PostgreSQL none past a gap that an append still in progress may fill
        (``ledger._stores.settled``; ``strict``: ``Unsettled`` once it waited its timeout)."""
        column = "notification_id" if self._pg else "rowid"
        where = f"WHERE {column} > ? " if after is not None else ""
        if not self._pg:  # one writer at a time: ids commit in order
            return self.tuples(
                f"SELECT {column}, {columns} FROM {self._events} {where}ORDER BY {column} LIMIT ?",
                (limit,) if after is None else (after, limit),
            )
        statement = (
            f"SELECT {column}, {columns}, {SNAPSHOT_COLUMNS} FROM {self._events} "
            f"{where}ORDER BY {column} LIMIT ?"
        )

        def select(start: int | None, count: int) -> list[tuple[Any, ...]]:
            params = (count,) if start is None else (start, count)
            return self.tuples(statement, params, binary=True)

        def snapshot() -> Running:
            return Running.parse(*self.tuples(SNAPSHOT_QUERY)[0])

        def running() -> list[int]:
            return [int(x) for (x,) in self.tuples(RUNNING_QUERY, (self._events,))]

        return read_settled(
            select, snapshot, running, after, limit, self._wait, strict=strict,
            given_up=self._given_up,
        )  # fmt: skip

    def notifications(self, after: int, limit: int) -> list[StoredNotification]:
        rows = self.log_tuples("originator_id, originator_version, topic, state", after, limit)
        return [
            StoredNotification(
                id=int(i), originator_id=o, version=int(v), topic=str(t), state=_state(s)
            )
            for i, o, v, t, s in rows
        ]


def _state(stored: Any) -> bytes:
    """A stored event's state as the library's reads hand it on: a text SQLite keeps (an
    INSERT may give one) is left as it is, so that decoding it fails as a load's does and the
    read names the event (rev38: ``bytes()`` of it was an internal error)."""
    return stored if isinstance(stored, str) else bytes(stored)  # type: ignore[return-value]


def _integrity_errors(postgres: bool) -> tuple[type[Exception], ...]:
    """What the driver raises for a row whose key (or unique index) is taken."""
    if not postgres:
        return (sqlite3.IntegrityError,)
    import psycopg  # psycopg only where PostgreSQL is used

    return (psycopg.IntegrityError,)


def _tuple_row() -> Any:
    from psycopg.rows import tuple_row  # psycopg only where PostgreSQL is used

    return tuple_row


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


class SqlViews(Views):
    """Read models in the store's own database, beside the events."""

    def __init__(
        self, settings: StoreSettings, datastore: Any, events_table: str, channel: str = ""
    ) -> None:
        super().__init__()
        self.settings = settings
        self._channel = channel  # PostgreSQL: what every append NOTIFYs
        self.dialect = settings.kind
        self._datastore = datastore
        self._events = events_table
        self._pg = settings.kind == "postgresql"
        self._wait = float(settings.timeout)
        self._given_up: dict[int, float] = {}  # kept across reads: ``settled.read_settled``

    @contextmanager
    def transaction(self) -> Iterator[ViewCursor]:
        with store_errors(self.settings), self._datastore.transaction(commit=True) as cursor:
            if self._pg:  # a claim waits behind another transaction at most the timeout
                # Each statement sees what committed before it, whatever the server's default:
                # a read of the log waits for a gap, then reads again (``settled``).
                cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cursor.execute(f"SET LOCAL lock_timeout = '{self.settings.timeout}s'")
            yield SqlCursor(
                cursor, self._pg, self._events, replan=True, wait=self._wait,
                given_up=self._given_up,
            )  # fmt: skip

    @contextmanager
    def reading(self) -> Iterator[ViewCursor]:
        with store_errors(self.settings), read_cursor(self._datastore, postgres=self._pg) as cursor:
            yield SqlCursor(
                cursor, self._pg, self._events, wait=self._wait, given_up=self._given_up
            )

    @contextmanager
    def snapshot(self) -> Iterator[ViewCursor]:
        if not self._pg:  # SQLite's read transaction already sees one moment (WAL)
            with store_errors(self.settings), self._datastore.transaction(commit=False) as cur:
                yield SqlCursor(cur, self._pg, self._events)
            return
        with (
            store_errors(self.settings),
            self._datastore.get_connection() as conn,
            conn.transaction(force_rollback=True),
            conn.cursor() as cursor,
        ):
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield SqlCursor(cursor, self._pg, self._events)

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
        # Named after the file the path resolves to now, so that every spelling of one store
        # (a symlink, its real path) takes the same lock (rev34: two sweeps under one command
        # id ran at once, one through link.db, one through real.db).
        path = Path(f"{self.settings.sqlite_real()}.{name}.lock")
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
            try:
                yield
            finally:
                # Said before closing: a closed connection's backend releases its locks only
                # as it exits, after the close returned, and the next taker would find it held.
                with suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_LOCK_SPACE, key))

    def read_frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        if self._pg:
            return self._adbc_frame(statement, params)
        import pandas as pd

        # pandas reads a sqlite3 connection natively (no SQLAlchemy, no warning).
        uri = self.settings.sqlite_read_uri()
        with store_errors(self.settings):
            conn = sqlite3.connect(uri, uri=True, timeout=self.settings.timeout)
            with closing(conn):
                return pd.read_sql(statement, conn, params=tuple(params))

    def wakeups(self, interval: float, announce: Announce) -> Wakeups:
        if not self._pg:  # SQLite cannot tell another process that it appended: poll
            return super().wakeups(interval, announce)
        from ledger._stores.listen import ListeningWakeups

        listening = ListeningWakeups(self.settings, self._channel, interval, announce)
        listening.listen()
        return listening

    @contextmanager
    def frames(self) -> Iterator[FrameReader]:
        if not self._pg:
            yield self.read_frame
            return
        # One ADBC connection for every read of the block (opening one took 100-130 ms here:
        # an export's eleven pages took 1.6 s where one read took 0.95), in autocommit, so
        # that no read holds a lock or a snapshot while the caller writes a page out.
        reader = _AdbcReader(self)
        try:
            yield reader
        finally:
            reader.close()

    def _adbc_frame(self, statement: str, params: Sequence[Any]) -> pd.DataFrame:
        with self.frames() as read:
            return read(statement, params)

    def _uri(self) -> str:
        s = self.settings
        password = f":{quote(s.password, safe='')}" if s.password else ""
        return (
            f"postgresql://{quote(s.user, safe='')}{password}@{s.host}:{s.port}/"
            f"{quote(s.dbname, safe='')}?connect_timeout={s.connect_timeout}"
            f"&options={quote(s.postgres_options(), safe='')}&client_encoding={CLIENT_ENCODING}"
            + "".join(f"&{name}={quote(value, safe='')}" for name, value in s.tls)
        )


class _AdbcReader:
    """``read_frame`` on one ADBC connection (PostgreSQL), opened at the first read. A read that
    fails on a connection an earlier read used (the server restarted, the connection
    terminated or timed out while the caller wrote a page out) is tried once more on a new
    one, as a read of its own would have been (review 251: an export that survived a restart
    between pages, each on its own connection, failed once they shared one); every read is a
    query that may run again."""

    def __init__(self, views: SqlViews) -> None:
        self._views = views
        self._conn: Any = None
        self._used = False

    def __call__(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        import adbc_driver_postgresql.dbapi as adbc

        # ADBC hands the rows over as Arrow columns: about 9x faster than pandas.read_sql on
        # a SQLAlchemy engine here. pandas.read_sql refuses parameters on an ADBC connection,
        # so the cursor is used directly; it binds $1, $2, ... placeholders.
        numbered = statement
        for n in range(1, len(params) + 1):
            numbered = numbered.replace("?", f"${n}", 1)
        again = self._used
        while True:
            try:
                if self._conn is None:
                    self._conn = adbc.connect(self._views._uri(), autocommit=True)
                    self._used = False
                with self._conn.cursor() as cursor:
                    cursor.execute(numbered, tuple(params))
                    frame: pd.DataFrame = cursor.fetch_arrow_table().to_pandas()
                self._used = True
                return frame
            except adbc.Error as e:
                self.close()
                if not again:
                    raise store_failure(self._views.settings, e) from None
                again = False

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()


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


# Namespace of custody's advisory locks (the first half of the two-key form).
_LOCK_SPACE = 0x6375
