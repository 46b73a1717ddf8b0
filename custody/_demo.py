"""``custody demo``: the article's failure story, played on a fresh SQLite file and narrated.

Time is simulated (a clock the story moves forward by hand), so the run is quick and the
timeline reads like the article's. The clock starts as long ago as the story lasts, so that the
story ends now: no event is dated in the future (a replay at a moment of the story is taken, and
the last lease's deadline is the TTL from now).
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from custody import _render as render
from custody._whole import removed_if_failed
from ledger import (
    Checkout,
    CheckoutDenied,
    Heartbeat,
    Lease,
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
    """A clock the story moves forward by hand, from ``lasting`` seconds ago."""

    def __init__(self, lasting: float = 0) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=lasting)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def play(db: str | None, *, out: TextIO) -> str:
    """Play the story into ``db`` (a new temporary file when None) and narrate it to ``out``;
    return the store's URL."""
    path = Path(db) if db else Path(tempfile.mkdtemp(prefix="custody-demo-")) / "custody.db"
    # Quoted: a name holding "?" or "#" ("custody.db?timeout=5") is a file of that name, not a
    # URL's options that would name (and play the story into) the existing custody.db; and the
    # hint below can be pasted as it is, spaces and all.
    store = f"sqlite:///{quote(os.fsencode(path), safe='/')}"
    clock = StoryClock(STORY_SECONDS)
    # A fresh file, never someone's ledger (made here, or refused: even by a demo beside on the
    # same name); a story cut short leaves no half of it, which a rerun would refuse.
    with removed_if_failed(path, directory=not db), Ledger.open(store, clock=clock) as ledger:
        story = Story(ledger, clock, out)
        story.say(f"custody demo: a fresh ledger in {path}")
        lease = story.a_worker_leases_the_profile_and_crashes()
        story.others_are_denied_and_the_sweep_quarantines()
        story.the_late_worker_learns_it_lost(lease)
        story.a_reviewer_returns_it_to_the_pool()
        story.say(f"\nInspect it yourself: custody --store {store} timeline {PROFILE}")
    return store


class Story:
    """The article's failure story, act by act, on one ledger and a clock the story moves."""

    def __init__(self, ledger: Ledger, clock: StoryClock, out: TextIO) -> None:
        self.ledger = ledger
        self.clock = clock
        self.out = out

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def try_checkout(self, worker: str, run: str) -> None:
        try:
            self.ledger.handle(
                Checkout(profile_id=PROFILE, worker_id=worker, run_id=run, task_type="submit_order")
            )
        except CheckoutDenied as denied:
            self.say(f"  {worker} denied: {denied.reason.value} -- {denied.denial.message}")
            self.say(f"    to unblock: {denied.remediation}")

    def a_worker_leases_the_profile_and_crashes(self) -> Lease:
        """Acts 1-3: registered, leased by worker_03, which crashes mid-submission."""
        self.ledger.handle(
            RegisterProfile(
                profile_id=PROFILE, account_id=ACCOUNT, proxy_id=PROXY, region="us-east"
            )
        )
        self.say(f"\n1. {PROFILE} is registered for {ACCOUNT} behind {PROXY}.")
        lease = self.ledger.handle(
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
        self.say(f"2. worker_03 checks it out: {render.lease_line(lease)}")
        for seconds, step, url, safe, mutating in _STEPS:
            self.clock.advance(seconds)
            self.ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    step=step,
                    url=url,
                    safe=safe,
                    mutating=mutating,
                )
            )
            kind = "safe" if safe else "MUTATING" if mutating else "step"
            self.say(f"   heartbeat: {step} ({kind}) at {url}")
        self.say("3. worker_03 crashes mid-submission: no release, no more heartbeats.")
        return lease

    def others_are_denied_and_the_sweep_quarantines(self) -> None:
        """Acts 4-6: worker_04 is denied, the deadline passes, the sweep quarantines."""
        self.clock.advance(60)
        self.say("\n4. worker_04 wants the same account:")
        self.try_checkout("worker_04", "run_0950")
        self.clock.advance(300)
        self.say("5. five minutes later the deadline has passed, but TTL is not a cleanup command:")
        self.try_checkout("worker_04", "run_0955")
        self.say("\n6. the sweep runs:")
        for result in self.ledger.handle(Sweep()).settled:
            self.say(
                f"  {result.lease_id} marked stale; {PROFILE} is {result.profile_state.value} "
                f"({result.cause.value}: a mutating step ran after the last safe step)"
            )
        self.try_checkout("worker_04", "run_0957")
        self.say("\n-- custody why --")
        for line in render.explanation_lines(explain(self.ledger, PROFILE)):
            self.say(line)

    def the_late_worker_learns_it_lost(self, lease: Lease) -> None:
        """Act 7: worker_03 wakes up; its fencing token is refused."""
        self.say("\n7. worker_03 wakes up and tries to carry on:")
        try:
            self.ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    step="confirmation_page",
                )
            )
        except LeaseLost as lost:
            self.say(f"  {lost} -> worker_03 must stop")

    def a_reviewer_returns_it_to_the_pool(self) -> None:
        """Acts 8-9 and the epilogue: a review returns it; worker_04 gets a higher token."""
        self.clock.advance(600)
        self.say(
            "\n8. a reviewer inspects the account, finds the order was not placed, returns it:"
        )
        self.ledger.handle(
            Review(
                profile_id=PROFILE,
                reviewer="reviewer_alice",
                decision=ReviewDecision.RETURN,
                note="order not placed; cart emptied; session valid",
            )
        )
        self.clock.advance(5)
        second = self.ledger.handle(
            Checkout(
                profile_id=PROFILE,
                worker_id="worker_04",
                run_id="run_1010",
                task_type="submit_order",
            )
        )
        self.say(f"9. worker_04 gets it, with a higher fencing token: {render.lease_line(second)}")
        self.say("\n-- custody who --")
        self.say(render.usage_line(who(self.ledger, PROFILE)))
        self.say("\n-- custody timeline --")
        for row in timeline(self.ledger, PROFILE):
            self.say(render.timeline_line(row))


# worker_03's steps: seconds after the one before, step, URL, safe, mutating.
_STEPS = (
    (12, "browser_launched", "about:blank", True, False),
    (9, "dashboard_loaded", "https://shop.example/dashboard", True, False),
    (42, "order_form_submitted", "https://shop.example/checkout/submit", False, True),
)
# How far the story moves its clock: the heartbeats' gaps, then acts 4, 5, 8 and 9.
STORY_SECONDS = sum(seconds for seconds, *_ in _STEPS) + 60 + 300 + 600 + 5
