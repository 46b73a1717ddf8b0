"""Where read models live: their tables on the store's own database, the notification log read
inside their transactions, a lock per rebuild, and the pandas read path.

``Views`` is the store-side half of ``ledger.feed``: one implementation per database
(``ledger._stores.sql_views`` for SQLite and PostgreSQL). SQL is written with ``?`` placeholders
on every backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from uuid import UUID

from ledger._domain.errors import NotAllowed
from ledger._stores.wakeups import Announce, Wakeups

if TYPE_CHECKING:
    import pandas as pd


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
FrameReader = Callable[[str, Sequence[Any]], "pd.DataFrame"]


class StoredNotification(NamedTuple):
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

    def tuples(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """``query``'s rows as plain tuples, in the statement's column order: for a scan of
        many rows (a dict per row costs as much as reading it)."""
        ...

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        key: str | None = None,
    ) -> None: ...

    def log_tuples(
        self, columns: str, after: int | None, limit: int, *, strict: bool = False
    ) -> list[tuple[Any, ...]]:
        """Up to ``limit`` events after position ``after`` (None: from the first), in log
        order, as tuples of the position and ``columns``: none past a gap an append in
        progress may yet fill (``strict``: ``ledger._stores.settled.Unsettled`` once it waited
        the store's timeout for one)."""
        ...

    def notifications(self, after: int, limit: int) -> list[StoredNotification]: ...

    def first_versions_after(self, position: int) -> dict[str, int]:
        """Each stream with events after ``position`` that this transaction sees, by its id
        (``str`` of its UUID), with the first such event's version: every one, past any gap
        (a snapshot asks what it holds, not what a follower may hand on)."""
        ...

    def frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """A query's rows as a pandas DataFrame, read in this transaction."""
        ...

    def head(self) -> int: ...

    def stream_counts(self, upto: int) -> dict[str, StreamCount]:
        """Each stream's events up to position ``upto``, by its id (``str`` of its UUID)."""
        ...

    def lease_versions(self, upto: int, topics: Sequence[str]) -> dict[str, dict[int, int]]:
        """Each stream's leases up to position ``upto``, by its id: for the n-th lease it
        acquired (from 1), the last version of an event of ``topics`` (each names the lease
        live then) before the next acquisition."""
        ...

    def table_columns(self, table: str) -> list[str]:
        """The table's columns in their order; empty when there is no such table."""
        ...

    def table_indexes(self, table: str) -> list[str]:
        """The names of the table's indexes made by a ``CREATE INDEX`` (not its key's)."""
        ...


class StreamCount(NamedTuple):
    """A stream's events up to a position: how many, its last version, and how many of them
    acquired a lease (one row each in the leases read model)."""

    events: int
    last_version: int
    leases: int


def stream_key(originator_id: UUID | str) -> str:
    """A stream id as every store gives it: the UUID's usual text (SQLite keeps its hex)."""
    return str(originator_id if isinstance(originator_id, UUID) else UUID(originator_id))


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

    def __init__(self) -> None:
        self.layouts_checked: set[str] = set()  # tables found as their read model writes them

    def transaction(self) -> contextlib.AbstractContextManager[ViewCursor]:
        """One read-write transaction: committed when the block ends, rolled back if it
        raises. Its first write waits at most the store's timeout for a lock."""
        raise NotImplementedError

    def reading(self) -> contextlib.AbstractContextManager[ViewCursor]:
        """Reads that write nothing: one read-only transaction on SQLite, statements in
        autocommit on PostgreSQL (``read_cursor``)."""
        raise NotImplementedError

    def snapshot(self) -> contextlib.AbstractContextManager[ViewCursor]:
        """Reads that write nothing and all see one moment of the database (a repeatable-read
        transaction on PostgreSQL), whatever commits meanwhile: for a check that compares
        several tables."""
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

    def frames(self) -> contextlib.AbstractContextManager[FrameReader]:
        """``read_frame`` for a block of several reads (the pages of one export), on one
        connection where opening one costs (PostgreSQL's ADBC connection: about 100 ms each).
        Each read is its own transaction, as ``read_frame``'s are."""
        return contextlib.nullcontext(self.read_frame)

    def wakeups(self, interval: float, announce: Announce) -> Wakeups:
        """Wake-ups for a catch-up loop, polling every ``interval`` seconds (see
        ``ledger._stores.wakeups``); ``announce`` hears each switch between push and polling."""
        announce(f"polling every {interval:g} s (only a PostgreSQL store pushes)")
        return Wakeups(interval)


def held(name: str) -> NotAllowed:
    return NotAllowed(f"{name} is already running in another process; try again when it ends")
