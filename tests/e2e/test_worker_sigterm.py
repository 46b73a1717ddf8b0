"""SIGTERM, as Kubernetes or systemd sends it, to a real worker with a real Chromium: the lease
is ended truthfully within the grace period (a failure naming SIGTERM and the step reached),
the browser is stopped, and the worker exits 143."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_site import LocalSite, browsers_on
from playwright.sync_api import sync_playwright
from worker_harness import PROFILE, Worker, store_with_profile

from ledger import Ledger
from ledger._domain import events as ev
from workers import DIRECT, BrowserSettings, ProfileLeases, Terminated

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


def test_sigterm_in_a_page_call_of_nested_leases_ends_both_once(
    tmp_path: Path, site: LocalSite
) -> None:
    """In this process, two leases with a browser each, one inside the other, the task
    blocked in a page call (so the signal lands in Playwright's dispatcher): Terminated is
    thrown into the task once, each browser block takes its screenshot and closes, and both
    leases are released naming SIGTERM and their own step."""
    store, first_dir = store_with_profile(tmp_path)
    _, second_dir = store_with_profile(tmp_path, "profile_shop_18", url=store)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with (  # noqa: PT012
            pytest.raises(Terminated),
            sync_playwright() as pw,
            leases.checkout(PROFILE, run_id="r1", task_type="t") as outer,
            outer.browser(pw) as outer_context,
            leases.checkout("profile_shop_18", run_id="r2", task_type="t") as inner,
            inner.browser(pw) as inner_context,
        ):
            outer_context.new_page().goto(f"{site.url}/poll")
            outer.step("outer_polling", safe=True)
            page = inner_context.new_page()
            page.goto(f"{site.url}/poll")
            inner.step("inner_polling", safe=True)
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
            page.wait_for_timeout(30_000)
    finally:
        signal.signal(signal.SIGTERM, before)
    with Ledger.open(store, create=False) as ledger:
        for profile, step in ((PROFILE, "outer_polling"), ("profile_shop_18", "inner_polling")):
            (release,) = [
                e for e in ledger.history(profile) if isinstance(e, ev.LeaseReleaseRequested)
            ]
            assert release.envelope.reason == f"terminated by SIGTERM at step {step!r}"
            assert (release.screenshot is not None, release.evidence_problem) == (True, None)
    assert not browsers_on(str(first_dir))
    assert not browsers_on(str(second_dir))
