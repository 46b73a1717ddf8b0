"""The availability table damaged by hand (a row deleted, edited, or made for a profile never
registered): ``custody status`` reads the rows as they stand, so ``projections status`` names
each damaged row with its repair and exits 1, and the text ``why`` says its profile's row is
wrong; the repair it names makes status whole again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_process import Run, custody, ok

REPAIR = "custody projections rebuild availability"


def _cli(store: str, cwd: Path, *args: str) -> Run:
    return custody("--store", store, *args, cwd=cwd)


@pytest.fixture
def store(tmp_path: Path) -> str:
    """Two profiles: p1 available, p2 quarantined by an operator."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    for pid in ("p1", "p2"):
        ok(_cli(url, tmp_path, "register", pid, "--account", "a", "--proxy", "x"))
    ok(_cli(url, tmp_path, "quarantine", "p2", "--actor", "op", "--reason", "suspicious"))
    return url


def _sql(tmp_path: Path, statement: str) -> None:
    with sqlite3.connect(tmp_path / "custody.db") as conn:
        conn.execute(statement)


def _problems(store: str, tmp_path: Path) -> list[str]:
    run = _cli(store, tmp_path, "projections", "status")
    if not run.code:
        return []
    assert run.code == 1, run.err
    return [line.strip() for line in run.out.splitlines() if line.startswith("  ")]


def test_a_deleted_edited_or_foreign_availability_row_is_named_with_its_repair(
    store: str, tmp_path: Path
) -> None:
    assert (
        "availability: written with the events, 2 rows"
        in ok(_cli(store, tmp_path, "projections", "status")).out.splitlines()
    )
    _sql(tmp_path, "DELETE FROM custody_availability WHERE profile_id = 'p2'")
    assert _problems(store, tmp_path) == [f"availability: profile p2: its row is missing: {REPAIR}"]
    why = ok(_cli(store, tmp_path, "why", "p2")).out
    assert "its stored availability row is wrong (missing)" in why
    ok(_cli(store, tmp_path, "projections", "rebuild", "availability"))
    assert _problems(store, tmp_path) == []

    _sql(tmp_path, "UPDATE custody_availability SET state = 'available', reason = NULL, "
                   "cause = NULL WHERE profile_id = 'p2'")  # fmt: skip
    assert _problems(store, tmp_path) == [
        f"availability: profile p2: its row is unlike its events in state, reason, cause: {REPAIR}"
    ]
    _sql(tmp_path, "INSERT INTO custody_availability SELECT 'ghost', account_id, proxy_id, "
                   "region, state, reason, cause, since, until, holder_worker, holder_run, "
                   "holder_task, lease_id, fencing_token, heartbeat_at, last_worker, last_run, "
                   "last_lease_id, last_ending, last_ended_at, version "
                   "FROM custody_availability WHERE profile_id = 'p1'")  # fmt: skip
    assert f"availability: profile ghost: its row is of no registered profile: {REPAIR}" in (
        _problems(store, tmp_path)
    )
    ok(_cli(store, tmp_path, "projections", "rebuild", "availability"))
    assert _problems(store, tmp_path) == []
    assert "p2       quarantined" in ok(_cli(store, tmp_path, "status")).out
    assert "its stored availability row" not in ok(_cli(store, tmp_path, "why", "p2")).out
