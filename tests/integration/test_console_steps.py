"""The review console's profile page drops the last steps of a long run, silently.

Guarantee (docs/how-to/review-console.md, "Read why, then decide"): "A profile's page shows what
``custody why`` and ``custody timeline`` print: [...] the last run (worker, run, the last safe
step, the step that mutated the account, the last URL), each step the run reported".

Observed: ``service._console_reads.profile_page`` keeps the run's steps ``[:STEPS_SHOWN]``, the
*first* 500, and the page says nothing of the cut: a run that reported 520 steps, the last of
them the mutating ``submit_order`` at ``https://shop.example/pay`` just before it died, shows a
reviewer a "Steps" table that ends at ``browse_499``: the steps that matter for the verdict
(what the run did last) are the ones left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serving import Served, serve

from ledger import Checkout, ForceRelease, Heartbeat, Ledger, RegisterProfile, Role
from service._console_reads import STEPS_SHOWN

STEPS = 520


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t", ttl_seconds=600)
        )
        for n in range(STEPS - 1):
            ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    step=f"browse_{n}",
                    url=f"https://shop.example/item/{n}",
                    safe=True,
                )
            )
        ledger.handle(
            Heartbeat(
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                step="submit_order",
                url="https://shop.example/pay",
                mutating=True,
            )
        )
        ledger.handle(ForceRelease(profile_id="p1", actor="op", reason="the worker died"))
    running = serve(url)
    try:
        yield running
    finally:
        running.stop()


def test_the_profile_page_shows_the_runs_last_steps(service: Served) -> None:
    form = {"content-type": "application/x-www-form-urlencoded", "origin": service.url}
    with httpx.Client(base_url=service.url, timeout=60) as browser:
        signed = browser.post(
            "/console/sign-in", content=f"token={service.tokens[Role.REVIEWER]}", headers=form
        )
        assert signed.status_code in (200, 303), signed.text
        page = browser.get("/console/profiles/p1")
    assert page.status_code == 200, page.text[:300]
    steps = re.search(r'<table id="steps">(.*?)</table>', page.text, re.S)
    assert steps is not None, page.text[:500]
    shown = re.findall(r"<tr><td>[^<]*</td><td>([^<]*)</td>", steps.group(1))
    assert shown, steps.group(1)[:500]
    # The step the run reported last (the mutation) is among the steps shown.
    assert "submit_order" in shown, (len(shown), shown[-3:])
    assert len(shown) == STEPS_SHOWN, len(shown)
    left_out = STEPS - STEPS_SHOWN
    said = re.search(r"<p id=\"steps-left-out\">(.*?)</p>", page.text, re.S)
    assert said is not None, page.text[:800]
    assert f"first {left_out} steps are not shown" in said.group(1), said.group(1)
