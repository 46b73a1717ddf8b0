"""A scripted fleet for the fleet, health and checklist reports: every count they give is
known from this script.

Account ``acct_a`` (proxy ``px_a``): a1 two explainable leases (clean, expected failure);
a2 sent to review, returned after 100 s, then sent to review again (still waiting);
a3 quarantined after an unconfirmed mutating step; a4 stale (TTL 5 s, swept 60 s later).
Account ``acct_b`` (proxy ``px_b``): b1 leased and overdue (not swept); b2 force-released
(review, waiting); b3 never leased.
"""

from __future__ import annotations

from typing import Any

from ledger import (
    Checkout,
    ForceRelease,
    Heartbeat,
    Ledger,
    RegisterProfile,
    Release,
    Review,
    Sweep,
)


class Clock:  # the protocol of tests/integration/conftest.py's StepClock
    def advance(self, seconds: float) -> None: ...


def _lease(ledger: Ledger, pid: str, worker: str, run: str, **extra: Any) -> tuple[str, int]:
    lease = ledger.handle(
        Checkout(profile_id=pid, worker_id=worker, run_id=run, task_type="t", **extra)
    )
    return lease.lease_id, lease.fencing_token


def script(ledger: Ledger, clock: Any) -> dict[str, str]:
    """Play the fleet; returns the lease ids by name."""
    ids: dict[str, str] = {}
    for pid in ("a1", "a2", "a3", "a4"):
        ledger.handle(RegisterProfile(profile_id=pid, account_id="acct_a", proxy_id="px_a"))
    for pid in ("b1", "b2", "b3"):
        ledger.handle(RegisterProfile(profile_id=pid, account_id="acct_b", proxy_id="px_b"))
    lid, tok = ids["a1_clean"], _ = _lease(ledger, "a1", "w1", "r1")
    clock.advance(10)
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="home", safe=True))
    clock.advance(20)
    ledger.handle(
        Release(lease_id=lid, fencing_token=tok, outcome="success", final_url="https://x/done")
    )
    lid, tok = _lease(ledger, "a1", "w1", "r2")
    ids["a1_expected"] = lid
    clock.advance(40)
    ledger.handle(
        Release(
            lease_id=lid,
            fencing_token=tok,
            outcome="expected_failure",
            reason="sold out",
            final_url="https://x",
        )
    )
    lid, tok = _lease(ledger, "a2", "w2", "r3")
    ids["a2_first"] = lid
    clock.advance(5)
    ledger.handle(Release(lease_id=lid, fencing_token=tok, outcome="failure"))
    clock.advance(100)
    ledger.handle(Review(profile_id="a2", reviewer="rev", decision="return", note="looked fine"))
    lid, tok = _lease(ledger, "a2", "w2", "r4")
    ids["a2_second"] = lid
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="x"))
    clock.advance(15)
    ledger.handle(Release(lease_id=lid, fencing_token=tok, outcome="failure"))
    lid, tok = _lease(ledger, "a3", "w3", "r5")
    ids["a3_mutated"] = lid
    clock.advance(8)
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="pay", mutating=True))
    ledger.handle(Release(lease_id=lid, fencing_token=tok, outcome="failure"))
    lid, _ = _lease(ledger, "a4", "w3", "r6", ttl_seconds=5)
    ids["a4_stale"] = lid
    clock.advance(60)
    ledger.handle(Sweep())
    lid, _ = _lease(ledger, "b2", "w4", "r7")
    ids["b2_forced"] = lid
    clock.advance(30)
    ledger.handle(ForceRelease(profile_id="b2", actor="op", reason="stuck"))
    lid, tok = _lease(ledger, "b1", "w4", "r8", ttl_seconds=30)
    ids["b1_live"] = lid
    clock.advance(20)
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="cart"))
    clock.advance(200)  # b1's deadline passed 170 s ago; no sweep since
    return ids
