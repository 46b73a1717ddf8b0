"""A lease past its deadline makes its profile stale before any sweep marks it (``custody status
--state stale`` lists it): the review console's queue and ``/metrics``' oldest-stale gauge
count it too, waiting since the deadline. rev26: where no sweeper ran, the queue said "Nothing
waits for a review" and the gauge stayed 0 while the profile was stuck (real SQLite store)."""

from __future__ import annotations

import time
from pathlib import Path

from ledger import Checkout, Ledger, RegisterProfile
from service._console_reads import queue
from service._metrics import fleet_families


def test_an_overdue_lease_waits_in_the_queue_and_ages_the_stale_gauge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        for pid in ("overdue", "in-time", "idle"):
            ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))
        ledger.handle(
            Checkout(profile_id="overdue", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
        ledger.handle(Checkout(profile_id="in-time", worker_id="w", run_id="r", task_type="t"))
        time.sleep(1.5)
        waiting = queue(ledger)
        assert [w.row.profile_id for w in waiting.rows] == ["overdue"]
        assert waiting.total == 1
        assert "missed its renewal deadline" in waiting.rows[0].why, waiting.rows[0].why
        # Waiting since its deadline, as it is sorted, not since the lease began (rev26); its
        # row says so too, as every read does (rev37).
        overdue = waiting.rows[0]
        assert overdue.row.until == overdue.row.since
        gauges = {f.name: f for f in fleet_families(ledger)}
        [age] = gauges["custody_oldest_stale_seconds"].samples
        assert 0.4 < age.value < 60, age
