"""A redirect chain the page started before the loss, with the worker frozen past its TTL: the
watchdog kills the browser at the lease's local deadline, so not one hop reaches the site
after it, although Playwright's route handler never sees the hops and the worker's Python is
not running."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import custody, ok
from local_site import LocalSite, browsers_on
from worker_harness import PROFILE, Worker, store_with_profile, wait_until

from ledger import Ledger
from ledger._domain import events as ev

pytestmark = pytest.mark.browser
TTL = 3
LEASE_LOST_EXIT = 4
# How long a kill sent at the local deadline may take to land (the watchdog wakes from its
# select, signals the group; a request already on the wire arrives). A run measured 1 ms on a
# loaded machine. The hops are 0.5 s apart, so a browser left running is still seen, and the
# local deadline falls TTL/3 (1 s) before the ledger's: the loss itself is never reached.
KILL_LATENCY = 0.2


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


def next_deadline(worker: Worker) -> dict[str, Any]:
    """Wait for the next renewal's local deadline: the heartbeat just landed, so the worker
    (which steps no more) is writing nothing for the next TTL/3."""
    return worker.wait_for("deadline", timeout=10)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_chain_started_before_the_loss_reaches_nothing_after_the_local_deadline(
    tmp_path: Path, site: LocalSite, flavour: str
) -> None:
    """The page POSTs a form; its 303 starts a chain of redirects, 0.5 s a hop. The worker is
    frozen (SIGSTOP) right after a renewal, past its TTL; the sweep marks the lease stale
    while it is still frozen. The site receives no request after the worker's local deadline
    (the browser is already dead when the lease is marked stale), the worker wakes up lost
    (exit 4), no browser is left, and the ledger holds no heartbeat after the freeze and no
    release. A hop already under way when the kill lands may arrive within ``KILL_LATENCY``
    of the local deadline, never at or after the ledger's."""
    store, user_data_dir = store_with_profile(tmp_path)
    worker = Worker(
        store, PROFILE, "run_r", flavour, "redirects", site.url, str(TTL), str(tmp_path)
    )
    worker.wait_for("submitted")
    assert wait_until(lambda: any(h.path == "/hop/1" for h in site.hits), 5)
    local_deadline = next_deadline(worker)["at"]

    worker.proc.send_signal(signal.SIGSTOP)
    frozen_at = time.time()
    try:
        with Ledger.open(store, create=False) as ledger:  # reads only, while it is frozen
            lease = ledger.view(PROFILE).lease
            assert lease is not None
            wait = (lease.expires_at - ledger.now()).total_seconds() + 0.3
        time.sleep(max(0.0, wait))
        swept = ok(custody("--json", "sweep", cwd=tmp_path, env={"CUSTODY_STORE": store}))
        assert [s["lease_id"] for s in swept.json()["settled"]] == [lease.lease_id]
        swept_at = time.time()
        hops = [h for h in site.hits if h.path.startswith("/hop/")]
        late = site.hits_after(local_deadline + KILL_LATENCY)
        lost_at = lease.expires_at.timestamp()
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    checked = False
    try:
        seen = [(h.path, round(h.at - local_deadline, 3)) for h in late]
        assert late == [], f"after the local deadline and the kill (path, s after it): {seen}"
        assert site.hits_after(lost_at) == []
        assert frozen_at < local_deadline < lease.expires_at.timestamp() < swept_at
        assert hops, "the chain never ran"
        checked = True
    finally:
        if not checked:  # a worker whose browser was not stopped: stop both, reaped
            worker.proc.kill()
            worker.finish()
    worker.wait_for("lost", timeout=30)
    code, err = worker.finish()
    assert site.hits_after(local_deadline + KILL_LATENCY) == []
    assert code == LEASE_LOST_EXIT, err
    assert "killed the browser" in err  # the watchdog's one line
    assert not browsers_on(str(user_data_dir))
    with Ledger.open(store, create=False) as ledger:
        events = ledger.history(PROFILE)
    beats = [e.envelope.at.timestamp() for e in events if isinstance(e, ev.LeaseHeartbeat)]
    assert max(beats) < frozen_at
    assert not [e for e in events if isinstance(e, ev.LeaseReleaseRequested)]
