"""Every store call waits a bounded time: a stuck writer or a stopped server cannot stall a
command longer than the store's timeout, and the command that gave up wrote nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import register
from pg_cluster import PostgresCluster

from ledger import Ledger, StoreUnavailable

# A writer that takes the lock every writer needs, then freezes (SIGSTOP): on SQLite the file's
# write lock, on PostgreSQL the events table's lock that the library takes on every insert.
_STUCK_WRITER = r"""
import os, signal, sys
url = sys.argv[1]
if url.startswith("sqlite"):
    import sqlite3
    conn = sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
else:
    import psycopg
    conn = psycopg.connect(url.split("?")[0])
    conn.execute("LOCK TABLE custody_events IN EXCLUSIVE MODE")
print("locked", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)
"""


@pytest.fixture
def stuck_writer(sql_store_url: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUCK_WRITER, sql_store_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.communicate()


def test_a_paused_writer_blocks_others_at_most_the_timeout(
    sql_store_url: str, stuck_writer: subprocess.Popen[str]
) -> None:
    """A real process holding the writers' lock, frozen by SIGSTOP: a checkout of another
    profile gives up as busy within about the 1 s timeout, not after 30 s (SQLite) or never
    (PostgreSQL), and its profile's stream is unchanged."""
    url = f"{sql_store_url}?timeout=1"
    with Ledger.open(url) as ledger:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="busy") as caught:
            ledger.checkout("p_other", worker_id="w", run_id="r", task_type="t")
        waited = time.monotonic() - started
    assert waited < 5, f"waited {waited:.1f} s behind a stuck writer"
    assert "nothing was written" in str(caught.value)
    os.kill(stuck_writer.pid, signal.SIGKILL)
    stuck_writer.wait()
    with Ledger.open(url) as ledger:
        assert [e.event_type for e in ledger.history("p_other")] == ["profile_registered"]


@pytest.fixture(autouse=True)
def _profile(request: pytest.FixtureRequest) -> None:
    if "sql_store_url" in request.fixturenames:
        with Ledger.open(request.getfixturevalue("sql_store_url")) as ledger:
            register(ledger, "p_other")


def test_a_stopped_server_fails_within_the_timeout() -> None:
    """With PostgreSQL gone under an open ledger, the next command fails as unavailable in
    about the timeout, not after the library's ten retries (52 s measured before)."""
    cluster = PostgresCluster.start()
    try:
        url = f"{cluster.url}?timeout=1"
        Ledger.init(url).close()
        ledger = Ledger.open(url)
        register(ledger, "p")
        lease = ledger.checkout("p", worker_id="w", run_id="r", task_type="t")
    finally:
        cluster.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        ledger.heartbeat(lease.lease_id, fencing_token=lease.fencing_token)
    waited = time.monotonic() - started
    ledger.close()
    assert waited < 10, f"waited {waited:.1f} s for a stopped server"
