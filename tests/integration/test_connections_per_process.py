"""What a process costs the store: on PostgreSQL a ledger holds its pool of 2 connections once
used, as docs/operations/postgresql.md says for sizing ``max_connections``.

rev41: a ledger held 3 (its pool grew while its first connections were being made).
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from pg_cluster import PostgresCluster

from ledger import Ledger, RegisterProfile

PER_LEDGER = 2  # docs/operations/postgresql.md, "Connections per process"


def _sessions(cluster: PostgresCluster, application_name: str) -> int:
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_ledger_holds_its_pool_of_two_once_used(
    pg_url: str, pg_cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger that has read and written holds 2 sessions, its pool's size, not 3 (its
    first lending used to grow the pool while its first two connections were being made)."""
    Ledger.init(pg_url).close()
    name = f"custody-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PGAPPNAME", name)  # libpq's: every session this process opens now
    with Ledger.open(pg_url, create=False) as ledger:
        ledger.profile_ids()
        time.sleep(0.5)  # a connection the pool makes in the background is there by now
        assert _sessions(pg_cluster, name) == PER_LEDGER
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
        assert _sessions(pg_cluster, name) == PER_LEDGER
    assert _sessions(pg_cluster, name) == 0
