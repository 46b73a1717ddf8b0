"""The read model tests' real processes: `custody` commands, `custody projections run` runners
watched through their output, and a backlog of events for them to fold."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import register

from ledger import Checkout, Heartbeat, Ledger

WORKER = Path(__file__).with_name("race_worker.py")  # checks out, beats and releases


def custody(store_url: str, *args: str) -> subprocess.Popen[str]:
    """A `custody` command on the store, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "custody", "--store", store_url, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def backlog(ledger: Ledger, beats: int) -> None:
    """A profile with a lease and ``beats`` heartbeats: events for a catch-up to chew on."""
    pid = register(ledger, "backlog")
    lease = ledger.handle(
        Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=3600)
    )
    for n in range(beats):
        ledger.handle(
            Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{n}")
        )


@dataclass
class Runner:
    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def said(self, text: str) -> int:
        """How many of the runner's stderr lines contain ``text``."""
        return sum(text in line for line in self.err.read_text().splitlines())

    def stop(self, sig: signal.Signals) -> tuple[int, dict[str, int]]:
        """Send ``sig``; the exit code and the JSON answer on stdout."""
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        return code, json.loads(self.out.read_text() or "{}")


@contextmanager
def background_runner(
    store_url: str, tmp_path: Path, interval: float, name: str = "run"
) -> Iterator[Runner]:
    """`custody --json projections run --interval INTERVAL` in the background, killed after."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    argv = [sys.executable, "-m", "custody", "--store", store_url, "--json"]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [*argv, "projections", "run", "--interval", str(interval)],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield Runner(process, out, err)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(what: str, done: Callable[[], bool], seconds: float = 60) -> float:
    """Wait until ``done()``; return how long it took."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < seconds, f"timed out waiting for {what}"
        time.sleep(0.02)
    return time.monotonic() - started


def caught_up(ledger: Ledger) -> bool:
    """Whether every read model has folded the whole log (read without catching up)."""
    checkpoints = ledger.feed.checkpoints()
    return {"leases", "timeline"} <= set(checkpoints) and set(checkpoints.values()) == {
        ledger.feed.head()
    }
