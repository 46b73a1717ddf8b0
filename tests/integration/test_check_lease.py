"""Ledger.check_lease on every store: what a worker polls to learn that its lease was taken
back, at the cost of one read of the profile's availability row."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import StepClock, register

from ledger import Checkout, ForceRelease, InvalidInput, Ledger, ProfileState, UnknownProfile


def test_a_live_lease_then_a_force_release_in_one_row_read_each(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live while held; not live once force-released, saying so. Each check reads the row
    once and loads no events."""
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    reads: list[str] = []
    row_of = ledger.store.availability_row

    def counted(profile_id: str) -> Any:
        reads.append(profile_id)
        return row_of(profile_id)

    def no_load(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the check loaded the profile's events")

    monkeypatch.setattr(ledger.store, "availability_row", counted)
    monkeypatch.setattr(ledger.store, "state", no_load)
    assert ledger.check_lease(lease.lease_id).live
    monkeypatch.undo()
    ledger.handle(ForceRelease(profile_id=pid, actor="ops", reason="stuck"))
    monkeypatch.setattr(ledger.store, "availability_row", counted)
    monkeypatch.setattr(ledger.store, "state", no_load)
    check = ledger.check_lease(lease.lease_id)
    assert (check.live, check.profile_state) == (False, ProfileState.REVIEW_REQUIRED)
    assert check.why is not None
    assert check.why.startswith(f"the ledger ended {lease.lease_id}")
    assert reads == [pid, pid]


def test_a_missing_row_is_answered_from_the_events(ledger: Ledger) -> None:
    """A row deleted behind the ledger's back: the check answers from the events."""
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    ledger.store.delete_availability(pid)
    assert ledger.check_lease(lease.lease_id).live


def test_a_malformed_or_unknown_lease_is_bad_input(ledger: Ledger) -> None:
    """A malformed lease id is InvalidInput; one of no registered profile UnknownProfile."""
    with pytest.raises(InvalidInput, match="lease_id"):
        ledger.check_lease("lease-x@p")
    with pytest.raises(UnknownProfile):
        ledger.check_lease("lease-1@nobody")


def test_a_lease_of_a_profile_never_leased_is_answered_in_a_sentence(ledger: Ledger) -> None:
    """What ``GET /v1/leases/{id}`` answers of a profile never leased: said so, not
    "p1's latest lease is None" (``ledger._domain.row.lease_check``)."""
    register(ledger, "p1")
    check = ledger.check_lease("lease-1@p1")
    assert not check.live
    assert check.why == "p1 has never been leased"


def test_a_lease_past_its_deadline_is_not_live_on_the_store_s_time(
    ledger: Ledger, clock: StepClock
) -> None:
    """A lease the sweep has not yet marked, past its renewal deadline on the store's clock:
    not live (a heartbeat would be refused as lost)."""
    pid = register(ledger)
    checkout = Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=30)
    lease = ledger.handle(checkout)
    clock.advance(29)
    assert ledger.check_lease(lease.lease_id).live
    clock.advance(2)
    check = ledger.check_lease(lease.lease_id)
    assert (check.live, check.profile_state) == (False, ProfileState.LEASED)
    assert check.why is not None
    assert "missed its renewal deadline" in check.why
