"""Application recorders that also write the availability row, the command ids a caller gave
and the directories registrations claim, in the events' transaction.

A row written beside its events can never lag or disagree with them: if the events' insert
fails (another writer took that version) the row's upsert rolls back with it. A command id is
recorded once for the whole store: reusing it on another profile fails the insert (and so the
save) like a version conflict.
"""

from __future__ import annotations

import operator
import os
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from eventsourcing.persistence import InterfaceError, StoredEvent
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
)
from pydantic import AwareDatetime, ValidationError

from ledger._domain.directories import ancestors, inside_prefix, overlap, refusal
from ledger._domain.errors import InvalidInput
from ledger._domain.row import Availability
from ledger.ports import LateSave

AVAILABILITY_TABLE = "custody_availability"
AVAILABILITY_COLUMNS: tuple[str, ...] = tuple(Availability.model_fields)
_INTEGER_COLUMNS = {"fencing_token", "version"}


def availability_ddl() -> list[str]:
    """DDL for the availability table; the same text works on SQLite and PostgreSQL."""
    cols = ", ".join(
        f"{c} {'BIGINT' if c in _INTEGER_COLUMNS else 'TEXT'}"
        + (" PRIMARY KEY" if c == "profile_id" else "")
        for c in AVAILABILITY_COLUMNS
    )
    return [
        f"CREATE TABLE IF NOT EXISTS {AVAILABILITY_TABLE} ({cols})",
        # The sweep's look-up (``overdue``: the stale rows and the leased ones) by state alone:
        # a heartbeat moves ``until`` and never the state, so on PostgreSQL its row is updated
        # in place (a HOT update) with no new index entry, where an index on (state, until)
        # took two new entries per heartbeat (about 70 bytes of index each, until a vacuum)
        # and a tenth more WAL. A store made before keeps that index until init drops it
        # (``ledger._stores.migrations``: ``OLDER_AVAILABILITY_INDEX``).
        f"CREATE INDEX IF NOT EXISTS {AVAILABILITY_TABLE}_by_state ON {AVAILABILITY_TABLE} (state)",
    ]


def to_db(value: Any) -> Any:
    """Times are stored as UTC ISO-8601 text with microseconds, so they sort as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def read_row(row: dict[str, Any]) -> Availability | str:
    """A stored row as availability, or what is wrong with it (a NULL, a junk value, a time
    not in the one form ``to_db`` writes)."""
    try:
        read = Availability.model_validate(row)
    except ValidationError as e:
        problem = e.errors()[0]
        field = ".".join(str(p) for p in problem["loc"])
        return f"{field}: {problem['msg']} (got {str(problem['input'])[:40]!r})"
    # The sweep finds overdue rows by comparing ``until`` with the clock as text, so a time is
    # sound only in the form custody writes (UTC, with a T and microseconds): rev36, an until
    # rewritten by hand as the same instant at +05:00 read as sound while the sweep missed
    # it for five hours. Such a row is damaged: status shows it from its events, the sweep
    # takes it up as it takes any unreadable row, the rebuild writes it again.
    for column in _TIME_COLUMNS:
        value = row.get(column)
        if value is not None and (type(value) is not str or not _AS_WRITTEN.fullmatch(value)):
            return f"{column}: not a time as custody writes it, in UTC (got {str(value)[:40]!r})"
    return read


# A time as ``to_db`` writes it; the columns of the row that hold one.
_AS_WRITTEN = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def split_rows(rows: list[dict[str, Any]]) -> tuple[list[Availability], dict[str, str]]:
    """Stored rows as the readable ones and the unreadable ones, by profile id, with what is
    wrong with each (``read_row``), both in profile id order: by code point, as SQLite orders
    text, whatever the database's collation (rev36: an ICU collation on PostgreSQL ordered
    the rows otherwise)."""
    readable: list[Availability] = []
    damaged: dict[str, str] = {}
    for row in sorted(rows, key=lambda row: str(row["profile_id"])):
        read = read_row(row)
        if isinstance(read, str):
            damaged[str(row["profile_id"])] = read
        else:
            readable.append(read)
    return readable, damaged


def availability_params(row: Availability) -> tuple[Any, ...]:
    """The row's columns as stored, in ``AVAILABILITY_COLUMNS`` order: times as ``to_db``
    writes them, enums by value (every column is a scalar: no dump needed). Every append
    sends one, so the values are read from the model's fields at once and only the columns
    that may hold a time or an enum are looked at."""
    params = list(_ROW_VALUES(row.__dict__))
    for at in _CONVERTED_AT:
        value = params[at]
        if isinstance(value, datetime):
            params[at] = value.astimezone(UTC).isoformat(timespec="microseconds")
        elif isinstance(value, Enum):
            params[at] = value.value
    return tuple(params)


def _kinds(annotation: Any) -> tuple[Any, ...]:
    """The types a column's annotation allows (``X | None``: X and None)."""
    return getattr(annotation, "__args__", None) or (annotation,)


def _is_time(kind: Any) -> bool:
    # AwareDatetime is no datetime subclass: missed, the driver wrote its own text (rev36).
    return kind is AwareDatetime or (isinstance(kind, type) and issubclass(kind, datetime))


def _may_convert(annotation: Any) -> bool:
    """Whether a column of this type may hold a time or an enum (``availability_params``)."""
    return any(
        _is_time(k) or (isinstance(k, type) and issubclass(k, Enum)) for k in _kinds(annotation)
    )


_TIME_COLUMNS = tuple(
    name
    for name, field in Availability.model_fields.items()
    if any(map(_is_time, _kinds(field.annotation)))
)
_ROW_VALUES = operator.itemgetter(*AVAILABILITY_COLUMNS)
_CONVERTED_AT = tuple(
    at
    for at, field in enumerate(Availability.model_fields.values())
    if _may_convert(field.annotation)
)


def upsert_availability_sql(
    placeholder: str, *, where: str | None = None, rows: int = 1, overwrite: bool = True
) -> str:
    """Insert or overwrite ``rows`` rows (of distinct profiles); with ``where``, one row, only
    if that condition holds; without ``overwrite``, a row there already stays."""
    cols = ", ".join(AVAILABILITY_COLUMNS)
    marks = ", ".join([placeholder] * len(AVAILABILITY_COLUMNS))
    values = f"VALUES ({marks})" if where is None else f"SELECT {marks} WHERE {where}"
    if rows > 1:
        values = "VALUES " + ", ".join([f"({marks})"] * rows)
    updates = ", ".join(f"{c} = excluded.{c}" for c in AVAILABILITY_COLUMNS if c != "profile_id")
    if not overwrite:
        return f"INSERT INTO {AVAILABILITY_TABLE} ({cols}) {values} ON CONFLICT DO NOTHING"
    return (
        f"INSERT INTO {AVAILABILITY_TABLE} ({cols}) {values} "
        # Unconditional: the events just appended at this version prove the row is the latest
        # (writers of one stream commit in version order), so a damaged row is overwritten.
        f"ON CONFLICT (profile_id) DO UPDATE SET {updates}"
    )


_SQLITE_UPSERT = upsert_availability_sql("?")


def availability_rows(kwargs: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [availability_params(r) for r in kwargs.get("availability", ())]


COMMANDS_TABLE = "custody_commands"
# A caller's command id, the profile it was used on, the version its last event reached and the
# command's fingerprint: what a resent command is answered from (columns 3 and 4: schema 4).
COMMANDS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {COMMANDS_TABLE} (command_id TEXT PRIMARY KEY, "
    "profile_id TEXT NOT NULL, version BIGINT, command TEXT)"
)
COMMANDS_COLUMNS = ("command_id", "profile_id", "version", "command")


def insert_command_sql(placeholder: str, *, backfill: bool = False) -> str:
    """The insert of one command row. ``backfill`` (a migration, event by event): the first
    profile to use an id keeps it, and each later event of that command there moves its
    version on."""
    marks = ", ".join([placeholder] * len(COMMANDS_COLUMNS))
    sql = f"INSERT INTO {COMMANDS_TABLE} ({', '.join(COMMANDS_COLUMNS)}) VALUES ({marks})"
    if not backfill:
        return sql
    return (
        f"{sql} ON CONFLICT (command_id) DO UPDATE SET version = excluded.version, "
        f"command = excluded.command WHERE {COMMANDS_TABLE}.profile_id = excluded.profile_id "
        f"AND ({COMMANDS_TABLE}.version IS NULL OR {COMMANDS_TABLE}.version < excluded.version)"
    )


def command_rows(kwargs: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    """The (command id, profile id, version, fingerprint) rows a save records: ids a caller
    chose."""
    return list(kwargs.get("commands", ()))


DIRECTORIES_TABLE = "custody_directories"
# Each profile's registered user_data_dir, normalised (schema 5): written in its registration's
# transaction, after a look at the directories already there, so that one directory (and all
# inside it) belongs to one profile, whichever of two racing registrations commits first.
DIRECTORIES_DDL = (
    f"CREATE TABLE IF NOT EXISTS {DIRECTORIES_TABLE} "
    "(profile_id TEXT PRIMARY KEY, user_data_dir TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {DIRECTORIES_TABLE}_dir ON {DIRECTORIES_TABLE} (user_data_dir)",
)


def overlapping_sql(placeholder: str, directory: str) -> tuple[str, tuple[str, ...]]:
    """The query (and its parameters) of the recorded directories that are the normalised
    ``directory``, contain it (an index lookup each) or lie inside it (a prefix of whole
    components), with their profiles; in no order (``in_directory_order``)."""
    equal_or_containing = (directory, *ancestors(directory))
    prefix = inside_prefix(directory)
    marks = ", ".join([placeholder] * len(equal_or_containing))
    sql = (
        f"SELECT profile_id, user_data_dir FROM {DIRECTORIES_TABLE} "
        f"WHERE user_data_dir IN ({marks}) "
        f"OR substr(user_data_dir, 1, {len(prefix)}) = {placeholder}"
    )
    return sql, (*equal_or_containing, prefix)


def in_directory_order(rows: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(profile, directory) rows by directory, then profile, by code point: one order on
    every store, whatever the database's collation (rev36: a refusal named another holder
    on a PostgreSQL whose collation was ICU's)."""
    return sorted(rows, key=lambda row: (row[1], row[0]))


def insert_directory_sql(placeholder: str) -> str:
    return (
        f"INSERT INTO {DIRECTORIES_TABLE} (profile_id, user_data_dir) "
        f"VALUES ({placeholder}, {placeholder}) ON CONFLICT (profile_id) DO NOTHING"
    )


def directory_rows(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """The (profile id, normalised directory) rows a save claims: its registrations'."""
    return list(kwargs.get("directories", ()))


def refuse_if_late(in_time: float | None) -> None:
    """``LateSave`` (nothing is kept; the command decides again, as its lease then
    stands) when the store's locks are held only after ``in_time`` (``time.monotonic``): the
    decision stood on a lease's deadline that has passed while the write waited (rev34: a
    release that waited 2.5 s behind another writer committed after the deadline, and put
    back in the pool a profile every read had called stale)."""
    if in_time is not None and time.monotonic() > in_time:
        raise LateSave("decided before its lease's deadline, written after it")


def refuse_overlaps(
    claims: Sequence[tuple[str, str]], found: Callable[[str], Sequence[tuple[str, str]]]
) -> None:
    """``InvalidInput`` naming ``user_data_dir`` and the profile that has it when a claimed
    directory overlaps another profile's: one recorded (``found(directory)`` gives the
    recorded (profile, directory) rows overlapping it) or one claimed before it in the same
    write. Run where no other registration can commit meanwhile."""
    for at, (profile_id, directory) in enumerate(claims):
        earlier = [(p, d) for p, d in claims[:at] if overlap(directory, d)]
        for holder, theirs in in_directory_order([*found(directory), *earlier]):
            if holder != profile_id:
                raise InvalidInput("user_data_dir", refusal(profile_id, directory, holder, theirs))


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        pool = self.datastore.pool
        if isinstance(pool, StatementKeepingPool):  # the events' insert took the write lock
            pool.refuse_another_file()
        rows = availability_rows(kwargs)
        if rows:
            c.executemany(_SQLITE_UPSERT, rows)
        commands = command_rows(kwargs)
        if commands:
            c.executemany(insert_command_sql("?"), commands)
        claims = directory_rows(kwargs)
        if claims:  # the events' insert took the file's write lock: no registration can race

            def found(directory: str) -> list[tuple[str, str]]:
                c.execute(*overlapping_sql("?", directory))
                return [(str(r[0]), str(r[1])) for r in c.fetchall()]

            refuse_overlaps(claims, found)
            c.executemany(insert_directory_sql("?"), claims)
        # Last before COMMIT (which waits for no lock in WAL mode): the write lock, taken by the
        # events' insert, may have been waited for (a review: checked before the upserts, a
        # process stopped between the check and COMMIT still committed after the deadline).
        refuse_if_late(kwargs.get("in_time"))
        return ids


# How many prepared statements each SQLite connection keeps (the standard library's default).
SQLITE_STATEMENTS_KEPT = 128


class StatementKeepingPool(SQLiteConnectionPool):
    """The library's SQLite pool, its connections keeping ``SQLITE_STATEMENTS_KEPT`` prepared
    statements. The library opens them with ``cached_statements=True``, which ``sqlite3``
    reads as a cache of one statement: a command's five statements (``BEGIN``, the events'
    insert, the availability upsert, the command id, ``COMMIT``) were each prepared again
    every time, about 40 µs of a heartbeat's CPU.

    It also keeps which file its first connection opened (``refuse_another_file``)."""

    opened: tuple[int, int] | None = None  # the file's device and inode

    def refuse_another_file(self) -> None:
        """Raise, within the write's transaction (nothing is written), where the store's path
        no longer names the file this pool opened first: deleted or replaced since (rev33: a
        backup moved over the store, or the file deleted, under a live worker; its renewals
        went on landing in the file no longer there, so its lease never ran out, while the
        store at the path gave the profile to a second worker)."""
        if self.replaced():
            msg = (
                "its file is no longer the one this process opened (deleted or "
                "replaced since); nothing was written: open the store again"
            )
            raise sqlite3.OperationalError(msg)

    def replaced(self) -> bool:
        """Whether the store's path no longer names the file this pool opened first (deleted or
        replaced since): one ``os.stat``. False before a connection was opened, and for a file
        opened for reads only (nothing is kept of it)."""
        return self.opened is not None and _identity(self.db_name) != self.opened

    def _create_connection(self) -> SQLiteConnection:
        # The library's own (eventsourcing 9.5), but for the statements kept.
        try:
            c = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                cached_statements=SQLITE_STATEMENTS_KEPT,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        read_only = "mode=ro" in self.db_name  # never switched to WAL: that is a write
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal and not read_only:
            cursor = c.cursor()
            cursor.execute("PRAGMA journal_mode;")
            if cursor.fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL;")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        c.row_factory = sqlite3.Row
        if self.opened is None and not read_only and not self.is_sqlite_memory_mode:
            self.opened = _identity(self.db_name)
        return SQLiteConnection(sqlite_conn=c, max_age=self.max_age)


def _identity(path: str) -> tuple[int, int] | None:
    """The device and inode of the file at ``path``; None where there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


class SQLiteLedgerFactory(SQLiteFactory):
    """The library's SQLite factory, its pool a ``StatementKeepingPool`` (built before any
    connection is opened, with the library's sizes)."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        built = self.datastore.pool
        self.datastore.pool = StatementKeepingPool(
            db_name=built.db_name,
            lock_timeout=built.lock_timeout,
            pool_size=built.pool_size,
            max_overflow=built.max_overflow,
            pool_timeout=built.pool_timeout,
            max_age=built.max_age,
            pre_ping=built.pre_ping,
        )
        built.close()
