"""Group commit (``UnitOfWork.together``, ``Ledger.handle_together``, the sweep): several
commands' writes in one transaction, each command judged and answered on its own; on the fake
repository, which counts transactions (``saves``). The same on real stores, one transaction id
for every event: ``tests/integration/test_group_commit_stores.py``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from fakes import FakeRepository

from ledger import (
    Checkout,
    Heartbeat,
    LeaseLost,
    RegisterProfile,
    Sweep,
    _unit_of_work as uow_module,
)
from ledger._domain.model import Lease
from ledger._handlers import handle
from ledger._unit_of_work import UnitOfWork

NOW = datetime(2026, 12, 2, 9, 45, tzinfo=UTC)
SHOP = {"account_id": "account_shop_17", "proxy_id": "proxy_us_east_12"}
PROFILES = ("p1", "p2", "p3")


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return self.now


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uow_module.time, "sleep", lambda _: None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo(clock: Clock) -> FakeRepository:
    return FakeRepository(clock)


@pytest.fixture
def uow(repo: FakeRepository) -> UnitOfWork:
    return UnitOfWork(repo)


@pytest.fixture
def leases(uow: UnitOfWork) -> list[Lease]:
    held = []
    for pid in PROFILES:
        handle(uow, RegisterProfile(profile_id=pid, **SHOP))
        checkout = Checkout(profile_id=pid, worker_id=f"w-{pid}", run_id=f"r-{pid}", task_type="t")
        held.append(handle(uow, checkout))
    return held


def _beat(lease: Lease, token: int | None = None, step: str = "s") -> Heartbeat:
    return Heartbeat(lease_id=lease.lease_id, fencing_token=token or lease.fencing_token, step=step)


def _together(uow: UnitOfWork, commands: list[Any]) -> list[Any]:
    return uow.together([partial(handle, uow, c) for c in commands])


def test_commands_on_several_profiles_commit_in_one_transaction_answered_each(
    uow: UnitOfWork, repo: FakeRepository, leases: list[Lease], clock: Clock
) -> None:
    saves, reads = repo.saves, clock.reads
    answers = _together(uow, [_beat(lease, step=f"step-{n}") for n, lease in enumerate(leases)])
    assert repo.saves == saves + 1  # one transaction for the three
    assert clock.reads == reads + 1  # and one store time
    assert [a.lease_id for a in answers] == [lease.lease_id for lease in leases]
    for n, pid in enumerate(PROFILES):
        last = repo.streams[pid][-1]
        assert (type(last).__name__, last.step) == ("LeaseHeartbeat", f"step-{n}")


def test_a_refused_command_is_answered_alone_and_the_others_still_commit(
    uow: UnitOfWork, repo: FakeRepository, leases: list[Lease]
) -> None:
    lengths = [len(repo.streams[pid]) for pid in PROFILES]
    answers = _together(uow, [_beat(leases[0]), _beat(leases[1], token=99), _beat(leases[2])])
    assert isinstance(answers[1], LeaseLost)
    assert not isinstance(answers[0], Exception)
    assert not isinstance(answers[2], Exception)
    grown = [len(repo.streams[pid]) - n for pid, n in zip(PROFILES, lengths, strict=True)]
    assert grown == [1, 0, 1]


def test_when_another_writer_is_first_nothing_of_the_batch_is_kept_and_each_runs_again(
    uow: UnitOfWork, repo: FakeRepository, leases: list[Lease]
) -> None:
    """Another writer renews p2 between the batch's decisions and its save: the batch's
    transaction is refused whole, then each command runs alone and still succeeds."""
    other = _beat(leases[1], step="other writer")
    repo.before_save = lambda _: handle(UnitOfWork(repo), other)
    lengths = [len(repo.streams[pid]) for pid in PROFILES]
    answers = _together(uow, [_beat(lease, step="batch") for lease in leases])
    assert not any(isinstance(a, Exception) for a in answers)
    assert uow.conflicts == 1
    grown = [len(repo.streams[pid]) - n for pid, n in zip(PROFILES, lengths, strict=True)]
    assert grown == [1, 2, 1]  # p2: the other writer's beat, then the batch's, once each
    assert [e.step for e in repo.streams["p2"][-2:]] == ["other writer", "batch"]


def test_a_second_command_on_a_profile_in_the_batch_runs_after_it(
    uow: UnitOfWork, repo: FakeRepository, leases: list[Lease]
) -> None:
    saves = repo.saves
    answers = _together(uow, [_beat(leases[0], step="a"), _beat(leases[0], step="b")])
    assert not any(isinstance(a, Exception) for a in answers)
    assert [e.step for e in repo.streams["p1"][-2:]] == ["a", "b"]
    assert repo.saves == saves + 2


def test_a_sweep_settles_its_overdue_profiles_in_one_transaction(
    uow: UnitOfWork, repo: FakeRepository, leases: list[Lease], clock: Clock
) -> None:
    clock.now += timedelta(days=2)
    saves = repo.saves
    report = handle(uow, Sweep())
    assert sorted(r.profile_id for r in report.settled) == list(PROFILES)
    assert report.failed == []
    assert repo.saves == saves + 1
