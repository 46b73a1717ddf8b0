"""Who may record what (``ledger._domain.authority``): one table, read by the aggregate, by the
ledger against its store login's roles (here on the fake repository), and by PostgreSQL's
insert trigger (``tests/e2e/test_cli_access.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fakes import FakeRepository

from ledger import (
    Checkout,
    Forbidden,
    NotAllowed,
    Quarantine,
    RegisterProfile,
    Review,
    ReviewDecision,
    Sweep,
)
from ledger._domain import events as ev
from ledger._domain.authority import ROLE_EVENTS
from ledger._domain.model import Role
from ledger._domain.profile import Context
from ledger._handlers import handle
from ledger._unit_of_work import UnitOfWork

NOW = datetime(2026, 12, 2, 9, 45, tzinfo=UTC)
SHOP = {"account_id": "account_shop_17", "proxy_id": "proxy_us_east_12"}


def _worker_only() -> FakeRepository:
    repo = FakeRepository(lambda: NOW)
    handle(UnitOfWork(repo), RegisterProfile(profile_id="p1", **SHOP))
    repo.roles = frozenset({Role.WORKER})
    return repo


def test_every_event_type_is_some_roles_to_record() -> None:
    """An event no role may record could never be appended on a role-restricted store."""
    recorded = set().union(*ROLE_EVENTS.values())
    assert recorded == set(ev.EVENT_CLASSES)


def test_the_aggregate_refuses_an_event_its_role_may_not_record() -> None:
    """A command method that triggered a reviewer's event while acting as a worker fails
    there, before the event exists: the database would refuse it anyway."""
    repo = _worker_only()
    profile = repo.load("p1")
    assert profile is not None
    ctx = Context("w1", Role.WORKER, NOW, "c1", "c1", "c1")
    with pytest.raises(NotAllowed, match="the worker role may not record profile_reviewed"):
        profile._trigger(ev.ProfileReviewed, ctx, decision=ReviewDecision.RETURN, note="")
    assert profile.pending_events == []


@pytest.mark.parametrize(
    "command",
    [
        RegisterProfile(profile_id="p2", **SHOP),
        Quarantine(profile_id="p1", actor="op", reason="bad"),
        Review(profile_id="p1", reviewer="rv", decision=ReviewDecision.RETURN, note="ok"),
        Sweep(actor="scheduler"),
    ],
    ids=["register", "quarantine", "review", "sweep"],
)
def test_a_login_without_the_role_is_refused_before_anything_is_read(command: object) -> None:
    """On a worker-only login, an operator's, a reviewer's or a scheduler's command is
    ``Forbidden`` (exit 7) naming the login's roles and the one needed; nothing is saved and
    nothing was loaded."""
    repo = _worker_only()
    loads = []
    real_load = repo.load
    repo.load = lambda *a: loads.append(a) or real_load(*a)  # type: ignore[method-assign]
    saves = repo.saves
    with pytest.raises(Forbidden, match="store login fake may act as worker; this command") as e:
        handle(UnitOfWork(repo), command)  # type: ignore[arg-type]
    assert e.value.exit_code == 7
    assert repo.saves == saves
    assert loads == []


def test_a_worker_login_checks_out() -> None:
    repo = _worker_only()
    lease = handle(
        UnitOfWork(repo), Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t")
    )
    assert lease.fencing_token == 1
