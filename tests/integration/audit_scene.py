"""What the audit tests share: a small ledger whose profiles' events interleave in the log, and
the command line run in this process (``custody.cli.main``: exit code, stdout, stderr), which
costs a few milliseconds where a subprocess costs half a second."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import NamedTuple

from conftest import register

from ledger import Checkout, Heartbeat, Ledger, Release


class Said(NamedTuple):
    """What one command line did: its exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        """The problems verify listed (its indented lines), without the indent."""
        return [line.strip() for line in self.out.splitlines() if line.startswith("  ")]


def custody(store: str, *args: str | Path) -> Said:
    """Run ``custody --store STORE ARGS`` in this process."""
    from custody.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--store", store, *map(str, args)])
    return Said(code, out.getvalue(), err.getvalue())


def small_ledger(url: str) -> None:
    """Three profiles whose events interleave in the log: p1 leased, renewed twice and released
    cleanly (v1 to v6), p2 leased, renewed and released as a failure, p3 registered only."""
    with Ledger.open(url) as ledger:
        for pid in ("p1", "p2", "p3"):
            register(ledger, pid)
        first = _checkout(ledger, "p1")
        second = _checkout(ledger, "p2")
        ledger.handle(Heartbeat(lease_id=first, fencing_token=1, step="cart"))
        ledger.handle(Heartbeat(lease_id=second, fencing_token=1, step="login"))
        ledger.handle(Heartbeat(lease_id=first, fencing_token=1, step="pay"))
        ledger.handle(
            Release(lease_id=first, fencing_token=1, outcome="success", final_url="https://x/done")
        )
        ledger.handle(Release(lease_id=second, fencing_token=1, outcome="failure"))


def long_ledger(url: str) -> None:
    """The small ledger, then p1 leased again by worker w2 and renewed 60 times (v7 to v67, a
    live lease), so that the store holds p1's snapshots at v50 (mid-lease) and nothing past."""
    small_ledger(url)
    with Ledger.open(url) as ledger:
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w2", run_id="run-long", task_type="t")
        ).lease_id
        for beat in range(60):
            ledger.handle(Heartbeat(lease_id=lease, fencing_token=2, step=f"page-{beat}"))


def more_events(url: str) -> None:
    """p3 leased and renewed: the log grows past a digest taken before."""
    with Ledger.open(url) as ledger:
        lease = _checkout(ledger, "p3")
        ledger.handle(Heartbeat(lease_id=lease, fencing_token=1, step="feed"))


def _checkout(ledger: Ledger, profile_id: str) -> str:
    return ledger.handle(
        Checkout(profile_id=profile_id, worker_id="w", run_id=f"run-{profile_id}", task_type="t")
    ).lease_id
