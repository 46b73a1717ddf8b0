"""SIGTERM, as Kubernetes or systemd sends it, to a real worker with a real Chromium: the lease
is ended truthfully within the grace period (a failure naming SIGTERM and the step reached),
the browser is stopped, and the worker exits 143."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_site import LocalSite, browsers_on
from worker_harness import PROFILE, Worker, store_with_profile

from ledger import Ledger
from ledger.domain import events as ev

pytestmark = pytest.mark.browser
TTL = 60
GRACE = 10.0  # seconds; Kubernetes gives 30 by default


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


@pytest.mark.parametrize(
    ("flavour", "scenario", "step", "state"),
    [
        ("sync", "busy", "polling", "review_required"),
        ("async", "busy", "polling", "review_required"),
        ("sync", "busy_mutating", "submit_order", "quarantined"),
    ],
)
def test_sigterm_ends_the_lease_truthfully_and_stops_the_browser(
    tmp_path: Path, site: LocalSite, flavour: str, scenario: str, step: str, state: str
) -> None:
    """The task is blocked in a long page call when SIGTERM comes: within the grace period the
    worker releases a failure saying "terminated by SIGTERM at step '<step>'" with its final
    screenshot, the rules send the profile to review (quarantine after an unconfirmed
    mutating step), no browser is left, and the worker exits 143."""
    store, user_data_dir = store_with_profile(tmp_path)
    worker = Worker(store, PROFILE, "run_t", flavour, scenario, site.url, str(TTL), str(tmp_path))
    worker.wait_for("ready")
    sent = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    code, err = worker.finish(timeout=GRACE)
    took = time.monotonic() - sent

    assert code == 143, err
    assert took < GRACE
    with Ledger.open(store, create=False) as ledger:
        events = ledger.history(PROFILE)
        assert ledger.view(PROFILE).state.value == state
    (release,) = [e for e in events if isinstance(e, ev.LeaseReleaseRequested)]
    assert (release.outcome, release.envelope.reason) == (
        "failure",
        f"terminated by SIGTERM at step {step!r}",
    )
    assert release.screenshot is not None
    assert release.evidence_problem is None
    assert not browsers_on(str(user_data_dir))
