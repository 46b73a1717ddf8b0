"""The availability table's index: by state alone, so that a heartbeat, which moves a row's
deadline and never its state, adds no index entry (on PostgreSQL its row is updated in place,
a HOT update); a store made with the older index on (state, until) has it replaced by init."""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import register

from ledger import Checkout, Heartbeat, Ledger

_OLD = "CREATE INDEX custody_availability_state ON custody_availability (state, until)"


def test_heartbeats_add_no_index_entry_on_postgresql(pg_url: str) -> None:
    """300 heartbeats leave the availability table's indexes the size they were: an index on
    (state, until) took two new entries a heartbeat, several pages by 300."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger, psycopg.connect(pg_url, autocommit=True) as conn:
        register(ledger, "p1")
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t", ttl_seconds=600)
        )
        size = "SELECT pg_indexes_size('custody_availability')"
        before = conn.execute(size).fetchone()
        for i in range(300):
            ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step=f"s{i}"))
        assert conn.execute(size).fetchone() == before


def test_init_replaces_the_older_index_on_postgresql(pg_url: str) -> None:
    Ledger.init(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP INDEX custody_availability_by_state")
        conn.execute(_OLD)
    Ledger.init(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = "
            "'custody_availability' AND indexname <> 'custody_availability_pkey'"
        ).fetchall()
    assert [(name, definition.split(" USING ")[1]) for name, definition in found] == [
        ("custody_availability_by_state", "btree (state)")
    ]


def _sqlite_indexes(path: Path) -> list[tuple[str, list[str]]]:
    with closing(sqlite3.connect(path)) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'custody_availability' AND sql IS NOT NULL ORDER BY name"
            )
        ]
        return [(n, [c[2] for c in conn.execute(f"PRAGMA index_info({n})")]) for n in names]


def test_init_replaces_the_older_index_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "custody.db"
    Ledger.init(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP INDEX custody_availability_by_state")
        conn.execute(_OLD)
    assert _sqlite_indexes(path) == [("custody_availability_state", ["state", "until"])]
    Ledger.init(f"sqlite:///{path}").close()
    assert _sqlite_indexes(path) == [("custody_availability_by_state", ["state"])]


def test_init_drops_only_the_store_s_own_older_index(pg_url: str) -> None:
    """An index of that name on another table (another login's, or another store's on the
    search path) is not custody's: init leaves it."""
    Ledger.init(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE elsewhere (state TEXT, until TEXT)")
        conn.execute("CREATE INDEX custody_availability_state ON elsewhere (state, until)")
    Ledger.init(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass('custody_availability_state')").fetchone()
    assert found == ("custody_availability_state",)


@pytest.mark.parametrize("limit", ["lock timeout", "statement timeout"])
def test_the_older_index_is_dropped_without_holding_up_heartbeats(pg_url: str, limit: str) -> None:
    """While a report's snapshot has read the availability table, init's drop of the older
    index waits for it without taking the table from anyone: a heartbeat goes through while
    init waits (a plain DROP INDEX queued every heartbeat behind it until the lock timeout).
    Past the store's lock timeout, or a shorter statement timeout of the database's, init
    leaves the index and says so; the next init drops it."""
    url = f"{pg_url}?timeout={3 if limit == 'lock timeout' else 9}"
    Ledger.init(url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP INDEX custody_availability_by_state")
        conn.execute(_OLD)
        if limit == "statement timeout":
            database = conn.info.dbname
            conn.execute(f"ALTER DATABASE {database} SET statement_timeout = '3s'")
    with Ledger.open(url) as ledger, psycopg.connect(pg_url) as report:
        register(ledger, "p1")
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t", ttl_seconds=600)
        )
        report.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        report.execute("SELECT count(*) FROM custody_availability").fetchone()
        notes: list[list[str]] = []
        init = threading.Thread(target=lambda: notes.append(_init_notes(url)))
        init.start()
        with psycopg.connect(pg_url, autocommit=True) as watch:
            while not _drop_waiting(watch):
                assert init.is_alive(), notes
                time.sleep(0.01)
            ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s"))
            assert _drop_waiting(watch)  # the heartbeat went through while the drop waited
        init.join(timeout=30)
        report.rollback()
    (said,) = notes
    assert any("custody_availability_state" in note and "next" in note for note in said), said
    assert _pg_indexes(pg_url) == ["custody_availability_by_state", "custody_availability_state"]
    assert not any("custody_availability_state" in note for note in _init_notes(url))
    assert _pg_indexes(pg_url) == ["custody_availability_by_state"]


def _drop_waiting(watch: psycopg.Connection[Any]) -> bool:
    return bool(
        watch.execute(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'DROP INDEX%' "
            "AND wait_event_type = 'Lock'"
        ).fetchall()
    )


def _init_notes(url: str) -> list[str]:
    ledger = Ledger.init(url)
    try:
        return list(ledger.store.notes)
    finally:
        ledger.close()


def _pg_indexes(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'custody_availability' "
            "AND indexname <> 'custody_availability_pkey' ORDER BY indexname"
        ).fetchall()
    return [name for (name,) in rows]


def test_init_leaves_an_index_of_that_name_on_another_table_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "custody.db"
    Ledger.init(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE elsewhere (state TEXT, until TEXT)")
        conn.execute("CREATE INDEX custody_availability_state ON elsewhere (state, until)")
    Ledger.init(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as conn:
        found = conn.execute(
            "SELECT tbl_name FROM sqlite_master WHERE name = 'custody_availability_state'"
        ).fetchall()
    assert found == [("elsewhere",)]
