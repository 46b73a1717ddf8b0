"""Races between real processes on one store; the event history is checked afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import register
from racing import leases_in_order, run_all

from ledger import Checkout, Ledger, availability_differences, rebuild_availability

WORKER = Path(__file__).with_name("race_worker.py")
PROFILES = ["race_a", "race_b", "race_c"]


def _run_workers(
    store_url: str, workers: int, rounds: int, interval: float
) -> list[dict[str, object]]:
    # Every process starts, opens the store and warms its cache before the first round.
    start_at = time.time() + 3.0
    rest = [str(rounds), ",".join(PROFILES), str(start_at), str(interval)]
    return run_all(str(WORKER), [[store_url, f"w{n}", *rest] for n in range(workers)])


@pytest.mark.slow
def test_many_processes_racing_checkout_never_overlap(sql_store_url: str) -> None:
    """6 processes check out the same profile at the same instant, round after round: the
    version races really happen (conflicts are counted), no two leases ever overlap, tokens
    rise by one, and the losers see only CheckoutDenied naming the holder (with the
    retry after a conflict removed, the losers' conflicts surface and this test fails)."""
    workers, rounds = 6, 12
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            register(ledger, pid)
    summaries = _run_workers(sql_store_url, workers=workers, rounds=rounds, interval=0.6)
    assert [s["unexpected"] for s in summaries] == [[]] * workers
    with Ledger.open(sql_store_url) as ledger:
        winners = [lease.worker_id for pid in PROFILES for lease in leases_in_order(ledger, pid)]
    for summary in summaries:
        assert winners.count(summary["worker"]) == summary["granted"]
    # Every round's profile was free at its start, so each round has a winner; a loser that
    # was slow to start may win it again after the release (never while it is held).
    assert len(winners) >= rounds
    for summary in summaries:  # every attempt got an answer: granted or denied
        denied = summary["denied"]
        assert isinstance(denied, dict)
        assert summary["granted"] + sum(denied.values()) == rounds
    conflicts = sum(int(s["conflicts"]) for s in summaries)  # type: ignore[call-overload]
    assert conflicts > 0, "no version race happened: the test proved nothing"


@pytest.mark.slow
def test_concurrent_sweepers_settle_each_lease_once(sql_store_url: str) -> None:
    """Four sweep processes started together on overdue leases: each lease is marked stale
    and sent to review exactly once, and the sweeps' reports add up to the leases."""
    with Ledger.open(sql_store_url) as ledger:
        leases = []
        for pid in PROFILES:
            register(ledger, pid)
            leases.append(
                ledger.handle(
                    Checkout(
                        profile_id=pid,
                        worker_id="w",
                        run_id=f"r-{pid}",
                        task_type="t",
                        ttl_seconds=1,
                    )
                )
            )
    time.sleep(1.5)  # past the deadline on the store's own clock
    sweeps = [
        subprocess.Popen(
            [sys.executable, "-m", "custody", "--store", sql_store_url, "--json", "sweep"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    reported = []
    for proc in sweeps:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        reported += [r["lease_id"] for r in json.loads(out)["settled"]]
    assert sorted(reported) == sorted(lease.lease_id for lease in leases)
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            types = [e.event_type for e in ledger.history(pid)]
            assert types.count("lease_marked_stale") == 1
            assert types.count("review_requested") == 1
            assert ledger.view(pid).state.value == "review_required"


@pytest.mark.slow
def test_verify_beside_live_writers_reports_no_difference(sql_store_url: str) -> None:
    """While worker processes check out, heartbeat and release, verify and rebuild compare each
    row with the stream as of the row's own version: they never report a difference that is
    not there (they used to on every run)."""
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            register(ledger, pid)
    start_at = time.time() + 2.0
    argv = [sys.executable, str(WORKER), sql_store_url]
    rest = [",".join(PROFILES), str(start_at), "0.3"]
    procs = [
        subprocess.Popen([*argv, f"w{n}", "15", *rest], stdout=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    checks, found = 0, []
    with Ledger.open(sql_store_url) as ledger:
        while any(p.poll() is None for p in procs):
            if time.time() > start_at:
                found += availability_differences(ledger)
                found += rebuild_availability(ledger).differences
                checks += 1
    for proc in procs:
        proc.communicate()
        assert proc.returncode == 0
    assert checks > 5
    assert found == []
