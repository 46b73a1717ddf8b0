"""The SQL store: SQLite (the embedded default) and PostgreSQL (many hosts), one schema.

``query``/``execute`` take ``?`` placeholders on both databases. The schema is created in one
explicit step (``initialise``), never by workers racing at start-up.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger._domain.acting import ALL_ROLES, Forbidden
from ledger._domain.errors import InvalidInput, StoreUnavailable
from ledger._domain.model import stream_id
from ledger._domain.row import Availability
from ledger._stores.access import Tables, authority_of
from ledger._stores.clock import OffsetClock
from ledger._stores.connections import postgres_connection, read_cursor
from ledger._stores.migrations import (
    ORIGINS_TABLE,
    RECORDED_VERSION,
    SCHEMA_TABLE,
    SCHEMA_VERSION,
    create_schema,
    guard_problems,
    table_exists,
)
from ledger._stores.recorders import (
    AVAILABILITY_COLUMNS,
    AVAILABILITY_TABLE,
    COMMANDS_TABLE,
    DIRECTORIES_TABLE,
    StatementKeepingPool,
    availability_params,
    in_directory_order,
    overlapping_sql,
    read_row,
    split_rows,
    to_db,
    upsert_availability_sql,
)
from ledger._stores.sessions import SESSIONS_TABLE
from ledger._stores.settings import APPLICATION_NAME, StoreSettings
from ledger._stores.settled import Unsettled
from ledger._stores.sql_views import SqlViews
from ledger._stores.store import (
    LedgerApplication,
    Store,
    store_errors,
    store_failure,
)
from ledger._stores.tokens import TOKENS_TABLE
from ledger.ports import Authority, CommandRecord, DirectoryRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RECORDERS = {
    "sqlite": "ledger._stores.recorders:SQLiteLedgerRecorder",
    "postgresql": "ledger._stores.postgres:PostgresLedgerRecorder",
}

# Any fixed number: the advisory lock every `custody init` on one database takes, so that
# concurrent inits create the schema one after another instead of failing on each other.
_SCHEMA_LOCK_KEY = 0x637573746F6479  # "custody"
# What a SQLite store read-only here may be: its -wal and -shm too, another user's (rev39: the
# line named only the file and its directory, both writable).
READ_ONLY_HERE = "the file, its -wal or -shm, or its directory"


@contextmanager
def _postgres_session(settings: StoreSettings, *, schema_lock: bool) -> Iterator[None]:
    """One direct connection first, so a refused or unknown server fails at once; held (with
    the schema lock, if asked) while the store is set up."""
    with postgres_connection(settings) as conn:
        _refuse_encoding(settings, conn.info.parameter_status("server_encoding"))
        (schemas,) = conn.execute("SELECT current_schemas(false)").fetchone() or ([],)
        _refuse_search_path(settings, schemas)
        if schema_lock:
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_KEY,))
            # Before the library's recorder creates a table: a newer custody's store is its own.
            (found,) = conn.execute("SELECT to_regclass(%s)", (SCHEMA_TABLE,)).fetchone() or (None,)
            if found is not None:
                row = conn.execute(RECORDED_VERSION).fetchone()
                _refuse_newer(settings, int(row[0]) if row else None)
            _refuse_split(settings, schemas)
        yield


def _refuse_encoding(settings: StoreSettings, encoding: str | None) -> None:
    """A PostgreSQL database that is not UTF8 is refused, by ``init`` as by every command,
    before anything is written: its text columns (the availability row, the read models) could
    not keep every text the ledger takes, so an accepted emoji in a URL made every later read
    of the read models fail, for good (the event that held it cannot be removed)."""
    if encoding != "UTF8":
        found = encoding or "an unknown"
        msg = (
            f"{settings.describe()} is a {found} database; custody keeps texts of every "
            "language and needs a UTF8 one (CREATE DATABASE ... ENCODING 'UTF8' "
            "TEMPLATE template0)"
        )
        raise InvalidInput("store", msg)


def _refuse_search_path(settings: StoreSettings, schemas: list[str]) -> None:
    """A login whose search path leaves out the schema public is refused, before anything is
    made: the library keeps the events there (its default schema) while custody's own tables
    and its look-ups of the events follow the search path, so init made the events and then
    failed with a traceback (IndexError: a review found it)."""
    if "public" not in schemas:
        shown = ", ".join(schemas) or "no schema that exists"
        msg = (
            f"{settings.describe()}: this login's search_path holds {shown} and not public, "
            f"where custody keeps its tables ({_public_first(settings)})"
        )
        raise InvalidInput("store", msg)


def _refuse_split(settings: StoreSettings, schemas: list[str]) -> None:
    """A store is not made, nor initialised again, where this login makes new tables in
    another schema than public, where the library keeps the events and custody its tables
    (``CREATE SCHEMA AUTHORIZATION`` a login, with the default search_path ``"$user",
    public``): a new store would be split between the two, one the logins ``custody access
    grant`` makes could not find (a review found every granted login told "not initialised");
    and an init of a store made before made a second set of custody's tables and guard
    functions there, pointing the events' triggers at them, after which every worker's checkout
    failed (rev32, a review of the guard check). A store split so already is refused too: its
    second ``custody_schema`` comes first on the login's path (a review of the first fix)."""
    if schemas[:1] != ["public"]:
        msg = (
            f"{settings.describe()}: this login makes new tables in {schemas[0]}, before "
            "public, where custody keeps its tables; an init here would split the store "
            f"between the two ({_public_first(settings)}, then custody init)"
        )
        raise InvalidInput("store", msg)


def _public_first(settings: StoreSettings) -> str:
    """What puts custody's schema first for the login: ``"$user", public`` would not, where
    the login has a schema of its own name (``_refuse_split``)."""
    return f"ALTER ROLE {settings.user or 'LOGIN'} SET search_path = public"


def _refuse_newer(settings: StoreSettings, version: int | None) -> None:
    """A store a newer custody migrated is refused by this one, which would not know its
    tables (``init`` included: it would otherwise write this custody's layout into it)."""
    if version is not None and version > SCHEMA_VERSION:
        where = f"store {settings.describe()}"
        msg = f"{where} has schema {version}, newer than this custody's {SCHEMA_VERSION}"
        raise StoreUnavailable(f"{msg}: upgrade custody")


def _no_directory(settings: StoreSettings) -> str:
    """What a SQLite store whose directory is missing says: that directory, and for a symlink
    the path it points to."""
    path = settings.sqlite_file()
    target = settings.sqlite_real()
    msg = f"store {settings.describe()} unavailable: directory {target.parent} does not exist"
    return msg + (f" ({path} is a symlink to {target})" if path.is_symlink() else "")


def _refuse_unreachable(settings: StoreSettings) -> None:
    """``StoreUnavailable`` for a SQLite path behind a directory this user may not enter
    (another user's 0700 home): looking at the file at all is denied, which Python's
    ``Path.is_dir`` and ``exists`` raise rather than answer (rev29: "internal error:
    PermissionError", exit 1, from every command and the API's first use)."""
    try:
        found = os.stat(settings.sqlite_opened())
    except PermissionError:
        msg = (
            f"cannot reach {settings.path} (permission denied: this user may not enter a "
            "directory on its path)"
        )
        raise StoreUnavailable(f"store {settings.describe()} unavailable: {msg}") from None
    except OSError:  # missing, or not a directory on the way: said where it is looked at
        return
    if stat.S_ISREG(found.st_mode) and not os.access(settings.sqlite_opened(), os.R_OK):
        # rev29: SQLite says only "unable to open database file".
        msg = f"cannot read {settings.path} (permission denied: this user may not read it)"
        raise StoreUnavailable(f"store {settings.describe()} unavailable: {msg}")


def _sqlite_tables(settings: StoreSettings) -> tuple[set[str], int | None]:
    """The tables an existing SQLite file holds and the schema version custody recorded in it
    (None if none), read without writing a byte to it. A file in
    WAL mode gets its ``-wal`` and ``-shm`` files from any connection that opens it, and a
    read-only connection cannot remove them when it closes: a read-write one, only reading,
    does (and has nothing to write back, as no ``-wal`` file, so no uncommitted page, was
    there before it). A file that may not be written, with nothing beside it, is read as
    immutable, which makes no file beside it either (with no ``-wal`` or ``-journal`` there,
    the file holds every committed page). Read-only, as any SQLite reader, where a
    ``-journal`` file is there (a read-write connection would roll a hot journal back into
    the file) or a ``-wal`` file (another connection's, or its application's that died: the
    pages in it are read, and a ``-shm`` missing beside it is made, as any reader makes it).
    Only names are looked at: opening the file itself from Python and closing it would drop
    every lock this process's SQLite connections hold on it (POSIX locks are per process)."""
    path = settings.sqlite_real()
    beside = settings.sqlite_journal_beside()
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
    mode = "ro" if beside else "rw" if writable else "ro&immutable=1"
    uri = f"file:{quote(os.fsencode(path))}?mode={mode}"
    try:
        with closing(sqlite3.connect(uri, uri=True, timeout=settings.timeout)) as conn:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            tables = {name for (name,) in rows}
            foreign = ", ".join(sorted(_foreign_tables(conn, tables)))
            if foreign:  # another application's, whatever they hold and whatever else is here
                msg = f"it holds other tables: {foreign}, not custody's"
                raise InvalidInput("store", f"{settings.describe()} is not a custody store ({msg})")
            if SCHEMA_TABLE not in tables:
                return _marked(conn, tables), None  # another application's, if they hold rows
            row = conn.execute(RECORDED_VERSION).fetchone()
            if row is None:  # the schema's table made, its version not yet: an init cut short?
                tables = _marked(conn, tables)
            return tables, int(row[0]) if row else None
    except sqlite3.OperationalError as e:  # held by another connection: busy, not junk
        if not writable and (why := settings.sqlite_unreadable_here()) is not None:
            raise Forbidden(why) from None  # what SQLite cannot say ("unable to open", rev29)
        raise store_failure(settings, e) from None
    except sqlite3.DatabaseError as e:
        if "malformed" in str(e):  # an SQLite file, damaged: as a damaged page is told (rev29)
            raise StoreUnavailable(
                f"store {settings.describe()} unavailable: {e} (the file is damaged: restore "
                "it from a backup)"
            ) from None
        raise InvalidInput(
            "store", f"{settings.describe()} is not an SQLite database: {e}"
        ) from None


def _foreign_tables(conn: sqlite3.Connection, tables: set[str]) -> set[str]:
    """Those of ``tables`` that bear a name custody (or the library, for it) gives a table but
    lack its columns: another application's. rev38: another application's empty
    ``stored_events (id, payload)`` was taken for what an init cut short had left, custody's
    tables were added beside it, and every command after failed ("no such column"); a
    ``custody_schema`` of other columns made every command fail ("no such column: version",
    exit 6)."""
    found = set()
    for table in tables & _SQLITE_COLUMNS.keys():
        columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not _SQLITE_COLUMNS[table] <= columns:
            found.add(table)
    return found


def _marked(conn: sqlite3.Connection, tables: set[str]) -> set[str]:
    """``tables`` with each of ``_UNFINISHED`` that holds rows marked so (another
    application's, or a store's with events): only while empty may they be an init's."""
    held = {
        t for t in _UNFINISHED & tables if conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
    }
    return tables - held | {f"{t} (holding rows)" for t in held}


# The columns of the library's events and snapshots tables, as it makes them on either store.
_LIBRARY_COLUMNS = {"originator_id", "originator_version", "topic", "state"}
# The columns custody's tables on PostgreSQL have had in every version (the availability and
# events tables before ``custody_schema`` recorded a version too): a table of custody's name
# without them is another application's.
_CUSTODYS = {
    AVAILABILITY_TABLE: {"profile_id", "state"},
    SCHEMA_TABLE: {"id", "version"},
    f"{APPLICATION_NAME}_events": _LIBRARY_COLUMNS,
}
# On SQLite: the tables of custody's (or the library's) names that every version of a custody
# store held, and the columns each has had since.
_SQLITE_COLUMNS = {
    AVAILABILITY_TABLE: _CUSTODYS[AVAILABILITY_TABLE],
    SCHEMA_TABLE: _CUSTODYS[SCHEMA_TABLE],
    "stored_events": _LIBRARY_COLUMNS,
    "stored_snapshots": _LIBRARY_COLUMNS,
}
# What the library's recorders make before custody's own tables (the application is built
# first): all an init that was cut short, or is running beside this one, may have left. Only
# while empty (``_sqlite_tables`` names a table that holds rows apart).
_UNFINISHED = frozenset({"stored_events", "stored_snapshots"})
# Every table an init makes before it records the schema's version (``create_schema``).
_CUT_SHORT = _UNFINISHED | {
    SCHEMA_TABLE,
    AVAILABILITY_TABLE,
    COMMANDS_TABLE,
    DIRECTORIES_TABLE,
    ORIGINS_TABLE,
    TOKENS_TABLE,
    SESSIONS_TABLE,
}


class SqlStore(Store):
    """A store on SQLite or PostgreSQL."""

    def __init__(self, settings: StoreSettings, app: LedgerApplication) -> None:
        super().__init__(settings, app)
        self._pg = settings.kind == "postgresql"
        self._authority: Authority | None = None
        self.read_only = False  # a SQLite file this process may only read (``open``)
        # PostgreSQL's clock, read locally with a measured offset (``ledger._stores.clock``);
        # a test may replace it with one reading a skewed local clock.
        self.clock = OffsetClock(self.server_time)
        # The store as another process must name it to open this very store: a SQLite path
        # made absolute against the directory it was opened in, its symlinks resolved as the
        # system resolves them before any ".." (rev30: verify's snapshot
        # check, run in a child beside it, opened the relative path in a directory the
        # process had since moved to, another file, and its answer was taken).
        self.settings_for_another_process = (
            settings.model_copy(update={"path": str(settings.sqlite_real())})
            if settings.kind == "sqlite"
            else settings
        )

    def file_replaced(self) -> bool:
        """Whether the SQLite file at the store's path is no longer the one this store opened
        (deleted, or replaced by a restore, since): one ``os.stat``. False on PostgreSQL."""
        pool = getattr(getattr(self.app.recorder, "datastore", None), "pool", None)
        return isinstance(pool, StatementKeepingPool) and pool.replaced()

    @classmethod
    def open(cls, settings: StoreSettings, *, create: bool = False) -> SqlStore:
        """Open the store; ``create`` builds the schema (idempotent) before anything else."""
        env = settings.environment(create_table=create)
        env["APPLICATION_RECORDER_TOPIC"] = _RECORDERS[settings.kind]
        env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.cached_profiles)
        read_only = settings.kind == "sqlite" and not create and settings.sqlite_unwritable()
        # Where the file is or would be: a symlink's target's directory (rev29: a link into a
        # missing directory was called read-only, exit 7)
        sqlite_here = settings.kind == "sqlite" and settings.sqlite_real().parent.is_dir()
        if create and sqlite_here and settings.sqlite_unwritable():  # init, register: exit 7
            msg = f"{settings.describe()} is read-only here ({READ_ONLY_HERE})"
            raise Forbidden(f"{msg}: a store cannot be made or written there")
        if read_only:  # opened for reads: see ``authority``
            if (unreadable := settings.sqlite_unreadable_here()) is not None:
                raise Forbidden(unreadable)
            env["SQLITE_DBNAME"] = settings.sqlite_read_uri()
        with store_errors(settings):
            if settings.kind == "sqlite" and not sqlite_here:
                raise StoreUnavailable(_no_directory(settings))
            with ExitStack() as setting_up:
                if settings.kind == "postgresql":
                    setting_up.enter_context(_postgres_session(settings, schema_lock=create))
                store = cls(settings, LedgerApplication(env=env))
                store.read_only = read_only
                if create:
                    create_schema(store)
        return store

    @classmethod
    def connect(cls, settings: StoreSettings, *, create: bool = True) -> SqlStore:
        """Open an initialised store: a new SQLite file is initialised here (if ``create``);
        an uninitialised PostgreSQL is refused, so that workers never race to create tables."""
        if settings.kind == "sqlite":
            fresh = cls._sqlite_is_fresh(settings)
            if fresh:
                if not create:
                    msg = f"no store at {settings.path}; custody init or register makes one"
                    raise StoreUnavailable(f"store {settings.describe()} unavailable: {msg}")
                return cls.open(settings, create=True)
        store = cls.open(settings)
        try:
            version = store.schema_version()
        except StoreUnavailable:
            store.close()
            raise
        if version == SCHEMA_VERSION:
            return store
        store.close()
        where = f"store {settings.describe()}"
        if version is None:
            raise StoreUnavailable(f"{where} is not initialised: run custody init")
        _refuse_newer(settings, version)
        msg = f"{where} has schema {version}, this custody needs {SCHEMA_VERSION}"
        raise StoreUnavailable(f"{msg}: run custody init to migrate it")

    @classmethod
    def initialise(cls, settings: StoreSettings) -> SqlStore:
        """Create or migrate the schema (idempotent, safe to run concurrently) and open."""
        if settings.kind == "sqlite":
            cls._sqlite_is_fresh(settings)  # refuses another application's database
        else:
            cls._refuse_foreign_tables(settings)
        return cls.open(settings, create=True)

    @classmethod
    def _refuse_foreign_tables(cls, settings: StoreSettings) -> None:
        """``InvalidInput`` for a PostgreSQL database that holds a table of custody's name
        with other columns: creating custody's tables beside it would leave them there and
        then fail on it (a ``custody_schema`` of other columns, before its version is read:
        rev38, "column version does not exist", exit 6). Another application's tables of
        other names may share the database."""
        store = cls.open(settings)
        try:
            # From the catalog, which every login may read (information_schema shows only
            # the tables the login has a privilege on), each table where custody makes it:
            # its own in the login's schema, the library's events table in public.
            rows = store.query(
                "SELECT c.relname AS t, a.attname AS c FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_attribute a "
                "ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
                "WHERE (c.relname IN (?, ?) AND n.nspname = current_schema()) "
                "OR (c.relname = ? AND n.nspname = 'public')",
                tuple(_CUSTODYS),
            )
        finally:
            store.close()
        found: dict[str, set[str]] = {}
        for row in rows:
            found.setdefault(str(row["t"]), set()).add(str(row["c"] or ""))
        foreign = sorted(t for t, columns in found.items() if not _CUSTODYS[t] <= columns)
        if foreign:
            msg = (
                f"{settings.describe()} holds a table {', '.join(foreign)} that is not "
                "custody's: give custody a database of its own"
            )
            raise InvalidInput("store", msg)

    @staticmethod
    def _sqlite_is_fresh(settings: StoreSettings) -> bool:
        """True for a missing or empty file (a new store may be made there); False for a
        custody store; ``InvalidInput`` for another application's database."""
        path = settings.sqlite_file()
        _refuse_unreachable(settings)
        if path.is_dir():
            raise InvalidInput("store", f"{settings.describe()} is a directory: give a file path")
        if not path.exists() or (path.is_file() and path.stat().st_size == 0):
            return True
        tables, version = _sqlite_tables(settings)
        _refuse_newer(settings, version)
        if version is None and tables <= _CUT_SHORT:
            # What an init cut short made (a full disk: the schema is made over several
            # commits), no event in it: made whole here. Every later command, the register
            # that made it included, said "not initialised: run custody init" (rev25).
            return True
        if tables & {SCHEMA_TABLE, AVAILABILITY_TABLE}:  # custody's, perhaps of an older schema
            return False
        if not tables - _UNFINISHED:  # nothing, or what an init cut short had made, empty
            return True
        shown = ", ".join(sorted(tables)[:3])
        msg = f"{settings.describe()} is not a custody store (it holds other tables: {shown})"
        raise InvalidInput("store", msg)

    def schema_version(self) -> int | None:
        """The schema version ``custody init`` recorded, or None if it never ran here."""
        if not table_exists(self, SCHEMA_TABLE):
            return None
        rows = self.query(RECORDED_VERSION)
        return int(rows[0]["version"]) if rows else None

    @property
    def tables(self) -> Tables:
        """The tables whose privileges are not a cache's (``ledger._stores.access``)."""
        snapshots = self.app.snapshots
        return Tables(
            events=self.app.recorder.events_table_name,  # type: ignore[attr-defined]
            snapshots=snapshots.recorder.events_table_name if snapshots else "",  # type: ignore[attr-defined]
            directories=DIRECTORIES_TABLE,
            read_only=frozenset({SCHEMA_TABLE, ORIGINS_TABLE, TOKENS_TABLE}),
            availability=AVAILABILITY_TABLE,
            commands=COMMANDS_TABLE,
            sessions=SESSIONS_TABLE,
        )

    def authority(self, *, fresh: bool = False) -> Authority:
        """Every role on SQLite (the file's permissions are the boundary); on PostgreSQL the
        login's custody roles, or every role for the owner of the events table. Read once; a
        login that may not write snapshots takes none. A barred one (a restored store) is read
        again at the next call: once the owner's ``init`` installed the guards again, a process
        opened before it (a server, a worker, the sweeper) records without a restart (rev40
        review: it stayed refused, told to run the init that had run). Only a barred store
        pays the query, and a call with ``fresh``: a role refusal is answered on the roles the
        login holds now, never on those it held when this process first asked (rev43: a
        service whose login was given its roles back refused as if it had not been, until
        restarted; one whose roles were taken passed them and met the database's refusal)."""
        if fresh or self._authority is None or self._authority.barred:
            if not self._pg and self.read_only:
                # The file's permissions are the boundary: this process may only read it. So
                # a command is refused at the door, and the read models are read as they stand.
                login = f"{self.settings.describe()} (read-only here: {READ_ONLY_HERE})"
                self._authority = Authority(login, frozenset())
            elif not self._pg:
                self._authority = Authority(self.settings.describe(), ALL_ROLES)
            else:
                tables = self.tables
                with store_errors(self.settings):
                    found, snapshots = authority_of(self, tables.events, tables.snapshots)
                self._authority = found
                self.app.takes_snapshots = snapshots
        return self._authority

    def now(self) -> datetime:
        """PostgreSQL's clock on a shared store (within ``self.clock.error_bound()``, without a
        query per call), the local clock on SQLite (embedded: one host's clock)."""
        if not self._pg:
            return datetime.now(UTC)
        return self.clock.now()

    def doubt_clock(self) -> None:
        if self._pg:
            self.clock.forget()

    def latest_by(self, in_time: float) -> float | None:
        return self.clock.latest(in_time) if self._pg else None

    def server_time(self) -> datetime:
        """The database server's clock, read now (one query). Read as the microseconds since
        the epoch, not as a ``timestamptz``: psycopg parses one only in the ISO ``DateStyle``,
        which a database, a role or ``PGDATESTYLE`` may set otherwise (a store set to
        ``'SQL, DMY'`` failed every command on its clock)."""
        rows = self.query(
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint AS micros"
        )
        return _EPOCH + timedelta(microseconds=int(rows[0]["micros"]))

    # -- the availability table -------------------------------------------------------------

    def command_record(self, command_id: str) -> CommandRecord | None:
        rows = self.query(
            f"SELECT profile_id, version, command FROM {COMMANDS_TABLE} WHERE command_id = ?",
            (command_id,),
        )
        if not rows:
            return None
        row = rows[0]  # every row has its version: written with its events, or backfilled
        return CommandRecord(str(row["profile_id"]), int(row["version"]), str(row["command"]))

    def record_sweep(self, command_id: str, command: str) -> bool:
        # A plain insert: the id's key refuses it if any command holds the id, whatever the
        # login (a look-up first could miss one taken meanwhile).
        try:
            self.execute(
                f"INSERT INTO {COMMANDS_TABLE} (command_id, profile_id, version, command) "
                "VALUES (?, '', 0, ?)",
                (command_id, command),
            )
        except IntegrityError:
            return False
        return True

    def directories(self) -> list[DirectoryRecord]:
        # Ordered here, by code point, not by the database's collation (in_directory_order).
        rows = self.query(f"SELECT profile_id, user_data_dir FROM {DIRECTORIES_TABLE}")
        found = sorted((str(r["profile_id"]), str(r["user_data_dir"])) for r in rows)
        return [DirectoryRecord(*row) for row in found]

    def overlapping(self, directory: str) -> list[DirectoryRecord]:
        rows = self.query(*overlapping_sql("?", directory))
        found = [(str(r["profile_id"]), str(r["user_data_dir"])) for r in rows]
        return [DirectoryRecord(*row) for row in in_directory_order(found)]

    def scan_availability(self) -> tuple[list[Availability], dict[str, str]]:
        columns = ", ".join(AVAILABILITY_COLUMNS)
        return split_rows(self.query(f"SELECT {columns} FROM {AVAILABILITY_TABLE}"))

    def availability_row(self, profile_id: str) -> Availability | str | None:
        columns = ", ".join(AVAILABILITY_COLUMNS)
        rows = self.query(
            f"SELECT {columns} FROM {AVAILABILITY_TABLE} WHERE profile_id = ?", (profile_id,)
        )
        return read_row(rows[0]) if rows else None

    def replace_availability(self, row: Availability) -> bool:
        # One statement, so SQLite takes its write lock before it reads the stream's version
        # (a read that upgrades to a write would fail at once beside a live writer).
        events = self.app.recorder.events_table_name  # type: ignore[attr-defined]
        stream = stream_id(row.profile_id)
        latest = f"(SELECT max(originator_version) FROM {events} WHERE originator_id = ?) = ?"
        overwrite = True
        with store_errors(self.settings), self._transaction(commit=True) as cursor:
            if self._pg:
                # An append writes the row before its events: once the row is locked here, an
                # append that wrote it has committed (the next statement sees its events and
                # writes nothing) and a later one waits, then writes its own. With no row to
                # lock, one an append inserts meanwhile is newer than this and stays.
                cursor.execute(
                    f"SELECT 1 FROM {AVAILABILITY_TABLE} WHERE profile_id = %s FOR UPDATE",
                    (row.profile_id,),
                )
                overwrite = bool(cursor.fetchall())
            cursor.execute(
                self._sql(upsert_availability_sql("?", where=latest, overwrite=overwrite)),
                (*availability_params(row), stream if self._pg else stream.hex, row.version),
            )
            # The library wraps SQLite's cursor (without its rowcount); psycopg's is bare.
            return bool(cursor.rowcount if self._pg else cursor.sqlite_cursor.rowcount)

    def overdue(self, now: datetime) -> list[str]:
        rows = self.query(
            f"SELECT profile_id FROM {AVAILABILITY_TABLE} "
            "WHERE state = 'stale' OR (state = 'leased' AND until < ?) ORDER BY profile_id",
            (to_db(now),),
        )
        return [row["profile_id"] for row in rows]

    def write_availability(self, rows: list[Availability]) -> None:
        if rows:
            self.executemany(upsert_availability_sql("?"), [availability_params(r) for r in rows])

    def delete_availability(self, profile_id: str) -> None:
        self.execute(f"DELETE FROM {AVAILABILITY_TABLE} WHERE profile_id = ?", (profile_id,))

    @functools.cached_property
    def views(self) -> SqlViews:
        events = self.app.recorder.events_table_name  # type: ignore[attr-defined]
        datastore = self.app.recorder.datastore  # type: ignore[attr-defined]
        channel = getattr(self.app.recorder, "channel_name", "")  # PostgreSQL's NOTIFY channel
        return SqlViews(self.settings, datastore, events, channel)

    # -- the log, for audits --------------------------------------------------------------

    def logged_events(
        self, after: int | None, limit: int
    ) -> list[tuple[int, str, Any, str, bytes]]:
        """Up to ``limit`` stored events after position ``after`` (None: from the first row,
        whatever its position: a row put at or below 0 by hand is read as any other), in log
        order, as stored: (position, stream id as hex, version in its stream, event type,
        state bytes). The version as stored: an SQLite cell edited to 2.5 or text is not made
        a whole number here, so that the walk names it; so is a stream id or event type an
        SQLite cell holds as a blob (given as bytes) and a state it holds as text (given as
        text), which no read takes as custody wrote it. ``StoreUnavailable`` when a gap an
        append in progress may fill stays open past the store's timeout: the audit reads the
        whole log or says it could not (``ledger._stores.settled``)."""
        # PostgreSQL spells the stream id in hex itself: a uuid made per row only to be
        # written out again costs more than reading its bytes. SQLite gives its texts as
        # bytes: a cell a hand left not UTF-8 is for the walk to name, not for the driver.
        # The cast reads a blob and a text alike, so each row also says which of its cells
        # is of the other kind (0: none), which an INSERT may give any cell (rev38: a state
        # inserted as text, or a stream id as a blob, walked as custody's own while every
        # read that met it failed).
        if self._pg:
            columns = "encode(uuid_send(originator_id), 'hex'), originator_version, topic, state"
        else:
            columns = (
                "CAST(originator_id AS BLOB), originator_version, CAST(topic AS BLOB), "
                "CAST(state AS BLOB), (typeof(originator_id) = 'blob') "
                "+ 2 * (typeof(topic) = 'blob') + 4 * (typeof(state) = 'text')"
            )
        try:
            with self.views.reading() as cursor:
                rows = cursor.log_tuples(columns, after, limit, strict=True)
        except Unsettled as e:
            msg = (
                f"store {self.settings.describe()} busy: the log cannot be read past position "
                f"{e.after} while transaction(s) {', '.join(map(str, e.waiting))} append to it "
                f"(open for over {self.settings.timeout} s); try again once they end"
            )
            raise StoreUnavailable(msg, busy=True) from None
        if self._pg:
            return [(int(p), _text(o), v, _text(t), _stored_bytes(s)) for p, o, v, t, s in rows]
        return [
            (int(p), _text(o), v, _text(t), _stored_bytes(s)) if not kinds
            else _as_stored(int(p), o, v, t, s, kinds)
            for p, o, v, t, s, kinds in rows
        ]  # fmt: skip

    def stored_snapshots(
        self, after: tuple[str, Any] | None, limit: int
    ) -> list[tuple[str, Any, str, bytes]]:
        """Up to ``limit`` stored snapshots after (stream id as hex, version) ``after`` (None:
        from the first), ordered by stream and version, as stored: (stream id as hex, version,
        topic, state bytes). The version as stored (an SQLite cell a hand made 2.5, text or
        NULL stays so: the check names it, and the next page starts past it). On SQLite only
        the rows whose stream id is a text, as custody stores it (``mistyped_snapshots``: the
        others), each page keyed by that text's own bytes: whatever the cells hold, a page
        starts past the one before."""
        table = self.tables.snapshots
        if not table:
            return []
        # rev38: a stream id cast to a blob was read back as the text "b'...'"; SQLite sorts
        # every blob after every text, so the next page (past that text) began at it again,
        # for ever. A text that is no UTF-8 is read as bytes, and asked for as them.
        stream_id = "originator_id" if self._pg else "CAST(originator_id AS BLOB)"
        key_sql = "?" if self._pg else "CAST(? AS TEXT)"
        where = "" if self._pg else "WHERE typeof(originator_id) = 'text' "
        params: tuple[object, ...] = ()
        if after is not None:
            stream, version = after
            key = UUID(stream) if self._pg else stream.encode("utf-8", "surrogateescape")
            where += "AND (" if where else "WHERE ("
            where += (
                f"originator_id > {key_sql} OR (originator_id = {key_sql} "
                "AND originator_version > ?)) "
            )
            # Past a NULL version: every other value sorts after it (none is "> NULL").
            params = (key, key, -(2**63) if version is None else version)
        with self.views.reading() as cursor:
            rows = cursor.tuples(
                f"SELECT {stream_id}, originator_version, topic, state FROM {table} {where}"
                "ORDER BY originator_id, originator_version LIMIT ?",
                (*params, limit),
            )
        hexed = _stream_hex if self._pg else _text
        return [(hexed(o), v, str(t), _stored_bytes(s)) for o, v, t, s in rows]

    def mistyped_snapshots(self) -> list[tuple[str, str, Any]]:
        """Each stored snapshot whose stream id is not a text (SQLite keeps what a hand gives
        it: a blob, a number, NULL; PostgreSQL's is a uuid), as (its kind, the id as SQL
        spells it, the version as stored), in table order: no load reads it, and
        ``stored_snapshots`` leaves it out. One pass over the snapshots' table; none on
        PostgreSQL."""
        table = self.tables.snapshots
        if self._pg or not table:
            return []
        with self.views.reading() as cursor:
            rows = cursor.tuples(
                f"SELECT typeof(originator_id), quote(originator_id), originator_version "
                f"FROM {table} WHERE typeof(originator_id) != 'text' "
                "ORDER BY originator_id, originator_version",
                (),
            )
        return [(str(k), str(o), v) for k, o, v in rows]

    def snapshot_extents(self) -> list[tuple[str, int]]:
        """Each stream with stored snapshots and its last snapshot's version, in stream order
        (as ``stored_snapshots`` orders them): how far a check of its snapshots folds it."""
        table = self.tables.snapshots
        return [(s, int(v)) for s, v in self._last_versions(table)] if table else []

    def stream_heads(self) -> list[tuple[str, int]]:
        """Each stream of the log and its last version, in stream order (as
        ``stored_snapshots`` orders them): how far a fold check folds it."""
        # A version a hand made text, or a stream id that is no uuid's hex (SQLite keeps
        # either): the walk names its row; no fold is tried.
        return [
            (s, v)
            for s, v in self._last_versions(self.tables.events)
            if type(v) is int and _STREAM_HEX.fullmatch(s)
        ]

    def _last_versions(self, table: str) -> list[tuple[str, Any]]:
        """Each stream of ``table`` (the events' or the snapshots') as hex, with its highest
        version as stored, in stream order."""
        with self.views.reading() as cursor:
            rows = cursor.tuples(
                f"SELECT originator_id, max(originator_version) FROM {table} "
                "GROUP BY originator_id ORDER BY originator_id",
                (),
            )
        return [(_stream_hex(o), v) for o, v in rows]

    def guard_problems(self) -> list[str]:
        """Where the database's guards (the triggers that refuse a rewrite of events, and on
        PostgreSQL a login's event out of its role) differ from those ``init`` installs."""
        return guard_problems(self)

    def chain_origins(self) -> tuple[dict[str, tuple[int, str, int]], list[tuple[str, str]]]:
        """Where each profile's chain begins, for a store whose first events were stored
        without links: its version, head and the log's position then (``migrations``); and
        each row custody never writes (an SQLite cell a hand made text or 2.5), as (profile,
        what is wrong), for the audit to name rather than read."""
        rows = self.query(f"SELECT profile_id, version, head, position FROM {ORIGINS_TABLE}")
        origins: dict[str, tuple[int, str, int]] = {}
        odd: list[tuple[str, str]] = []
        for r in rows:
            profile_id, version, head, position = (
                str(r["profile_id"]), r["version"], r["head"], r["position"],
            )  # fmt: skip
            if type(version) is int and type(position) is int and isinstance(head, str):
                origins[profile_id] = (version, head, position)
                continue
            cells = f"version {version!r}, head {head!r:.80}, position {position!r}"
            odd.append((profile_id, f"its chain's origin row holds {cells}, which custody "
                        "never stores: edited"))  # fmt: skip
        return origins, odd

    # -- SQL ----------------------------------------------------------------------------------

    def _sql(self, statement: str) -> str:
        return _placeholders(statement, self._pg)

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with store_errors(self.settings), self._reading() as cursor:
            return OneTransaction(cursor, self._pg).query(statement, params)

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        with store_errors(self.settings), self._transaction(commit=True) as cursor:
            OneTransaction(cursor, self._pg).execute(statement, params)

    def password_verifier(self, login: str, password: str) -> str:
        """``password``'s SCRAM-SHA-256 verifier for ``login``, made by libpq on this side
        (PostgreSQL only): what ``CREATE ROLE ... PASSWORD`` may be given instead of the
        password, which then never reaches the server, nor its log."""
        with store_errors(self.settings), self._reading() as cursor:
            return OneTransaction(cursor, self._pg).password_verifier(login, password)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        with store_errors(self.settings), self._transaction(commit=True) as cursor:
            cursor.executemany(self._sql(statement), rows)

    @contextmanager
    def one_transaction(self) -> Iterator[OneTransaction]:
        """Statements (``query``, ``execute``) run in one transaction, committed at the end and
        rolled back if anything in it raises: ``custody access grant``'s, whose REVOKEs and
        GRANTs committed one by one let two grants at once leave a login both roles (rev46)."""
        with store_errors(self.settings), self._transaction(commit=True) as cursor:
            yield OneTransaction(cursor, self._pg)

    @contextmanager
    def _transaction(self, *, commit: bool) -> Iterator[Any]:
        datastore: Any = self.app.recorder.datastore  # type: ignore[attr-defined]
        with datastore.transaction(commit=commit) as cursor:
            yield cursor

    def _reading(self) -> Any:
        datastore: Any = self.app.recorder.datastore  # type: ignore[attr-defined]
        return read_cursor(datastore, postgres=self._pg)


def _placeholders(statement: str, pg: bool) -> str:
    """A statement written with ``?`` placeholders, as the store's driver takes it."""
    return statement.replace("?", "%s") if pg else statement


class OneTransaction:
    """A store's ``query`` and ``execute`` on one cursor, in its transaction: the store's own
    (each of its calls on a cursor of its own), or ``SqlStore.one_transaction``'s."""

    def __init__(self, cursor: Any, pg: bool) -> None:
        self._cursor, self._pg = cursor, pg

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        self._cursor.execute(_placeholders(statement, self._pg), params)
        return [dict(row) for row in self._cursor.fetchall()]

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        if self._pg and not params:  # a function's body may hold % (RAISE's format)
            self._cursor.execute(statement)
        else:
            self._cursor.execute(_placeholders(statement, self._pg), params)

    def password_verifier(self, login: str, password: str) -> str:
        """``password``'s SCRAM-SHA-256 verifier for ``login``, made by libpq on this side."""
        made = self._cursor.connection.pgconn.encrypt_password(
            password.encode(), login.encode(), b"scram-sha-256"
        )
        return bytes(made).decode("ascii")


# A stream id as the library keys it on SQLite (``UUID.hex``).
_STREAM_HEX = re.compile("[0-9a-f]{32}")


def _stream_hex(stream: object) -> str:
    """A stored stream id as the store's reads key it: PostgreSQL's uuid as hex, SQLite's text
    as it is (the library keys it by ``UUID.hex``, so any other spelling is another stream)."""
    return stream.hex if isinstance(stream, UUID) else str(stream)


def _text(stored: object) -> str:
    """A stored text as the audit reads it: bytes (SQLite's, cast) decoded whatever a hand
    left in them (bytes not UTF-8 are kept as surrogates, which no stream id or event type
    equals); NULL as empty."""
    if isinstance(stored, bytes):
        return stored.decode("utf-8", "surrogateescape")
    return "" if stored is None else str(stored)


def _as_stored(
    position: int, stream: bytes, version: Any, topic: bytes, state: bytes, kinds: int
) -> tuple[int, Any, Any, Any, Any]:
    """A logged event whose cells ``kinds`` says are blobs where custody stores text (1: the
    stream id, 2: the event type) or text where it stores a blob (4: the state), each read
    back as its kind (bytes, text), the others as ``logged_events`` reads them."""
    return (
        position,
        bytes(stream) if kinds & 1 else _text(stream),
        version,
        bytes(topic) if kinds & 2 else _text(topic),
        _text(state) if kinds & 4 else _stored_bytes(state),
    )


def _stored_bytes(state: object) -> bytes:
    """A stored event's state as bytes, whatever a hand in the database left there: SQLite
    keeps what an UPDATE wrote (``replace()`` on a BLOB gives TEXT), and verify must still
    read it to name it."""
    if isinstance(state, str):
        return state.encode("utf-8", "surrogateescape")
    if state is None:
        return b""
    return bytes(cast(bytes, state))
