"""``why`` and ``who`` name the events behind their answer, read from the timeline by the
moment the state (or the lease) began, so a long stream costs them nothing more."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import StepClock, register

from custody import _render as render
from custody.cli import main
from ledger import (
    Checkout,
    Extend,
    ForceRelease,
    Heartbeat,
    Ledger,
    RegisterProfile,
    Release,
    Review,
)
from ledger._stores.sql import SqlStore
from projections import explain, who


def test_why_names_the_command_that_put_the_profile_in_review(ledger: Ledger) -> None:
    """After a force-release, ``because`` holds exactly that command's events, in order, and
    none of the heartbeats before it."""
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    for _ in range(3):
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    ledger.handle(ForceRelease(profile_id=pid, actor="ops_bob", reason="host rebooted"))
    why = explain(ledger, pid)
    assert [r.event_type for r in why.because] == ["lease_revoked", "review_requested"]
    assert {r.command_id for r in why.because} == {why.because[0].command_id}
    assert why.because[-1].version == len(ledger.history(pid))
    lines = render.explanation_lines(why)
    assert lines[-3] == "  because:"
    assert "review_requested" in lines[-1]
    assert "host rebooted" in lines[-1]


def test_who_names_the_events_that_began_and_ended_the_last_lease(ledger: Ledger) -> None:
    """For an ended lease ``because`` holds its checkout and the release's events (a success
    without evidence goes to review); for a held lease, its checkout alone."""
    pid = register(ledger)
    first = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    ledger.handle(Heartbeat(lease_id=first.lease_id, fencing_token=first.fencing_token))
    ledger.handle(
        Release(lease_id=first.lease_id, fencing_token=first.fencing_token, outcome="success")
    )
    ended = who(ledger, pid)
    assert [r.event_type for r in ended.because] == [
        "lease_acquired",
        "lease_release_requested",
        "review_requested",
    ]
    assert {r.lease_id for r in ended.because} == {first.lease_id}
    ledger.handle(Review(profile_id=pid, reviewer="rolf", decision="return", note="checked"))
    second = ledger.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))
    held = who(ledger, pid)
    assert [(r.event_type, r.lease_id) for r in held.because] == [
        ("lease_acquired", second.lease_id)
    ]
    assert render.text("who", held)[1:] == [
        "  because:",
        f"    {render.timeline_line(held.because[0])}",
    ]


def test_past_its_deadline_why_and_who_name_the_renewal_that_set_it(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev20: ``why`` said a lease missed its deadline 12:46:58.33 and cited its checkout, whose
    deadline was 12:46:58.14: the renewal that set the deadline missed was not named. A live
    lease renewed since its checkout cites its checkout and its last renewal (a heartbeat or
    an extend), in ``why`` and ``who``."""
    pid = register(ledger)
    lease = ledger.handle(
        Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=30)
    )
    clock.advance(10)
    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="a"))
    clock.advance(10)
    extended = ledger.handle(Extend(lease_id=lease.lease_id, fencing_token=1, ttl_seconds=20))
    clock.advance(21)
    why = explain(ledger, pid)
    assert why.reason == "stale"
    assert extended.expires_at.isoformat() in why.message
    cited = [(r.event_type, r.version) for r in why.because]
    assert cited == [("lease_acquired", 2), ("lease_extended", 4)]
    assert [(r.event_type, r.version) for r in who(ledger, pid).because] == cited


def test_why_names_a_lease_past_its_deadline_as_status_does(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev28: status showed a lease past its deadline, not yet swept, as ``leased (overdue)``
    with reason ``stale``, and why as ``leased (stale)``, a second name for one state: why's
    headline says overdue too, and the reason beside it."""
    pid = register(ledger)
    ledger.handle(
        Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=30)
    )
    clock.advance(31)
    assert render.explanation_lines(explain(ledger, pid))[0] == (
        f"{pid}: leased (overdue; reason stale)"
    )


def test_every_read_says_a_lease_past_its_deadline_is_stale_since_the_deadline(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev37: of a lease past its deadline, not yet swept, ``why``, a refused checkout and
    ``fleet`` gave ``since`` the deadline, ``status`` and ``replay`` (reason stale) the lease's
    start: every read says the deadline, as the docs of ``why`` promise."""
    from ledger import CheckoutDenied
    from projections import status
    from reports import fleet, replay

    pid = register(ledger)
    lease = ledger.handle(
        Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=30)
    )
    clock.advance(31)
    with pytest.raises(CheckoutDenied) as denied:
        ledger.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))
    (row,) = status(ledger)
    (stuck,) = fleet(ledger=ledger).stuck
    then = replay(pid, at=clock.now, ledger=ledger)
    assert (row.overdue, then.reason) == (True, denied.value.reason)
    said = {
        "why": explain(ledger, pid).since,
        "checkout": denied.value.denial.since,
        "fleet": stuck.since,
        "status": row.since,
        "replay": then.since,
    }
    assert said == dict.fromkeys(said, lease.expires_at)


def test_a_release_without_a_reason_puts_no_reason_in_the_headline(ledger: Ledger) -> None:
    """A success without evidence goes to review; ``why`` says so without a made-up reason
    (the outcome is not a reason: the headline once ended ': success')."""
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success")
    )
    why = explain(ledger, pid)
    assert why.message == "review required (unknown_final_url) by w1"
    released = [r for r in why.because if r.event_type == "review_requested"]
    assert [r.reason for r in released] == [""]


def test_why_at_the_command_line_loads_the_profile_once(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``custody why`` reads the profile's events once: its view, the row check, the browser
    inspection and the answer all share that one load."""
    directory = tmp_path / "p1"
    with Ledger.open(sql_store_url) as ledger:
        ledger.handle(
            RegisterProfile(
                profile_id="p1", account_id="a", proxy_id="x", user_data_dir=str(directory)
            )
        )
    loads: list[str] = []
    real = SqlStore.state  # a read's load: the state its events give (no aggregate)

    def counted(self: SqlStore, profile_id: str, version: int | None = None) -> Any:
        loads.append(profile_id)
        return real(self, profile_id, version)

    monkeypatch.setattr(SqlStore, "state", counted)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--store", sql_store_url, "--json", "why", "p1"]) == 0
    assert json.loads(out.getvalue())["profile_id"] == "p1"
    assert loads == ["p1"]


def test_after_disable_and_enable_every_reader_dates_the_block_from_the_enable(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev30: force-release, disable, enable 3 s later: ``why`` (and the HTML report's
    blocked table) said since the force-release while its own ``because`` was the enable;
    status and the fleet said since the enable. Each says since the enable now, when the
    profile entered review again, and a checkout is told the same."""
    import reports
    from ledger import CheckoutDenied, Disable, Enable
    from projections import status

    pid = register(ledger)
    ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    ledger.handle(ForceRelease(profile_id=pid, actor="ops", reason="stuck"))
    ledger.handle(Disable(profile_id=pid, actor="ops", reason="retire for now"))
    clock.advance(3)
    ledger.handle(Enable(profile_id=pid, actor="ops", reason="back"))
    enabled = clock.now
    why = explain(ledger, pid)
    assert [r.event_type for r in why.because] == ["profile_enabled"]
    (row,) = status(ledger)
    (stuck,) = reports.fleet(ledger=ledger).stuck
    assert why.since == row.since == stuck.since == enabled
    with pytest.raises(CheckoutDenied) as denied:
        ledger.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))
    assert denied.value.denial.since == enabled


def test_a_force_release_answers_its_ending_as_who_and_why_say_it(ledger: Ledger) -> None:
    """rev39: a force-release after a mutating step answered ``"cause":
    "mutation_unconfirmed"`` and "ended (mutation_unconfirmed)", the quarantine's cause, where
    ``who`` said "ended forced (force_release)". Its answer gives the lease's ending and cause
    as ``who`` does, the quarantine's cause beside the state; a worker's release is answered
    as before, its cause the one ``who`` gives."""
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    token = lease.fencing_token
    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=token, step="s", mutating=True))
    forced = ledger.handle(ForceRelease(profile_id=pid, actor="op", reason="stuck"))
    usage = who(ledger, pid)
    assert (forced.ending, forced.cause) == (usage.ending, usage.cause)
    assert (forced.ending, forced.cause) == ("forced", "force_release")
    assert forced.message == (
        f"{lease.lease_id} ended forced (force_release); {pid} is quarantined "
        "(mutation_unconfirmed)"
    )
    assert "ended forced (force_release)" in render.usage_line(usage)
    assert explain(ledger, pid).cause == "mutation_unconfirmed"  # why, beside the state
    other = register(ledger, "p2")
    lease = ledger.handle(Checkout(profile_id=other, worker_id="w1", run_id="r2", task_type="t"))
    released = ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="failure")
    )
    usage = who(ledger, other)
    assert (released.ending, released.cause) == (usage.ending, usage.cause)
    assert released.message == (
        f"{lease.lease_id} ended (unexpected_failure); {other} is review_required"
    )
