"""A worker that dies mid-run, with a real Chromium: the sweep catches it, the profile waits
for a reviewer, and no browser is left on the profile."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import custody, ok
from local_site import LocalSite, browsers_on
from worker_harness import PROFILE, Worker, store_with_profile, wait_until

from ledger import Checkout, CheckoutDenied, Ledger

pytestmark = pytest.mark.browser
TTL = 3


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


def deny(store: str, worker: str) -> CheckoutDenied:
    with Ledger.open(store, create=False) as ledger, pytest.raises(CheckoutDenied) as denied:
        ledger.handle(
            Checkout(profile_id=PROFILE, worker_id=worker, run_id=f"run_{worker}", task_type="t")
        )
    return denied.value


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_killed_worker_is_swept_into_quarantine_and_leaves_no_browser(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """SIGKILL after a mutating step: its browser goes with it; after the TTL the sweep
    quarantines the profile; `why` names the dead run and its step; another worker is denied
    until a reviewer returns the profile, then gets it with a higher fencing token."""
    store, user_data_dir = store_with_profile(tmp_path)
    worker = Worker(store, PROFILE, "run_0945", flavour, "crash", site.url, str(TTL), str(tmp_path))
    worker.wait_for("mutating")
    assert browsers_on(str(user_data_dir)), "the check for a live browser sees none"
    assert [h.path for h in site.hits] == ["/login"]

    worker.proc.send_signal(signal.SIGKILL)
    worker.finish()
    assert wait_until(lambda: not browsers_on(str(user_data_dir)), timeout=10)
    assert deny(store, "worker_04").reason == "already_leased"

    with Ledger.open(store, create=False) as ledger:
        lease = ledger.view(PROFILE).lease
        assert lease is not None
        time.sleep(max(0.0, (lease.expires_at - ledger.now()).total_seconds()) + 0.2)
    env = {"CUSTODY_STORE": store}
    swept = ok(custody("--json", "sweep", cwd=tmp_path, env=env)).json()
    assert [(s["profile_id"], s["profile_state"]) for s in swept["settled"]] == [
        (PROFILE, "quarantined")
    ]
    why = ok(custody("why", PROFILE, cwd=tmp_path, env=env)).out
    assert "run_0945" in why
    assert "submit_order" in why
    assert deny(store, "worker_04").reason == "quarantined"

    review = ["review", PROFILE, "--reviewer", "rita", "--decision", "return", "--note", "ok"]
    ok(custody(*review, cwd=tmp_path, env=env))
    with Ledger.open(store, create=False) as ledger:
        taken = ledger.handle(
            Checkout(profile_id=PROFILE, worker_id="worker_04", run_id="run_1000", task_type="t")
        )
    assert taken.fencing_token == 2
