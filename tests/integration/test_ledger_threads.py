"""One ledger shared by threads: its calls take turns, so every thread's commands are judged
on the profile as the store has it (rev35 library review: eight threads on one ledger moved its
cached profiles forward at once, and were told ``UnreadableEvent``, "versions between are
missing", of a log that verify passed). A ledger is not pickled: a process started afresh is
told to open its own."""

from __future__ import annotations

import pickle
import threading
from collections import Counter

import pytest
from conftest import register

from ledger import Checkout, CheckoutDenied, Heartbeat, Ledger, Release, audit

THREADS, ROUNDS, PROFILES = 8, 12, 3


def test_threads_sharing_a_ledger_take_turns(store_url: str) -> None:
    """8 threads check out, renew and release 3 profiles through one ledger: every command is
    answered as granted, denied as already leased, or done; no other error; each profile's
    history has one holder at a time, every lease granted released cleanly; verify holds."""
    failed: Counter[str] = Counter()
    granted: Counter[str] = Counter()
    with Ledger.open(store_url) as ledger:
        for n in range(PROFILES):
            register(ledger, f"p{n}")

        def work(thread: int) -> None:
            for k in range(ROUNDS):
                profile_id = f"p{(thread + k) % PROFILES}"
                try:
                    lease = ledger.handle(
                        Checkout(
                            profile_id=profile_id,
                            worker_id=f"w{thread}",
                            run_id=f"r{thread}-{k}",
                            task_type="t",
                        )
                    )
                except CheckoutDenied as denied:
                    if denied.reason != "already_leased":
                        failed[f"denied: {denied}"] += 1
                    continue
                except Exception as e:  # counted, then asserted on
                    failed[f"{type(e).__name__}: {e}"] += 1
                    continue
                granted[profile_id] += 1
                try:
                    token = lease.fencing_token
                    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=token))
                    ledger.handle(
                        Release(
                            lease_id=lease.lease_id,
                            fencing_token=token,
                            outcome="success",
                            final_url="https://e.test/done",
                        )
                    )
                except Exception as e:  # counted, then asserted on
                    failed[f"{type(e).__name__}: {e}"] += 1

        threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads)
        assert not failed, failed
        assert sum(granted.values()) >= PROFILES
        for n in range(PROFILES):
            types = [e.event_type for e in ledger.history(f"p{n}")]
            acquired = types.count("lease_acquired")
            assert acquired == granted[f"p{n}"] == types.count("lease_released_cleanly")
            holding = False
            for event_type in types:
                if event_type == "lease_acquired":
                    assert not holding, types
                    holding = True
                elif event_type == "lease_released_cleanly":
                    holding = False
            assert ledger.view(f"p{n}").state == "available"
        assert audit.verify(ledger).holds


def test_a_ledger_is_not_pickled_and_says_what_to_do(store_url: str) -> None:
    with Ledger.open(store_url) as ledger, pytest.raises(TypeError, match="open a Ledger there"):
        pickle.dumps(ledger)
