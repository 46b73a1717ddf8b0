"""``custody demo``: the article's failure story, played on a fresh SQLite file and narrated.

Time is simulated (a clock that starts now and is moved forward by the story), so the run is
quick and the timeline reads like the article's.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from custody import _render as render
from ledger import (
    Checkout,
    CheckoutDenied,
    Heartbeat,
    InvalidInput,
    LeaseLost,
    Ledger,
    RegisterProfile,
    Review,
    ReviewDecision,
    Sweep,
)
from projections import explain, timeline, who

PROFILE = "profile_shop_17"
ACCOUNT = "account_shop_17"
PROXY = "proxy_us_east_12"


class StoryClock:
    """A clock the story moves forward by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def play(db: str | None, *, out: TextIO) -> str:
    """Play the story into ``db`` (a new temporary file when None) and narrate it to ``out``."""
    path = Path(db) if db else Path(tempfile.mkdtemp(prefix="custody-demo-")) / "custody.db"
    if path.exists():
        # The demo writes a story into a fresh file; it never overwrites someone's ledger.
        raise InvalidInput("db", f"{path} already exists: give the demo a new file")
    clock = StoryClock()
    store = f"sqlite:///{path}"

    def say(line: str = "") -> None:
        out.write(line + "\n")

    def try_checkout(ledger: Ledger, worker: str, run: str) -> None:
        try:
            ledger.handle(
                Checkout(profile_id=PROFILE, worker_id=worker, run_id=run, task_type="submit_order")
            )
        except CheckoutDenied as denied:
            say(f"  {worker} denied: {denied.reason.value} -- {denied.denial.message}")
            say(f"    to unblock: {denied.remediation}")

    with Ledger.open(store, clock=clock) as ledger:
        say(f"custody demo: a fresh ledger in {path}")
        ledger.handle(
            RegisterProfile(
                profile_id=PROFILE, account_id=ACCOUNT, proxy_id=PROXY, region="us-east"
            )
        )
        say(f"\n1. {PROFILE} is registered for {ACCOUNT} behind {PROXY}.")

        lease = ledger.handle(
            Checkout(
                profile_id=PROFILE,
                worker_id="worker_03",
                run_id="run_0945",
                task_type="submit_order",
                ttl_seconds=300,
                account_id=ACCOUNT,
                proxy_id=PROXY,
            )
        )
        say(f"2. worker_03 checks it out: {render.lease_line(lease)}")
        token = lease.fencing_token
        for seconds, step, url, safe, mutating in (
            (12, "browser_launched", "about:blank", True, False),
            (9, "dashboard_loaded", "https://shop.example/dashboard", True, False),
            (42, "order_form_submitted", "https://shop.example/checkout/submit", False, True),
        ):
            clock.advance(seconds)
            ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id,
                    fencing_token=token,
                    step=step,
                    url=url,
                    safe=safe,
                    mutating=mutating,
                )
            )
            kind = "safe" if safe else "MUTATING" if mutating else "step"
            say(f"   heartbeat: {step} ({kind}) at {url}")
        say("3. worker_03 crashes mid-submission: no release, no more heartbeats.")

        clock.advance(60)
        say("\n4. worker_04 wants the same account:")
        try_checkout(ledger, "worker_04", "run_0950")

        clock.advance(300)
        say("5. five minutes later the deadline has passed, but TTL is not a cleanup command:")
        try_checkout(ledger, "worker_04", "run_0955")

        say("\n6. the sweep runs:")
        for result in ledger.handle(Sweep()).settled:
            say(
                f"  {result.lease_id} marked stale; {PROFILE} is {result.profile_state.value} "
                f"({result.cause.value}: a mutating step ran after the last safe step)"
            )
        try_checkout(ledger, "worker_04", "run_0957")
        say("\n-- custody why --")
        for line in render.explanation_lines(explain(ledger, PROFILE)):
            say(line)

        say("\n7. worker_03 wakes up and tries to carry on:")
        try:
            ledger.handle(
                Heartbeat(lease_id=lease.lease_id, fencing_token=token, step="confirmation_page")
            )
        except LeaseLost as lost:
            say(f"  {lost} -> worker_03 must stop")

        clock.advance(600)
        say("\n8. a reviewer inspects the account, finds the order was not placed, returns it:")
        ledger.handle(
            Review(
                profile_id=PROFILE,
                reviewer="reviewer_alice",
                decision=ReviewDecision.RETURN,
                note="order not placed; cart emptied; session valid",
            )
        )
        clock.advance(5)
        second = ledger.handle(
            Checkout(
                profile_id=PROFILE,
                worker_id="worker_04",
                run_id="run_1010",
                task_type="submit_order",
            )
        )
        say(f"9. worker_04 gets it, with a higher fencing token: {render.lease_line(second)}")

        say("\n-- custody who --")
        say(render.usage_line(who(ledger, PROFILE)))
        say("\n-- custody timeline --")
        for row in timeline(ledger, PROFILE):
            say(render.timeline_line(row))
        say(f"\nInspect it yourself: custody --store {store} timeline {PROFILE}")
    return store
