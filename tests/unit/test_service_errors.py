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


def test_an_operators_reason_is_declared_as_the_ledger_checks_it() -> None:
    """The OpenAPI document (what the TypeScript client is checked against) declared an
    operator's reason a bare string, while the service refused an empty one, one over 200
    characters and one with control characters: the body takes the command's own field."""
    import pydantic
    import pytest

    from service._bodies import OperatorBody

    reason = OperatorBody.model_json_schema()["properties"]["reason"]
    assert reason["maxLength"] == 200
    for refused in ("", " ", "a\nb", "r" * 201):
        with pytest.raises(pydantic.ValidationError):
            OperatorBody(reason=refused)
    assert OperatorBody(reason="stuck checkout").reason == "stuck checkout"
