"""Read models against real processes: a rebuild while writer processes append, and a
model process killed in the middle of its catch-up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import register
from projection_checks import TwinLeases, TwinTimeline, assert_exact, rows

from ledger import Ledger
from projections import READ_MODELS, catch_up, read_model_status

WORKER = Path(__file__).with_name("race_worker.py")
PROFILES = ["race_a", "race_b", "race_c"]


def _custody(store_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "custody", "--store", store_url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _backlog(ledger: Ledger, beats: int) -> None:
    """A profile with a lease and ``beats`` heartbeats: events for a catch-up to chew on."""
    pid = register(ledger, "backlog")
    lease = ledger.checkout(pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=3600)
    for n in range(beats):
        ledger.heartbeat(lease.lease_id, fencing_token=lease.fencing_token, step=f"s{n}")


@pytest.mark.slow
def test_rebuild_beside_live_writers_equals_the_incremental_read_model(sql_store_url: str) -> None:
    """Writer processes check out, heartbeat and release while `custody projections rebuild`
    runs (twice at once: one may be refused, never both run) and readers catch up the live
    read models; afterwards each rebuilt read model equals, row for row, a twin kept only
    incrementally the whole time."""
    twins = (TwinLeases(), TwinTimeline())
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            register(ledger, pid)
        _backlog(ledger, 300)
        for model in (*READ_MODELS.values(), *twins):
            catch_up(ledger, model)
    start_at = time.time() + 2.0
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                sql_store_url,
                f"w{n}",
                "16",
                ",".join(PROFILES),
                str(start_at),
                "0.3",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    rebuilds: list[subprocess.CompletedProcess[str]] = []
    overlapped = 0
    with Ledger.open(sql_store_url) as ledger:
        while time.time() < start_at:
            time.sleep(0.05)
        while any(w.poll() is None for w in writers):
            pair = [_custody(sql_store_url, "projections", "rebuild") for _ in range(2)]
            for proc in pair:
                out, err = proc.communicate(timeout=300)
                rebuilds.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
            overlapped += any(w.poll() is None for w in writers)
            for model in (*READ_MODELS.values(), *twins):
                catch_up(ledger, model, batch=7)
    for writer in writers:
        writer.communicate()
        assert writer.returncode == 0
    assert overlapped >= 1, "no rebuild ran while the writers did: the test proved nothing"
    succeeded = [r for r in rebuilds if r.returncode == 0]
    assert len(succeeded) >= len(rebuilds) // 2
    for refused in (r for r in rebuilds if r.returncode != 0):
        assert "already running" in refused.stderr, refused.stderr
    with Ledger.open(sql_store_url) as ledger:
        for model in (*READ_MODELS.values(), *twins):
            catch_up(ledger, model)
        for model, twin in zip(READ_MODELS.values(), twins, strict=True):
            key = model.table.key
            assert rows(ledger, model.table.name, key) == rows(ledger, twin.table.name, key)
        assert_exact(ledger)


@pytest.mark.slow
def test_a_projection_process_killed_mid_catch_up_resumes_without_duplicate_or_gap(
    sql_store_url: str,
) -> None:
    """`custody projections run` is killed (SIGKILL) while it is half-way through a backlog,
    one small transaction at a time; the next catch-up continues from the position the last
    committed batch left: each event applied once, every heartbeat counted once."""
    with Ledger.open(sql_store_url) as ledger:
        _backlog(ledger, 600)
        head = ledger.feed.head()
        runner = _custody(sql_store_url, "projections", "run", "--rounds", "1", "--batch", "5")
        killed_at = None
        deadline = time.time() + 120
        while time.time() < deadline and runner.poll() is None:
            positions = ledger.feed.checkpoints()
            done = positions.get("leases", 0)
            if 0 < done < head:
                os.kill(runner.pid, signal.SIGKILL)
                killed_at = positions
                break
            time.sleep(0.01)
        runner.communicate(timeout=60)
        assert killed_at is not None, "the runner finished before it could be killed"
        assert runner.returncode == -signal.SIGKILL
        for model in READ_MODELS.values():
            catch_up(ledger, model, batch=50)
        assert_exact(ledger)
        assert rows(ledger, "custody_leases", "lease_id")[0]["heartbeats"] == 600


@pytest.mark.slow
def test_status_beside_live_writers_runners_and_rebuilds_finds_no_damage(
    sql_store_url: str,
) -> None:
    """Writer processes append, a `projections run` process catches up in small batches and a
    `projections rebuild` swaps tables in, while status checks both read models again and
    again: an honest read model is never reported damaged (each check reads rows, position
    and log at one moment), and `custody projections status` exits 0."""
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            register(ledger, pid)
        _backlog(ledger, 200)
    start_at = time.time() + 2.0
    argv = [str(WORKER), sql_store_url, "", "24", ",".join(PROFILES), str(start_at), "0.3"]
    writers = [
        subprocess.Popen([sys.executable, *argv[:2], f"w{n}", *argv[3:]], stdout=subprocess.PIPE)
        for n in range(3)
    ]
    runner = _custody(sql_store_url, "projections", "run", "--interval", "0.05", "--batch", "7")
    checks, problems = 0, []
    try:
        with Ledger.open(sql_store_url) as ledger:
            time.sleep(max(0.0, start_at - time.time()))
            while any(w.poll() is None for w in writers):
                rebuilding = checks % 4 == 3
                if rebuilding:
                    rebuild = _custody(sql_store_url, "projections", "rebuild", "timeline")
                for status in read_model_status(ledger, READ_MODELS.values()):
                    problems += status.problems
                if rebuilding:
                    _, err = rebuild.communicate(timeout=120)
                    assert rebuild.returncode == 0, err
                checks += 1
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=60)
    for writer in writers:
        writer.communicate()
        assert writer.returncode == 0
    assert checks >= 4, f"only {checks} checks ran beside the writers"
    assert problems == []
    status = _custody(sql_store_url, "projections", "status")
    _, err = status.communicate(timeout=60)
    assert status.returncode == 0, err
