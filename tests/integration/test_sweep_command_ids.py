"""A sweep's command id keeps the command-id promise (docs/explanation/audit-envelope.md,
docs/how-to/serve-workers-over-http.md): "A resent request with the same Idempotency-Key
returns the first answer and appends nothing; the same key with a different body is refused";
"an id names one command in the whole store"."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from conftest import StepClock, event_count, register
from serving import Served

from ledger import (
    Checkout,
    ForceRelease,
    Heartbeat,
    InvalidInput,
    Ledger,
    LedgerError,
    NotAllowed,
    Quarantine,
    Role,
    StoreUnavailable,
    Sweep,
    SweepReport,
)
from ledger.access import token_holder
from projections import timeline
from service._app import command_id


def test_a_resent_sweep_returns_the_first_answer_and_appends_nothing(
    ledger: Ledger, clock: StepClock
) -> None:
    """``POST /v1/sweep`` takes an Idempotency-Key (``Sweep(command_id=...)``, and ``custody
    sweep --command-id``): the resend answers what the first sweep did and sweeps nothing
    (the id was never recorded, so a resend settled a lease overdue since, and appended)."""
    register(ledger, "p1")
    register(ledger, "p2")
    ledger.handle(
        Checkout(profile_id="p1", worker_id="w", run_id="r1", task_type="t", ttl_seconds=1)
    )
    clock.advance(5)
    first = ledger.handle(Sweep(command_id="sweep-key-1"))
    assert [s.profile_id for s in first.settled] == ["p1"]
    ledger.handle(
        Checkout(profile_id="p2", worker_id="w", run_id="r2", task_type="t", ttl_seconds=1)
    )
    clock.advance(5)
    before = event_count(ledger)

    again = ledger.handle(Sweep(command_id="sweep-key-1"))  # the answer was lost: resent

    assert event_count(ledger) == before, "the resent sweep appended events"
    assert again == first


def test_a_sweeps_id_is_on_every_event_it_wrote_and_a_resend_writes_none(
    ledger: Ledger, clock: StepClock
) -> None:
    """``custody sweep --command-id ID`` "names the sweep, as it names any command": the events
    it wrote on each profile it settled carry ID as their command and correlation id, so a
    responder finds them all from the id the sweep job ran with (rev30: each profile's
    settlement carried a fresh id, and the id was on no event); a resend answers as before and
    writes nothing more under the id."""
    for profile_id, ttl in (("p1", 1), ("p2", 1), ("live", 600)):
        register(ledger, profile_id)
        ledger.handle(
            Checkout(
                profile_id=profile_id, worker_id="w", run_id="r", task_type="t", ttl_seconds=ttl
            )
        )
    clock.advance(5)
    first = ledger.handle(Sweep(command_id="nightly-sweep-42"))
    register(ledger, "later")
    ledger.handle(
        Checkout(profile_id="later", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
    )
    clock.advance(5)
    again = ledger.handle(Sweep(command_id="nightly-sweep-42"))

    assert again == first
    assert [s.profile_id for s in first.settled] == ["p1", "p2"]
    swept = [r for r in timeline(ledger) if r.command_id == "nightly-sweep-42"]
    assert sorted((r.profile_id, r.event_type) for r in swept) == [
        ("p1", "lease_marked_stale"),
        ("p1", "review_requested"),
        ("p2", "lease_marked_stale"),
        ("p2", "review_requested"),
    ]
    assert {r.correlation_id for r in swept} == {"nightly-sweep-42"}
    assert {r.actor_id for r in swept} == {"sweeper"}
    settled_at = {r.profile_id: r.at for r in swept if r.event_type == "review_requested"}
    assert {s.profile_id: s.at for s in first.settled} == settled_at
    # What the id names: the sweep, whose fingerprint its record keeps, on every profile.
    asked = {e.envelope.command for p in ("p1", "p2") for e in ledger.history(p)[-2:]}
    assert asked == {Sweep(command_id="nightly-sweep-42").fingerprint()}
    assert ledger.view("later").state == "leased", "the resend swept"


def test_the_events_of_a_sweep_without_an_id_share_the_one_made_for_it(
    ledger: Ledger, clock: StepClock
) -> None:
    """A sweep sent without an id (``sweep --watch``'s passes, ``POST /v1/sweep`` without an
    Idempotency-Key) is given one, as any command is, and every event it wrote carries it:
    the profiles one pass settled are tied together, and apart from another pass's."""
    for profile_id in ("p1", "p2"):
        register(ledger, profile_id)
        ledger.handle(
            Checkout(profile_id=profile_id, worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
    clock.advance(5)
    ledger.handle(Sweep())
    register(ledger, "p3")
    ledger.handle(
        Checkout(profile_id="p3", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
    )
    clock.advance(5)
    ledger.handle(Sweep())

    rows = [r for r in timeline(ledger) if r.actor_id == "sweeper"]
    ids = {
        p: {(r.command_id, r.correlation_id) for r in rows if r.profile_id == f"p{p}"}
        for p in "123"
    }
    [(one, correlated)] = ids["1"]
    assert one == correlated
    assert ids["2"] == ids["1"], "one sweep's profiles carry other ids"
    assert len(ids["3"]) == 1
    assert ids["3"] != ids["1"], "two sweeps carry one id"


def test_a_sweep_over_http_writes_its_events_under_its_idempotency_keys_id(
    served: Served,
) -> None:
    """``POST /v1/sweep`` with an Idempotency-Key: the events it wrote carry the command id the
    key names for its caller (serve-workers-over-http.md), as any request's do (rev30: each
    carried a fresh id); the resent request answers as the first and writes nothing."""
    with Ledger.open(served.store_url) as ledger:
        register(ledger, "p1")
    with served.client(Role.WORKER) as worker:
        body = {"run_id": "r1", "task_type": "t", "ttl_seconds": 1}
        assert worker.post("/v1/profiles/p1/checkout", json=body).status_code == 201
    time.sleep(1.5)
    with served.client(Role.SCHEDULER) as scheduler:
        key = {"Idempotency-Key": "nightly-42"}
        first = scheduler.post("/v1/sweep", headers=key)
        again = scheduler.post("/v1/sweep", headers=key)
        rows = scheduler.get("/v1/profiles/p1/timeline").json()

    assert first.status_code == again.status_code == 200, first.text
    assert again.json() == first.json()
    assert [s["profile_id"] for s in first.json()["settled"]] == ["p1"]
    with Ledger.open(served.store_url) as ledger:
        caller = token_holder(ledger, served.tokens[Role.SCHEDULER])
    assert caller is not None
    named = command_id(caller, "nightly-42")
    swept = [(r["event_type"], r["correlation_id"]) for r in rows if r["command_id"] == named]
    assert swept == [("lease_marked_stale", named), ("review_requested", named)]
    assert len(rows) == 4, "the resent sweep wrote"


def test_a_resent_sweep_recorded_before_its_answers_had_times_answers_as_recorded(
    ledger: Ledger,
) -> None:
    """A sweep's answer recorded before each settled lease carried its time (``at``) is still
    the answer a resend of its id gets, with no time: read back it is not refused, nor raised
    as an internal error."""
    settled = {
        "profile_id": "p1",
        "lease_id": "lease-1@p1",
        "profile_state": "review_required",
        "cause": "lease_expired",
    }
    answer = json.dumps({"settled": [settled], "failed": []})
    ledger.uow.repository.record_sweep("old-sweep", f"{Sweep().fingerprint()}\n{answer}")

    again = ledger.handle(Sweep(command_id="old-sweep"))

    assert [(s.profile_id, s.at) for s in again.settled] == [("p1", None)]


def test_a_sweep_may_not_reuse_another_commands_id(ledger: Ledger) -> None:
    """An id already naming a quarantine of p1 is refused for a sweep (it was taken without a
    word), and a sweep's id for any other command."""
    register(ledger, "p1")
    ledger.handle(Quarantine(profile_id="p1", actor="op", reason="r", command_id="op-1"))
    before = event_count(ledger)
    with pytest.raises(InvalidInput, match="'op-1' was already used on profile p1"):
        ledger.handle(Sweep(command_id="op-1"))
    ledger.handle(Sweep(command_id="sweep-1"))
    with pytest.raises(InvalidInput, match="'sweep-1' was already used for a sweep"):
        ledger.handle(Quarantine(profile_id="p1", actor="op", reason="r", command_id="sweep-1"))
    with pytest.raises(InvalidInput, match="'sweep-1' was already used for another sweep"):
        ledger.handle(Sweep(command_id="sweep-1", actor="another"))
    assert event_count(ledger) == before


def test_a_sweep_sent_with_a_conflicting_batch_answers_what_it_wrote(
    store_url: str, ledger: Ledger, clock: StepClock
) -> None:
    """A sweep with an id in a group commit (``handle_together``, ``POST /v1/sweep`` with an
    Idempotency-Key in ``custody serve``) whose batch loses a version race answers only what
    is written, and its id stands for that (rev28: it answered "settled q", q stayed leased,
    and every resend of the id answered the same)."""
    register(ledger, "p")
    register(ledger, "q")
    lease = ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))
    with Ledger.open(store_url, clock=clock) as other:  # another writer: held p is behind
        other.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="elsewhere"))
        other.handle(
            Checkout(profile_id="q", worker_id="w2", run_id="r2", task_type="t", ttl_seconds=1)
        )
    clock.advance(5)
    renewal = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s", command_id="hb")
    answers = ledger.handle_together([renewal, Sweep(command_id="sweep-key")])

    swept = answers[1]
    assert isinstance(swept, SweepReport)
    assert [s.profile_id for s in swept.settled] == ["q"]
    assert ledger.view("q").state != "leased", "the sweep answered q settled, wrote nothing"
    assert ledger.handle(Sweep(command_id="sweep-key")) == swept


def test_a_sweep_sent_with_a_batch_reports_every_profile_it_settled(
    ledger: Ledger, clock: StepClock
) -> None:
    """A sweep whose profile is already in its batch (a force-release of q1 before it) reports
    every profile it settled (rev28: q0 was sent to review and the answer, and its id, said
    nothing was settled)."""
    for profile_id in ("q0", "q1"):
        register(ledger, profile_id)
        ledger.handle(
            Checkout(profile_id=profile_id, worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
    clock.advance(5)
    forced = ForceRelease(profile_id="q1", actor="op", reason="stuck")
    answers = ledger.handle_together([forced, Sweep(command_id="sweep-key")])

    swept = answers[1]
    assert isinstance(swept, SweepReport)
    assert [s.profile_id for s in swept.settled] == ["q0"]
    assert ledger.handle(Sweep(command_id="sweep-key")) == swept


def _sweep_sent_meanwhile(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, other: Ledger, copy: Sweep
) -> tuple[list[object], list[threading.Thread]]:
    """Once ``ledger``'s sweep is under way (it looked its id up and reads its candidates),
    ``other`` sends ``copy`` from a thread of its own; ``ledger`` goes on 0.3 s later. The
    list gets ``copy``'s answer, or what it raised, once the thread is joined."""
    repository = ledger.uow.repository
    candidates = repository.sweep_candidates
    answers: list[object] = []
    threads: list[threading.Thread] = []

    def send() -> None:
        try:
            answers.append(other.handle(copy))
        except LedgerError as e:
            answers.append(e)

    def and_a_copy_is_sent(now: datetime) -> list[str]:
        if not threads:
            threads.append(threading.Thread(target=send))
            threads[0].start()
            time.sleep(0.3)
        return candidates(now)

    monkeypatch.setattr(repository, "sweep_candidates", and_a_copy_is_sent)
    return answers, threads


@pytest.mark.parametrize("same", [True, False])
def test_two_sweeps_sent_at_once_with_one_id_sweep_once(
    monkeypatch: pytest.MonkeyPatch, store_url: str, ledger: Ledger, clock: StepClock, same: bool
) -> None:
    """Two sweeps sent at once with one id: the second is refused at once as still running,
    having swept nothing (it does not wait: in custody serve it held the one writer thread),
    or, asked something else under that id (which the first took before sweeping: rev37), as
    the id of another sweep; resent once the first has ended it answers as the first did, or
    is refused again (rev28: both swept and were accepted, 40 settled and 0, and a resend
    refused one of them)."""
    for n in range(3):
        register(ledger, f"p{n}")
        ledger.handle(
            Checkout(profile_id=f"p{n}", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
    clock.advance(5)
    copy = Sweep(command_id="sweep-key", actor="sweeper" if same else "sweeper_west")
    with Ledger.open(store_url, clock=clock) as other:
        answers, threads = _sweep_sent_meanwhile(monkeypatch, ledger, other, copy)
        first = ledger.handle(Sweep(command_id="sweep-key"))
        for thread in threads:
            thread.join(timeout=60)

    assert [s.profile_id for s in first.settled] == ["p0", "p1", "p2"]
    [running] = answers
    if same:
        assert isinstance(running, NotAllowed), running
        assert "'sweep-key' is still running in another process; resend it" in str(running)
    else:
        assert isinstance(running, InvalidInput), running
        assert "'sweep-key' was already used for another sweep" in str(running)
    with Ledger.open(store_url, clock=clock) as other:
        if same:
            assert other.handle(copy) == first
        else:
            with pytest.raises(InvalidInput, match="'sweep-key' was already used for another"):
                other.handle(copy)
    assert ledger.handle(Sweep(command_id="sweep-key")) == first


def test_a_copy_that_gets_the_lock_after_the_first_ended_answers_as_the_first(
    monkeypatch: pytest.MonkeyPatch, store_url: str, ledger: Ledger, clock: StepClock
) -> None:
    """A copy that looked its id up before the first sweep recorded it, and takes the lock
    only once the first has ended, looks the id up again under the lock and answers as the
    first did: it sweeps nothing (without that look-up it swept again, settled nothing and
    answered so)."""
    for n in range(2):
        register(ledger, f"p{n}")
        ledger.handle(
            Checkout(profile_id=f"p{n}", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
    clock.advance(5)
    first: list[SweepReport] = []
    with Ledger.open(store_url, clock=clock) as other:
        repository = other.uow.repository
        exclusive = repository.exclusive

        def after_the_first_ended(name: str) -> Any:
            if not first:
                first.append(ledger.handle(Sweep(command_id="sweep-key")))
            return exclusive(name)

        monkeypatch.setattr(repository, "exclusive", after_the_first_ended)
        copy = other.handle(Sweep(command_id="sweep-key"))
    assert [s.profile_id for s in first[0].settled] == ["p0", "p1"]
    assert copy == first[0]


def test_a_disable_taking_a_running_sweep_s_id_is_folded_into_no_swept_lease(
    ledger: Ledger, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a sweep named nightly-42 settles p1, an operator disables ``other`` (whose stream
    is longer than p1's, and holds no lease) under the same id, as a custody before rev37 let
    it (the id recorded only after the sweep's last write; the store here is made so by
    leaving the sweep's id untaken until then). The leases read model ties the disable to no
    lease of p1's: p1's swept lease ends stale with the profile left in review. Guard:
    ``LeasesReadModel._named`` keyed by profile and id (rev30's second reading: p1's lease
    read ``profile_state_after = disabled``)."""
    import reports
    from ledger import Disable, Release

    register(ledger, "other")
    for n in range(3):  # a longer stream than p1's, no lease left live
        lease = ledger.handle(
            Checkout(profile_id="other", worker_id="w", run_id=f"r{n}", task_type="t")
        )
        ledger.handle(
            Release(
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                outcome="success",
                final_url="https://x/",
            )
        )
    register(ledger, "p1")
    ledger.handle(
        Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
    )
    clock.advance(5)
    store = type(ledger.store)
    recorded = store.record_sweep

    def disable_first(self: Any, command_id: str, command: str) -> bool:
        if command_id != "nightly-42":  # its answer, once it ended
            return bool(recorded(self, command_id, command))
        ledger.handle(
            Disable(profile_id="other", actor="op", reason="retired", command_id=command_id)
        )
        return True  # taken, as far as the sweep knows: as before rev37, nothing held it

    monkeypatch.setattr(store, "record_sweep", disable_first)
    ledger.handle(Sweep(command_id="nightly-42"))
    monkeypatch.setattr(store, "record_sweep", recorded)
    used = reports.usage("account_shop_17", ledger=ledger).to_dict("records")
    rows = {r["profile_id"]: r for r in used}  # each profile's last lease
    assert (rows["p1"]["ending"], rows["p1"]["profile_state_after"]) == (
        "stale",
        "review_required",
    )
    assert ledger.view("other").state == "disabled"


def test_a_heartbeat_under_a_running_sweep_s_id_is_refused_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, store_url: str, ledger: Ledger, clock: StepClock
) -> None:
    """While the sweep named SWEEP-X settles the overdue leases, a heartbeat another writer
    sends with SWEEP-X is refused as the id of a sweep, and nothing of it is written: the
    sweep takes its id before it writes (rev37: the id was recorded only after the sweep's
    last write, the heartbeat was accepted, the id named two commands and a resent sweep was
    refused as "already used on profile live"). The resend answers as the sweep did."""
    register(ledger, "live")
    live = ledger.handle(
        Checkout(profile_id="live", worker_id="w", run_id="r", task_type="t", ttl_seconds=600)
    )
    for n in range(3):
        register(ledger, f"p{n}")
        ledger.handle(
            Checkout(profile_id=f"p{n}", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
    clock.advance(5)
    beat = Heartbeat(lease_id=live.lease_id, fencing_token=1, command_id="SWEEP-X")
    with Ledger.open(store_url, clock=clock) as other:
        answers, threads = _sweep_sent_meanwhile(monkeypatch, ledger, other, beat)
        first = ledger.handle(Sweep(command_id="SWEEP-X"))
        for thread in threads:
            thread.join(timeout=60)

    [refused] = answers
    assert isinstance(refused, InvalidInput), refused
    assert "'SWEEP-X' was already used for a sweep" in str(refused)
    assert not [e for e in ledger.history("live") if e.envelope.command_id == "SWEEP-X"]
    assert [s.profile_id for s in first.settled] == ["p0", "p1", "p2"]
    assert ledger.handle(Sweep(command_id="SWEEP-X")) == first


def _cut_short_after_two(monkeypatch: pytest.MonkeyPatch, ledger: Ledger, clock: StepClock) -> None:
    """Five overdue leases (p0 to p4) and a sweep "cut-short" whose store fails after its
    first transaction of two profiles (as SIGINT or a lost connection between its batches
    would end it): p0 and p1 settled under its id, the rest still leased."""
    import ledger._handlers as handlers

    for n in range(5):
        register(ledger, f"p{n}")
        ledger.handle(
            Checkout(profile_id=f"p{n}", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
    clock.advance(5)
    monkeypatch.setattr(handlers, "SWEEP_BATCH", 2)
    saving = ledger.store.save_together
    saves: list[int] = []

    def failing_second(batch: Any, **kwargs: Any) -> Any:  # the store goes away between
        saves.append(len(batch))
        if len(saves) == 2:
            raise StoreUnavailable("connection lost")
        return saving(batch, **kwargs)

    monkeypatch.setattr(ledger.store, "save_together", failing_second)
    with pytest.raises(StoreUnavailable):
        ledger.handle(Sweep(command_id="cut-short"))
    monkeypatch.setattr(ledger.store, "save_together", saving)
    settled = [f"p{n}" for n in range(5) if ledger.view(f"p{n}").state != "leased"]
    assert settled == ["p0", "p1"]


def test_a_resend_of_a_sweep_cut_short_answers_every_lease_it_settled(
    monkeypatch: pytest.MonkeyPatch, store_url: str, ledger: Ledger, clock: StepClock
) -> None:
    """A sweep whose store fails after its first transaction (as SIGINT or a lost connection
    between its batches would end it) has settled leases under its id: a resend carries it
    out, under its id, and answers every lease settled under it, with their leases, states
    and times (rev37: the id was never recorded, so the resend swept the rest under it and
    answered only those; its review: a resend that only answered left the rest overdue, exit
    0, where the interruption's line said the resend carries it out)."""
    _cut_short_after_two(monkeypatch, ledger, clock)
    before = event_count(ledger)

    with Ledger.open(store_url, clock=clock) as other:
        again = other.handle(Sweep(command_id="cut-short"))

    # p2 to p4 settled now, two events each (the stale mark and the review it asks for)
    assert event_count(ledger) == before + 6, "the resent sweep did not carry out the rest"
    assert [(s.profile_id, s.lease_id, s.profile_state) for s in again.settled] == [
        (f"p{n}", f"lease-1@p{n}", "review_required") for n in range(5)
    ]
    for result in again.settled:
        [ending] = [
            e for e in ledger.history(result.profile_id) if e.event_type == "review_requested"
        ]
        assert (result.at, result.cause) == (ending.at, ending.cause)
    assert again.failed == []
    for result in again.settled:  # each settled once (a stale mark, a review), under its id
        assert [e.envelope.command_id for e in ledger.history(result.profile_id)].count(
            "cut-short"
        ) == 2
    assert ledger.handle(Sweep(command_id="the-next-sweep")).settled == []
    assert ledger.handle(Sweep(command_id="cut-short")) == again, "answered otherwise again"


def test_a_resend_of_a_sweep_cut_short_answers_no_other_sweep_s_leases(
    monkeypatch: pytest.MonkeyPatch, store_url: str, ledger: Ledger, clock: StepClock
) -> None:
    """A sweep cut short, then another sweep (no id) that settles the rest, then the first
    resent: it answers the leases settled under its id alone, not those the other settled
    after it began (its settlements are found in the log by their id)."""
    _cut_short_after_two(monkeypatch, ledger, clock)
    other = ledger.handle(Sweep())
    assert [s.profile_id for s in other.settled] == ["p2", "p3", "p4"]
    again = ledger.handle(Sweep(command_id="cut-short"))
    assert [s.profile_id for s in again.settled] == ["p0", "p1"]


def test_a_sweep_whose_id_another_command_takes_before_it_does_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, store_url: str, ledger: Ledger, clock: StepClock
) -> None:
    """A heartbeat another writer sends with SWEEP-Y after the sweep looked SWEEP-Y up, and
    before the sweep takes it: the id is the heartbeat's, and the sweep is refused as bad
    input having swept nothing (rev37: its record was ON CONFLICT DO NOTHING, so the sweep
    went on under an id naming another command)."""
    register(ledger, "live")
    live = ledger.handle(
        Checkout(profile_id="live", worker_id="w", run_id="r", task_type="t", ttl_seconds=600)
    )
    register(ledger, "p0")
    ledger.handle(
        Checkout(profile_id="p0", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
    )
    clock.advance(5)
    counted = ledger.store.event_count

    def a_heartbeat_first() -> int:  # read by the sweep just before it takes its id
        with Ledger.open(store_url, clock=clock) as other:
            other.handle(Heartbeat(lease_id=live.lease_id, fencing_token=1, command_id="SWEEP-Y"))
        return counted()

    monkeypatch.setattr(ledger.store, "event_count", a_heartbeat_first)
    with pytest.raises(InvalidInput, match="'SWEEP-Y' was already used on profile live"):
        ledger.handle(Sweep(command_id="SWEEP-Y"))
    monkeypatch.setattr(ledger.store, "event_count", counted)
    assert ledger.view("p0").state == "leased", "the sweep swept under another command's id"
