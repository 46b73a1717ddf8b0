"""SQLite stores for the fleet commands' end-to-end tests, made through the ledger's API.

The scripted fleet of ``tests/integration/fleet_scene.py`` is played on a clock that starts
ten minutes ago, so that the command line, which judges on the real clock, finds its overdue
lease overdue and its waits a few minutes old.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ledger import Checkout, Ledger, RegisterProfile, Release, Review

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))
from fleet_scene import script


class PastClock:
    """A clock moved by hand, starting ten minutes before now."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(minutes=10)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def scripted_store(directory: Path) -> tuple[str, dict[str, str]]:
    """A store holding the scripted fleet; its URL and the lease ids by name."""
    url = f"sqlite:///{directory / 'custody.db'}"
    clock = PastClock()
    with Ledger.open(url, create=True, clock=clock) as ledger:
        ids = script(ledger, clock)
    return url, ids


def many_leases_store(directory: Path, *, profiles: int = 60, leases: int = 600) -> str:
    """A store of ``profiles`` profiles and ``leases`` leases, every 50th ending unclean."""
    url = f"sqlite:///{directory / 'custody.db'}"
    with Ledger.open(url, create=True) as ledger:
        for p in range(profiles):
            ledger.handle(RegisterProfile(profile_id=f"p{p:03d}", account_id="acct", proxy_id="px"))
        for n in range(leases):
            pid = f"p{n % profiles:03d}"
            lease = ledger.handle(
                Checkout(profile_id=pid, worker_id=f"w{n % 7}", run_id=f"r{n}", task_type="t")
            )
            outcome = "failure" if n % 50 == 0 else "success"
            ledger.handle(
                Release(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    outcome=outcome,
                    final_url="https://shop.example/done",
                )
            )
            if outcome == "failure":
                ledger.handle(
                    Review(profile_id=pid, reviewer="rev", decision="return", note="checked")
                )
    return url
