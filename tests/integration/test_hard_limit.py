"""A lease's hard limit through the ledger's API, on every store: set per checkout and by the
profile's policy, kept by the store, enforced on renewals, refused when out of range."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import StepClock, event_count, register

from ledger import (
    Checkout,
    CheckoutDenied,
    DenialReason,
    Heartbeat,
    InvalidInput,
    LeaseLost,
    Ledger,
    ProfileState,
    Sweep,
)


def test_a_checkout_and_a_profile_bound_every_renewal(ledger: Ledger, clock: StepClock) -> None:
    """The profile allows 120 s, the checkout asks for 60: the lease's hard limit is 60 s
    from its start, stored with it; renewals stop at it, one at the limit is taken (the lease
    is live at the instant, as at a deadline) and one past it is lease lost; the sweep then
    settles the lease. A profile registered again the same way is unchanged."""
    pid = register(ledger, max_lease_seconds=120)
    assert ledger.view(pid).record.max_lease_seconds == 120
    register(ledger, max_lease_seconds=120)
    lease = ledger.handle(
        Checkout(
            profile_id=pid,
            worker_id="w",
            run_id="r",
            task_type="t",
            ttl_seconds=45,
            max_duration_seconds=60,
        )
    )
    assert lease.hard_limit_at == lease.lease_started_at + timedelta(seconds=60)
    clock.advance(40)
    renewed = ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s"))
    assert renewed.expires_at == lease.hard_limit_at
    stored = ledger.view(pid).lease
    assert stored is not None
    assert (stored.hard_limit_at, stored.expires_at) == (lease.hard_limit_at, lease.hard_limit_at)
    clock.advance(19.5)  # half a second before the limit: renewed up to it, not past it
    beat = ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1))
    assert beat.expires_at == lease.hard_limit_at
    # At the limit itself: live, as at a deadline (rev33). A renewal decided at that instant
    # is written after it, so it is refused (no grace past a deadline: rev35); the sweep
    # settles nothing and the lease reads live.
    clock.advance(0.5)
    assert ledger.handle(Sweep()).settled == []
    assert ledger.check_lease(lease.lease_id).live
    clock.advance(0.000001)
    with pytest.raises(LeaseLost, match="hard limit"):
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1))
    assert [s.lease_id for s in ledger.handle(Sweep()).settled] == [lease.lease_id]
    assert ledger.view(pid).state is ProfileState.REVIEW_REQUIRED


@pytest.mark.parametrize("seconds", [0, -5, 7 * 86_400 + 1])
def test_a_hard_limit_out_of_range_is_bad_input_and_writes_nothing(
    ledger: Ledger, seconds: int
) -> None:
    """Zero, negative or longer than seven days: InvalidInput naming the field, no event."""
    pid = register(ledger)
    before = event_count(ledger)
    with pytest.raises(InvalidInput, match="max_duration_seconds"):
        ledger.handle(
            Checkout(
                profile_id=pid,
                worker_id="w",
                run_id="r",
                task_type="t",
                max_duration_seconds=seconds,
            )
        )
    with pytest.raises(InvalidInput, match="max_lease_seconds"):
        register(ledger, "p2", max_lease_seconds=seconds)
    assert event_count(ledger) == before


def test_a_lease_ended_by_its_hard_limit_is_named_so_not_a_silent_worker(
    ledger: Ledger, clock: StepClock
) -> None:
    """A worker that renewed every 10 s until its 60 s hard limit refused it: the denial before
    the sweep says the lease reached its hard limit, the sweep settles it with the cause
    ``hard_limit_reached`` (not ``lease_expired``, a worker gone silent), and the health
    report's heartbeat gaps count no silence past the limit, before the sweep as after it.
    rev30: every reader blamed the worker (a missed renewal deadline, a share of 6.5 to 21 of
    its TTL)."""
    import reports

    pid = register(ledger)
    lease = ledger.handle(
        Checkout(
            profile_id=pid,
            worker_id="w",
            run_id="r",
            task_type="t",
            ttl_seconds=300,
            max_duration_seconds=60,
        )
    )
    for _ in range(5):
        clock.advance(10)
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s"))
    clock.advance(10.000001)  # just past the limit
    with pytest.raises(LeaseLost, match="hard limit"):
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1))
    clock.advance(240)
    # Before the sweep the lease is live in the read model, and reads the same (rev31: silent
    # 250 s, a share of 25 of the 10 s its last renewal was granted).
    before = reports.health(ledger=ledger).heartbeat_gaps.to_dict("records")[0]
    assert before["silent_seconds"] == 10.0, before
    assert before["worst_share_of_ttl"] <= 1.0, before
    with pytest.raises(CheckoutDenied, match="reached its hard limit") as denied:
        ledger.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))
    assert denied.value.reason is DenialReason.STALE
    (settled,) = ledger.handle(Sweep()).settled
    assert settled.cause == "hard_limit_reached"
    swept = ledger.history(pid)[-2:]  # lease_marked_stale, review_requested
    assert [e.envelope.reason for e in swept] == ["hard limit reached"] * 2
    gaps = reports.health(ledger=ledger).heartbeat_gaps
    (row,) = gaps.loc[gaps["lease_id"] == lease.lease_id].to_dict("records")
    assert row["worst_share_of_ttl"] <= 1.0, row


def test_a_store_clock_too_near_year_10000_for_a_deadline_is_said_so(
    ledger: Ledger, clock: StepClock
) -> None:
    """A checkout whose deadline would fall past 9999-12-31 (a store clock gone absurd) is a
    LedgerError naming the clock, and writes nothing (rev33: a bare OverflowError, exit 1
    "internal error")."""
    from datetime import UTC, datetime

    from ledger import LedgerError

    pid = register(ledger)
    before = len(ledger.history(pid))
    clock.now = datetime(9999, 12, 31, 23, 50, tzinfo=UTC)
    checkout = Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=900)
    with pytest.raises(LedgerError, match="the store's clock reads 9999-12-31T23:50:00"):
        ledger.handle(checkout)
    assert len(ledger.history(pid)) == before
