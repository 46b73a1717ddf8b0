"""Every store call waits a bounded time: a stuck writer or a stopped server cannot stall a
command longer than the store's timeout, and the command that gave up wrote nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import register
from pg_cluster import PostgresCluster

from ledger import Checkout, Heartbeat, Ledger, StoreUnavailable
from projections import LEASES_READ_MODEL, rebuild

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
            ledger.handle(Checkout(profile_id="p_other", worker_id="w", run_id="r", task_type="t"))
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
        lease = ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))
    finally:
        cluster.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable"):
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    waited = time.monotonic() - started
    ledger.close()
    assert waited < 10, f"waited {waited:.1f} s for a stopped server"


def test_every_postgres_session_of_the_store_bounds_its_lock_waits(pg_url: str) -> None:
    """The library's pool, a direct connection, the LISTEN connection and ADBC (pandas' path)
    each wait for a lock at most the store's timeout (3 s here), reads included."""
    from ledger._stores.connections import postgres_connection

    url = f"{pg_url}?timeout=3"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        shown = "SELECT current_setting('lock_timeout') AS t"
        pooled = ledger.feed.query(shown)[0]["t"]
        with postgres_connection(ledger.settings) as direct:
            row = direct.execute(shown).fetchone()
        with ledger.feed.wakeups(1.0) as wakeups:
            listening = wakeups._conn.execute(shown).fetchone()  # type: ignore[attr-defined]
        adbc = ledger.feed.read_frame(shown).iloc[0, 0]
    assert [pooled, row[0], listening[0], adbc] == ["3s"] * 4


def test_a_pandas_read_behind_a_held_table_is_busy_within_the_timeout(pg_url: str) -> None:
    """A report's frame (read through ADBC) behind a session holding the timeline's table
    gives up as busy after the 1 s timeout instead of waiting for the holder."""
    import psycopg

    url = f"{pg_url}?timeout=1"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        register(ledger, "p")
        assert len(ledger.feed.read_frame("SELECT 1 AS one")) == 1
        from projections import TIMELINE_READ_MODEL, catch_up

        catch_up(ledger, TIMELINE_READ_MODEL)
        with psycopg.connect(pg_url) as holder:
            holder.execute("LOCK TABLE custody_timeline IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="busy"):
                ledger.feed.read_frame("SELECT count(*) AS n FROM custody_timeline")
            waited = time.monotonic() - started
    assert waited < 3, f"waited {waited:.1f} s behind a held table"


def test_a_rebuild_behind_a_held_sqlite_lock_waits_the_timeout_once(tmp_path: Path) -> None:
    """rev29: ``projections rebuild`` behind another process's write lock waited twice the
    store's timeout (its first transaction, then the clean-up of what it had not made) and
    said it waited once ("waited 2 s" after 4.2 s). Nothing made, nothing to clean: one wait,
    and the read model as it was."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.open(url, create=True) as ledger:
        register(ledger, "p1")
        rebuild(ledger, LEASES_READ_MODEL)
    proc = subprocess.Popen(
        [sys.executable, "-c", _STUCK_WRITER, url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with Ledger.open(f"{url}?timeout=2") as ledger:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match=r"waited 2 s"):
                rebuild(ledger, LEASES_READ_MODEL)
            waited = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.communicate()
    assert waited < 3.5, f"waited {waited:.1f} s, said 2 s"
