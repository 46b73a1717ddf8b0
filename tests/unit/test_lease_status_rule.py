"""A lease's status as a read reports it at a moment: ``overdue`` once an active lease is past
its deadline, before anything has marked it stale (rev42: usage and health read such a lease
as active and live); the one rule, ``ledger.rules``, that status, why and replay judge by."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.rules import OVERDUE, lease_status_at, past_deadline

DEADLINE = datetime(2026, 11, 27, 9, 45, tzinfo=UTC)
TICK = timedelta(microseconds=1)


def test_a_deadline_is_passed_after_it_not_at_it() -> None:
    """At the deadline itself a lease is still live to everyone; a microsecond later it is
    past it."""
    assert not past_deadline(DEADLINE, DEADLINE - TICK)
    assert not past_deadline(DEADLINE, DEADLINE)
    assert past_deadline(DEADLINE, DEADLINE + TICK)


def test_an_active_lease_past_its_deadline_reads_overdue() -> None:
    """``active`` up to its deadline, ``overdue`` past it: the read model's row says active
    until the sweep marks it, and the moment asked about decides."""
    assert lease_status_at("active", DEADLINE, DEADLINE) == "active"
    assert lease_status_at("active", DEADLINE, DEADLINE + TICK) == OVERDUE == "overdue"


@pytest.mark.parametrize("status", ["stale", "ended"])
def test_a_lease_marked_stale_or_ended_keeps_its_status_past_its_deadline(status: str) -> None:
    """A lease the sweep marked, or one that ended, says so whatever the moment: overdue is
    only what an active lease becomes by the clock."""
    assert lease_status_at(status, DEADLINE, DEADLINE + timedelta(days=1)) == status
