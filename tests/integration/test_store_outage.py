"""A long-lived process across a PostgreSQL outage (rev33 review of long-lived processes):
its commands fail within the store's timeout while the database refuses connections, and
answer again within seconds of its return, however long the outage was.

The outage is the database refusing new connections (``ALLOW_CONNECTIONS false``) with every
session of it ended, on a server of its own: what the pool sees of a server down, while the
test can still end it."""

from __future__ import annotations

import time

import psycopg
import pytest
from pg_cluster import PostgresCluster, create_database

from ledger import Checkout, Heartbeat, Ledger, RegisterProfile, StoreUnavailable

pytestmark = pytest.mark.postgres
DATABASE = "outage"


def _refuse(cluster: PostgresCluster, refused: bool) -> None:
    """The database refuses new connections (and every session of it is ended), or takes
    them again."""
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {DATABASE} ALLOW_CONNECTIONS {str(not refused).lower()}")
        if refused:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (DATABASE,),
            )


def _beat_until_taken(ledger: Ledger, beat: Heartbeat, seconds: float) -> float:
    """Send ``beat`` every half second until one is taken; how long that took."""
    started = time.monotonic()
    while True:
        try:
            ledger.handle(beat)
            return time.monotonic() - started
        except StoreUnavailable:
            assert time.monotonic() - started < seconds, f"no heartbeat taken in {seconds} s"
            time.sleep(0.5)


def test_a_long_lived_ledger_answers_within_seconds_of_the_store_s_return(
    cluster: PostgresCluster,
) -> None:
    """Through a 20 s outage, each command fails within the store's timeout (1 s here) plus
    the connection's checks, never ten times it (rev33: a load from a snapshot was retried
    ten times, 52 s where the timeout was 5); once the database takes connections again, a
    command goes through within a few seconds (rev33: the pool's reconnections waited 1, 2, 4,
    ... 128 s apart, and a process failed every command for one to two minutes more)."""
    url = create_database(cluster.admin_url, DATABASE)
    Ledger.init(url).close()
    with Ledger.open(f"{url}?timeout=1") as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", ttl_seconds=600)
        )
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token)
        ledger.handle(beat)
        _refuse(cluster, True)
        try:
            outage = time.monotonic() + 20
            waits = []
            while time.monotonic() < outage:
                for command in (lambda: ledger.handle(beat), lambda: ledger.view("p1")):
                    started = time.monotonic()
                    with pytest.raises(StoreUnavailable):
                        command()
                    waits.append(time.monotonic() - started)
                time.sleep(0.5)
        finally:
            _refuse(cluster, False)
        assert max(waits) < 4, f"a failing command waited {max(waits):.1f} s (timeout 1 s)"
        took = _beat_until_taken(ledger, beat, seconds=60)
    assert took < 5, f"the first heartbeat after the outage was taken after {took:.1f} s"
