"""A command decides on the profile its process holds, without reading the store first
(issue 16: one round trip): a write made on a profile that was behind conflicts and is decided
again; a refusal is never made on a profile that was behind."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import register

from ledger import Checkout, ForceRelease, Heartbeat, LeaseLost, Ledger, Release


def _lease(ledger: Ledger, profile_id: str, worker: str = "w1") -> Any:
    return ledger.handle(
        Checkout(profile_id=profile_id, worker_id=worker, run_id="r", task_type="t")
    )


def _reads_of_streams(ledger: Ledger) -> list[int]:
    """Count the store's reads of event streams (the recorder's ``select_events``)."""
    recorder = ledger.store.app.recorder
    real, counted = recorder.select_events, [0]

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted[0] += 1
        return real(*args, **kwargs)

    recorder.select_events = counting  # type: ignore[method-assign]
    return counted


def test_a_heartbeat_on_the_held_profile_reads_no_stream(store_url: str) -> None:
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
        lease = _lease(ledger, pid)
        reads = _reads_of_streams(ledger)
        for n in range(5):
            ledger.handle(
                Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{n}")
            )
        assert reads[0] == 0
        assert ledger.history(pid)[-1].step == "s4"  # type: ignore[attr-defined]


def test_a_write_on_a_profile_that_was_behind_conflicts_and_is_decided_again(
    store_url: str,
) -> None:
    with Ledger.open(store_url) as mine, Ledger.open(store_url) as other:
        pid = register(mine)
        lease = _lease(mine, pid)  # this process holds the profile, leased
        other.handle(ForceRelease(profile_id=pid, actor="op", reason="stop"))
        with pytest.raises(LeaseLost):
            mine.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
        assert mine.conflicts == 1  # decided on the held profile, refused by the store
    with Ledger.open(store_url) as ledger:
        kinds = [type(e).__name__ for e in ledger.history(pid)]
    assert "LeaseHeartbeat" not in kinds


def test_a_refusal_is_never_made_on_a_profile_that_was_behind(store_url: str) -> None:
    with Ledger.open(store_url) as mine, Ledger.open(store_url) as other:
        pid = register(mine)
        lease = _lease(mine, pid)  # held here as leased by w1
        other.handle(
            Release(
                lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success",
                final_url="https://shop.example/done", screenshot="s.png",
            )
        )  # fmt: skip
        second = _lease(mine, pid, worker="w2")  # would be denied on the held profile
        assert second.worker_id == "w2"
        assert mine.conflicts == 0


def test_a_decision_that_appends_nothing_is_never_made_on_a_profile_that_was_behind(
    store_url: str,
) -> None:
    import time

    from ledger import Sweep

    with Ledger.open(store_url) as mine, Ledger.open(store_url) as other:
        pid = register(mine)  # held here as available: nothing for a sweep to settle
        other.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r", task_type="t", ttl_seconds=1)
        )
        time.sleep(1.3)
        report = mine.handle(Sweep(actor="sweeper"))
    assert [r.profile_id for r in report.settled] == [pid]


def test_a_batch_that_conflicted_decides_again_on_the_stores_profiles(store_url: str) -> None:
    """One held profile behind the store makes the batch conflict once; its commands then
    decide on the store's profiles, so none conflicts again (a replica's batch costs one
    retry, not one per stale profile)."""
    with Ledger.open(store_url) as mine, Ledger.open(store_url) as other:
        first, second = register(mine, "p1"), register(mine, "p2")
        leases = [_lease(mine, first), _lease(mine, second)]
        other.handle(ForceRelease(profile_id=first, actor="op", reason="stop"))
        answers = mine.handle_together(
            [Heartbeat(lease_id=x.lease_id, fencing_token=x.fencing_token) for x in leases]
        )
        assert isinstance(answers[0], LeaseLost)
        assert answers[1].lease_id == leases[1].lease_id
        assert mine.conflicts == 1
