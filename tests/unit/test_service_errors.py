"""How the lease service answers a damaged store: a 500 naming the damage, not the 409 of a
refused action (nothing the caller sends can change it)."""

from __future__ import annotations

from ledger import NotAllowed, ReadModelDamaged, UnreadableEvent
from service._errors import problem_of


def test_a_damaged_store_is_a_500_naming_the_damage() -> None:
    unreadable = UnreadableEvent("the event 'lease_heartbeat' v4", "KeyError: 'at'")
    status, problem, headers = problem_of(unreadable)
    assert (status, problem.error, headers) == (500, "unreadable_event", {})
    assert problem.message == str(unreadable)
    status, problem, _ = problem_of(ReadModelDamaged("timeline", "its table is missing"))
    assert (status, problem.error) == (500, "read_model_damaged")
    assert "custody projections rebuild timeline" in problem.message


def test_a_refused_action_is_still_a_409() -> None:
    status, problem, _ = problem_of(NotAllowed("the profile is available"))
    assert (status, problem.error) == (409, "not_allowed")
