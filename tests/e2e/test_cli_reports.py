"""End to end: the report commands (timeline by account and window, usage, replay) and the
read models' upkeep (projections status, rebuild, run), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_process import custody, custody_all, error_line, ok
from pg_cluster import create_database, drop_database

SHOP = ["--account", "acct_shop", "--proxy", "px"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """Two profiles of one account and one of another; a clean lease, a failed one, a live
    one; and the moments between them. Shared by the module's tests, which only read."""
    tmp_path = tmp_path_factory.mktemp("reports")
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    database = None
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        database = f"t_{uuid.uuid4().hex[:12]}"
        store = create_database(cluster.admin_url, database)
    ok(custody("init", cwd=tmp_path, store=store))
    for pid, account in (
        ("p1", SHOP),
        ("p2", SHOP),
        ("q1", ["--account", "other", "--proxy", "px"]),
    ):
        ok(custody("register", pid, *account, cwd=tmp_path, store=store))
    moments = {"start": datetime.now(UTC).isoformat()}
    ok(custody("checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t",
               cwd=tmp_path, store=store))  # fmt: skip
    time.sleep(0.05)
    moments["p1_held"] = datetime.now(UTC).isoformat()
    ok(custody("release", "lease-1@p1", "--token", "1", "--outcome", "success",
               "--final-url", "https://x/done", cwd=tmp_path, store=store))  # fmt: skip
    for pid, worker in (("p2", "w2"), ("q1", "w3")):
        ok(custody("checkout", pid, "--worker", worker, "--run", f"r-{pid}", "--task", "t",
                   cwd=tmp_path, store=store))  # fmt: skip
    ok(custody("release", "lease-1@p2", "--token", "1", "--outcome", "failure",
               cwd=tmp_path, store=store))  # fmt: skip
    yield tmp_path, store, moments
    if database is not None:
        drop_database(cluster.admin_url, database)


def test_timeline_by_account_and_window(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """timeline --account lists only that account's profiles, each line naming its profile;
    --since after the registrations leaves them out; csv has a header and one row per event."""
    cwd, store, moments = fleet
    whole, later, table = custody_all(
        [
            ["--json", "timeline", "--account", "acct_shop"],
            ["--json", "timeline", "--account", "acct_shop", "--since", moments["start"]],
            ["timeline", "--account", "acct_shop", "--format", "csv"],
        ],
        cwd=cwd,
        store=store,
    )
    rows = ok(whole).json()
    assert {r["profile_id"] for r in rows} == {"p1", "p2"}
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert "profile_registered" not in {r["event_type"] for r in ok(later).json()}
    parsed = list(csv.DictReader(io.StringIO(ok(table).out)))
    assert len(parsed) == len(rows)
    assert {r["account_id"] for r in parsed} == {"acct_shop"}
    lines = ok(custody("timeline", "--account", "acct_shop", cwd=cwd, store=store)).out
    assert all(line.split()[1] in ("p1", "p2") for line in lines.splitlines())


def test_timeline_last_is_the_tail_of_the_same_answer(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """--last N gives the last N events of what the same timeline gives whole, oldest first,
    for a profile, an account and the fleet; --last 0 or a negative is one line, exit 2."""
    cwd, store, _ = fleet
    asks = (["p1"], ["--account", "acct_shop"], [])
    answers = custody_all(
        [
            *(["--json", "timeline", *ask] for ask in asks),
            *(["--json", "timeline", *ask, "--last", "2"] for ask in asks),
        ],
        cwd=cwd,
        store=store,
    )
    wholes, lasts = answers[:3], answers[3:]
    for whole, last in zip(wholes, lasts, strict=True):
        rows = ok(whole).json()
        assert len(rows) > 2
        assert ok(last).json() == rows[-2:]
    for bad in ("0", "-3", "two"):
        refused = custody("timeline", "p1", "--last", bad, cwd=cwd, store=store)
        assert refused.code == 2
        assert "--last" in error_line(refused)


def test_usage_lists_every_lease_of_the_account_with_its_ending(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """usage --account gives each lease on the account's profiles with worker, run and how it
    ended; the other account's lease is not in it."""
    cwd, store, _ = fleet
    leases = ok(custody("--json", "usage", "--account", "acct_shop", cwd=cwd, store=store)).json()
    seen = {(r["lease_id"], r["worker_id"], r["ending"], r["outcome"]) for r in leases}
    assert seen == {
        ("lease-1@p1", "w1", "clean", "success"),
        ("lease-1@p2", "w2", "review", "failure"),
    }
    table = ok(custody("usage", "--account", "acct_shop", cwd=cwd, store=store)).out
    assert table.splitlines()[0].split()[:3] == ["PROFILE", "LEASE", "WORKER"]


def test_who_why_and_usage_name_an_ending_in_the_same_words(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """The failed run's ending reads ``review`` with its cause ``unexpected_failure`` in who
    (text and JSON), why and usage alike: one vocabulary of endings."""
    cwd, store, _ = fleet
    said, told, used, why = custody_all(
        [
            ["--json", "who", "p2"],
            ["who", "p2"],
            ["--json", "usage", "--account", "acct_shop"],
            ["why", "p2"],
        ],
        cwd=cwd,
        store=store,
    )
    who = ok(said).json()
    assert (who["ending"], who["cause"]) == ("review", "unexpected_failure")
    (row,) = [r for r in ok(used).json() if r["lease_id"] == "lease-1@p2"]
    assert (row["ending"], row["cause"]) == ("review", "unexpected_failure")
    assert "; ended review (unexpected_failure) at " in ok(told).out
    assert "lease ended: review (unexpected_failure) at " in ok(why).out


def test_replay_shows_the_holder_at_a_moment(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """replay --at a moment inside the first lease names its holder and deadline; the events
    after that moment start with the release."""
    cwd, store, moments = fleet
    run = custody("--json", "replay", "p1", "--at", moments["p1_held"], cwd=cwd, store=store)
    replayed = ok(run).json()
    assert (replayed["state"], replayed["reason"]) == ("leased", "already_leased")
    assert replayed["holder"]["worker_id"] == "w1"
    assert replayed["deadline"] is not None
    assert replayed["after"][0]["event_type"] == "lease_release_requested"
    text = ok(custody("replay", "p1", "--at", moments["p1_held"], cwd=cwd, store=store)).out
    assert "holder: worker w1, run r1" in text
    early = custody("replay", "p1", "--at", "2001-01-01", cwd=cwd, store=store)
    assert early.code == 2
    assert "not registered yet" in error_line(early)


def test_projections_status_rebuild_and_run(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """After init both read models are installed; run brings them to the head (lag 0);
    rebuild rebuilds each and availability is checked; status says so."""
    cwd, store, _ = fleet
    before = ok(custody("projections", "status", cwd=cwd, store=store)).out
    assert "not installed" not in before  # init installed them
    assert before.splitlines()[0].startswith("leases: position ")
    ok(custody("projections", "run", "--rounds", "1", cwd=cwd, store=store))
    status = ok(custody("--json", "projections", "status", cwd=cwd, store=store)).json()
    assert {s["name"]: s["lag"] for s in status} == {"leases": 0, "timeline": 0}
    rebuilt = ok(custody("projections", "rebuild", cwd=cwd, store=store)).out
    assert "availability agrees with the events" in rebuilt
    assert "timeline: rebuilt to position" in rebuilt
    assert sorted(p.name for p in cwd.iterdir() if p.name.endswith(".lock")) == []
