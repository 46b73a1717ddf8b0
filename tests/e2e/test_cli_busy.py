"""A store held by another writer: the command waits a bounded time, then exits 6 "busy"."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import custody, error_line, event_types, ok


def test_a_held_store_is_busy_exit_6_and_writes_nothing(tmp_path: Path) -> None:
    """While another connection holds SQLite's write lock, a checkout waits the store's
    timeout (1 s here), exits 6 with one line saying busy and that nothing was written; once
    the lock is gone the same checkout is granted."""
    store = f"sqlite:///{tmp_path / 'custody.db'}?timeout=1"
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path, store=store))
    holder = sqlite3.connect(tmp_path / "custody.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a stuck writer: the write lock, held
    try:
        started = time.monotonic()
        run = custody("checkout", "p", "--worker", "w", "--run", "r", "--task", "t",
                      cwd=tmp_path, store=store)  # fmt: skip
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert run.code == 6, run.err
    line = error_line(run)
    assert "busy" in line
    assert "nothing was written" in line
    assert waited < 10  # bounded by the 1 s timeout (plus start-up), not SQLite's old 30 s
    timeline = ok(custody("--json", "timeline", "p", cwd=tmp_path, store=store)).json()
    assert event_types(timeline) == ["profile_registered"]
    granted = custody("checkout", "p", "--worker", "w", "--run", "r", "--task", "t",
                      cwd=tmp_path, store=store)  # fmt: skip
    ok(granted)


# A session that takes the events table whole (a migration, a VACUUM FULL), on PostgreSQL
# ACCESS EXCLUSIVE on custody_events; on SQLite the file's exclusive lock (``locking_mode``
# EXCLUSIVE, then a write): neither readers nor writers get past it.
_HOLD_THE_EVENTS = r"""
import sys
url = sys.argv[1]
if url.startswith("sqlite"):
    import sqlite3
    conn = sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0], isolation_level=None)
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("UPDATE custody_schema SET version = version")
else:
    import psycopg
    conn = psycopg.connect(url.split("?")[0])
    conn.execute("LOCK TABLE custody_events IN ACCESS EXCLUSIVE MODE")
print("locked", flush=True)
sys.stdin.read()
"""

TIMEOUT_S = 2
# Beyond the timeout a command may spend what an unblocked timeline takes (start-up, pandas,
# the store: measured in the same test, so a busy machine is allowed for) and a little more.
MARGIN_S = 1.5


@pytest.fixture(params=["sqlite", "postgresql"])
def held_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, subprocess.Popen[str], float]]:
    """A store with profile p under lease, while another session holds its events: yields the
    store URL (with ``?timeout=2``), the lease id, the holder (``communicate("")`` ends it;
    it is ended after the test anyway) and how long a timeline took before it held them."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'custody.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        ok(custody("--store", url, "init", cwd=tmp_path))
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path, store=url))
    checkout = ("checkout", "p", "--worker", "w", "--run", "r", "--task", "t")
    lease = ok(custody("--json", *checkout, cwd=tmp_path, store=url)).json()["lease_id"]
    started = time.monotonic()
    ok(custody("timeline", "p", cwd=tmp_path, store=url))  # the read model installed
    unblocked = time.monotonic() - started
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_EVENTS, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        yield f"{url}?timeout={TIMEOUT_S}", lease, holder, unblocked
    finally:
        if holder.poll() is None:
            holder.communicate("")


def test_a_session_holding_the_events_bounds_every_command(
    held_store: tuple[str, str, subprocess.Popen[str], float], tmp_path: Path
) -> None:
    """Behind a session that holds the events (ACCESS EXCLUSIVE on PostgreSQL, the file's
    exclusive lock on SQLite), checkout, heartbeat, status, why and timeline each give up
    within the 2 s timeout (plus what an unblocked timeline takes) with exit 6 and one line
    saying busy (status reads which profiles are registered from the events since rev36, to
    show one whose row was deleted and none of a row made up; it answered on PostgreSQL
    before). Once the session lets go, the profile's history shows that nothing was
    written."""
    url, lease, holder, unblocked = held_store
    commands = {
        "checkout": ("checkout", "p", "--worker", "w2", "--run", "r2", "--task", "t"),
        "heartbeat": ("heartbeat", lease, "--token", "1", "--step", "s"),
        "status": ("status",),
        "why": ("why", "p"),
        "timeline": ("timeline", "p"),
    }
    took = {}
    for name, args in commands.items():
        started = time.monotonic()
        run = custody(*args, cwd=tmp_path, store=url)
        took[name] = round(time.monotonic() - started, 1)
        assert run.code == 6, f"{name}: exit {run.code}: {run.err}"
        assert "busy" in error_line(run), name
    assert max(took.values()) < TIMEOUT_S + unblocked + MARGIN_S, (took, unblocked)
    holder.communicate("")
    timeline = ok(custody("--json", "timeline", "p", cwd=tmp_path, store=url)).json()
    assert event_types(timeline) == ["profile_registered", "lease_acquired"]
