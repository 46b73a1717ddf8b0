"""One racing worker process: checkout, heartbeat and release in a loop, then a JSON summary.

Run as a separate process by test_races.py; every exception other than the domain's refusals
is counted as unexpected.
"""

from __future__ import annotations

import json
import random
import sys

from ledger import CheckoutDenied, DenialReason, Ledger


def main(store_url: str, worker: str, iterations: int, profiles: list[str], seed: int) -> None:
    rng = random.Random(seed)
    granted = 0
    unexpected: list[str] = []
    denials: dict[str, int] = {}
    with Ledger.open(store_url) as ledger:
        for i in range(iterations):
            pid = rng.choice(profiles)
            try:
                lease = ledger.checkout(
                    pid, worker_id=worker, run_id=f"{worker}-{i}", task_type="t"
                )
                granted += 1
                ledger.heartbeat(lease.lease_id, fencing_token=lease.fencing_token, step="work")
                ledger.release(
                    lease.lease_id,
                    fencing_token=lease.fencing_token,
                    outcome="success",
                    final_url=f"https://example.test/{pid}/done",
                )
            except CheckoutDenied as denied:
                denials[denied.reason.value] = denials.get(denied.reason.value, 0) + 1
                if denied.reason is DenialReason.ALREADY_LEASED and denied.holder is None:
                    unexpected.append("already_leased denial without a holder")
            except Exception as e:  # the test asserts there are none
                unexpected.append(f"{type(e).__name__}: {e}")
    summary = {"worker": worker, "granted": granted, "denied": denials, "unexpected": unexpected}
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].split(","), int(sys.argv[5]))
