"""A ledger with a known compliance history, written on a clock the story moves by hand.

Two accounts, October 2026 as "last month" (the notebook is run as of ``AS_OF``), with leases
before, inside, across the end of and after that month: a clean one, a stale one the sweep
settles, a forced one, a revoked one (its profile quarantined, then returned), failed ones
whose reviews are still open. ``EXPECTED`` is what the compliance notebook must answer about
it, worked out by hand from the story below.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger import (
    Checkout,
    ForceRelease,
    Ledger,
    Quarantine,
    RegisterProfile,
    Release,
    Review,
    Sweep,
)

AS_OF = "2026-11-15T12:00:00+00:00"
SHOP, OTHER = "acct_shop", "acct_other"
DONE = {"outcome": "success", "final_url": "https://shop.example/done"}  # a clean release


class StoryClock:
    """A clock the story sets and moves by hand (as ``custody demo``'s does)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 9, 20, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def at(self, text: str) -> None:
        self.now = datetime.fromisoformat(text)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _clean(ledger: Ledger, profile: str, worker: str, run: str) -> None:
    lease = ledger.handle(
        Checkout(profile_id=profile, worker_id=worker, run_id=run, task_type="inventory_check")
    )
    ledger.handle(Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, **DONE))


def write_story(store: str) -> None:
    """Write the story into the (new or empty) store ``store``."""
    clock = StoryClock()
    with Ledger.open(store, clock=clock) as ledger:
        for profile, account in (
            ("shop_1", SHOP),
            ("shop_2", SHOP),
            ("other_1", OTHER),
            ("other_2", OTHER),
        ):
            ledger.handle(
                RegisterProfile(profile_id=profile, account_id=account, proxy_id="proxy_1")
            )
        _clean(ledger, "shop_1", "w_september", "r_september")  # before the month
        clock.at("2026-10-03T09:00:00+00:00")
        _clean(ledger, "shop_1", "w_1", "r_1")
        clock.at("2026-10-04T10:00:00+00:00")  # w_2 crashes; the sweep finds it 10 min later
        ledger.handle(
            Checkout(
                profile_id="shop_2", worker_id="w_2", run_id="r_2", task_type="t", ttl_seconds=300
            )
        )
        clock.advance(600)
        ledger.handle(Sweep())  # stale: shop_2 waits in review from 10:10 ...
        clock.advance(2 * 3600)
        ledger.handle(
            Review(profile_id="shop_2", reviewer="rev_alice", decision="return", note="checked")
        )  # 12:10
        clock.at("2026-10-10T14:00:00+00:00")
        ledger.handle(Checkout(profile_id="other_1", worker_id="w_3", run_id="r_3", task_type="t"))
        clock.advance(60)  # an operator ends w_3's run by hand at 14:01 ...
        ledger.handle(
            ForceRelease(profile_id="other_1", actor="op_bob", reason="stuck on a captcha")
        )
        clock.advance(30 * 60)
        ledger.handle(
            Review(profile_id="other_1", reviewer="rev_alice", decision="return", note="ok")
        )  # 14:31
        clock.at("2026-10-20T08:00:00+00:00")  # a failure: review requested, never completed
        lease = ledger.handle(
            Checkout(profile_id="other_1", worker_id="w_6", run_id="r_6", task_type="t")
        )
        ledger.handle(
            Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="failure")
        )
        clock.at("2026-10-25T09:00:00+00:00")
        ledger.handle(Checkout(profile_id="other_2", worker_id="w_7", run_id="r_7", task_type="t"))
        clock.advance(300)  # an operator quarantines other_2 mid-run at 09:05: revoked ...
        ledger.handle(Quarantine(profile_id="other_2", actor="op_bob", reason="suspicious traffic"))
        clock.advance(3600)
        ledger.handle(
            Review(profile_id="other_2", reviewer="rev_alice", decision="return", note="clean")
        )  # 10:05
        clock.at("2026-10-31T23:30:00+00:00")  # across the month's end: still last month's use
        lease = ledger.handle(
            Checkout(
                profile_id="shop_1", worker_id="w_4", run_id="r_4", task_type="t", ttl_seconds=7200
            )
        )
        clock.at("2026-11-01T00:30:00+00:00")
        ledger.handle(Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, **DONE))
        clock.at("2026-11-05T10:00:00+00:00")  # this month's use and review: not last month's
        lease = ledger.handle(
            Checkout(profile_id="shop_2", worker_id="w_5", run_id="r_5", task_type="t")
        )
        ledger.handle(
            Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="failure")
        )


# What the notebook answers for ACCOUNT=acct_shop as of AS_OF (last month: October 2026).
EXPECTED = {
    "account": SHOP,
    "window": ["2026-10-01T00:00:00+00:00", "2026-10-31T23:59:59.999999+00:00"],
    "workers": {"w_1": 1, "w_2": 1, "w_4": 1},
    "profiles": ["shop_1", "shop_2"],
    "unknown_endings": [
        {"run_id": "r_2", "worker_id": "w_2", "profile_id": "shop_2", "ending": "stale",
         "cause": "lease_expired"},
        {"run_id": "r_3", "worker_id": "w_3", "profile_id": "other_1", "ending": "forced",
         "cause": "force_release"},
        {"run_id": "r_7", "worker_id": "w_7", "profile_id": "other_2", "ending": "revoked",
         "cause": "operator"},
    ],
    "review_waits": [
        {"profile_id": "shop_2", "state": "review_required", "cause": "lease_expired",
         "started_at": "2026-10-04T10:10:00+00:00", "ended_at": "2026-10-04T12:10:00+00:00",
         "ended_by": "return by rev_alice", "seconds": 7200.0},
        {"profile_id": "other_1", "state": "review_required", "cause": "force_release",
         "started_at": "2026-10-10T14:01:00+00:00", "ended_at": "2026-10-10T14:31:00+00:00",
         "ended_by": "return by rev_alice", "seconds": 1800.0},
        # still open at AS_OF: 26 days and 4 hours
        {"profile_id": "other_1", "state": "review_required", "cause": "unexpected_failure",
         "started_at": "2026-10-20T08:00:00+00:00", "ended_at": None, "ended_by": None,
         "seconds": 2_260_800.0},
        {"profile_id": "other_2", "state": "quarantined", "cause": "operator",
         "started_at": "2026-10-25T09:05:00+00:00", "ended_at": "2026-10-25T10:05:00+00:00",
         "ended_by": "return by rev_alice", "seconds": 3600.0},
    ],
}  # fmt: skip
