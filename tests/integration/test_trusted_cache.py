"""A command decides on the profile its process holds, without reading the store first
(issue 16: one round trip): a write made on a profile that was behind conflicts and is decided
again; a refusal is never made on a profile that was behind."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import register

from ledger import (
    Checkout,
    ForceRelease,
    Heartbeat,
    InvalidInput,
    LeaseLost,
    LeaseStatus,
    Ledger,
    Release,
)


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


def _look_ups_of_command_ids(ledger: Ledger) -> list[int]:
    """Count the store's reads of command ids (``command_record``)."""
    store = ledger.store
    real, counted = store.command_record, [0]

    def counting(command_id: str) -> Any:
        counted[0] += 1
        return real(command_id)

    store.command_record = counting  # type: ignore[method-assign]
    return counted


def _beat(lease: Any, command_id: str | None = None, step: str | None = None) -> Heartbeat:
    return Heartbeat(
        lease_id=lease.lease_id,
        fencing_token=lease.fencing_token,
        step=step,
        command_id=command_id,
    )


def _steps(ledger: Ledger, profile_id: str) -> list[str | None]:
    """The steps of the profile's heartbeats, oldest first."""
    beats = [e for e in ledger.history(profile_id) if type(e).__name__ == "LeaseHeartbeat"]
    return [e.step for e in beats]  # type: ignore[attr-defined]


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


def test_a_heartbeat_with_a_command_id_reads_nothing_before_its_write(store_url: str) -> None:
    """A worker's heartbeat carries a command id: on the held profile it is written without
    looking the id up first (the write's own key refuses a used id)."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
        lease = _lease(ledger, pid)
        reads, look_ups = _reads_of_streams(ledger), _look_ups_of_command_ids(ledger)
        for n in range(5):
            ledger.handle(_beat(lease, f"c{n}", step=f"s{n}"))
        assert (reads[0], look_ups[0], ledger.conflicts) == (0, 0, 0)
        assert _steps(ledger, pid) == ["s0", "s1", "s2", "s3", "s4"]


def test_a_command_id_resent_on_the_held_profile_is_answered_not_applied_again(
    store_url: str,
) -> None:
    """The resend of a heartbeat this process applied is decided on the held profile, which
    is current: its write is refused on the command id alone, and the next attempt answers
    it as a resend. One heartbeat in the stream, and the answer is the live lease."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
        lease = _lease(ledger, pid)
        first = ledger.handle(_beat(lease, "c1", step="a"))
        resent = ledger.handle(_beat(lease, "c1", step="a"))
        assert ledger.conflicts == 1
        assert resent.lease_status is LeaseStatus.ACTIVE
        assert resent.expires_at == first.expires_at
        assert _steps(ledger, pid) == ["a"]


def test_a_command_id_another_process_recorded_is_answered_not_applied_again(
    store_url: str,
) -> None:
    """A heartbeat resent to another process (a service replica) after the first landed:
    this process's held profile is behind, its write conflicts, and the command id recorded
    by the other process is answered as a resend."""
    with Ledger.open(store_url) as mine, Ledger.open(store_url) as other:
        pid = register(mine)
        lease = _lease(mine, pid)
        landed = other.handle(_beat(lease, "c1", step="a"))
        resent = mine.handle(_beat(lease, "c1", step="a"))
        assert resent.expires_at == landed.expires_at
        assert mine.conflicts == 1
        assert _steps(mine, pid) == ["a"]


def test_a_command_id_used_elsewhere_is_refused_and_writes_nothing(store_url: str) -> None:
    """An id recorded for another command on this profile, or for another profile, is
    refused as before, though the write was tried first."""
    with Ledger.open(store_url) as ledger:
        first, second = register(ledger, "p1"), register(ledger, "p2")
        lease, other = _lease(ledger, first), _lease(ledger, second)
        ledger.handle(_beat(lease, "c1", step="a"))
        with pytest.raises(InvalidInput, match="already used on p1 for"):
            ledger.handle(_beat(lease, "c1", step="b"))
        with pytest.raises(InvalidInput, match="already used on profile p1"):
            ledger.handle(_beat(other, "c1", step="a"))
        assert _steps(ledger, first) == ["a"]
        assert _steps(ledger, second) == []


def test_a_resent_release_refused_on_the_held_profile_is_answered(store_url: str) -> None:
    """A resent release: the held profile says the lease ended, so the decision on it
    refuses; the command id is then looked up and the release answered as a resend, not
    refused as a lost lease."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
        lease = _lease(ledger, pid)
        release = Release(
            lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success",
            final_url="https://shop.example/done", screenshot="s.png", command_id="r1",
        )  # fmt: skip
        first = ledger.handle(release)
        events = len(ledger.history(pid))
        again = ledger.handle(release)  # as recorded, marked resent (rev37)
        assert again.model_dump(exclude={"message", "resent"}) == first.model_dump(
            exclude={"message"}
        )
        assert getattr(again, "resent", False) is True
        assert len(ledger.history(pid)) == events
