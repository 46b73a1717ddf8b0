"""One racing worker process: in each round, checkout the round's profile at the same instant
as every other worker, and if granted, hold it until the others have lost, heartbeat and
release; then a JSON summary.

Run as a separate process by test_races.py. The barrier is the wall clock: round ``r`` starts
at ``start_at + r * interval`` in every process, and each process has already loaded the profile
(its cache is warm), so all of them decide on the same stream version and all but one must lose
the version race. Every exception other than the domain's refusals is counted as unexpected.
"""

from __future__ import annotations

import json
import sys
import time

from ledger import Checkout, CheckoutDenied, DenialReason, Heartbeat, Ledger, Release

HOLD = 0.7  # the winner releases this far into the round


def main(
    store_url: str, worker: str, rounds: int, profiles: list[str], start_at: float, interval: float
) -> None:
    granted = 0
    unexpected: list[str] = []
    denials: dict[str, int] = {}
    with Ledger.open(store_url) as ledger:
        for pid in profiles:
            ledger.view(pid)  # warm the cache: after the barrier only the race is left
        for r in range(rounds):
            pid = profiles[r % len(profiles)]
            time.sleep(max(0.0, start_at + r * interval - time.time()))
            try:
                lease = ledger.handle(
                    Checkout(
                        profile_id=pid, worker_id=worker, run_id=f"{worker}-{r}", task_type="t"
                    )
                )
                granted += 1
                # Hold the lease until every loser has decided, so each round has one winner.
                time.sleep(max(0.0, start_at + (r + HOLD) * interval - time.time()))
                ledger.handle(
                    Heartbeat(
                        lease_id=lease.lease_id, fencing_token=lease.fencing_token, step="work"
                    )
                )
                ledger.handle(
                    Release(
                        lease_id=lease.lease_id,
                        fencing_token=lease.fencing_token,
                        outcome="success",
                        final_url=f"https://example.test/{pid}/done",
                    )
                )
            except CheckoutDenied as denied:
                denials[denied.reason.value] = denials.get(denied.reason.value, 0) + 1
                if denied.reason is DenialReason.ALREADY_LEASED and denied.holder is None:
                    unexpected.append("already_leased denial without a holder")
            except Exception as e:  # the test asserts there are none
                unexpected.append(f"{type(e).__name__}: {e}")
        conflicts = ledger.conflicts
    summary = {
        "worker": worker,
        "granted": granted,
        "denied": denials,
        "conflicts": conflicts,
        "unexpected": unexpected,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        sys.argv[4].split(","),
        float(sys.argv[5]),
        float(sys.argv[6]),
    )
