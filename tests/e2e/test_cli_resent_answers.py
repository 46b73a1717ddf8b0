"""End to end: an operator's or reviewer's command resent by its ``--command-id`` answers as
recorded (appending nothing), and says so: never that the profile is "now" in a state it has
left since."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import custody, custody_all, error_line, ok

QUARANTINE = ["quarantine", "p1", "--actor", "bob", "--reason", "flagged", "--command-id", "q-1"]


def test_a_resent_quarantine_says_its_answer_is_as_recorded_not_now(tmp_path: Path) -> None:
    """rev34: after a review returned p1 and a worker leased it, the quarantine resent by its
    id printed "p1 is now quarantined" (exit 0) of a leased profile. The line says the state
    was the command's then, and ``--json`` marks the row ``"resent": true`` (its ``state`` and
    ``version`` then's); a first send is as it was."""
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path))
    first = ok(custody("--json", *QUARANTINE, cwd=tmp_path)).json()
    assert first["state"] == "quarantined"
    assert "resent" not in first
    review = ["review", "p1", "--reviewer", "alice", "--decision", "return", "--note", "ok"]
    ok(custody(*review, cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w2", "--run", "r2", "--task", "t", cwd=tmp_path))
    line = ok(custody(*QUARANTINE, cwd=tmp_path)).out
    assert line == (
        "p1 was quarantined after this command (resent: its answer as recorded, not the "
        "profile now; custody why p1 says where it stands)\n"
    )
    said = ok(custody("--json", *QUARANTINE, cwd=tmp_path)).json()
    assert (said["state"], said["version"], said["resent"]) == ("quarantined", 2, True)
    assert ok(custody("--json", "status", cwd=tmp_path)).json()[0]["state"] == "leased"


def test_a_resent_force_release_says_its_answer_is_as_recorded_not_now(tmp_path: Path) -> None:
    """rev34 (a review of the fix above): a force-release resent by its id after a review
    returned p1 and a worker leased it said "p1 is review_required". It says the state was
    the command's then."""
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t", cwd=tmp_path))
    forced = ["force-release", "p1", "--actor", "bob", "--reason", "stuck", "--command-id", "f-1"]
    first = ok(custody(*forced, cwd=tmp_path)).out
    assert first.endswith("; p1 is review_required\n"), first
    review = ["review", "p1", "--reviewer", "alice", "--decision", "return", "--note", "ok"]
    ok(custody(*review, cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w2", "--run", "r2", "--task", "t", cwd=tmp_path))
    line = ok(custody(*forced, cwd=tmp_path)).out
    assert line.endswith(
        "; p1 was review_required after it (resent: its answer as recorded, not the profile "
        "now; custody why p1 says where it stands)\n"
    ), line


# Every command that takes --command-id, as typed once its profile is leased (p1, lease-1@p1).
_WITH_ID = {
    "checkout": ["checkout", "p1", "--worker", "w2", "--run", "r2", "--task", "t"],
    "heartbeat": ["heartbeat", "lease-1@p1", "--token", "1", "--step", "s"],
    "extend": ["extend", "lease-1@p1", "--token", "1", "--ttl", "60"],
    "release": ["release", "lease-1@p1", "--token", "1", "--outcome", "success"],
    **{
        name: [name, "p1", "--actor", "bob", "--reason", "r"]
        for name in ("force-release", "quarantine", "disable", "enable")
    },
    "review": ["review", "p1", "--reviewer", "ana", "--decision", "return", "--note", "n"],
    "sweep": ["sweep"],
}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_an_empty_command_id_is_bad_input_and_writes_nothing(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """rev37: ``--command-id ''`` was taken for no id and replaced by a new one each time, so
    a resend was applied again (a second checkout denied by its own lease, two heartbeats, a
    release resent refused as lost). As the Python API and the service refuse an empty id,
    every command that takes one refuses it: exit 2, one line naming the option, the profile's
    events as they were."""
    store = (
        f"sqlite:///{tmp_path / 'c.db'}" if kind == "sqlite" else request.getfixturevalue("pg_url")
    )
    ok(custody("init", cwd=tmp_path, store=store))
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=store))
    ok(custody("checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t", cwd=tmp_path,
               store=store))  # fmt: skip
    before = ok(custody("--json", "timeline", "p1", cwd=tmp_path, store=store)).json()
    runs = custody_all(
        [[*argv, "--command-id", ""] for argv in _WITH_ID.values()], cwd=tmp_path, store=store
    )
    for name, run in zip(_WITH_ID, runs, strict=True):
        assert run.code == 2, (name, run.err)
        line = error_line(run)
        assert "invalid value for '--command-id': must not be empty" in line, (name, line)
    assert ok(custody("--json", "timeline", "p1", cwd=tmp_path, store=store)).json() == before


def test_a_resent_release_says_its_answer_is_as_recorded_not_now(tmp_path: Path) -> None:
    """rev37: a worker's release resent by its id once a review returned p1 and another
    worker leased it printed "p1 is review_required", exit 0, and ``--json`` had no mark. The
    line says the state was the release's then, and ``--json`` marks it ``"resent": true``."""
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t", cwd=tmp_path))
    release = ["release", "lease-1@p1", "--token", "1", "--outcome", "failure", "--reason", "b",
               "--command-id", "rel-1"]  # fmt: skip
    first = ok(custody("--json", *release, cwd=tmp_path)).json()
    assert "resent" not in first
    review = ["review", "p1", "--reviewer", "ana", "--decision", "return", "--note", "ok"]
    ok(custody(*review, cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w2", "--run", "r2", "--task", "t", cwd=tmp_path))
    line = ok(custody(*release, cwd=tmp_path)).out
    assert line == (
        "lease-1@p1 ended (unexpected_failure); p1 was review_required after it (resent: its "
        "answer as recorded, not the profile now; custody why p1 says where it stands)\n"
    )
    said = ok(custody("--json", *release, cwd=tmp_path)).json()
    assert (said["profile_state"], said["resent"]) == ("review_required", True)
