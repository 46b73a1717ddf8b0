"""The store: an eventsourcing application on SQLite or PostgreSQL, its clock and its tables.

Driver errors stop here: callers see ``StoreUnavailable``, never psycopg or sqlite3 exceptions.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    PersistenceError,
)
from eventsourcing.utils import Environment

from ledger.domain.errors import StoreUnavailable
from ledger.stores.mapper import ProfileEventMapper
from ledger.stores.recorders import availability_ddl
from ledger.stores.settings import APPLICATION_NAME, StoreSettings

__all__ = ["IntegrityError", "LedgerApplication", "Store"]

_RECORDERS = {
    "sqlite": "ledger.stores.recorders:SQLiteLedgerRecorder",
    "postgresql": "ledger.stores.postgres:PostgresLedgerRecorder",
}


AGGREGATE_CACHE_SIZE = 1000


# The version of our own tables (custody_availability, custody_schema). Raise it with a
# migration whenever their DDL changes; stores older than this are refused until
# `custody init` migrates them.
SCHEMA_VERSION = 1
SCHEMA_TABLE = "custody_schema"
_SCHEMA_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
)


class LedgerApplication(Application[UUID]):
    """The eventsourcing application holding every profile's event stream."""

    name = APPLICATION_NAME

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Configuration comes from the store URL alone; stray POSTGRES_* variables in the
        # process environment must not redirect the ledger.
        return Environment(name, dict(env or {}))

    def construct_mapper(self) -> Mapper[UUID]:
        return ProfileEventMapper()


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
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = f"store {settings.describe()} unavailable: {first}"
        raise StoreUnavailable(msg) from e


def _probe(settings: StoreSettings) -> None:
    """One direct connection first: a refused or unknown server fails at once, rather than
    after the pool's whole timeout of retries."""
    import psycopg

    conn = psycopg.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password or None,
        dbname=settings.dbname,
        connect_timeout=settings.connect_timeout,
    )
    conn.close()


class Store:
    """One open store. ``query``/``execute`` take ``?`` placeholders on both databases."""

    def __init__(self, settings: StoreSettings, app: LedgerApplication) -> None:
        self.settings = settings
        self.app = app
        self._pg = settings.kind == "postgresql"

    @classmethod
    def open(cls, settings: StoreSettings, *, create: bool = False) -> Store:
        """Open the store; ``create`` builds the schema (idempotent) before anything else."""
        env = settings.environment(create_table=create)
        env["APPLICATION_RECORDER_TOPIC"] = _RECORDERS[settings.kind]
        # Each process keeps the profiles it touched and fast-forwards them with only the
        # events it has not seen, so a command does not replay the whole stream every time.
        env["AGGREGATE_CACHE_MAXSIZE"] = str(AGGREGATE_CACHE_SIZE)
        with store_errors(settings):
            if settings.kind == "sqlite" and not settings.sqlite_file().parent.exists():
                msg = f"directory {settings.sqlite_file().parent} does not exist"
                raise StoreUnavailable(f"store {settings.describe()} unavailable: {msg}")
            if settings.kind == "postgresql":
                _probe(settings)
            store = cls(settings, LedgerApplication(env=env))
            if create:
                store._create_schema()
        return store

    def _create_schema(self) -> None:
        """Our tables, then the schema version; a migration would run between the two."""
        for statement in (*availability_ddl(), *_SCHEMA_DDL):
            self.execute(statement)
        self.execute(
            f"INSERT INTO {SCHEMA_TABLE} (id, version) VALUES (1, ?) ON CONFLICT (id) "
            f"DO UPDATE SET version = excluded.version WHERE {SCHEMA_TABLE}.version < ?",
            (SCHEMA_VERSION, SCHEMA_VERSION),
        )

    @classmethod
    def connect(cls, settings: StoreSettings, *, create: bool = True) -> Store:
        """Open an initialised store: a new SQLite file is initialised here (if ``create``);
        an uninitialised PostgreSQL is refused, so that workers never race to create tables."""
        if settings.kind == "sqlite" and not settings.sqlite_file().exists():
            if not create:
                msg = f"no store at {settings.path}; custody init or any writing command makes one"
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
        if version is None and settings.kind == "sqlite":
            return cls.open(settings, create=True)
        if version is None:
            raise StoreUnavailable(f"{where} is not initialised: run custody init")
        if version < SCHEMA_VERSION:
            msg = f"{where} has schema {version}, this custody needs {SCHEMA_VERSION}"
            raise StoreUnavailable(f"{msg}: run custody init to migrate it")
        msg = f"{where} has schema {version}, newer than this custody's {SCHEMA_VERSION}"
        raise StoreUnavailable(f"{msg}: upgrade custody")

    def close(self) -> None:
        self.app.close()

    def schema_version(self) -> int | None:
        """The schema version ``custody init`` recorded, or None if it never ran here."""
        if self._pg:
            found = self.query("SELECT to_regclass(?) AS t", (SCHEMA_TABLE,))
        else:
            found = self.query(
                "SELECT name AS t FROM sqlite_master WHERE type='table' AND name=?",
                (SCHEMA_TABLE,),
            )
        if not (found and found[0]["t"]):
            return None
        rows = self.query(f"SELECT version FROM {SCHEMA_TABLE} WHERE id = 1")
        return int(rows[0]["version"]) if rows else None

    def now(self) -> datetime:
        """The store's clock: PostgreSQL's on a shared store, the local clock on SQLite."""
        if not self._pg:
            return datetime.now(UTC)
        rows = self.query("SELECT clock_timestamp() AS now")
        now: datetime = rows[0]["now"]
        return now.astimezone(UTC)

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s") if self._pg else statement

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with store_errors(self.settings), self._transaction(commit=False) as cursor:
            cursor.execute(self._sql(statement), params)
            return [dict(row) for row in cursor.fetchall()]

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        with store_errors(self.settings), self._transaction(commit=True) as cursor:
            cursor.execute(self._sql(statement), params)

    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None:
        with store_errors(self.settings), self._transaction(commit=True) as cursor:
            cursor.executemany(self._sql(statement), rows)

    @contextmanager
    def _transaction(self, *, commit: bool) -> Iterator[Any]:
        datastore: Any = self.app.recorder.datastore  # type: ignore[attr-defined]
        with datastore.transaction(commit=commit) as cursor:
            yield cursor
