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


def _copy_event(tmp_path: Path, profile: str, topic: str, *, stream: str, version: int) -> None:
    """Store a copy of ``profile``'s first event of ``topic`` again, by hand, in ``stream``
    (``same``: its own) at ``version``: what only someone past custody can put in a log."""
    with sqlite3.connect(tmp_path / "custody.db") as conn:
        original, state = conn.execute(
            "SELECT originator_id, state FROM stored_events WHERE topic = ? "
            "AND CAST(state AS TEXT) LIKE ? ORDER BY rowid LIMIT 1",
            (topic, f'%"profile_id":"{profile}"%'),
        ).fetchone()
        conn.execute(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)",
            (original if stream == "same" else stream, version, topic, state),
        )


def test_events_put_in_by_hand_are_named_and_every_other_profile_is_repaired(
    store: str, tmp_path: Path
) -> None:
    """rev24: an event stored past its stream's head made every command on its profile an
    internal error ("ValueError: event version 3 does not follow 1"), and ``custody rebuild``
    stopped at it, repairing no profile of the store; a second stream naming a profile's
    versions made ``projections rebuild timeline`` fail with the line that told to run it. Each
    names the events now (exit 1, one line); the rebuild repairs every other profile and leaves
    the damaged one's row as it is; verify names the events (exit 5)."""
    ok(_cli(store, tmp_path, "checkout", "p1", "--worker", "w", "--run", "r", "--task", "t"))
    _copy_event(tmp_path, "p1", "lease_acquired", stream="same", version=4)
    for args in (["why", "p1"], ["checkout", "p1", "--worker", "w", "--run", "r2", "--task", "t"]):
        run = _cli(store, tmp_path, *args)
        assert (run.code, run.err) == (
            1,
            "custody: the event 'lease_acquired' v4 of profile 'p1' cannot be read (it follows "
            "v2: versions between are missing), so nothing that folds it can be answered; "
            "custody verify names it\n",
        ), args
    _sql(tmp_path, "DELETE FROM custody_availability WHERE profile_id = 'p2'")
    rebuilt = _cli(store, tmp_path, "rebuild")
    assert rebuilt.code == 1, rebuilt.err
    assert rebuilt.out.splitlines()[1:] == [
        "p2: missing",
        "repaired: 1 row(s) rewritten from the events, 0 row(s) of unregistered profiles "
        "deleted, 1 left as they are",
    ]
    assert rebuilt.err == (
        "custody: 1 profile(s) left as they are, their events cannot be folded: p1; custody "
        "verify names the events\n"
    )
    assert "quarantined" in ok(_cli(store, tmp_path, "why", "p2")).out
    # rev25: `projections status` told to rebuild availability, which left the row (exit 0),
    # and status told it again. It says no rebuild repairs it; that rebuild exits 1 too.
    status = _cli(store, tmp_path, "projections", "status")
    assert status.code == 1, status.err
    assert "availability: profile p1: the event 'lease_acquired' v4" in status.out, status.out
    assert "no rebuild repairs its row (the log is append-only)" in status.out, status.out
    assert status.err == (
        "custody: 1 problem(s) found: the read models are damaged; an event no load can fold "
        "is left as it is: custody verify names it\n"
    ), status.err
    again = _cli(store, tmp_path, "projections", "rebuild", "availability")
    assert again.code == 1, again
    assert "1 profile(s) left as they are, their events cannot be folded: p1" in again.err

    # A registration copied into a stream of its own registers nothing: the timeline's rebuild
    # passes over it (rev37: one such made every timeline and its rebuild fail), and verify and
    # status name it.
    _copy_event(tmp_path, "p2", "profile_registered", stream="f" * 32, version=1)
    run = _cli(store, tmp_path, "projections", "rebuild", "timeline")
    assert run.code == 0, run.err
    assert (
        "registration(s) in a stream not their profile's own" in _cli(store, tmp_path, "status").err
    )
    assert _cli(store, tmp_path, "verify").code == 5


def test_a_read_model_ahead_of_the_log_says_to_verify_before_a_rebuild(
    store: str, tmp_path: Path
) -> None:
    """rev29: p2's newest event deleted (by someone who dropped the append-only trigger): the
    status line sent the user straight to ``projections rebuild``, which rewrote the rows that
    were the last trace of it, after which verify and status were clean. It names verify first,
    and verify alone names the deleted tail (p2's row was written with v2)."""
    ok(_cli(store, tmp_path, "timeline", "p2"))  # the timeline caught up, to v2
    with sqlite3.connect(tmp_path / "custody.db") as conn:
        conn.execute("DROP TRIGGER custody_events_no_delete")
        conn.execute(
            "DELETE FROM stored_events WHERE rowid = (SELECT max(rowid) FROM stored_events)"
        )
    status = _cli(store, tmp_path, "projections", "status")
    assert status.code == 1, status.err
    assert "its row is at version 2, ahead of the events (1)" in status.out
    assert "as if events were deleted: run custody verify (with your last digest) before a " \
        "rebuild forgets what it knew; repair:" in status.err  # fmt: skip
    verify = _cli(store, tmp_path, "verify")
    assert verify.code == 5, verify.err
    assert "p2: the log ends it at v1, but its availability row was written with v2" in verify.out


def test_status_shows_a_profile_whose_row_was_deleted_marked_missing(
    store: str, tmp_path: Path
) -> None:
    """``custody status`` shows every profile: one whose availability row was deleted by hand
    is shown from its events, marked as a missing row, as its summary counts it (rev36:
    ``status --summary`` listed p1 alone above "fleet: 2 profiles")."""
    _sql(tmp_path, "DELETE FROM custody_availability WHERE profile_id = 'p2'")
    out = ok(_cli(store, tmp_path, "status", "--summary")).out
    assert "p2       quarantined (row missing: custody rebuild)" in out
    assert "fleet: 2 profiles" in out
