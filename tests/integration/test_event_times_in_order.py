"""A profile's events are recorded in time order: a command never records a time earlier
than the profile's last event, even when it read the store's clock before another writer's
commit that it then loaded (docs/explanation/ttl-as-a-deadline.md, "Whose clock")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import StepClock, register

from ledger import Checkout, Heartbeat, Lease, Ledger, Release, Sweep


@pytest.fixture
def first(store_url: str, clock: StepClock) -> Iterator[Ledger]:
    """Another writer on the same store and clock; it sets the scene, so that ``ledger``
    holds no copy of the profile and loads it."""
    with Ledger.open(store_url, clock=clock) as opened:
        yield opened


def _another_commit_before_the_load(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, first: Ledger, clock: StepClock, lease: Lease
) -> None:
    """Once ``ledger`` has its command's time, and before it loads the profile, ``first``
    renews the lease 10 ms later on the store's clock (the time is read before the load)."""
    repository = ledger.uow.repository
    load: Callable[..., Any] = repository.load
    renewed = []

    def after_another_commit(profile_id: str, *args: Any) -> Any:
        if not renewed:
            was = clock.now
            clock.advance(0.01)
            renewed.append(first.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1)))
            clock.now = was  # the time ``ledger`` already holds
        return load(profile_id, *args)

    monkeypatch.setattr(repository, "load", after_another_commit)


def _times(ledger: Ledger) -> list[Any]:
    return [event.envelope.at for event in ledger.history("profile_shop_17")]


@pytest.mark.parametrize("together", [False, True])
def test_a_command_never_records_a_time_before_the_profiles_last_event(
    monkeypatch: pytest.MonkeyPatch,
    ledger: Ledger,
    first: Ledger,
    clock: StepClock,
    together: bool,
) -> None:
    """A heartbeat whose time was taken before another writer's heartbeat committed, which it
    then loaded, records no earlier time and moves no deadline back, alone or in a group
    commit (rev28, on PostgreSQL: times went back by up to 2 ms, and a lease's deadline)."""
    register(first)
    lease = first.handle(
        Checkout(profile_id="profile_shop_17", worker_id="w", run_id="r", task_type="t")
    )
    _another_commit_before_the_load(monkeypatch, ledger, first, clock, lease)
    renewal = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="later")

    renewed = ledger.handle_together([renewal])[0] if together else ledger.handle(renewal)

    times = _times(ledger)
    assert len(times) == 4, "the heartbeat was not written after the other one"
    assert times == sorted(times), f"a time went back: {times}"
    assert isinstance(renewed, Lease)
    assert renewed.expires_at >= first.view("profile_shop_17").lease.expires_at


def test_a_clock_set_back_past_the_bound_keeps_its_deadlines(
    ledger: Ledger, clock: StepClock
) -> None:
    """A clock set back by an hour is not raised to the profile's last event: a lease taken
    then has its deadline on that clock, and the sweep, judging on it, settles it once it is
    overdue (rev28's second read: raised, the deadline was an hour late and the sweep settled
    nothing)."""
    register(ledger)
    lease = ledger.handle(
        Checkout(profile_id="profile_shop_17", worker_id="w", run_id="r", task_type="t")
    )
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=1, outcome="expected_failure", reason="x")
    )
    clock.advance(-3600)
    taken_at = clock.now
    lease = ledger.handle(
        Checkout(
            profile_id="profile_shop_17", worker_id="w", run_id="r2", task_type="t", ttl_seconds=60
        )
    )
    assert lease.expires_at == taken_at + timedelta(seconds=60)
    clock.advance(300)
    assert [s.profile_id for s in ledger.handle(Sweep()).settled] == ["profile_shop_17"]
