"""Races between real processes on one store; the event history is checked afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import register

from ledger import Ledger

WORKER = Path(__file__).with_name("race_worker.py")
PROFILES = ["race_a", "race_b", "race_c"]
_ENDINGS = {"lease_released_cleanly", "review_requested", "profile_quarantined", "lease_revoked"}


def _run_workers(sql_store_url: str, workers: int, iterations: int) -> list[dict[str, object]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                sql_store_url,
                f"w{n}",
                str(iterations),
                ",".join(PROFILES),
                str(n),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))
    return summaries


def _check_history(ledger: Ledger, profile_id: str) -> list[str]:
    """Assert no two leases overlap and tokens rise by one; return the winners in order."""
    live: str | None = None
    token = 0
    winners = []
    for event in ledger.history(profile_id):
        if event.event_type == "lease_acquired":
            assert live is None, f"{event.event_id}: acquired while {live} was live"
            lease = event.lease  # type: ignore[attr-defined]
            assert lease.fencing_token == token + 1, f"{event.event_id}: token did not rise by 1"
            token, live = lease.fencing_token, lease.lease_id
            winners.append(lease.worker_id)
        elif event.event_type in _ENDINGS and getattr(event, "lease_id", None) == live:
            live = None
    assert live is None, f"{profile_id}: lease {live} never ended"
    return winners


@pytest.mark.slow
def test_many_processes_racing_checkout_never_overlap(sql_store_url: str) -> None:
    """8 processes hammer checkout/release on 3 profiles: one winner at a time per profile,
    tokens strictly increase, losers only ever see CheckoutDenied naming the holder."""
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            register(ledger, pid)
    summaries = _run_workers(sql_store_url, workers=8, iterations=25)
    assert [s["unexpected"] for s in summaries] == [[]] * 8
    with Ledger.open(sql_store_url) as ledger:
        winners = [w for pid in PROFILES for w in _check_history(ledger, pid)]
    for summary in summaries:
        assert winners.count(summary["worker"]) == summary["granted"]
    assert sum(int(s["granted"]) for s in summaries) == len(winners) > 0  # type: ignore[call-overload]
    denied = [s["denied"] for s in summaries]
    assert any(d.get("already_leased") for d in denied)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_concurrent_sweepers_settle_each_lease_once(sql_store_url: str) -> None:
    """Four sweep processes started together on overdue leases: each lease is marked stale
    and sent to review exactly once, and the sweeps' reports add up to the leases."""
    with Ledger.open(sql_store_url) as ledger:
        leases = []
        for pid in PROFILES:
            register(ledger, pid)
            leases.append(
                ledger.checkout(pid, worker_id="w", run_id=f"r-{pid}", task_type="t", ttl_seconds=1)
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
        reported += [r["lease_id"] for r in json.loads(out)]
    assert sorted(reported) == sorted(lease.lease_id for lease in leases)
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            types = [e.event_type for e in ledger.history(pid)]
            assert types.count("lease_marked_stale") == 1
            assert types.count("review_requested") == 1
            assert ledger.view(pid).state.value == "review_required"
