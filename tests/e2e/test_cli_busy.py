"""A store held by another writer: the command waits a bounded time, then exits 6 "busy"."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

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
