"""``custody inspect`` where there is nothing to inspect here, and its usage errors (no
browser needed: the real-Chromium cases are in test_inspector_chromium.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from cli_process import custody, error_line, ok


def _store(tmp_path: Path, *register: str) -> str:
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("--store", store, "register", "p", "--account", "a", "--proxy", "x", *register,
               cwd=tmp_path))  # fmt: skip
    return store


def test_no_directory_registered_means_nothing_to_inspect_or_stop(tmp_path: Path) -> None:
    """Without a user_data_dir: inspect says so (exit 0); --stop-orphan is refused (exit 1)
    and writes nothing; why shows no browser."""
    store = _store(tmp_path)
    shown = ok(custody("--store", store, "--json", "inspect", "p", cwd=tmp_path)).json()
    assert shown["browser"] is None
    assert "no user_data_dir is registered" in shown["note"]
    run = custody("--store", store, "inspect", "p", "--stop-orphan", "--actor", "ops", cwd=tmp_path)
    assert run.code == 1
    assert "cannot stop a browser of p" in error_line(run)
    why = ok(custody("--store", store, "--json", "why", "p", cwd=tmp_path)).json()
    assert (why["browser"], why["browser_note"]) == (None, None)
    timeline = ok(custody("--store", store, "--json", "timeline", "p", cwd=tmp_path)).json()
    assert len(timeline) == 1


def test_a_directory_of_another_host_is_not_inspected_here(tmp_path: Path) -> None:
    """A registered directory that does not exist on this host: inspect says to inspect on
    the host that ran it."""
    store = _store(tmp_path, "--user-data-dir", "/srv/profiles/elsewhere/p")
    out = ok(custody("--store", store, "inspect", "p", cwd=tmp_path)).out
    assert "not a directory on this host" in out


def test_stop_orphan_needs_an_actor(tmp_path: Path) -> None:
    """--stop-orphan without --actor is a usage error (exit 2), one line."""
    store = _store(tmp_path)
    run = custody("--store", store, "inspect", "p", "--stop-orphan", cwd=tmp_path)
    assert run.code == 2
    assert "--actor" in error_line(run)


def test_a_holder_past_its_deadline_is_said_to_be_stale(tmp_path: Path) -> None:
    """A lease that missed its renewal deadline, not swept yet: inspect says the holder's
    deadline passed, as why and who do (before it, nothing of the kind)."""
    store = _store(tmp_path)
    lease = ok(custody("--store", store, "--json", "checkout", "p", "--worker", "w", "--run", "r",
                       "--task", "t", "--ttl", "5", cwd=tmp_path)).json()  # fmt: skip
    live = ok(custody("--store", store, "--json", "inspect", "p", cwd=tmp_path)).json()
    deadline = datetime.fromisoformat(lease["expires_at"])
    assert datetime.now(UTC) < deadline, "the machine took the whole TTL: inconclusive"
    assert live["overdue_since"] is None
    time.sleep((deadline - datetime.now(UTC)).total_seconds() + 0.2)
    late = ok(custody("--store", store, "--json", "inspect", "p", cwd=tmp_path)).json()
    assert late["overdue_since"] == lease["expires_at"]
    said = ok(custody("--store", store, "inspect", "p", cwd=tmp_path)).out.splitlines()[0]
    assert said.startswith("p: leased, held by worker w under lease-1@p; its deadline ")
    assert said.endswith(" passed: stale")
