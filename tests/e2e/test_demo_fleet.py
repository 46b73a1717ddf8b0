"""``custody demo --workers N``: worker processes with injected faults and a sweeper beside
them, on a fresh SQLite file, run as a person runs it; the ledger it leaves is then read event
by event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_process import LOOKS
from local_site import browsers_on

from custody._fleet.plan import make_plan
from ledger import Ledger, ProfileState
from ledger._domain import events as ev

# The events that end a lease (a revocation is always followed by one of them).
LEASE_ENDINGS = (ev.LeaseReleasedCleanly, ev.ReviewRequested, ev.ProfileQuarantined)
FLEET_TIMEOUT_S = 300  # four Python processes (and Chromiums) on two loaded cores


def fleet(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_STORE", *LOOKS)}
    return subprocess.run(
        [sys.executable, "-m", "custody", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=FLEET_TIMEOUT_S,
        check=False,
    )


def histories(db: Path) -> dict[str, list[ev.ProfileEvent]]:
    with Ledger.open(f"sqlite:///{db}", create=False) as ledger:
        return {pid: ledger.history(pid) for pid in ledger.profile_ids()}


def leases_by_run(found: dict[str, list[ev.ProfileEvent]]) -> dict[str, list[ev.ProfileEvent]]:
    """Each run's events after its checkout, up to the event that ended its lease."""
    runs: dict[str, list[ev.ProfileEvent]] = {}
    for history in found.values():
        current: list[ev.ProfileEvent] | None = None
        for e in history:
            if isinstance(e, ev.LeaseAcquired):
                current = runs.setdefault(e.lease.run_id, [])
            if current is not None:
                current.append(e)
            if isinstance(e, LEASE_ENDINGS):
                current = None
    return runs


def check_one_holder_at_a_time(found: dict[str, list[ev.ProfileEvent]]) -> None:
    for pid, history in found.items():
        live, token = None, 0
        for e in history:
            if isinstance(e, ev.LeaseAcquired):
                assert live is None, f"{pid}: {e.lease.lease_id} acquired while {live} was live"
                assert e.lease.fencing_token == token + 1
                live, token = e.lease.lease_id, e.lease.fencing_token
            elif isinstance(e, LEASE_ENDINGS):
                live = None
        assert live is None, f"{pid}: {live} is still held after the demo"


def test_a_fleet_with_injected_faults_ends_explained(tmp_path: Path) -> None:
    """Four worker processes run the seeded plan: the crashed worker's lease is marked stale by
    the sweeper and quarantines its profile; the prompt sends one to review; the worker on a
    foreign proxy is denied with the aggregated reason; the error after a mutating step
    quarantines; clean runs return their profiles. Nothing is left leased, one holder at a
    time, and the closing section explains every blocked profile."""
    db = tmp_path / "fleet.db"
    run = fleet("demo", "--workers", "4", "--seed", "17", "--db", str(db), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    plan = make_plan(4, 3, seed=17)
    faults = {t.run_id: t.fault for w in plan.workers for t in w.tasks}
    found = histories(db)
    check_one_holder_at_a_time(found)
    runs = leases_by_run(found)
    for run_id, fault in faults.items():
        if fault == "proxy_mismatch":
            assert run_id not in runs
            assert f"{run_id} denied: 0 of 3 profiles for" in run.stdout
            continue
        events = runs[run_id]
        ending = events[-1]
        if fault == "crash":
            assert isinstance(events[-2], ev.LeaseMarkedStale)
            assert isinstance(ending, ev.ProfileQuarantined)
            assert ending.envelope.actor_id == "sweeper"
            assert [e for e in events if isinstance(e, ev.LeaseReleaseRequested)] == []
        elif fault == "prompt":
            assert isinstance(ending, ev.ReviewRequested)
            assert ending.cause == "verification_prompt"
        elif fault == "error":
            assert isinstance(ending, ev.ProfileQuarantined)
            assert ending.cause == "mutation_unconfirmed"
        else:  # none, expected_failure
            assert isinstance(ending, ev.LeaseReleasedCleanly), (run_id, fault, ending)
    with Ledger.open(f"sqlite:///{db}", create=False) as ledger:
        states = {row.profile_id: row.state for row in ledger.availability()}
    blocked = sorted(pid for pid, s in states.items() if s is not ProfileState.AVAILABLE)
    assert len(blocked) == 3  # the crash, the error, the prompt
    assert f"-- custody why: {len(blocked)} blocked profile(s) --" in run.stdout
    for pid in blocked:
        assert f"\n{pid}: {states[pid].value}\n" in run.stdout
    assert "killed: worker_" in run.stdout
    assert "sweeper: lease-" in run.stdout


@pytest.mark.browser
def test_a_browser_fleet_drives_chromium_and_leaves_no_browser_behind(tmp_path: Path) -> None:
    """With --browser each lease launches the profile in Chromium against the demo's local
    shop: releases carry a 127.0.0.1 final URL and a screenshot's hash, the prompt came from a
    real navigation, and after the crash no browser is left running on any profile."""
    db = tmp_path / "fleet.db"
    run = fleet(
        "--json", "demo", "--workers", "2", "--tasks", "2", "--browser", "--db", str(db),
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    answer: dict[str, Any] = json.loads(run.stdout)
    releases = [
        e for h in histories(db).values() for e in h if isinstance(e, ev.LeaseReleaseRequested)
    ]
    assert releases
    for release in releases:
        assert (release.final_url or "").startswith("http://127.0.0.1:")
        if release.outcome == "success":
            assert release.screenshot_sha256 is not None
    assert any(r.prompt_seen for r in releases)
    assert -9 in answer["exits"].values()
    for row in answer["status"]:
        assert row["state"] != "leased"
        directory = str(Path(answer["workdir"]) / "profiles" / row["profile_id"])
        assert browsers_on(directory) == []
    assert answer["blocked"]
    for explained in answer["blocked"]:  # each blocked profile's browser ran, and is gone
        assert explained["browser"]["status"] in ("not_running", "stale_lock")


def test_fleet_options_without_workers_are_refused(tmp_path: Path) -> None:
    """--browser (or --tasks, --seed, --ttl) without --workers is a usage error, one line,
    exit 2, and no ledger is written."""
    run = fleet("demo", "--browser", "--db", str(tmp_path / "x.db"), cwd=tmp_path)
    assert (run.returncode, run.stdout) == (2, "")
    assert "--browser needs --workers N" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()
