"""What a process costs the store: on PostgreSQL a ledger holds its pool of 2 connections once
used, and a worker process 6 whatever the number of leases it holds (its ledger, the renewal
hub's, the revocation watches'), as docs/operations/postgresql.md says for sizing
``max_connections``; on every store one thread watches every lease of a process for revocation.

rev41: a ledger held 3 (its pool grew while its first connections were being made) and each
held lease had a revocation watch with a ledger of its own: a worker held 27 sessions with 8
leases, and under a role's connection limit sized from the documentation three processes of
four lost their leases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from pg_cluster import PostgresCluster

from ledger import ForceRelease, Ledger, RegisterProfile
from workers import LeaseLost, ProfileLeases

HOLDER = Path(__file__).with_name("lease_holder.py")
PER_LEDGER = 2  # docs/operations/postgresql.md, "Connections per process"
PER_WORKER = 6


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


@pytest.mark.parametrize("leases", [1, 8])
def test_a_worker_process_holds_six_sessions_whatever_its_leases(
    pg_url: str, pg_cluster: PostgresCluster, leases: int
) -> None:
    """A worker process holding 1 or 8 leases, renewed and watched meanwhile, never holds
    more than 6 PostgreSQL sessions (it held 9 with one lease, 30 with eight), and loses
    none of its leases."""
    Ledger.init(pg_url).close()
    name = f"custody-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "PGAPPNAME": name}
    argv = [sys.executable, str(HOLDER), pg_url, str(leases)]
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            assert holder.stdout.readline().strip() == "holding"
            peak = 0
            for _ in range(12):  # 3 s: renewals every second, a check every 0.5 s
                peak = max(peak, _sessions(pg_cluster, name))
                time.sleep(0.25)
            holder.stdin.write("done\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "lost 0"
        finally:
            holder.stdin.close()
            holder.wait(30)
    assert holder.returncode == 0
    assert peak <= PER_WORKER, f"{peak} sessions for {leases} leases"


def test_one_thread_watches_every_lease_and_a_revocation_reaches_its_own(store_url: str) -> None:
    """Three leases held in one process are watched by one thread; an operator's
    force-release of one of them reaches that lease within 2 s ("revoked: ..."), and the
    other two are still held."""
    with Ledger.open(store_url, create=False) as ledger:
        for n in range(3):
            ledger.handle(RegisterProfile(profile_id=f"p{n}", account_id="a", proxy_id="x"))
    with ProfileLeases.open(store_url, worker_id="w") as leases, ExitStack() as stack:
        held = [
            stack.enter_context(leases.checkout(f"p{n}", run_id=f"r{n}", task_type="t"))
            for n in range(3)
        ]
        time.sleep(0.2)
        watching = [t for t in threading.enumerate() if "revocation watch" in t.name]
        assert len(watching) == 1, [t.name for t in watching]
        with Ledger.open(store_url, create=False) as ops:
            ops.handle(ForceRelease(profile_id="p1", actor="ops", reason="stuck"))
        assert held[1].lost.wait(2)
        assert held[1].why_lost.startswith("revoked: the ledger ended "), held[1].why_lost
        time.sleep(1)  # two more polls: the others are checked too, and still held
        assert [lease.lost.is_set() for lease in held] == [False, True, False]
        for lease in (held[0], held[2]):
            lease.visited("https://example.test/")
        with pytest.raises(LeaseLost):  # leaving the lost lease's block
            stack.close()
