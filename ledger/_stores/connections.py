"""What both sides of a SQL store share: a driver's failure translated into ``StoreUnavailable``,
a cursor for reads, and a PostgreSQL connection of its own.

The write side (``ledger._stores.store``, ``ledger._stores.sql``) and the read models' side
(``ledger._stores.views``, ``sql_views``, ``listen``) both import this module, never each other
for it, so neither side's port depends on the other's.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, PersistenceError

from ledger._domain.acting import Forbidden
from ledger._domain.errors import LedgerError, StoreUnavailable
from ledger._stores.settings import CLIENT_ENCODING, StoreSettings

# What SQLite and PostgreSQL say when a lock was not granted within the bounded wait.
_BUSY = ("database is locked", "lock timeout")
# What PostgreSQL says when a statement_timeout cut a statement short. Custody sets none: it is
# the login's, its database's or the server's (rev29: a role's 1 ms was reported as "busy ...
# waited 5 s; retry", which failed the same way every time).
# The server's words are in its lc_messages, which need not be English: each is told by its
# SQLSTATE too (57014 query_canceled: a statement_timeout, or an administrator's cancel).
_STATEMENT_TIMEOUT = "statement timeout"
_QUERY_CANCELED = "57014"
_INSUFFICIENT_PRIVILEGE = "42501"
_LOCK_NOT_AVAILABLE = "55P03"
# A transaction that lost to a concurrent one (40001 serialization_failure, under a
# default_transaction_isolation custody does not set for itself; 40P01 deadlock_detected):
# rolled back, nothing written; a retry is answered.
_CONFLICTED = ("40001", "40P01")
# What a login no custody role was granted (or one revoked) meets first (rev29: said alone):
# 42501 naming this table, in the server's language's quotes or none.
_NO_ROLE = "custody_schema"
# ``ledger._stores.sessions.SESSIONS_TABLE``, which only the reviewer's role reads and writes
# (note 56: a service's login without it was told only the database's "permission denied").
_SESSIONS = "custody_console_sessions"


def _driver_errors() -> tuple[type[BaseException], ...]:
    # psycopg is imported only for PostgreSQL stores (an SQLite user never pays for it); it is
    # looked up when an error is being judged, since it may have been imported meanwhile.
    errors: tuple[type[BaseException], ...] = (PersistenceError, sqlite3.Error, OSError)
    psycopg = sys.modules.get("psycopg")
    return (*errors, psycopg.Error) if psycopg is not None else errors


@contextmanager
def store_errors(settings: StoreSettings) -> Iterator[None]:
    """Translate driver and library failures into ``StoreUnavailable`` naming the store."""
    try:
        yield
    except IntegrityError:
        raise
    except Exception as e:
        if not isinstance(e, _driver_errors()):
            raise
        if _sqlstate(e) == _INSUFFICIENT_PRIVILEGE:  # the database refused this login
            said = _first_line(e)
            if _names(said, _NO_ROLE):  # every custody role reads it: this login holds none
                said += (
                    f": login {settings.user} holds no custody role (as the owner: custody "
                    f"access grant {settings.user} --role ROLE; custody access list names "
                    "each login's)"
                )
            elif _names(said, _SESSIONS):
                said += (
                    f": login {settings.user} lacks the reviewer role, which the review "
                    f"console's sessions need (as the owner: custody access grant "
                    f"{settings.user} --role reviewer, with a --role for each it holds already)"
                )
            msg = f"store {settings.describe()} refused: {said}"
            raise Forbidden(msg, by_database=True) from e
        if _availability_missing(e):  # the store answers: it is damaged, not unavailable
            raise LedgerError(
                f"store {settings.describe()} is damaged: its table {_AVAILABILITY} is missing "
                "(dropped?); custody init makes it again from the events"
            ) from e
        raise store_failure(settings, e) from e


# ``ledger._stores.recorders.AVAILABILITY_TABLE``: the read side, which imports this module, may
# not import the write side's recorders (the import contracts).
_AVAILABILITY = "custody_availability"
_UNDEFINED_TABLE = "42P01"


def _availability_missing(error: BaseException) -> bool:
    """Whether the driver said the availability table is not there (rev32: dropped by hand,
    every read and sweep was exit 6, 'no such table', as if the store were down)."""
    said = _first_line(error).lower()
    if _sqlstate(error) == _UNDEFINED_TABLE:  # named in the server's language's quotes
        return _names(said, _AVAILABILITY)
    return re.search(rf"no such table: (?:main\.)?{_AVAILABILITY}\b", said) is not None


def _names(said: str, table: str) -> bool:
    """Whether a server's message names ``table`` as a word of its own, whatever quotes its
    lc_messages puts around it (a German server says »custody_availability«; rev39)."""
    return re.search(rf"(?<![\w$]){table}(?![\w$])", said) is not None


def _sqlstate(error: BaseException | None) -> str | None:
    """The SQLSTATE of a psycopg error, or of the one the library's error wraps."""
    while error is not None:
        state = getattr(error, "sqlstate", None)
        if state:
            return str(state)
        error = error.__cause__ or error.__context__
    return None


def _first_line(error: BaseException) -> str:
    said = str(error).strip()
    return said.splitlines()[0] if said else type(error).__name__


def store_failure(settings: StoreSettings, error: BaseException) -> StoreUnavailable:
    """The ``StoreUnavailable`` a driver's error means: busy (a lock not granted within the
    store's timeout) or unavailable, in one line that never shows the store's password."""
    first = _first_line(error)
    if settings.password:
        # The password where it stands alone, never its letters inside the driver's own words
        # (a password "o" made "c***nnecti***n refused").
        alone = rf"(?<![0-9A-Za-z]){re.escape(settings.password)}(?![0-9A-Za-z])"
        first = re.sub(alone, "***", first)
    # A lock not granted in time is told by its SQLSTATE too: the server's words are in its
    # lc_messages, which need not be English (a review: a German server's lock timeout said
    # "unavailable", without "retry").
    state = _sqlstate(error)
    waited = any(m in first.lower() for m in _BUSY) or state == _LOCK_NOT_AVAILABLE
    conflicted = state in _CONFLICTED
    said = "busy" if waited or conflicted else "unavailable"
    msg = f"store {settings.describe()} {said}: {first}"
    if settings.kind == "sqlite" and first.lower() in _DISK_TROUBLE:
        msg += free_space(settings.sqlite_opened())
    if conflicted:
        msg += " (a concurrent command's transaction conflicted; nothing was written, retry)"
    elif said == "busy":
        msg += f" (waited {settings.timeout} s; nothing was written, retry)"
    elif _STATEMENT_TIMEOUT in first.lower():
        msg += (
            " (the server's statement_timeout, set for this login, its database or the server, "
            "not by custody, cut it short: raise or reset that setting)"
        )
    elif state == _QUERY_CANCELED:  # in another language: a timeout or an administrator
        msg += (
            " (the server cancelled it: a statement_timeout set for this login, its database or "
            "the server, not by custody, or an administrator's cancel)"
        )
    lost = settings.kind == "postgresql" and said == "unavailable" and _connection_lost(error)
    return StoreUnavailable(msg, busy=said == "busy", lost=lost)


# What a session that ended under a statement says: its SQLSTATE's class (08: connection
# exception; 57P: the server shut it down or a pg_terminate_backend), or, where the server
# could send none, libpq's own words.
_LOST_STATES = ("08", "57P")
_LOST_WORDS = (
    "server closed the connection",
    "terminating connection",
    "connection is lost",
    "ssl syscall error",
    "ssl connection has been closed",
)


def _connection_lost(error: BaseException) -> bool:
    """Whether the session ended while a statement ran: its COMMIT may have been carried out
    and only the answer lost."""
    state = _sqlstate(error)
    if state is not None:
        return state.startswith(_LOST_STATES)
    return any(words in _first_line(error).lower() for words in _LOST_WORDS)


# What SQLite says when its file system is full: "database or disk is full" while it can write
# its pages, only "disk I/O error" once it cannot even grow its WAL index (the -shm file).
_DISK_TROUBLE = ("disk i/o error", "database or disk is full")


# Free space below which SQLite's disk trouble is the disk's being full: it needs room for a
# page, its journal's and its WAL index's (tens of KiB), never megabytes.
FULL_BELOW = 1024 * 1024


def free_space(path: str) -> str:
    """How much room the store's file system has left, as words to add to SQLite's."""
    try:
        stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return ""
    free = stat.f_bavail * stat.f_frsize
    if free < FULL_BELOW:
        return f" (its file system has {free // 1024:,} KiB free: make room, then retry)"
    # Room enough: a quota, a limit on file sizes, or the disk itself (rev26: "make room"
    # was said with 79 GB free).
    return (
        f" (its file system has {free // 1024:,} KiB free, so not a full disk: a quota, a "
        "limit on file sizes, or the disk itself)"
    )


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
        client_encoding=CLIENT_ENCODING,
        **{**settings.libpq_tls(), **options},
    )
