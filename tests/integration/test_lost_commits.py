"""A PostgreSQL server that loses what it acknowledged: with ``synchronous_commit`` off, a
commit is answered before its WAL reaches the disk, and an immediate restart (a crash, or a
failover to a standby that had not received it) forgets it. A process that held the profile
decided on what it held and appended past the server's head: the stream read 1, 2, 3, 5 and
every later load of the profile failed (rev24). The process forgets what it holds once a
connection to the server is lost or replaced, and an append lent a connection after such a
loss is decided again: the stream stays whole and verify holds.

On a server of its own: the test restarts it."""

from __future__ import annotations

import os

import psycopg
import pytest
from pg_cluster import PostgresCluster, _command, _run

from ledger import Checkout, Heartbeat, Ledger, RegisterProfile, audit

pytestmark = pytest.mark.postgres


def _restart_immediately(cluster: PostgresCluster) -> None:
    """``pg_ctl restart -m immediate``: no checkpoint, unflushed WAL lost (its options kept)."""
    assert cluster.base_dir is not None
    assert cluster._pg_bin is not None
    data = str(cluster.base_dir / "data")
    log = str(cluster.base_dir / "restart.log")
    pg_ctl = ("pg_ctl", "--pgdata", data, "--mode", "immediate", "--wait", "--log", log)
    _run(_command(cluster._pg_bin, *pg_ctl, "restart", as_root=os.geteuid() == 0),
         cluster.base_dir)  # fmt: skip


def test_a_heartbeat_the_server_lost_is_not_built_on_by_the_process_that_sent_it(
    cluster: PostgresCluster,
) -> None:
    url = cluster.url
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE custody_test SET synchronous_commit = off")
        conn.execute("ALTER SYSTEM SET wal_writer_delay = '10s'")  # WAL waits 10 s to be written
        conn.execute("SELECT pg_reload_conf()")
    Ledger.init(url).close()
    with Ledger.open(f"{url}?timeout=10") as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", ttl_seconds=3600)
        )
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step="kept")
        ledger.handle(beat)  # v3
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # everything up to v3 is on the disk
        ledger.handle(beat.model_copy(update={"step": "lost"}))  # v4: acknowledged only
        _restart_immediately(cluster)
        with psycopg.connect(url) as conn:
            stored = [v for (v,) in conn.execute(
                "SELECT originator_version FROM custody_events ORDER BY 1").fetchall()]  # fmt: skip
        assert stored == [1, 2, 3], "the restart kept v4: nothing was lost to test"
        ledger.handle(beat.model_copy(update={"step": "after"}))
        steps = [(e.originator_version, getattr(e, "step", None)) for e in ledger.history("p1")]
        found = audit.verify(ledger)
    assert steps[-2:] == [(3, "kept"), (4, "after")]
    assert found.problems == []
