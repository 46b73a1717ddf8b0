"""A review through the service observes the profile's browser on this host, as ``custody
review`` does: while a Chromium still runs on the directory, the ledger refuses to return the
profile, through the API and the console alike; once it is gone, the review returns it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving import Served, serve

from ledger import Checkout, ForceRelease, Ledger, RegisterProfile, Role

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
import chromium_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture
def blocked(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    """A profile whose lease was force-released (review required), on a directory here."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    directory = tmp_path / "profiles" / "p1"
    directory.mkdir(parents=True)
    with Ledger.init(url) as ledger:
        ledger.handle(
            RegisterProfile(
                profile_id="p1", account_id="a", proxy_id="x", user_data_dir=str(directory)
            )
        )
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r", task_type="t"))
        ledger.handle(ForceRelease(profile_id="p1", actor="ops", reason="worker gone"))
    served = serve(url)
    try:
        yield served, directory
    finally:
        assert served.stop() == 0


def test_a_review_may_not_return_a_profile_whose_browser_still_runs(
    blocked: tuple[Served, Path], tmp_path: Path
) -> None:
    served, directory = blocked
    browser = chromium_process.launch(directory, tmp_path / "chromium.log")
    try:
        with served.client(Role.REVIEWER) as reviewer:
            refused = reviewer.post(
                "/v1/profiles/p1/review", json={"decision": "return", "note": "looks fine"}
            )
        assert refused.status_code == 409, refused.text
        assert "still runs" in refused.json()["message"]
    finally:
        chromium_process.stop(browser)
    deadline = time.monotonic() + 10
    while (directory / "SingletonLock").is_symlink() and time.monotonic() < deadline:
        time.sleep(0.1)  # a killed Chromium leaves its lock; the inspector judges the pid
    with served.client(Role.REVIEWER) as reviewer:
        returned = reviewer.post(
            "/v1/profiles/p1/review", json={"decision": "return", "note": "browser gone"}
        )
    assert returned.status_code == 200, returned.text
    assert returned.json()["state"] == "available"
