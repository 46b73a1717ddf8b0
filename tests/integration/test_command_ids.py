"""A caller's command id names one command in the whole store, and a resent command tells the
truth about the lease as it stands now."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import StepClock, register

from ledger import (
    Checkout,
    Extend,
    Heartbeat,
    InvalidInput,
    LeaseLost,
    LeaseStatus,
    Ledger,
    Outcome,
    Release,
    Review,
    ReviewDecision,
    Sweep,
)
from ledger._door import Command


def test_a_command_id_cannot_be_reused_on_another_profile(ledger: Ledger) -> None:
    """The id of a checkout on one profile is refused for a checkout on another, and that
    refusal writes nothing."""
    register(ledger, "p1")
    register(ledger, "p2")
    ledger.handle(
        Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", command_id="cmd-1")
    )
    with pytest.raises(InvalidInput, match="already used on profile p1"):
        ledger.handle(
            Checkout(profile_id="p2", worker_id="w", run_id="r", task_type="t", command_id="cmd-1")
        )
    assert [e.event_type for e in ledger.history("p2")] == ["profile_registered"]


def test_a_resent_checkout_reports_the_lease_as_it_is_now(ledger: Ledger) -> None:
    """A worker resending its checkout after the lease ended and another worker took the
    profile is told its lease is lost, as without an id (the replay appends nothing; rev22: it
    was answered with the released lease, exit 0, as if granted)."""
    register(ledger)
    first = ledger.handle(
        Checkout(
            profile_id="profile_shop_17",
            worker_id="w1",
            run_id="r1",
            task_type="t",
            command_id="c-1",
        )
    )
    ledger.handle(
        Release(
            lease_id=first.lease_id,
            fencing_token=1,
            outcome="success",
            final_url="https://x.test/done",
        )
    )
    second = ledger.handle(
        Checkout(profile_id="profile_shop_17", worker_id="w2", run_id="r2", task_type="t")
    )
    ledger.handle(
        Release(
            lease_id=second.lease_id,
            fencing_token=2,
            outcome="success",
            final_url="https://x.test/done",
        )
    )
    ledger.handle(
        Checkout(profile_id="profile_shop_17", worker_id="w3", run_id="r3", task_type="t")
    )
    events = len(ledger.history("profile_shop_17"))
    resent = Checkout(
        profile_id="profile_shop_17", worker_id="w1", run_id="r1", task_type="t", command_id="c-1"
    )
    with pytest.raises(LeaseLost, match=r"lease-1@profile_shop_17: .* is now held under lease-3"):
        ledger.handle(resent)
    assert len(ledger.history("profile_shop_17")) == events


def test_a_resent_lease_command_after_the_sweep_is_lost(ledger: Ledger, clock: StepClock) -> None:
    """rev22: a checkout or heartbeat resent under its id after the sweep ended its lease
    exited 0 (``ended_unclean until ...``) while the same heartbeat without an id exited 4:
    a retrying script was told it held a profile the sweep had sent to review."""
    register(ledger)
    asked = {"profile_id": "profile_shop_17", "worker_id": "w1", "run_id": "r1", "task_type": "t"}
    lease = ledger.handle(Checkout(**asked, ttl_seconds=2, command_id="c-1"))
    beat = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="a", command_id="hb-1")
    ledger.handle(beat)
    clock.now = lease.expires_at + timedelta(seconds=5)
    ledger.handle(Sweep())
    events = len(ledger.history("profile_shop_17"))
    for resent in (Checkout(**asked, ttl_seconds=2, command_id="c-1"), beat):
        with pytest.raises(LeaseLost, match="lease ended"):
            ledger.handle(resent)
    assert len(ledger.history("profile_shop_17")) == events


def test_a_resent_heartbeat_reports_a_live_lease_as_active(ledger: Ledger) -> None:
    """While the lease lives, the replayed answer is the live lease (with its latest deadline)."""
    register(ledger)
    lease = ledger.handle(
        Checkout(profile_id="profile_shop_17", worker_id="w1", run_id="r1", task_type="t")
    )
    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="a", command_id="hb-1"))
    later = ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="b"))
    resent = ledger.handle(
        Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="a", command_id="hb-1")
    )
    assert resent.lease_status is LeaseStatus.ACTIVE
    assert resent.last_step == "b"
    assert resent.expires_at == later.expires_at


@pytest.mark.parametrize("late", [1e-6, 3.0])
def test_a_resent_lease_command_past_the_deadline_is_lost_as_without_an_id(
    ledger: Ledger, clock: StepClock, late: float
) -> None:
    """rev20: a checkout, heartbeat or extend resent under its id after the lease's renewal
    deadline answered the lease as active (a past 'active until', exit 0), while the same
    command without an id, and every other, was told the lease is lost. Resent, each is
    LeaseLost naming the deadline, as without an id; nothing is appended."""
    register(ledger)
    lease = ledger.handle(
        Checkout(
            profile_id="profile_shop_17",
            worker_id="w1",
            run_id="r1",
            task_type="t",
            ttl_seconds=2,
            command_id="c-1",
        )
    )
    beat = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="a", command_id="hb-1")
    ledger.handle(beat)
    extend = Extend(lease_id=lease.lease_id, fencing_token=1, ttl_seconds=2, command_id="ex-1")
    held = ledger.handle(extend)
    clock.now = held.expires_at + timedelta(seconds=late)
    events = len(ledger.history("profile_shop_17"))
    again = Checkout(
        profile_id="profile_shop_17",
        worker_id="w1",
        run_id="r1",
        task_type="t",
        ttl_seconds=2,
        command_id="c-1",
    )
    for resent in (again, beat, extend):
        with pytest.raises(LeaseLost, match=r"renewal deadline .* passed"):
            ledger.handle(resent)
    with pytest.raises(LeaseLost, match=r"renewal deadline .* passed"):
        ledger.handle(beat.model_copy(update={"command_id": None}))
    assert len(ledger.history("profile_shop_17")) == events


def test_a_command_id_resent_with_other_arguments_says_so(ledger: Ledger) -> None:
    """rev20: a checkout resent under its id with another worker was refused as "already used
    on p for checkout", which it is: the refusal says the arguments differ."""
    register(ledger)
    asked = {"profile_id": "profile_shop_17", "run_id": "r1", "task_type": "t"}
    ledger.handle(Checkout(worker_id="w1", command_id="c-1", **asked))
    with pytest.raises(InvalidInput, match="for a checkout with other arguments: send a new id"):
        ledger.handle(Checkout(worker_id="w2", command_id="c-1", **asked))


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:s3cret@shop.example/x",
        "https://shop.example/login?next=http://alice:s3cret@intranet.example/",  # rev43
        "https://shop.example/login?next=http%3A%2F%2Falice%3As3cret%40intranet",
    ],
    ids=["own", "nested", "nested-encoded"],
)
def test_a_command_applied_before_the_password_rule_is_answered_when_resent(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """rev22: custody took a password in a URL until 2026-12-04 (the Node SDK sent Chromium's
    ``user:password@``). A heartbeat or release applied then and resent after the upgrade under
    its id was refused as bad input, so the worker could not learn it had landed. Resent, each
    is answered; the same URL in a command not applied yet is refused, writing nothing. rev43:
    so for a password in a URL nested in the page's, which the door took until then; the
    events recorded with one are read and replayed as before."""
    register(ledger)
    asked = {"profile_id": "profile_shop_17", "worker_id": "w1", "run_id": "r1", "task_type": "t"}
    lease = ledger.handle(Checkout(**asked))
    held = {"lease_id": lease.lease_id, "fencing_token": 1}
    beat = Heartbeat(**held, url=url, command_id="hb-1")
    release = Release(**held, outcome="success", final_url=url, command_id="rel-1")
    with monkeypatch.context() as before:  # custody before the rule
        before.setattr(Command, "refusal", lambda _: None)
        ledger.handle(beat)
    events = len(ledger.history("profile_shop_17"))
    assert ledger.handle(beat).lease_status is LeaseStatus.ACTIVE
    with pytest.raises(InvalidInput, match=r"^invalid url: must not carry a password") as new:
        ledger.handle(beat.model_copy(update={"command_id": "hb-2"}))
    assert "s3cret" not in str(new.value)
    assert len(ledger.history("profile_shop_17")) == events
    with monkeypatch.context() as before:
        before.setattr(Command, "refusal", lambda _: None)
        ended = ledger.handle(release)
    events = len(ledger.history("profile_shop_17"))
    again = ledger.handle(release)  # the release as recorded, marked resent (rev37)
    assert getattr(again, "resent", False) is True
    assert (again.lease_id, again.ending, again.profile_state) == (
        ended.lease_id,
        ended.ending,
        ended.profile_state,
    )
    assert len(ledger.history("profile_shop_17")) == events
    assert [getattr(e, "final_url", None) for e in ledger.history("profile_shop_17")][-2] == url
    assert ledger.view("profile_shop_17").state.value == "available"


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_a_resent_release_says_its_answer_is_as_recorded_not_now(
    ledger: Ledger, outcome: str
) -> None:
    """rev37: a worker's release resent under its id after a review returned the profile and
    another worker leased it said "p1 is review_required" (or "is back in the pool") of a
    leased profile, unmarked. As a resent force-release does (rev34), it says where the
    profile stood after it, as recorded, and is marked ``resent``; the first answer is not."""
    register(ledger, "p1")
    asked = {"profile_id": "p1", "run_id": "r", "task_type": "t"}
    ledger.handle(Checkout(worker_id="w1", **asked))
    release = Release(
        lease_id="lease-1@p1",
        fencing_token=1,
        outcome=Outcome(outcome),
        final_url="https://x/done",
        command_id="rel-1",
    )
    first = ledger.handle(release)
    assert not getattr(first, "resent", False)
    stood = "back in the pool" if outcome == "success" else "review_required"
    assert first.message.endswith(f"; p1 is {stood}")
    if outcome == "failure":
        ledger.handle(
            Review(profile_id="p1", reviewer="ana", decision=ReviewDecision.RETURN, note="ok")
        )
    ledger.handle(Checkout(worker_id="w2", **asked))
    again = ledger.handle(release)
    assert getattr(again, "resent", False) is True
    assert again.message == first.message.replace(
        f"; p1 is {stood}",
        f"; p1 was {stood} after it (resent: its answer as recorded, not the profile now; "
        "custody why p1 says where it stands)",
    )
    assert (again.lease_id, again.profile_state) == (first.lease_id, first.profile_state)
