"""A worker paused past its deadline (SIGSTOP, then SIGCONT), with a real Chromium whose page
keeps making requests: once the lease is lost, nothing it does reaches the network, and it
never heartbeats or releases again."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import custody, ok
from local_site import LocalSite, browsers_on
from worker_harness import PROFILE, Worker, store_with_profile, wait_until

from ledger import Ledger
from ledger._domain import events as ev

pytestmark = pytest.mark.browser
TTL = 3
LEASE_LOST_EXIT = 4


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_paused_worker_wakes_up_lost_and_its_browser_reaches_nothing(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """While the worker is stopped its page keeps asking for /tick and sending on a WebSocket;
    requests and messages wait in the lease guard's routes until, at the lease's local
    deadline, the browser's watchdog kills the browser. Resumed past the ledger's deadline,
    the worker learns the lease is lost (LeaseLost, from its next page call or step): the
    site receives no request or message after the lease was lost, the
    worker exits 4, its browser is gone, the ledger holds no heartbeat sent after it woke and
    no release, and the sweep finds the lease still to settle."""
    store, user_data_dir = store_with_profile(tmp_path)
    worker = Worker(store, PROFILE, "run_z", flavour, "zombie", site.url, str(TTL), str(tmp_path))
    worker.wait_for("ready")
    for path in ("/tick", "/ws:message"):  # both ways to the network are in use
        assert wait_until(lambda p=path: len([h for h in site.hits if h.path == p]) >= 3, 5)

    worker.proc.send_signal(signal.SIGSTOP)
    try:
        # Only reads while it is stopped: a worker stopped inside a write holds SQLite's lock.
        with Ledger.open(store, create=False) as ledger:
            lease = ledger.view(PROFILE).lease
            assert lease is not None
            lost_at = lease.expires_at.timestamp()  # the ledger's deadline: the lease is lost
            time.sleep(max(0.0, (lease.expires_at - ledger.now()).total_seconds()) + 0.3)
        resumed_at = time.time()
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    said = worker.wait_for("lost", timeout=30)
    code, _ = worker.finish()
    swept = ok(custody("--json", "sweep", cwd=tmp_path, env={"CUSTODY_STORE": store}))
    assert [s["lease_id"] for s in swept.json()["settled"]] == [lease.lease_id]

    assert code == LEASE_LOST_EXIT
    assert said["at"] >= resumed_at
    assert lost_at < resumed_at
    late = site.hits_after(lost_at)
    seen = [(h.path, round(h.at - lost_at, 3), round(h.at - resumed_at, 3)) for h in late]
    assert late == [], f"after the loss (path, s after loss, s after resume): {seen} {said}"
    assert not browsers_on(str(user_data_dir))
    with Ledger.open(store, create=False) as ledger:
        events = ledger.history(PROFILE)
    beats = [e.envelope.at.timestamp() for e in events if isinstance(e, ev.LeaseHeartbeat)]
    assert beats
    assert max(beats) < resumed_at
    assert not [e for e in events if isinstance(e, ev.LeaseReleaseRequested)]
    assert events[-1].event_type == "review_requested"


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_worker_waking_after_its_profile_was_leased_again_leaves_the_new_browser_alone(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """Worker A is stopped past its deadline (its watchdog kills its browser); the sweep, a
    review, and worker B on the same host leasing the profile and launching its browser on
    the same directory; then A resumes, learns its lease is lost and closes "its" browser:
    B's browser runs on (A stopped only the browser it launched, never whatever runs on the
    directory now)."""
    store, user_data_dir = store_with_profile(tmp_path)
    env = {"CUSTODY_STORE": store}
    a = Worker(store, PROFILE, "run_a", flavour, "zombie", site.url, str(TTL), str(tmp_path))
    a.wait_for("ready")
    a.proc.send_signal(signal.SIGSTOP)
    try:
        with Ledger.open(store, create=False) as ledger:
            lease = ledger.view(PROFILE).lease
            assert lease is not None
            time.sleep(max(0.0, (lease.expires_at - ledger.now()).total_seconds()) + 0.3)
        assert wait_until(lambda: not browsers_on(str(user_data_dir)), 10)  # A's watchdog
        ok(custody("sweep", cwd=tmp_path, env=env))
        review = ("--reviewer", "rev_1", "--decision", "return", "--note", "checked")
        ok(custody("review", PROFILE, *review, cwd=tmp_path, env=env))
        b = Worker(store, PROFILE, "run_b", flavour, "zombie", site.url, "60", str(tmp_path))
        b.wait_for("ready")
        held = browsers_on(str(user_data_dir))
        assert held
    finally:
        a.proc.send_signal(signal.SIGCONT)
    try:
        a.wait_for("lost", timeout=30)
        code, _ = a.finish()
        assert code == LEASE_LOST_EXIT
        time.sleep(0.5)
        assert set(held) <= set(browsers_on(str(user_data_dir))), "B's browser was killed"
        assert b.proc.poll() is None, b.proc.stderr
    finally:
        b.proc.send_signal(signal.SIGTERM)  # B ends its lease truthfully
        b.finish()
