"""The availability table's index: by state alone, so that a heartbeat, which moves a row's
deadline and never its state, adds no index entry (on PostgreSQL its row is updated in place,
a HOT update); a store made with the older index on (state, until) has it replaced by init."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
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
