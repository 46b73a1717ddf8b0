"""One routing worker process: each round, at the same instant as every other worker, ask
``checkout_for`` for any profile of the account; if granted, hold it until the others have had
their answers, heartbeat and release. Prints a JSON summary: every lease it was granted, every
denial with its reason and message, and how often a candidate was lost to another worker.

Run as a separate process by test_routing_race.py; the barrier is the wall clock (see
race_worker.py). Every exception other than the ledger's refusals is counted as unexpected.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TypeVar

from ledger import Checkout, CheckoutDenied, Command, Heartbeat, Ledger, Release
from workers import checkout_for

R = TypeVar("R")
HOLD = 0.7  # the winners release this far into the round


class CountingLedger(Ledger):
    """A ledger that counts each profile checkout routing attempts and each one it loses."""

    attempts = 0
    lost = 0

    def handle(self, command: Command[R]) -> R:
        if not isinstance(command, Checkout):
            return super().handle(command)
        self.attempts += 1
        try:
            return super().handle(command)
        except CheckoutDenied:
            self.lost += 1
            raise


def main(store_url: str, worker: str, rounds: int, start_at: float, interval: float) -> None:
    granted: list[dict[str, object]] = []
    denied: list[dict[str, object]] = []
    unexpected: list[str] = []
    won_after_losing = 0
    with CountingLedger.open(store_url) as ledger:
        for pid in ledger.profile_ids():
            ledger.view(pid)  # warm the cache: after the barrier only the race is left
        for r in range(rounds):
            time.sleep(max(0.0, start_at + r * interval - time.time()))
            lost_before = ledger.lost
            try:
                lease = checkout_for(
                    ledger,
                    worker_id=worker,
                    run_id=f"{worker}-{r}",
                    task_type="t",
                    account_id="acct_race",
                    region="eu",
                )
                won = {"round": r, "lease_id": lease.lease_id, "profile": lease.profile_id}
                granted.append(won)
                won_after_losing += ledger.lost > lost_before
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
                        final_url=f"https://example.test/{lease.profile_id}/done",
                    )
                )
                # A release that ends after the next round began (a loaded machine) leaves
                # that round one profile short: the test allows for it, and only for it.
                won["late"] = time.time() > start_at + (r + 1) * interval
            except CheckoutDenied as refused:
                denied.append(
                    {"round": r, "reason": refused.reason.value, "message": refused.denial.message}
                )
            except Exception as e:  # the test asserts there are none
                unexpected.append(f"{type(e).__name__}: {e}")
        summary = {
            "worker": worker,
            "granted": granted,
            "denied": denied,
            "attempts": ledger.attempts,
            "lost": ledger.lost,
            "won_after_losing": won_after_losing,
            "conflicts": ledger.conflicts,
            "unexpected": unexpected,
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
