"""The availability read model: written beside the events, reproduced exactly by a rebuild."""

from __future__ import annotations

import pytest
from conftest import StepClock, register

from ledger import (
    Checkout,
    CheckoutDenied,
    Disable,
    Heartbeat,
    Ledger,
    ProfileState,
    Release,
    Sweep,
    rebuild_availability,
    verify_availability,
)
from projections import status


def _tamper(ledger: Ledger, profile_id: str, **changes: object) -> None:
    """Edit a row behind the ledger's back (same version, so the upsert takes it)."""
    (row,) = [r for r in ledger.availability() if r.profile_id == profile_id]
    ledger.store.write_availability([row.model_copy(update=changes)])


def _busy_fleet(ledger: Ledger, clock: StepClock) -> None:
    """Five profiles left in five different states, with several leases each."""
    for n in range(5):
        register(ledger, f"p{n}", account_id=f"acct{n % 2}")
    for n in range(5):
        lease = ledger.handle(
            Checkout(
                profile_id=f"p{n}", worker_id=f"w{n}", run_id=f"r{n}", task_type="t", ttl_seconds=60
            )
        )
        ledger.handle(
            Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s1", url="u1", safe=True)
        )
        ledger.handle(
            Release(lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="u2")
        )
    ledger.handle(
        Checkout(profile_id="p1", worker_id="w9", run_id="r9", task_type="t", ttl_seconds=30)
    )
    lease = ledger.handle(
        Checkout(profile_id="p2", worker_id="w9", run_id="r10", task_type="t", ttl_seconds=30)
    )
    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=2, step="pay", mutating=True))
    ledger.handle(Disable(profile_id="p3", actor="ops", reason="account closed"))
    lease = ledger.handle(
        Checkout(profile_id="p4", worker_id="w9", run_id="r11", task_type="t", ttl_seconds=300)
    )
    ledger.handle(
        Release(
            lease_id=lease.lease_id,
            fencing_token=2,
            outcome="success",
            prompt_seen=True,
            final_url="u/verify",
        )
    )
    clock.advance(31)
    ledger.handle(Sweep())


def test_rows_track_every_state(ledger: Ledger, clock: StepClock) -> None:
    """After a mixed history each profile's row says its state, reason and last user."""
    _busy_fleet(ledger, clock)
    rows = {r.profile_id: r for r in status(ledger)}
    assert {pid: r.state for pid, r in rows.items()} == {
        "p0": ProfileState.AVAILABLE,
        "p1": ProfileState.REVIEW_REQUIRED,
        "p2": ProfileState.QUARANTINED,
        "p3": ProfileState.DISABLED,
        "p4": ProfileState.REVIEW_REQUIRED,
    }
    assert rows["p0"].last_worker == "w0"
    assert rows["p1"].reason == "previous_run_unknown"
    assert rows["p4"].reason == "review_required"
    assert [r.profile_id for r in status(ledger, account_id="acct0")] == ["p0", "p2", "p4"]


def test_rebuild_from_events_reproduces_the_rows_exactly(ledger: Ledger, clock: StepClock) -> None:
    """Wiping the table and rebuilding from the event streams gives identical rows."""
    _busy_fleet(ledger, clock)
    before = ledger.availability()
    assert verify_availability(ledger) == []
    for row in before:
        ledger.store.delete_availability(row.profile_id)
    assert ledger.availability() == []
    report = rebuild_availability(ledger)
    assert [(d.profile_id, d.problem) for d in report.differences] == [
        (f"p{n}", "missing") for n in range(5)
    ]
    assert report.rows_written == 5
    assert ledger.availability() == before


def test_verify_finds_a_tampered_row_and_rebuild_mends_it(ledger: Ledger, clock: StepClock) -> None:
    """A row edited behind the ledger's back is reported, and a rebuild restores it."""
    _busy_fleet(ledger, clock)
    _tamper(ledger, "p2", state=ProfileState.AVAILABLE)
    assert verify_availability(ledger) == ["p2"]
    rebuild_availability(ledger)
    assert verify_availability(ledger) == []


def test_checkout_decides_on_the_aggregate_not_the_row(ledger: Ledger) -> None:
    """Even if the row claims a leased profile is available, checkout is still denied."""
    register(ledger, "p0")
    ledger.handle(Checkout(profile_id="p0", worker_id="w1", run_id="r1", task_type="t"))
    _tamper(ledger, "p0", state=ProfileState.AVAILABLE)
    with pytest.raises(CheckoutDenied):
        ledger.handle(Checkout(profile_id="p0", worker_id="w2", run_id="r2", task_type="t"))


def test_rebuild_drops_rows_of_unregistered_profiles_only(ledger: Ledger, clock: StepClock) -> None:
    """A row for a profile the event log never registered is dropped by a rebuild; every
    registered profile keeps its row."""
    _busy_fleet(ledger, clock)
    ghost = ledger.availability()[0].model_copy(update={"profile_id": "ghost"})
    ledger.store.write_availability([ghost])
    assert verify_availability(ledger) == ["ghost"]
    rebuild_availability(ledger)
    assert [r.profile_id for r in ledger.availability()] == ["p0", "p1", "p2", "p3", "p4"]
    assert ledger.profile_ids() == ["p0", "p1", "p2", "p3", "p4"]


def test_rebuild_reports_then_repairs_a_row_edited_to_a_higher_version(
    ledger: Ledger, clock: StepClock
) -> None:
    """A row whose version was raised by hand is reported (ahead of the events) and repaired;
    it used to survive every rebuild."""
    _busy_fleet(ledger, clock)
    _tamper(ledger, "p2", version=999, state=ProfileState.AVAILABLE)
    report = rebuild_availability(ledger)
    assert [d.profile_id for d in report.differences] == ["p2"]
    assert "ahead of the events" in report.differences[0].problem
    assert verify_availability(ledger) == []
    assert rebuild_availability(ledger).differences == []  # it says what it finds, not []


def test_a_later_write_overwrites_a_damaged_row(ledger: Ledger) -> None:
    """The row written with new events is the truth at that version, whatever the old row
    claimed."""
    register(ledger, "p0")
    _tamper(ledger, "p0", version=999, state=ProfileState.DISABLED)
    ledger.handle(Checkout(profile_id="p0", worker_id="w1", run_id="r1", task_type="t"))
    assert verify_availability(ledger) == []


def test_the_sweep_settles_an_overdue_lease_whose_row_was_deleted(
    ledger: Ledger, clock: StepClock
) -> None:
    """With a leased profile's row deleted, the sweep still finds the overdue lease (it reads
    the event log for profiles without a readable row)."""
    register(ledger, "p0")
    lease = ledger.handle(
        Checkout(profile_id="p0", worker_id="w1", run_id="r1", task_type="t", ttl_seconds=30)
    )
    ledger.store.delete_availability("p0")
    clock.advance(31)
    report = ledger.handle(Sweep())
    assert [r.lease_id for r in report.settled] == [lease.lease_id]
    assert ledger.view("p0").state is ProfileState.REVIEW_REQUIRED


def test_one_profile_that_cannot_be_settled_does_not_stop_the_sweep(
    ledger: Ledger, clock: StepClock
) -> None:
    """A profile whose stored registration makes its ending fail (a window that overflows
    date arithmetic, written before the range existed) is reported with its id; the profiles
    after it are still swept."""
    _register_unchecked(ledger, "p_bad", unclean_window_seconds=10**12)
    register(ledger, "p_good")
    for pid in ("p_bad", "p_good"):
        ledger.handle(
            Checkout(
                profile_id=pid, worker_id="w", run_id=f"r-{pid}", task_type="t", ttl_seconds=30
            )
        )
    clock.advance(31)
    report = ledger.handle(Sweep())
    assert [r.profile_id for r in report.settled] == ["p_good"]
    assert [f.profile_id for f in report.failed] == ["p_bad"]
    assert "OverflowError" in report.failed[0].error
    assert ledger.view("p_good").state is ProfileState.REVIEW_REQUIRED


def _register_unchecked(ledger: Ledger, profile_id: str, **record: object) -> None:
    """Write a registration the command models would now refuse, as an older custody did."""
    from ledger._domain.model import ProfileRecord, Role
    from ledger._domain.profile import Context, Profile
    from ledger._domain.view import availability_of

    fields: dict[str, object] = {
        "profile_id": profile_id,
        "account_id": "account_shop_17",
        "proxy_id": "proxy_us_east_12",
        "release_policy": "manual_review_on_unknown_state",
        "unclean_limit": 3,
        "unclean_window_seconds": 86_400,
    }
    fields.update(record)
    ctx = Context("ops", Role.OPERATOR, ledger.now(), "c-old", "c-old", "c-old")
    profile = Profile.register(ProfileRecord.model_validate(fields), ctx)
    ledger.store.save(profile, availability_of(profile))
