"""The PostgreSQL recorder, in its own module so SQLite users never import psycopg.

Every call is tried once. The library retries a failed call ten times (waiting a pool timeout
each time when the server is down, or a lock timeout each time behind a stuck writer), which
turns the store's bounded wait into ten of them; the unit of work decides what is retried.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import math
import re
import select
import time
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from psycopg import generators, pq
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier, Literal
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from ledger._stores.access import DEADLINE_REFUSED, MISDATED
from ledger._stores.recorders import (
    COMMANDS_COLUMNS,
    COMMANDS_TABLE,
    DIRECTORIES_TABLE,
    availability_rows,
    command_rows,
    directory_rows,
    insert_command_sql,
    insert_directory_sql,
    overlapping_sql,
    refuse_overlaps,
    upsert_availability_sql,
)
from ledger._stores.replaced import Replaced, refuse_if_replaced, replaced_of
from ledger._stores.settings import (
    CLIENT_ENCODING,
    DEFAULT_TIMEOUT_SECONDS,
    TLS_ENV,
    session_options,
)
from ledger.ports import DeadlineRefused, LateSave, Misdated

_PG_UPSERT = upsert_availability_sql("%s")
_PG_COMMAND = insert_command_sql("%s")
_PG_DIRECTORY = insert_directory_sql("%s")
_BASE = PostgresApplicationRecorder


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Appends take no store-wide lock (the library takes LOCK TABLE ... EXCLUSIVE so that
        # ids commit in order): they commit side by side, and a read of the log waits for a
        # gap an append in progress may fill (``ledger._stores.settled``). The library's SET
        # LOCAL lock_timeout goes too: every pooled connection has the store's lock_timeout
        # (``BoundedPostgresFactory``).
        self.lock_table_statements = []

    @functools.cached_property
    def _events_table(self) -> str:
        """The events table's qualified name, quoted once."""
        schema, table = Identifier(self.datastore.schema), Identifier(self.events_table_name)
        return SQL("{}.{}").format(schema, table).as_string(None)

    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        claims = directory_rows(kwargs)
        if claims:  # first: a refusal here leaves the transaction before the events' insert
            _claim_directories(curs, claims)
        if stored_events:  # the row and the command ids go in the events' statement
            return
        for row in availability_rows(kwargs):
            curs.execute(_PG_UPSERT, row)
        for command in command_rows(kwargs):
            curs.execute(_PG_COMMAND, command)

    def _insert_stored_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """The library's insert as one prepared statement with plain parameters that also
        writes the availability rows and command ids: no composite array to dump, no SQL
        composed per call, one statement fewer per row kind. Without the library's lock and
        its NOTIFY inside the transaction (``_queue_notify``)."""
        rows, commands = availability_rows(kwargs), command_rows(kwargs)
        params: list[Any] = []
        for e in stored_events:
            params += (e.originator_id, e.originator_version, e.topic, e.state)
        for row in rows:
            params += row
        for command in commands:
            params += command
        statement = _append_sql(self._events_table, len(stored_events), len(rows), len(commands))
        curs.execute(statement, params, prepare=True)

    @functools.cached_property
    def _notify_sql(self) -> bytes:
        """The listeners' wake-up as one statement, rendered to text once: ``pg_notify`` is
        ``NOTIFY`` by another name, and ``set_config(..., true)`` is ``SET LOCAL``."""
        statement = SQL("SELECT set_config('synchronous_commit', 'off', true), pg_notify({}, '')")
        return statement.format(Literal(self.channel_name)).as_string(None).encode()

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int]:
        ids = [int(row["notification_id"]) for row in curs.fetchall()]
        if len(ids) != len(stored_events):
            msg = f"the insert gave {len(ids)} notification ids for {len(stored_events)} events"
            raise psycopg.ProgrammingError(msg)
        return ids

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        """Append in one round trip: ``_append`` for events alone (every command but a
        registration); the pipelined transaction below for a registration, which looks at
        the directories already claimed before it claims its own, or a write without events.

        The library's pipelined append (without its retry decorator) in one round trip:
        BEGIN, the statements, COMMIT, then the listeners' wake-up (``_queue_notify``), then a
        single sync. (The library's ``transaction()`` inside a pipeline nests two more
        pipelines, each of which syncs on exit: three or four round trips per append.) Every
        statement's error is caught, not only the events' insert's: in pipeline mode psycopg
        raises an error at whichever later call reads it, and the server skips what follows
        it until the sync: the append's COMMIT, and the wake-up with it (a failed append wakes
        nobody). The append's first error is raised once the pipeline is synced and the failed
        transaction rolled back; an error after its COMMIT (the wake-up's) is not."""
        if stored_events and not directory_rows(kwargs):
            appended = self._append(stored_events, kwargs)
            if appended is not None:
                return appended
        ids = None
        with (
            self.datastore.get_connection() as conn,
            conn.cursor() as curs,
            psycopg.RawCursor(conn, row_factory=curs.row_factory) as appending,
            conn.cursor() as committing,
        ):
            if stored_events:
                refuse_if_replaced(replaced_of(self.datastore))  # lent after a lost connection
            in_time = kwargs.get("in_time")
            try:
                with conn.pipeline():
                    curs.execute(b"BEGIN")
                    self._insert_events(curs, stored_events, **kwargs)
                    if stored_events:
                        self._insert_stored_events(appending, stored_events, **kwargs)
                    if in_time is not None:
                        checked = _in_time_values(in_time, kwargs.get("due"))
                        sql = _IN_TIME_SQL.replace(b"$1", b"%s").replace(b"$2", b"%s")
                        curs.execute(sql, checked)
                    committing.execute(b"COMMIT")
                    if stored_events:
                        self._queue_notify(curs)
                # The pipeline's exit synced it: every result is in.
            except Exception as e:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()  # a no-op unless the failure left a transaction open
                # Results reach their cursors in order, an error's too: the append's COMMIT
                # has a result only if everything before it succeeded.
                if committing.statusmessage != "COMMIT":
                    if isinstance(e, psycopg.errors.DivisionByZero):  # only _IN_TIME_SQL's
                        raise _late(by_the_store=True) from None
                    if isinstance(e, psycopg.Error) and e.sqlstate == MISDATED:
                        raise _misdated() from None
                    if isinstance(e, psycopg.Error) and e.sqlstate == DEADLINE_REFUSED:
                        raise DeadlineRefused(e.diag.message_primary or str(e)) from None
                    raise
            if stored_events:
                ids = self._fetch_ids_after_insert_events(appending, stored_events, **kwargs)
        return ids

    def _append(
        self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]
    ) -> list[int] | None:
        """The events, their availability rows and command ids in one prepared statement
        (``_append_sql``) with plain parameters, sent with BEGIN, COMMIT and the listeners'
        wake-up in one round trip through libpq's pipeline (``_round_trip``): what psycopg's
        cursors and pipeline did in about 500 Python calls per append, without them. The
        same transaction and statements as the pipelined path, so the same guarantees: all or
        nothing, a failed append wakes nobody, a failed wake-up leaves the append committed.

        None, having sent nothing, where psycopg's path must write it instead (``_direct``):
        a connection whose encoding is not UTF-8, a text holding NUL (which libpq would cut
        there: psycopg refuses it), a shape of statement more than the connection may keep."""
        rows, commands = availability_rows(kwargs), command_rows(kwargs)
        shape = (len(stored_events), len(rows), len(commands))
        name = _append_name(*shape)
        values, formats = _plain(stored_events, rows, commands)
        with _Lent(self.datastore) as conn:
            refuse_if_replaced(replaced_of(self.datastore))  # lent after a lost connection
            prepared = _direct(conn, name, values, formats)
            if prepared is None:
                return None
            statement = _append_sql(self._events_table, *shape)
            appended = _prepared_append(
                conn, prepared, name, statement, values, formats, self._notify_sql,
                kwargs.get("in_time"), kwargs.get("due"),
            )  # fmt: skip
        ids = [int(appended.get_value(n, 0) or 0) for n in range(appended.ntuples)]
        if len(ids) != len(stored_events):
            msg = f"the insert gave {len(ids)} notification ids for {len(stored_events)} events"
            raise psycopg.ProgrammingError(msg)
        return ids

    def _queue_notify(self, curs: Any) -> None:
        """Queue the listeners' wake-up (``ledger._stores.listen``) after the append's COMMIT,
        in a transaction of its own that does not wait for its commit to reach the disk: the
        server runs it once the append has committed, in the append's round trip. A NOTIFY
        holds a lock of the whole server from its transaction's commit to its end: inside the
        append, the flush included, it would make every append commit in turn again; here it
        is held for microseconds, and a crash can lose only a wake-up (listeners also poll).
        Its failure (a full notification queue) cannot undo or hide the committed append.

        One statement, no BEGIN or COMMIT: in a pipeline the server runs what follows the
        append's COMMIT as an implicit transaction of its own, committed at the sync (a third
        of the Python calls the explicit four-statement transaction cost)."""
        curs.execute(self._notify_sql)

    # The library's methods without its retry decorator (``functools.wraps`` keeps them).

    def select_events(
        self,
        originator_id: Any,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        """The library's ``select_events`` (tried once), its statement built once per shape
        instead of composed on every call: a load's fast-forward runs it every command."""
        shape = (gt is not None, lte is not None, desc, limit is not None)
        statement = _select_sql(self._events_table, *shape)
        params = [originator_id, *(v for v in (gt, lte, limit) if v is not None)]
        with _Lent(self.datastore) as conn, conn.cursor() as curs:
            curs.execute(statement, params, prepare=True)
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    def select_notifications(self, *args: Any, **kwargs: Any) -> Any:
        once = _BASE.select_notifications.__wrapped__
        return once(self, *args, **kwargs)

    def max_notification_id(self) -> Any:
        return _BASE.max_notification_id.__wrapped__(self)


class _Lent:
    """``datastore.get_connection()`` for the statements every command sends (the append, a
    load's select): a connection from the pool, ended as ``with pool.connection()`` ends it
    (committed, or rolled back after an error, then given back), a psycopg error raised as
    the library's ``get_connection`` translates it (``StreamConflict`` is made of its
    ``IntegrityError``). Without the library's two generator context managers, its pool
    ``open`` call and type-adapter loop on every lending: about a tenth of a heartbeat's CPU
    went to lending its connection. The statements sent on a connection lent here need none
    of the composite types the library registers on each connection it lends (its pipelined
    insert does, and it registers them when it lends the connection next). A pool not yet
    open, or closed, is lent the library's way, which opens it. One thing differs: the pool's
    ``usage_ms`` statistic (``get_stats()``), which ``pool.connection()`` adds each lending's
    time to, does not count these (custody reads no pool statistic; counting them would
    write to the pool's private counters on every append)."""

    __slots__ = ("_conn", "_datastore", "_library")

    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore
        self._conn: psycopg.Connection[Any] | None = None
        self._library: contextlib.AbstractContextManager[Any] | None = None

    def __enter__(self) -> psycopg.Connection[Any]:
        datastore = self._datastore
        pool = datastore.pool
        if pool.closed:
            self._library = datastore.get_connection()
            conn: psycopg.Connection[Any] = self._library.__enter__()
            return conn
        try:
            conn = self._conn = pool.getconn()
        except psycopg.Error as e:
            raise _translated(e) from e
        return conn

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if self._library is not None:
            self._library.__exit__(kind, error, tb)
            return
        conn = self._conn
        assert conn is not None
        if conn.broken and (replaced := replaced_of(self._datastore)) is not None:
            replaced.count += 1
        try:
            # Commit, or roll back after an error; a connection back idle (the pool's are in
            # autocommit, and an append ends the transaction it began) has nothing to commit,
            # which psycopg's commit took the connection's lock to find (1.5% of a heartbeat).
            if error is not None or conn.pgconn.transaction_status != _IDLE:
                conn.__exit__(kind, error, tb)
        except psycopg.Error as e:
            raise _translated(e) from e
        finally:
            self._datastore.pool.putconn(conn)
        if isinstance(error, psycopg.Error):
            raise _translated(error) from error


_IDLE = pq.TransactionStatus.IDLE


def _translated(error: psycopg.Error) -> Exception:
    """The library's error for a psycopg one, as its ``get_connection`` raises it."""
    for raised, translated in _TRANSLATED:
        if isinstance(error, raised):
            return translated(str(error))
    return error


_TRANSLATED: tuple[tuple[type[psycopg.Error], type[Exception]], ...] = (
    (psycopg.InterfaceError, persistence.InterfaceError),
    (psycopg.OperationalError, persistence.OperationalError),
    (psycopg.DataError, persistence.DataError),
    (psycopg.IntegrityError, persistence.IntegrityError),
    (psycopg.InternalError, persistence.InternalError),
    (psycopg.ProgrammingError, persistence.ProgrammingError),
    (psycopg.NotSupportedError, persistence.NotSupportedError),
    (psycopg.DatabaseError, persistence.DatabaseError),
    (psycopg.Error, persistence.PersistenceError),
)


def _values(count: int, width: int) -> str:
    one = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([one] * count)


@functools.cache
def _append_sql(events_table: str, events: int, rows: int, commands: int) -> str:
    """One statement appending ``events`` events, upserting ``rows`` availability rows and
    recording ``commands`` command ids (all or nothing), giving the events' notification
    ids in order."""
    parts = [
        f"WITH appended AS (INSERT INTO {events_table} "
        "(originator_id, originator_version, topic, state) "
        f"VALUES {_values(events, 4)} RETURNING notification_id)"
    ]
    if rows:
        parts.append(f"availability AS ({upsert_availability_sql('%s', rows=rows)})")
    if commands:
        columns = ", ".join(COMMANDS_COLUMNS)
        values = _values(commands, len(COMMANDS_COLUMNS))
        parts.append(f"commands AS (INSERT INTO {COMMANDS_TABLE} ({columns}) VALUES {values})")
    statement = ", ".join(parts) + " SELECT notification_id FROM appended ORDER BY notification_id"
    # Numbered in the server's own style for a raw cursor: psycopg converts a statement's %s
    # afresh on every call once it is longer than 4 KB (a batch's is), about 7 ms for twenty
    # heartbeats' rows; a raw cursor sends it as it is.
    numbers = itertools.count(1)
    return re.sub(r"%s", lambda _: f"${next(numbers)}", statement)


def _append_name(events: int, rows: int, commands: int) -> bytes:
    """The name ``_round_trip`` prepares an append of this shape under, on each connection."""
    return f"custody_append_{events}_{rows}_{commands}".encode()


def _plain(
    stored_events: Sequence[StoredEvent],
    rows: Sequence[tuple[Any, ...]],
    commands: Sequence[tuple[str, str, int, str]],
) -> tuple[list[bytes | None], list[int]]:
    """The append's parameters as libpq takes them, in ``_append_sql``'s order, and their
    formats: a stream id (16 bytes) and a state in binary, every other value as text (the
    server reads each as its column's type). A row's and a command's values are text, whole
    numbers or NULL (``availability_params``); text is UTF-8 (``_direct`` sends an append on a
    connection of another encoding psycopg's way)."""
    values: list[bytes | None] = []
    for e in stored_events:
        stream = e.originator_id if isinstance(e.originator_id, UUID) else UUID(e.originator_id)
        values += (stream.bytes, b"%d" % e.originator_version, e.topic.encode(), e.state)
    formats = [1, 0, 0, 1] * len(stored_events)
    for row in (*rows, *commands):
        values += [None if value is None else str(value).encode() for value in row]
    formats += [0] * (len(values) - len(formats))
    return values, formats


# The append statements prepared on each connection, by name (psycopg names its own apart,
# ``_pg3_*``). psycopg deallocates every statement of a connection when a transaction on it
# rolls back (``DEALLOCATE ALL``), ours with its own: ``_prepared_append`` then prepares again.
_PREPARED: weakref.WeakKeyDictionary[Any, set[bytes]] = weakref.WeakKeyDictionary()
# How many statements of its own a connection keeps prepared: BEGIN, COMMIT, the wake-up and
# the shapes of append, of which a process's commands come in a few (one to three events,
# with or without a command id); group commit's batches of every size beyond them go through
# psycopg's path, whose prepared statements psycopg bounds itself.
PREPARED_AT_MOST = 16
# BEGIN and COMMIT, prepared like the append: the server then neither parses nor plans them
# (with the wake-up, a third of a bare append's CPU on the server).
_BEGIN, _COMMIT = b"custody_begin", b"custody_commit"


@functools.cache
def _wakeup_name(notify: bytes) -> bytes:
    """The name the wake-up ``notify`` is prepared under: its text's digest (a store's
    channel names it, so another store's wake-up on a connection is another statement)."""
    return b"custody_wake_" + hashlib.sha256(notify).hexdigest()[:24].encode()


def _direct(
    conn: psycopg.Connection[Any], name: bytes, values: list[bytes | None], formats: list[int]
) -> set[bytes] | None:
    """The names prepared on ``conn`` if the append ``name`` of ``values`` may go by
    ``_prepared_append``; None where psycopg's path must write it: a client encoding other
    than UTF-8 (the text parameters are UTF-8), a NUL in a text (libpq reads a text
    parameter up to it, where psycopg refuses it, writing nothing), a new shape beyond
    ``PREPARED_AT_MOST`` (the server keeps each prepared statement for the session)."""
    prepared = _PREPARED.get(conn)
    if prepared is None:
        if conn.info.encoding != "utf-8":
            return None
        prepared = _PREPARED[conn] = set()
    if name not in prepared and len(prepared) >= PREPARED_AT_MOST:
        return None
    texts = (value for value, text in zip(values, formats, strict=True) if not text)
    if b"\0" in b"".join(value for value in texts if value is not None):  # one search
        return None
    return prepared


def _prepared_append(
    conn: psycopg.Connection[Any],
    prepared: set[bytes],
    name: bytes,
    statement: str,
    values: list[bytes | None],
    formats: list[int],
    notify: bytes,
    in_time: float | None = None,
    due: float | None = None,
) -> Any:
    """``_round_trip`` of the append ``statement``, prepared as ``name`` on its first use on
    ``conn`` (``prepared`` names those it has), and once more, every statement prepared
    again, if the server no longer has one (nothing was written then)."""
    try:
        return _round_trip(conn, name, statement, values, formats, notify, prepared, in_time, due)
    except psycopg.errors.InvalidSqlStatementName:
        # psycopg deallocates them all (``DEALLOCATE ALL``) when a transaction rolls back, and
        # the failed round trip may have prepared a new one since: the server says which it
        # has (rev33: cleared here, the new one was prepared again, "already exists", and
        # that shape of append failed on the connection for good).
        prepared.clear()
        prepared.update(_prepared_on(conn))
        return _round_trip(conn, name, statement, values, formats, notify, prepared, in_time, due)


def _prepared_on(conn: psycopg.Connection[Any]) -> list[bytes]:
    """The names of custody's own statements the server keeps prepared for ``conn``."""
    with conn.cursor(row_factory=tuple_row) as curs:
        curs.execute(
            "SELECT name FROM pg_prepared_statements WHERE name LIKE 'custody\\_%'", prepare=False
        )
        return [str(row[0]).encode() for row in curs.fetchall()]


def _round_trip(
    conn: psycopg.Connection[Any],
    name: bytes,
    statement: str,
    values: list[bytes | None],
    formats: list[int],
    notify: bytes,
    prepared: set[bytes],
    in_time: float | None = None,
    due: float | None = None,
) -> Any:
    """Run the prepared statement ``name`` in a transaction, then ``notify`` after its
    COMMIT, in one round trip; the append's result. With ``in_time`` (and ``due``, the same
    moment on the server's clock), the transaction holds its locks by then or commits
    nothing (``_IN_TIME_SQL``, between the append and COMMIT; ``LateSave``). Every
    statement sent, BEGIN and COMMIT too, is prepared: first from its text unless
    ``prepared`` has its name (and then gains it). Queued in libpq's pipeline with one sync
    at the end, so that the server skips everything after a failed statement up to the
    sync: a failed append wakes nobody. Its error, or its COMMIT's, is raised as psycopg raises it
    once every result is read and the transaction rolled back; the wake-up's is not (it runs
    after the commit, which it cannot undo), nor a connection lost once COMMIT's result is in
    (the append is kept: the command succeeded; the connection is closed, never lent again)."""
    pgconn = conn.pgconn
    wake = _wakeup_name(notify)
    texts: list[tuple[bytes, bytes | str]] = [
        (_BEGIN, b"BEGIN"), (name, statement), (_COMMIT, b"COMMIT"), (wake, notify)
    ]  # fmt: skip
    if in_time is not None:
        texts.append((_IN_TIME, _IN_TIME_SQL))
    preparing = [(n, text) for n, text in texts if n not in prepared]
    queue: list[Callable[[], None]] = [
        partial(pgconn.send_prepare, n, text if isinstance(text, bytes) else text.encode())
        for n, text in preparing
    ]
    append = len(queue) + 1  # where the append's result is, after BEGIN's; COMMIT's after it
    queue += (
        partial(pgconn.send_query_prepared, _BEGIN, None),
        partial(pgconn.send_query_prepared, name, values, formats),
    )
    if in_time is not None:
        checked = [b"%r" % value for value in _in_time_values(in_time, due)]
        queue.append(partial(pgconn.send_query_prepared, _IN_TIME, checked, [0, 0]))
    commit = len(queue)  # where COMMIT's result is, after the check's if any
    queue += (
        partial(pgconn.send_query_prepared, _COMMIT, None),
        partial(pgconn.send_query_prepared, wake, None),
        pgconn.pipeline_sync,
    )
    results: list[Any] = []
    with conn.lock:
        pgconn.enter_pipeline_mode()
        try:
            for send in queue:
                send()
            conn.wait(generators.send(pgconn))
            for _ in queue:
                results.append(conn.wait(generators.fetch_many(pgconn))[0])
            pgconn.exit_pipeline_mode()
        except BaseException as lost:
            conn.close()  # left inside the pipeline, with results unread: of no further use
            if not (isinstance(lost, Exception) and _committed(results, commit)):
                raise
    for (n, _), result in zip(preparing, results, strict=False):
        if result.status == pq.ExecStatus.COMMAND_OK and not conn.closed:
            prepared.add(n)  # a statement outlives a transaction rolled back after it
    for at, result in enumerate(results[: commit + 1]):  # prepares, BEGIN ... COMMIT
        if result.status == pq.ExecStatus.FATAL_ERROR:
            # The sync ended the pipeline's segment, not the transaction BEGIN opened.
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            past = result.error_field(pq.DiagnosticField.SQLSTATE) == _DIVISION_BY_ZERO
            if at == append + 1 and in_time is not None and past:  # the check: past its time
                raise _late(by_the_store=True)
            if at == append and result.error_field(pq.DiagnosticField.SQLSTATE) == _MISDATED:
                raise _misdated()
            if at == append and result.error_field(pq.DiagnosticField.SQLSTATE) == _DEADLINE:
                said = result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b""
                raise DeadlineRefused(said.decode("utf-8", "replace"))
            raise psycopg.errors.error_from_result(result, encoding="utf-8")
    return results[append]


def _committed(results: list[Any], commit: int) -> bool:
    """Whether the results read so far hold the append's COMMIT (``results[commit]``), with
    no error before it."""
    through_commit = results[: commit + 1]
    return (
        len(through_commit) == commit + 1
        and all(r.status != pq.ExecStatus.FATAL_ERROR for r in through_commit)
        and through_commit[-1].status == pq.ExecStatus.COMMAND_OK
    )


# A transaction's check that it holds its locks in time (``in_time``), on two counts: the
# seconds left when it was sent against the time since its BEGIN on the server's clock
# (measured alike on any clock a test injects), and ``due``, the latest the server's clock may
# read at ``in_time`` (``OffsetClock.latest``), against that clock: a transaction whose
# statements were held on their way to the server (a congested link, a partition) begins late,
# and the first count does not see it (rev46 review: a release that reached the server 1.5 s
# after its lease's deadline, and another 29 s after it, was kept as clean). Past either it
# divides by zero, which fails the transaction before its COMMIT: a statement's error is the
# one thing a pipeline's later statements wait on.
_IN_TIME = b"custody_in_time"
_DIVISION_BY_ZERO = b"22012"
_IN_TIME_SQL = (
    b"SELECT 1 / (clock_timestamp() - now() <= $1::float8 * interval '1 second'"
    b" AND extract(epoch FROM clock_timestamp()) <= $2::float8)::int"
)


def _in_time_values(in_time: float, due: float | None) -> tuple[float, float]:
    """The check's parameters: the seconds left until ``in_time`` (``time.monotonic``) and
    ``due`` (infinity without one); ``LateSave`` at once, sending nothing, if none are left."""
    left = in_time - time.monotonic()
    if left < 0:
        raise _late()
    return left, math.inf if due is None else due


def _late(*, by_the_store: bool = False) -> LateSave:
    said = "decided before its lease's deadline, written after it"
    return LateSave(said, by_the_store=by_the_store)


_MISDATED = MISDATED.encode()
_DEADLINE = DEADLINE_REFUSED.encode()


def _misdated() -> Misdated:
    """A decision dated too far from the server's clock for the insert check to take it: made
    before a stall, it is decided again at a fresh time."""
    return Misdated("dated too far from the server's clock when it arrived")


@functools.cache
def _select_sql(events_table: str, gt: bool, lte: bool, desc: bool, limit: bool) -> str:
    return (
        f"SELECT originator_id, originator_version, topic, state FROM {events_table} "
        "WHERE originator_id = %s"
        + (" AND originator_version > %s" if gt else "")
        + (" AND originator_version <= %s" if lte else "")
        + f" ORDER BY originator_version {'DESC' if desc else 'ASC'}"
        + (" LIMIT %s" if limit else "")
    )


def _claim_directories(curs: Any, claims: Sequence[tuple[str, str]]) -> None:
    """Record the registrations' directories unless one overlaps another profile's. The
    table's lock makes registrations take turns from the look to the commit (readers go on),
    so two racing registrations of overlapping directories cannot both see none."""
    curs.execute(f"LOCK TABLE {DIRECTORIES_TABLE} IN EXCLUSIVE MODE")

    def found(directory: str) -> list[tuple[str, str]]:
        curs.execute(*overlapping_sql("%s", directory))
        return [(str(r["profile_id"]), str(r["user_data_dir"])) for r in curs.fetchall()]

    refuse_overlaps(claims, found)
    for claim in claims:
        curs.execute(_PG_DIRECTORY, claim)


class OnceAggregateRecorder(PostgresAggregateRecorder):
    """The library's recorder of the snapshots, each call tried once, as the events' are: its
    retry decorator tried a call ten times, waiting up to the store's timeout for a connection
    each time (rev33: a load from a snapshot waited 52 s where the timeout was 5)."""

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        return PostgresAggregateRecorder.insert_events.__wrapped__(self, stored_events, **kwargs)

    def select_events(self, originator_id: Any, **kwargs: Any) -> Any:
        return PostgresAggregateRecorder.select_events.__wrapped__(self, originator_id, **kwargs)


class _CappedAttempt(AttemptWithBackoff):
    """psycopg_pool's schedule of a lost connection's reconnection, its wait between two
    attempts at most ``RECONNECT_WAIT_AT_MOST``: the pool doubles it from 1 s on every failure
    (up to 128 s), so after a two-minute outage a long-lived process (``custody serve``, a
    sweeper, a worker) failed every command for one to two minutes more while the server
    answered again (rev33)."""

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, RECONNECT_WAIT_AT_MOST)


RECONNECT_WAIT_AT_MOST = 2.0


def cap_reconnect_waits(pool: ConnectionPool[Any]) -> None:
    """Give every reconnection ``pool`` schedules a ``_CappedAttempt``."""
    if not hasattr(pool, "_add_connection"):  # psycopg_pool 3.2 and 3.3 reconnect through it
        msg = "psycopg_pool no longer reconnects through ConnectionPool._add_connection"
        raise RuntimeError(msg)
    add = pool._add_connection

    def adding(attempt: AttemptWithBackoff | None = None, growing: bool = False) -> None:
        add(attempt or _CappedAttempt(timeout=pool.reconnect_timeout), growing)

    pool._add_connection = adding  # type: ignore[method-assign]


class BoundedPostgresFactory(PostgresFactory):
    """The library's factory, its pool configured before anything uses it (the recorder
    opens it while it is built): every connection waits for a lock at most the store's
    timeout, reads included (the library bounds only its inserts' lock), and is checked
    before it is lent (``check_before_lending``); a lost connection is made again within
    seconds of the server's return (``cap_reconnect_waits``); and no recorder call is
    retried (``OnceAggregateRecorder``: a call's wait is the store's timeout, once)."""

    aggregate_recorder_class = OnceAggregateRecorder

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        if not isinstance(pool.kwargs, dict) or not pool.closed:
            raise RuntimeError("the library's pool opened before custody could configure it")
        timeout = int(self.env.get(self.POSTGRES_LOCK_TIMEOUT) or DEFAULT_TIMEOUT_SECONDS)
        pool.kwargs["options"] = session_options(timeout)
        pool.kwargs["client_encoding"] = CLIENT_ENCODING
        pool.kwargs.update(parse_qsl(self.env.get(TLS_ENV) or ""))  # the URL's sslmode, ...
        if not pool.kwargs.get("password"):  # none in the URL: libpq's PGPASSWORD or ~/.pgpass,
            pool.kwargs.pop("password", None)  # as a direct connection's (an empty one hid them)
        check_before_lending(self.datastore)
        name_connect_failures(pool)
        cap_reconnect_waits(pool)
        no_growth_while_filling(pool)


def no_growth_while_filling(pool: ConnectionPool[Any]) -> None:
    """The pool grows past its size only for a request that its first connections, still
    being made, will not serve. psycopg_pool makes them in the background when it opens, at
    the first lending, which then waits and grew the pool by one: every ledger held 3
    connections after its first read where its pool is 2, until 10 idle minutes closed the
    extra one (rev41: a role's connection limit sized from the documentation cost three
    worker processes of four their leases). A ledger's calls take turns (one connection in use
    at a time), so the extra one was never needed. Once they are made, or one failed to be
    (the pool's reconnection then decides), the pool grows as psycopg_pool grows it."""
    if not hasattr(pool, "_maybe_grow_pool") or not hasattr(pool, "_waiting"):
        msg = "psycopg_pool no longer grows through ConnectionPool._maybe_grow_pool"
        raise RuntimeError(msg)
    coming = [pool.min_size]  # the first connections not yet made
    connect, grow = pool._connect, pool._maybe_grow_pool

    def connecting(timeout: float | None = None) -> Any:
        try:
            conn = connect(timeout)
        except BaseException:
            coming[0] = 0
            raise
        coming[0] = max(coming[0] - 1, 0)
        return conn

    def growing() -> None:  # called with the pool's lock held, the request already waiting
        if not coming[0] or len(pool._waiting) > coming[0]:
            grow()

    pool._connect = connecting  # type: ignore[method-assign]
    pool._maybe_grow_pool = growing  # type: ignore[method-assign]


def name_connect_failures(pool: ConnectionPool[Any]) -> None:
    """A pool that could not lend a connection in time says why its last attempt to make one
    failed, as the server or libpq said it ("too many connections for role", "Connection
    refused"): psycopg_pool only logs that, and its ``PoolTimeout`` said no more than
    "couldn't get a connection after 5.00 sec" (rev29). The reason is one line; the store's
    failure line hides the password (``connections.store_failure``)."""
    connect, getconn = pool._connect, pool.getconn
    failed: list[BaseException] = []  # the last attempt's error; empty once one succeeds

    def connecting(timeout: float | None = None) -> Any:
        try:
            conn = connect(timeout)
        except Exception as e:
            failed[:] = [e]
            raise
        failed.clear()
        return conn

    def lending(timeout: float | None = None) -> Any:
        try:
            return getconn(timeout)
        except PoolTimeout as e:
            if not failed:  # every connection busy: no attempt failed
                raise
            reason = " ".join(str(failed[-1]).split()) or type(failed[-1]).__name__
            raise PoolTimeout(f"{e}; the last connection attempt failed: {reason}") from e

    pool._connect = connecting  # type: ignore[method-assign]  # the pool's own attempts
    pool.getconn = lending  # type: ignore[method-assign]  # pool.connection() lends through it


def check_before_lending(datastore: PostgresDatastore) -> None:
    """Give the library's pool our check of a connection before it is lent (``lend_checked``)
    in place of the library's pre-ping, which sends an empty query before every statement:
    a round trip that doubled the cost of a short read. The datastore keeps a ``Replaced``
    (``custody_replaced``) that the check and every lending count lost connections in."""
    pool = datastore.pool
    if not hasattr(pool, "_check"):  # psycopg_pool keeps its check there (3.2, 3.3)
        msg = "psycopg_pool no longer keeps its connection check in ConnectionPool._check"
        raise RuntimeError(msg)
    replaced = Replaced()
    datastore.custody_replaced = replaced  # type: ignore[attr-defined]
    pool._check = partial(lend_checked, pool, replaced)  # the pool takes it when it is built
    lend = datastore.get_connection

    @contextlib.contextmanager
    def counted(*args: Any, **kwargs: Any) -> Any:  # the library's lending, counted
        with lend(*args, **kwargs) as conn:
            try:
                yield conn
            finally:
                if conn.broken:
                    replaced.count += 1

    datastore.get_connection = counted  # type: ignore[method-assign]


def lend_checked(
    pool: ConnectionPool[Any], replaced: Replaced, conn: psycopg.Connection[Any]
) -> None:
    """Raise if the pooled connection is dead, so the pool replaces it before a command uses
    it. A connection idle in the pool is sent nothing: when its socket is readable, the
    server has said something (a terminated backend's notice, the EOF of a restart), and only
    then is it pinged. No round trip otherwise.

    A dead one found, the pool's other idle connections are checked at once (``check``:
    the dead discarded and replaced, the rest kept): after a restart all of them are dead,
    and the pool, handed one after another, waits longer before each next try (0, 1, 2 s):
    the first command after a restart took 3 s, or failed at a timeout of 3."""
    try:
        if conn.closed or conn.broken:
            raise psycopg.OperationalError("the pooled connection is closed")
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
        if readable:
            ConnectionPool.check_connection(conn)
    except psycopg.Error:
        replaced.count += 1
        pool.check()
        raise
