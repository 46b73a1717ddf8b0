"""A force-release or an operator's quarantine of a live lease reaches the worker within
seconds, with a real Chromium whose page keeps requesting, on SQLite and PostgreSQL: the task
is blocked in one long page call and no renewal is due, yet the site sees no request more
than 2 s after the revocation, and the worker stops saying it was revoked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_site import LocalSite, browsers_on
from worker_harness import PROFILE, Worker, store_with_profile, wait_until

from ledger import ForceRelease, Ledger, Quarantine
from ledger._domain import events as ev

pytestmark = pytest.mark.browser
TTL = 60  # the next renewal is 20 s away: only the revocation watch can tell in time
LEASE_LOST_EXIT = 4
WITHIN = 2.0


@pytest.fixture
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None: a new SQLite file; else a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.mark.parametrize(
    ("action", "flavour"),
    [(ForceRelease, "sync"), (Quarantine, "sync"), (ForceRelease, "async")],
    ids=["force_release-sync", "quarantine-sync", "force_release-async"],
)
def test_a_revoked_lease_stops_the_browser_within_two_seconds(
    tmp_path: Path,
    site: LocalSite,
    store_url: str | None,
    action: type[ForceRelease | Quarantine],
    flavour: str,
) -> None:
    """While the page fetches /tick every 100 ms (and sends on a WebSocket), an operator
    force-releases or quarantines the lease: no request or message reaches the site more
    than 2 s after the revocation was recorded, the worker exits 4 with a reason that says
    revoked, no browser is left, and the worker released nothing."""
    store, user_data_dir = store_with_profile(tmp_path, url=store_url)
    worker = Worker(store, PROFILE, "run_v", flavour, "busy", site.url, str(TTL), str(tmp_path))
    worker.wait_for("ready")
    assert wait_until(lambda: len([h for h in site.hits if h.path == "/tick"]) >= 5, 5)

    with Ledger.open(store, create=False) as ops:
        ops.handle(action(profile_id=PROFILE, actor="ops_olga", reason="account locked"))
        (revoked,) = [e for e in ops.history(PROFILE) if isinstance(e, ev.LeaseRevoked)]
    revoked_at = revoked.envelope.at.timestamp()
    time.sleep(max(0.0, revoked_at + WITHIN + 1.0 - time.time()))
    late = site.hits_after(revoked_at + WITHIN)
    try:
        seen = [(h.path, round(h.at - revoked_at, 3)) for h in late]
        assert late == [], f"more than {WITHIN} s after the revocation: {seen[:5]}..."
    except AssertionError:
        worker.proc.kill()  # and its browser with it
        raise
    said = worker.wait_for("lost", timeout=15)
    code, err = worker.finish()
    assert site.hits_after(revoked_at + WITHIN) == []
    assert said["at"] - revoked_at < WITHIN
    assert "revoked" in said["why"]
    assert code == LEASE_LOST_EXIT, err
    assert not browsers_on(str(user_data_dir))
    with Ledger.open(store, create=False) as ledger:
        events = ledger.history(PROFILE)
    assert not [e for e in events if isinstance(e, ev.LeaseReleaseRequested)]
