"""Scenes for the review console's tests: a worker's run that ends quarantined, told through
the service as a worker would tell it, and a person signing in at the console."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from serving import Served

from ledger import Ledger, RegisterProfile, Role

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = os.environ.get("CUSTODY_TEST_CHROMIUM", "/usr/bin/chromium")
INJECTED = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def register(served: Served, profile_id: str) -> None:
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id=profile_id, account_id="a1", proxy_id="x1"))


def events(served: Served) -> int:
    """How many events the store holds."""
    with Ledger.open(served.store_url) as ledger:
        return ledger.store.event_count()


def crashed_run(
    served: Served,
    profile_id: str,
    *,
    step: str = "submit_order",
    url: str = "https://shop.example/checkout",
    screenshot: Path | None = None,
    screenshot_sha256: str | None = None,
) -> dict[str, object]:
    """worker-1 checks out ``profile_id``, reports a safe step then a mutating one, and its
    run fails before it can say whether the mutation happened: the release (with its final
    URL and, if given, screenshot) ends the lease and the ledger quarantines the profile."""
    register(served, profile_id)
    with served.client(Role.WORKER) as worker:
        body = {"run_id": "run-1", "task_type": "submit_order"}
        got = worker.post(f"/v1/profiles/{profile_id}/checkout", json=body)
        assert got.status_code == 201, got.text
        lease = got.json()
        beat = f"/v1/leases/{lease['lease_id']}/heartbeat"
        token = lease["fencing_token"]
        for body in (
            {"step": "cart_loaded", "url": "https://shop.example/cart", "safe": True},
            {"step": step, "url": url, "mutating": True},
        ):
            said = worker.post(beat, json={"fencing_token": token, **body})
            assert said.status_code == 200, said.text
        evidence: dict[str, object] = {"final_url": url}
        if screenshot is not None:
            digest = screenshot_sha256 or hashlib.sha256(screenshot.read_bytes()).hexdigest()
            evidence |= {"screenshot": str(screenshot), "screenshot_sha256": digest}
        done = worker.post(
            f"/v1/leases/{lease['lease_id']}/release",
            json={"fencing_token": token, "outcome": "failure", **evidence},
        )
        assert done.status_code == 200, done.text
        assert done.json()["profile_state"] == "quarantined", done.text
    return dict(lease)


def sign_in(page: Page, served: Served, token: str) -> int:
    """Sign in at the console's page as a person does; the status of the answer."""
    page.goto(f"{served.url}/console/sign-in")
    page.fill("#token", token)
    with page.expect_navigation() as navigated:
        page.click("button[type=submit]")
    answer = navigated.value
    assert answer is not None
    # A redirect's answer is the page it led to; the sign-in's own status is on its request.
    first = answer.request.redirected_from
    if first is not None:
        response = first.response()
        assert response is not None
        return response.status
    return answer.status
