"""The notification log as a feed for read models, and the place where they keep their rows.

Every event has a position: its notification id. Ids may have gaps, where an append was rolled
back. SQLite has one writer at a time, so ids commit in order; on PostgreSQL appends take no
store-wide lock and may commit out of order, so a read of the log hands on no event past a gap
that an append still in progress may fill (``ledger._stores.settled``): a follower neither
misses nor repeats an event. A read model fed from the log keeps a checkpoint: the position of
the last event it folded, in a row of ``custody_projection_positions`` (custody's own table,
not the library's ``tracking``: see ``projections._base``).

Exactly once: ``Feed.transaction`` gives one database transaction in which a read model claims
its checkpoint (``claim_checkpoint``: a second runner of the same read model waits here, then
sees the new position), reads the events after it, writes its own rows and moves its checkpoint
(``move_checkpoint``). The rows and the checkpoint commit together or not at all, so a crash at
any moment neither applies an event twice nor skips one. The read model's tables live in the
store's own database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from ledger._domain.acting import Forbidden
from ledger._domain.errors import (
    LedgerError,
    NotAllowed,
    RowConflict as RowConflict,
    UnreadableEvent as UnreadableEvent,
)
from ledger._domain.model import stream_id, takes_profile_id
from ledger._stores.access import READ_MODEL_WRITERS
from ledger._stores.mapper import complaint, decode, decode_shown
from ledger._stores.recorders import AVAILABILITY_COLUMNS, AVAILABILITY_TABLE, split_rows
from ledger._stores.store import Store
from ledger._stores.views import FrameReader, StoredNotification, StreamCount, ViewCursor
from ledger._stores.wakeups import Announce, Wakeups

if TYPE_CHECKING:
    import pandas as pd

    from ledger._domain.events import ProfileEvent
    from ledger._domain.row import Availability

# The table's name is older than the word checkpoint; stores hold it under this name.
CHECKPOINTS_TABLE = "custody_projection_positions"
_CHECKPOINTS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS_TABLE} "
    "(name TEXT PRIMARY KEY, position BIGINT NOT NULL)"
)
# Read models are installed one at a time per database (PostgreSQL fails concurrent DDL).
_INSTALL_LOCK = "SELECT pg_advisory_xact_lock(25461, 1)"
# A read model's checkpoint, claimed for one transaction (``FeedTransaction.claim_checkpoint``).
_CLAIM = {
    "sqlite": f"UPDATE {CHECKPOINTS_TABLE} SET position = position WHERE name = ?",
    "postgresql": "SELECT pg_advisory_xact_lock(25462, hashtext(?))",
}


class ReadModelDamaged(LedgerError):
    """A read model's table is missing, or not the one its read model writes (an older
    layout, a table edited by hand): a read cannot be answered from it. The store itself is
    fine; ``custody projections rebuild NAME`` makes the table again from the events."""

    exit_code = 1

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(
            f"read model {name} is damaged: {problem}; "
            f"repair it with custody projections rebuild {name}"
        )
        self.name = name
        self.problem = problem

    @classmethod
    def unreadable(cls, name: str, column: object, value: object) -> ReadModelDamaged:
        """A row of the read model ``name`` whose ``column`` holds what no row it writes holds
        (``value``: a junk value put there by hand), for a read that turns its rows into
        answers: one line naming the read model and its rebuild, not an internal error."""
        said = f"a row's {column} cannot be read ({str(value)[:40]!r}: written there by hand?)"
        return cls(name, said)


def unreadable_position(name: str, value: object) -> ReadModelDamaged:
    """The read model ``name`` whose checkpoint holds ``value``, which no checkpoint holds (text
    or a fraction put there by hand: SQLite keeps it in an integer column): one line naming its
    rebuild, which sets the position again (rev36: every read, ``projections status``, the
    rebuild and ``custody init`` were an internal error)."""
    said = f"its position in {CHECKPOINTS_TABLE} holds {cell_shown(value)}, which is no position"
    return ReadModelDamaged(name, f"{said} (written there by hand?)")


def cell_shown(value: object) -> str:
    """A value found in a read model's cell where none belongs, as a problem's line quotes it:
    ``repr``'s, a text cut to its first 40 characters."""
    return repr(value[:40]) if isinstance(value, str) else repr(value)


class ReadModelBehind(UserWarning):
    """A read answered from a read model that has events of the log still to fold, which this
    login may not fold (a worker's PostgreSQL login, a SQLite file this user may only read):
    the answer leaves them out; or, with ``held_at``, a read that folded every event it could
    and stopped at a gap a transaction still open may fill (``ledger._stores.settled``: past
    the store's timeout a read hands on only what is settled). Warned, not raised: the
    maintainers may fold them any moment
    (``custody projections run``). The command line prints it as one ``custody: note:`` line
    for every read; Python's default filter shows a warning once per place in a process, so a
    program that reads again and again sets ``warnings.simplefilter("always",
    ReadModelBehind)`` to hear each time."""

    def __init__(self, name: str, lag: int, *, held_at: int | None = None) -> None:
        self.name, self.lag, self.held_at = name, lag, held_at
        if held_at is not None:  # folded up to a gap an open append may yet fill
            super().__init__(
                f"the {name} read model has {lag} event(s) of the log still to fold past "
                f"position {held_at}, which a transaction still open may yet fill: the answer "
                "leaves them out (read again once it ends)"
            )
            return
        super().__init__(
            f"the {name} read model has {lag} event(s) of the log still to fold, which this store "
            "login may not fold: the answer leaves them out (run custody projections run where "
            "the store may be written, or read a writable copy)"
        )


class PositionLost(ReadModelDamaged):
    """A read model's table is there but its checkpoint is not (its row in
    ``custody_projection_positions`` deleted, or that table restored without it): which events
    its rows hold is unknown, so it is neither installed afresh nor caught up; a rebuild
    replaces the table and the checkpoint."""

    def __init__(self, name: str, table: str) -> None:
        said = (
            f"its position is lost (no row in {CHECKPOINTS_TABLE}) while its table {table} remains"
        )
        super().__init__(name, said)


class LoggedEvent:
    """One event and its position in the notification log, as the feed hands it to a read
    model (the library's ``Notification`` is the stored row). ``event`` decodes it into its
    model when first asked; ``data`` gives its stored JSON instead (upcast to the current
    version), for a read model that only copies fields: decoding the model is most of a
    catch-up. Either is decoded once, however many read models fold the event."""

    __slots__ = ("_data", "_event", "_stored", "position")

    def __init__(self, stored: StoredNotification) -> None:
        self.position = stored.id
        self._stored = stored
        self._event: ProfileEvent | None = None
        self._data: dict[str, Any] | None = None

    @property
    def event_type(self) -> str:
        return self._stored.topic

    @property
    def version(self) -> int:
        """The event's place in its profile's stream."""
        return self._stored.version

    @property
    def event(self) -> ProfileEvent:
        if self._event is None:
            n = self._stored
            self._event = decode(n.topic, n.state, self._stream(), n.version, shown=True)
        return self._event

    def of(self, profile_id: str) -> bool:
        """Whether the event is of the profile's stream, told without decoding it; never of
        an id custody does not take (rev37's review: a registration of ``a b`` in that id's
        stream, folded, was a timeline row no profile has)."""
        if not takes_profile_id(profile_id):
            return False
        return self._stream() == stream_id(profile_id)

    def _stream(self) -> UUID:
        """The event's stream; ``TypeError`` for a stream id stored as other than text (SQLite
        keeps a blob an INSERT gives it): a read names that event as one it cannot read, as
        ``custody verify`` names it (rev38: it was an internal error)."""
        stream = self._stored.originator_id
        if isinstance(stream, UUID):
            return stream
        if not isinstance(stream, str):
            raise TypeError(f"its stream id is stored as {type(stream).__name__}, not text")
        return UUID(stream)

    def unreadable(self) -> str | None:
        """Why this event cannot be decoded as a read decodes it (None: it can)."""
        try:
            self.event  # noqa: B018 - decoded for what it raises
        except Exception as e:  # whatever the decoder raises is the answer
            return complaint(e)
        return None

    def data(self) -> dict[str, Any]:
        """The event's fields as JSON gives them (times as text, enums as their values):
        ``event.model_dump(mode="json")`` without the stream's id and version, keys in any
        order. One dict, shared by every read model that folds the event: read it, never
        change it. A NUL character in a text (stored before custody refused it) is written
        as ``\\x00``: read models cannot hold it (``ledger._stores.mapper.decode_shown``)."""
        if self._data is None:
            self._data = decode_shown(self._stored.topic, self._stored.state)
        return self._data


class StrayRegistrations(UserWarning):
    """An answer that read the log's registrations found some in a stream that is not their
    profile's own (``Ledger.registrations``): appended past custody (an operator's login
    before schema 19, or by hand), they register nothing, and the answer leaves them out.
    Warned, not raised: the rest of the fleet is answered (rev37: one such registration made
    ``status`` refuse the whole fleet as bad input). The command line prints it as one
    ``custody: note:`` line."""

    def __init__(self, stray: Sequence[tuple[str, int]]) -> None:
        self.stray = list(stray)
        shown = ", ".join(f"{pid} at position {at}" for pid, at in self.stray[:5])
        more = ", ..." if len(self.stray) > 5 else ""
        super().__init__(
            f"{len(self.stray)} registration(s) in a stream not their profile's own, or of "
            f"no profile id custody takes, register nothing and are left out ({shown}{more}): "
            "custody verify names them"
        )


def _logged(stored: Sequence[StoredNotification]) -> list[LoggedEvent]:
    return [LoggedEvent(n) for n in stored]


class FeedTransaction:
    """One transaction on the read models' database: SQL with ``?`` placeholders, the events
    after a position, and the read models' checkpoints. Committed when its block ends, else
    rolled back."""

    def __init__(self, cursor: ViewCursor, dialect: str) -> None:
        self._cursor = cursor
        self._claim = _CLAIM[dialect]

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(statement, params)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._cursor.query(statement, params)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        key: str | None = None,
    ) -> None:
        """Insert rows in bulk (COPY on PostgreSQL); with ``key``, a row whose key exists
        overwrites it (the rows must have distinct keys)."""
        self._cursor.insert(table, columns, rows, key=key)

    def claim_checkpoint(self, name: str, *, unreadable: int | None = None) -> int:
        """Lock the read model's checkpoint for this transaction and return its position.

        Another transaction claiming the same checkpoint waits here (at most the store's
        timeout) and then reads the position this one committed. On SQLite the claim writes
        the row (a transaction must write first to hold the file's lock); on PostgreSQL it
        takes an advisory lock of the transaction, which gives it no transaction id: a reader
        waiting for a gap in the log to settle must hold none (``ledger._stores.settled``).
        ``NotAllowed`` if the read model was never installed. A position that is no position
        (junk put there by hand) is ``ReadModelDamaged``, or ``unreadable`` when given (a
        rebuild, which sets it again)."""
        self._cursor.execute(self._claim, (name,))
        rows = self.query(f"SELECT position FROM {CHECKPOINTS_TABLE} WHERE name = ?", (name,))
        if not rows:
            raise NotAllowed(f"read model {name} is not installed")
        position = rows[0]["position"]
        if type(position) is int:
            return position
        if unreadable is None:
            raise unreadable_position(name, position)
        return unreadable

    def move_checkpoint(self, name: str, position: int) -> None:
        """Set the read model's checkpoint to ``position`` (it takes effect with the rows, at
        commit)."""
        self._cursor.execute(
            f"UPDATE {CHECKPOINTS_TABLE} SET position = ? WHERE name = ?", (position, name)
        )

    def reset_checkpoint(self, name: str, position: int = 0) -> None:
        """Create the read model's checkpoint at ``position``, or set it back there."""
        self._cursor.execute(
            f"INSERT INTO {CHECKPOINTS_TABLE} (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (name, position),
        )

    def restore_checkpoint(self, name: str) -> None:
        """Create the read model's checkpoint at 0 unless it exists (a rebuild of a read model
        whose checkpoint was lost: ``PositionLost``)."""
        self._cursor.execute(
            f"INSERT INTO {CHECKPOINTS_TABLE} (name, position) VALUES (?, 0) "
            "ON CONFLICT (name) DO NOTHING",
            (name,),
        )

    def drop_checkpoint(self, name: str) -> None:
        self._cursor.execute(f"DELETE FROM {CHECKPOINTS_TABLE} WHERE name = ?", (name,))

    def events_after(self, position: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events after ``position`` (each decoded when asked), in log order,
        as committed when this transaction reads them."""
        return _logged(self._cursor.notifications(position, limit))


class FeedSnapshot:
    """Reads at one moment of the read models' database (``Feed.snapshot``)."""

    def __init__(self, cursor: ViewCursor, store: Store) -> None:
        self._cursor = cursor
        self._store = store

    def tuples(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query's rows as tuples in the statement's column order (for long scans)."""
        return self._cursor.tuples(statement, params)

    def head(self) -> int:
        """The position of the last event committed (0 for an empty log)."""
        return self._cursor.head()

    def checkpoints(self) -> dict[str, int]:
        """Every installed read model's checkpoint (its position), by name; one that holds no
        position is left out (``unreadable_checkpoints``)."""
        return _checkpoints(self._cursor, self._store.views.dialect)

    def unreadable_checkpoints(self) -> dict[str, object]:
        """The checkpoints that hold what no checkpoint holds (junk put there by hand), by
        name, with that value: what ``checkpoints`` leaves out."""
        found = _positions(self._cursor, self._store.views.dialect)
        return {name: value for name, value in found.items() if type(value) is not int}

    def columns(self, table: str) -> list[str]:
        """The table's columns in their order; empty when there is no such table."""
        return self._cursor.table_columns(table)

    def read_frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """A query's rows as a pandas DataFrame, at this moment."""
        return self._cursor.frame(statement, params)

    def availability(self) -> tuple[list[Availability], dict[str, str]]:
        """The availability rows at this moment: the readable ones in profile id order, and
        the unreadable ones by profile id with what is wrong (``Ledger.damaged_availability``)."""
        columns = ", ".join(AVAILABILITY_COLUMNS)
        statement = f"SELECT {columns} FROM {AVAILABILITY_TABLE}"  # split_rows orders them
        return split_rows(self._cursor.query(statement))

    def versions_after(self, position: int, profile_ids: Iterable[str]) -> dict[str, int]:
        """Of ``profile_ids``, each with events after ``position`` at this moment, with the
        first such event's version (what a row written beside them is ahead of ``position``
        by)."""
        firsts = self._cursor.first_versions_after(position)
        keyed = ((pid, str(stream_id(pid))) for pid in profile_ids)
        return {pid: firsts[key] for pid, key in keyed if key in firsts}

    def stream_counts(self, upto: int) -> dict[str, StreamCount]:
        """Each profile's events up to position ``upto`` (one aggregate of the log), by
        profile id: how many, its last version, how many acquired a lease. Of its own stream
        only, as the read models fold them."""
        counts = self._cursor.stream_counts(upto)
        named = self._profiles()
        # A stream no registered profile owns is no profile's: the read models fold none of
        # it (``projections._runner``), and ``custody verify`` names its events.
        return {named[stream]: count for stream, count in counts.items() if stream in named}

    def lease_versions(self, upto: int, topics: Sequence[str]) -> dict[str, dict[int, int]]:
        """Each profile's leases up to position ``upto``, by profile id: for the n-th lease it
        acquired (from 1, as its fencing tokens count), the last version of an event of
        ``topics`` (types that always name the lease live then) before the next one."""
        found = self._cursor.lease_versions(upto, topics)
        named = self._profiles()
        return {named[stream]: leases for stream, leases in found.items() if stream in named}

    def _profiles(self) -> dict[str, str]:
        return {str(stream_id(pid)): pid for pid in self._store.profile_ids()}


class Feed:
    """The notification log of one store, for the read models built on it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._views = store.views

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``: the SQL the read models' database speaks."""
        return self._views.dialect

    def head(self) -> int:
        """The position of the last event committed (0 for an empty log)."""
        return self._views.head()

    def describe(self) -> str:
        """The store, as an error names it (without a password)."""
        return self._store.settings.describe()

    def maintains(self) -> bool:
        """Whether the store's login keeps the read models current: every login on SQLite
        (the file's permissions are the boundary), and on PostgreSQL the owner and the roles
        the database lets write them (``ledger._stores.access.READ_MODEL_WRITERS``). A worker's
        login reads them as they stand: it may not write them."""
        return bool(self._store.authority().roles & READ_MODEL_WRITERS)

    def refuse_read_only(self, what: str, *, doing: str = "a rebuild") -> None:
        """``Forbidden`` (exit 7) before ``doing`` (a rebuild, issuing a token) writes
        ``what`` (``the availability table``) if the store's login may write nothing here: a
        SQLite file this user may only read, whose authority holds no role. Its first write
        failed as the store unavailable (rev39: exit 6, "attempt to write a readonly
        database", which tells a script to retry). And on a store whose guards name another
        role than its owner (``Authority.barred``): as every writing command, until ``custody
        init`` installs them again."""
        authority = self._store.authority()
        authority.refuse_if_barred()
        if not authority.roles:
            msg = (
                f"store login {authority.login} may write nothing: {doing} writes {what}; run "
                "it as a user who may write the store's file, its -wal and -shm, and its "
                "directory"
            )
            raise Forbidden(msg)

    def lag(self, position: int) -> int:
        """How many events come after ``position``."""
        return self._views.count_after(position)

    def read(self, after: int, limit: int) -> list[LoggedEvent]:
        """Up to ``limit`` events after position ``after`` (each decoded when asked), in log
        order."""
        with self._views.reading() as cursor:
            return _logged(cursor.notifications(after, limit))

    def checkpoints(self) -> dict[str, int]:
        """Every installed read model's checkpoint (its position), by name (empty before the
        first)."""
        with self._views.reading() as cursor:
            return _checkpoints(cursor, self.dialect)

    def standing(self, name: str, table: str) -> tuple[int | None, int]:
        """The read model's checkpoint (None if not installed) and the log's head, read in one
        transaction: what a reader asks before every answer, so it must be cheap.
        ``ReadModelDamaged`` when the read model is installed but its ``table`` is missing
        (asked in the same statement as the position: no extra round trip)."""
        with self._views.reading() as cursor:
            head = cursor.head()
            # The table, once made, is never dropped: asked once per store, not per answer.
            if not self._views.positions_made:
                if not _has_checkpoints(cursor, self.dialect):
                    return None, head
                self._views.positions_made = True
            rows = cursor.query(_STANDING[self.dialect], (table, name))
        if not rows:
            return None, head
        if not rows[0]["present"]:
            raise ReadModelDamaged(name, f"its table {table} is missing")
        if type(position := rows[0]["position"]) is not int:
            raise unreadable_position(name, position)
        return position, head

    @property
    def checked_layouts(self) -> set[str]:
        """The read models' tables found, once in this process, with the columns their read
        model writes (a table is never altered but by hand or by an older custody)."""
        return self._views.layouts_checked

    def columns(self, table: str) -> list[str]:
        """The table's columns in their order; empty when there is no such table."""
        with self._views.reading() as cursor:
            return cursor.table_columns(table)

    def indexes(self, table: str) -> list[str]:
        """The names of the table's indexes (its key's aside)."""
        with self._views.reading() as cursor:
            return cursor.table_indexes(table)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[FeedSnapshot]:
        """Reads that all see one moment of the read models' database, whatever commits
        meanwhile (checkpoints, rows and the log agree with each other)."""
        with self._views.snapshot() as cursor:
            yield FeedSnapshot(cursor, self._store)

    def install(self, name: str, table: str, ddl: Sequence[str]) -> bool:
        """Create a read model's table (``ddl`` makes ``table``) and its checkpoint (at 0) in
        one transaction, unless it is installed already; returns whether it was installed
        now. Safe to run from many processes at once. ``PositionLost`` when the table is
        there without its checkpoint (nothing is made)."""
        if name in self.checkpoints():
            return False
        postgres = self.dialect == "postgresql"
        with self._views.transaction() as cursor:
            if postgres:
                cursor.execute(_INSTALL_LOCK)
            cursor.execute(_CHECKPOINTS_DDL)
        # On SQLite a transaction must write first, or it may fail at once beside a writer.
        with self._views.transaction() as cursor:
            if postgres:
                cursor.execute(_INSTALL_LOCK)
            claimed = cursor.query(
                f"INSERT INTO {CHECKPOINTS_TABLE} (name, position) VALUES (?, 0) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name,),
            )
            if not claimed:
                return False
            if cursor.table_columns(table):  # rows there, their position unknown
                raise PositionLost(name, table)
            for statement in ddl:
                cursor.execute(statement)
        return True

    @contextlib.contextmanager
    def transaction(self) -> Iterator[FeedTransaction]:
        """One read-write transaction on the read models' database (see the module's doc)."""
        with self._views.transaction() as cursor:
            yield FeedTransaction(cursor, self.dialect)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read model's tables, as dicts, in one read-only transaction."""
        with self._views.reading() as cursor:
            return cursor.query(statement, params)

    def read_frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """A query's rows as a pandas DataFrame: read with ``pandas.read_sql`` from a sqlite3
        connection on SQLite, and from PostgreSQL through ADBC as Arrow columns."""
        return self._views.read_frame(statement, params)

    def frames(self) -> contextlib.AbstractContextManager[FrameReader]:
        """``read_frame`` for a block of several reads (an export's pages): on PostgreSQL one
        ADBC connection for them all instead of one each; every read its own transaction."""
        return self._views.frames()

    def wakeups(self, interval: float, announce: Announce | None = None) -> Wakeups:
        """Wake-ups for a loop that keeps read models current: ``wait`` returns when events
        may have been committed and at the latest every ``interval`` seconds. PostgreSQL
        pushes (LISTEN/NOTIFY), falling back to polling and reconnecting when its listening
        connection dies; SQLite polls. The connection, if any, is made now,
        so a catch-up right after this misses nothing. ``announce`` hears one line at the
        start and at each switch between push and polling. Close it (a context manager)."""
        return self._views.wakeups(interval, announce or _unheard)

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Hold the lock ``name`` (one holder across every process on the store) for a block;
        ``NotAllowed`` at once if it is held. A holder that dies releases it."""
        return self._views.exclusive(name)


def _unheard(line: str) -> None:
    pass


# The checkpoint and whether the read model's table exists, in one statement.
_STANDING = {
    "postgresql": f"SELECT position, to_regclass(?) IS NOT NULL AS present "
    f"FROM {CHECKPOINTS_TABLE} WHERE name = ?",
    "sqlite": "SELECT position, EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' "
    f"AND name = ?) AS present FROM {CHECKPOINTS_TABLE} WHERE name = ?",
}


def _checkpoints(cursor: ViewCursor, dialect: str) -> dict[str, int]:
    """The checkpoints whose position is one (an integer), by name. A position is never
    converted: ``int`` made ``'abc'`` an internal error of every read and ``1.5`` a position
    of 1 (rev36)."""
    return {n: p for n, p in _positions(cursor, dialect).items() if type(p) is int}


def _positions(cursor: ViewCursor, dialect: str) -> dict[str, object]:
    """Every checkpoint's position as stored, by name."""
    if not _has_checkpoints(cursor, dialect):
        return {}
    rows = cursor.query(f"SELECT name, position FROM {CHECKPOINTS_TABLE} ORDER BY name")
    return {str(r["name"]): r["position"] for r in rows}


def _has_checkpoints(cursor: ViewCursor, dialect: str) -> bool:
    if dialect == "postgresql":
        rows = cursor.query("SELECT to_regclass(?) IS NOT NULL AS found", (CHECKPOINTS_TABLE,))
    else:
        rows = cursor.query(
            "SELECT count(*) > 0 AS found FROM sqlite_master WHERE type = 'table' AND name = ?",
            (CHECKPOINTS_TABLE,),
        )
    return bool(rows[0]["found"])
