"""The lease service over HTTP: a real ``custody serve`` process on each store."""

from __future__ import annotations

import pytest
from serving import Served

from ledger import Ledger, RegisterProfile, Role

pytestmark = pytest.mark.slow


def _register(served: Served, profile_id: str = "p1") -> None:
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id=profile_id, account_id="a1", proxy_id="x1"))


def test_a_worker_checks_out_heartbeats_and_releases(served: Served) -> None:
    _register(served)
    with served.client(Role.WORKER) as worker:
        got = worker.post("/v1/profiles/p1/checkout", json={"run_id": "r1", "task_type": "t"})
        assert got.status_code == 201, got.text
        lease = got.json()
        assert lease["worker_id"] == "worker-1"  # the token's actor, never the body's
        beat = worker.post(
            f"/v1/leases/{lease['lease_id']}/heartbeat",
            json={"fencing_token": lease["fencing_token"], "step": "open", "url": "http://x/"},
        )
        assert beat.status_code == 200, beat.text
        assert beat.json()["last_step"] == "open"
        done = worker.post(
            f"/v1/leases/{lease['lease_id']}/release",
            json={"fencing_token": lease["fencing_token"], "outcome": "success",
                  "final_url": "http://x/done", "screenshot": "s.png"},
        )  # fmt: skip
        assert done.status_code == 200, done.text
        assert done.json()["profile_state"] == "available"
