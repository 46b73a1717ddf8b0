"""The service layer's own rules, on the fake repository (no store, no I/O): a lost race is
decided again, a resent command id is answered from its first run, a reused id is refused,
a storm of conflicts gives up as busy, bad input writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes import FakeRepository

from ledger import (
    Checkout,
    CheckoutDenied,
    Disable,
    Extend,
    Forbidden,
    Heartbeat,
    InvalidInput,
    LeaseLost,
    NotAllowed,
    Quarantine,
    RegisterProfile,
    Release,
    StoreUnavailable,
    Sweep,
    UnknownProfile,
    _unit_of_work as uow_module,
)
from ledger._domain.profile import Profile
from ledger._handlers import handle
from ledger._unit_of_work import UnitOfWork

NOW = datetime(2026, 12, 2, 9, 45, tzinfo=UTC)
SHOP = {"account_id": "account_shop_17", "proxy_id": "proxy_us_east_12"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo(clock: Clock) -> FakeRepository:
    return FakeRepository(clock)


@pytest.fixture
def uow(repo: FakeRepository) -> UnitOfWork:
    handle(UnitOfWork(repo), RegisterProfile(profile_id="p1", **SHOP))
    return UnitOfWork(repo)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The jitter between attempts is real sleep: none here, so a storm costs nothing."""
    monkeypatch.setattr(uow_module.time, "sleep", lambda _: None)


def _checkout(worker: str, **more: object) -> Checkout:
    return Checkout(
        profile_id="p1", worker_id=worker, run_id=f"run_{worker}", task_type="t", **more
    )


def _another_writer(repo: FakeRepository, command: object) -> None:
    """Before the next save, another writer's command lands first on the same stream."""
    repo.before_save = lambda _: handle(UnitOfWork(repo), command)  # type: ignore[arg-type]


def test_a_checkout_that_loses_the_race_is_decided_again(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """The other worker's checkout lands between this one's load and save: the save
    conflicts, the profile is reloaded and the checkout decided again, so the loser learns
    who holds the profile (CheckoutDenied), never a conflict."""
    _another_writer(repo, _checkout("w_fast"))
    with pytest.raises(CheckoutDenied) as denied:
        handle(uow, _checkout("w_slow"))
    assert denied.value.reason == "already_leased"
    assert denied.value.holder is not None
    assert denied.value.holder.worker_id == "w_fast"
    assert uow.conflicts == 1
    assert [e.event_type for e in repo.history("p1")] == ["profile_registered", "lease_acquired"]


def test_a_heartbeat_that_loses_the_race_lands_on_the_new_version(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """A step that loses the race to the worker's own renewal thread is applied after it."""
    lease = handle(uow, _checkout("w"))
    beat = {"lease_id": lease.lease_id, "fencing_token": 1}
    _another_writer(repo, Heartbeat(**beat, step="renewal"))
    handle(uow, Heartbeat(**beat, step="submit_order", mutating=True))
    steps = [getattr(e, "step", None) for e in repo.history("p1")[2:]]
    assert steps == ["renewal", "submit_order"]
    assert uow.conflicts == 1


def test_a_lease_command_for_another_worker_is_forbidden_with_the_write(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """A lease command naming the worker it speaks for (``worker_id``: the lease service sets
    it from the caller's token) is refused as ``Forbidden`` when the lease is another
    worker's, live or ended, decided on the events the write is checked against, so that no
    checkout can come between a check and the event. The fencing token proves nothing here:
    it is a small number anyone can guess."""
    lease = handle(uow, _checkout("w1"))
    beat = {"lease_id": lease.lease_id, "fencing_token": lease.fencing_token}
    foreign = [
        Heartbeat(**beat, step="w2_was_here", worker_id="w2"),
        Extend(**beat, ttl_seconds=3600, worker_id="w2"),
        Release(**beat, outcome="success", final_url="https://evil.test/", worker_id="w2"),
    ]
    written = len(repo.history("p1"))
    for command in foreign:
        with pytest.raises(Forbidden, match=f"lease {lease.lease_id} is held by w1, not w2"):
            handle(uow, command)
    assert len(repo.history("p1")) == written
    handle(uow, Heartbeat(**beat, step="mine", worker_id="w1"))
    handle(uow, Release(**beat, outcome="success", final_url="https://ok.test/", worker_id="w1"))
    written = len(repo.history("p1"))
    # Its ended lease is still not w2's to speak under.
    with pytest.raises(Forbidden, match=f"lease {lease.lease_id} was held by w1, not w2"):
        handle(uow, foreign[0])
    assert len(repo.history("p1")) == written


def test_a_storm_of_conflicts_gives_up_as_busy_having_written_nothing(
    uow: UnitOfWork, repo: FakeRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attempt loses its race: after MAX_ATTEMPTS the command fails as StoreUnavailable
    (the caller may retry), and none of its events were kept."""
    monkeypatch.setattr(uow_module, "MAX_ATTEMPTS", 5)
    lease = handle(uow, _checkout("w"))

    def always(profile: Profile) -> None:
        handle(UnitOfWork(repo), Heartbeat(lease_id=lease.lease_id, fencing_token=1))
        repo.before_save = always

    repo.before_save = always
    with pytest.raises(StoreUnavailable, match="5 conflicting writes"):
        handle(uow, Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="mine"))
    assert uow.conflicts == 5
    assert all(getattr(e, "step", None) != "mine" for e in repo.history("p1"))


def test_a_resent_command_id_is_answered_from_its_first_run_and_appends_nothing(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """A worker that timed out and resends its checkout gets the lease it was granted, not a
    denial by its own lease, and the stream does not grow."""
    first = handle(uow, _checkout("w", command_id="c-1"))
    events = len(repo.history("p1"))
    again = handle(uow, _checkout("w", command_id="c-1"))
    assert again.lease_id == first.lease_id
    assert len(repo.history("p1")) == events


def test_a_resent_heartbeat_says_the_lease_as_it_stands_now(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """The lease has ended since the heartbeat landed: the resend says so at once (the lease
    is lost, as without an id), so the worker learns it must stop."""
    lease = handle(uow, _checkout("w"))
    beat = Heartbeat(lease_id=lease.lease_id, fencing_token=1, command_id="hb-1")
    handle(uow, beat)
    handle(
        uow,
        Release(lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="https://x"),
    )
    with pytest.raises(LeaseLost, match="lease ended clean at"):
        handle(uow, beat)


def test_a_command_id_used_for_another_command_or_profile_is_refused(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """One id names one command in the whole store: the same id with other arguments, or on
    another profile, is bad input naming command_id, and writes nothing."""
    handle(uow, RegisterProfile(profile_id="p2", **SHOP))
    handle(uow, _checkout("w", command_id="c-1"))
    events = {pid: len(repo.history(pid)) for pid in ("p1", "p2")}
    with pytest.raises(
        InvalidInput, match="already used on p1 for a checkout with other arguments"
    ) as other:
        handle(uow, _checkout("w", command_id="c-1", ttl_seconds=60))
    assert other.value.field == "command_id"
    elsewhere = Checkout(
        profile_id="p2", worker_id="w", run_id="r", task_type="t", command_id="c-1"
    )
    with pytest.raises(InvalidInput, match="already used on profile p1"):
        handle(uow, elsewhere)
    assert {pid: len(repo.history(pid)) for pid in ("p1", "p2")} == events


def test_registering_again_is_a_no_op_and_another_record_is_refused(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """The same record again changes nothing; another account for the profile is NotAllowed."""
    handle(uow, RegisterProfile(profile_id="p1", **SHOP))
    assert len(repo.history("p1")) == 1
    with pytest.raises(NotAllowed, match="already registered differently"):
        handle(uow, RegisterProfile(profile_id="p1", account_id="other", proxy_id="x"))
    assert len(repo.history("p1")) == 1


def test_a_refused_registration_quotes_a_short_prefix_of_a_long_value(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """rev34: "already registered differently" quoted the refused value whole (a 200-character
    account, 200 more on the line); it quotes a short prefix and the length, as every error
    line does."""
    handle(uow, RegisterProfile(profile_id="p9", account_id="a", proxy_id="x"))
    with pytest.raises(NotAllowed) as refused:
        handle(uow, RegisterProfile(profile_id="p9", account_id="A" * 200, proxy_id="x"))
    said = str(refused.value)
    assert said.endswith(f"account_id 'a', not '{'A' * 59}... (200 characters)"), said
    assert "A" * 60 not in said


def test_a_denial_and_a_reused_command_id_quote_a_short_prefix_of_a_long_value(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """rev34 (a review of the fix above): a checkout's account or proxy that differs from the
    registration, and a command id used before, were quoted whole (a 200-character account
    made a 553-character line); each quotes a short prefix and the length."""
    handle(uow, RegisterProfile(profile_id="p9", account_id="a", proxy_id="x"))
    long = "A" * 200
    for given in ({"account_id": long}, {"proxy_id": long}):
        asked = Checkout(profile_id="p9", worker_id="w", run_id="r", task_type="t", **given)
        with pytest.raises(CheckoutDenied) as denied:
            handle(uow, asked)
        said = f"{denied.value.denial.message} {denied.value.denial.remediation}"
        assert f"'{'A' * 59}... (200 characters)" in said, said
        assert "A" * 60 not in said
    handle(uow, Quarantine(profile_id="p9", actor="op", reason="r", command_id=long))
    with pytest.raises(InvalidInput) as reused:
        handle(uow, Disable(profile_id="p9", actor="op", reason="r", command_id=long))
    assert "A" * 60 not in str(reused.value), str(reused.value)


def test_bad_input_and_unknown_profiles_write_nothing(
    uow: UnitOfWork, repo: FakeRepository
) -> None:
    """A malformed command fails as it is built, before any handler runs; a command on a
    profile nobody registered is UnknownProfile; neither saves anything."""
    saves = repo.saves
    with pytest.raises(InvalidInput) as bad:
        _checkout("w", ttl_seconds=-5)
    assert bad.value.field == "ttl_seconds"
    with pytest.raises(UnknownProfile):
        handle(uow, Checkout(profile_id="ghost", worker_id="w", run_id="r", task_type="t"))
    assert repo.saves == saves


def test_the_sweep_judges_each_candidate_on_its_events(
    uow: UnitOfWork, repo: FakeRepository, clock: Clock
) -> None:
    """A lease past its deadline is marked stale and sent to review; a lease renewed in time
    is left alone, even when its row (out of date here) made it a candidate."""
    handle(uow, RegisterProfile(profile_id="p2", **SHOP))
    stale = handle(uow, _checkout("w", ttl_seconds=10))
    fresh = handle(
        uow, Checkout(profile_id="p2", worker_id="w2", run_id="r2", task_type="t", ttl_seconds=10)
    )
    before_renewal = repo.rows["p2"]
    clock.now += timedelta(seconds=8)
    handle(uow, Heartbeat(lease_id=fresh.lease_id, fencing_token=1))
    repo.rows["p2"] = before_renewal  # the row says overdue; the events say renewed
    clock.now += timedelta(seconds=5)
    assert repo.sweep_candidates(clock.now) == ["p1", "p2"]
    report = handle(uow, Sweep())
    assert [(r.lease_id, r.profile_state) for r in report.settled] == [
        (stale.lease_id, "review_required")
    ]
    assert report.failed == []


def test_a_sweep_cut_short_holds_its_id_and_a_resend_answers_what_it_settled(
    uow: UnitOfWork, repo: FakeRepository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake store agrees with the real ones (rev37): a sweep whose store fails after its
    first transaction has taken its id, so a heartbeat under it is refused having written
    nothing, and a resend carries out the rest and answers both leases settled under it."""
    import ledger._handlers as handlers

    handle(uow, RegisterProfile(profile_id="p2", **SHOP))
    first = handle(uow, _checkout("w", ttl_seconds=10))
    handle(
        uow, Checkout(profile_id="p2", worker_id="w2", run_id="r2", task_type="t", ttl_seconds=10)
    )
    clock.now += timedelta(seconds=20)
    monkeypatch.setattr(handlers, "SWEEP_BATCH", 1)
    saving = repo.save_together
    batches: list[int] = []

    def failing_second(saves: Any, **kwargs: Any) -> None:  # the store goes away between
        batches.append(len(saves))
        if len(batches) == 2:
            raise StoreUnavailable("connection lost")
        saving(saves, **kwargs)

    monkeypatch.setattr(repo, "save_together", failing_second)
    with pytest.raises(StoreUnavailable):
        handle(uow, Sweep(command_id="cut"))
    monkeypatch.setattr(repo, "save_together", saving)
    saves = repo.saves
    with pytest.raises(InvalidInput, match="'cut' was already used for a sweep"):
        handle(uow, Heartbeat(lease_id=first.lease_id, fencing_token=1, command_id="cut"))
    again = handle(uow, Sweep(command_id="cut"))
    assert [(r.profile_id, r.lease_id) for r in again.settled] == [
        ("p1", first.lease_id),
        ("p2", "lease-1@p2"),
    ]
    assert repo.saves == saves + 1  # p2's settlement alone
    assert handle(uow, Sweep(command_id="cut")) == again


def test_a_sweep_reports_a_failure_in_text_every_export_keeps_and_answers_it_again(
    uow: UnitOfWork, repo: FakeRepository, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile the sweep cannot settle (a damaged stream whose error quotes bytes that were
    never UTF-8) is reported in text JSON can hold, so the sweep's answer is recorded under
    its command id and a resend gets it back (the report could not be written as JSON)."""
    handle(uow, _checkout("w", ttl_seconds=10))
    clock.now += timedelta(seconds=20)
    loaded = repo.load

    def damaged(profile_id: str, version: int | None = None) -> Profile | None:
        if version is None:
            raise ValueError("stored bytes b'\\xff' read as '\udcff'")
        return loaded(profile_id, version)

    monkeypatch.setattr(repo, "load", damaged)
    report = handle(uow, Sweep(command_id="sweep-1"))
    assert [f.profile_id for f in report.failed] == ["p1"]
    assert report.failed[0].error == "ValueError: stored bytes b'\\xff' read as '\\udcff'"
    assert report.model_dump_json()
    assert handle(uow, Sweep(command_id="sweep-1")) == report
