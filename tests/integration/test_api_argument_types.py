"""The Python API's reads, access functions and routing given an argument of the wrong type or
one the ledger refuses: one ``InvalidInput`` naming the argument, on every store, before
anything is written (rev48: raw AttributeError, TypeError and ValueError from inside, and a
routing denial for a region no registration takes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import event_count, register

import projections
import reports
from ledger import InvalidInput, Ledger, Role
from ledger.access import (
    end_session,
    grant,
    issue_token,
    revoke,
    session_holder,
    start_session,
    token_holder,
    tokens_issued,
)
from workers import NoProfileAvailable, checkout_for

Call = Callable[[Ledger], Any]

READS: list[tuple[str, Call, str]] = [
    ("status account 5", lambda lg: projections.status(lg, account_id=5), "account"),
    ("timeline profile 5", lambda lg: projections.timeline(lg, 5), "profile_id"),
    ("usage account 5", lambda lg: projections.usage(lg, 5), "account"),
    ("fleet account bytes", lambda lg: reports.fleet(account=b"a", ledger=lg), "account"),
    ("report ledger 5", lambda lg: reports.timeline("p1", ledger=5), "store"),
    ("Ledger.open 5", lambda lg: Ledger.open(5), "store"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("call", "field"), [c[1:] for c in READS], ids=[c[0] for c in READS])
def test_a_read_names_an_argument_that_is_no_text(ledger: Ledger, call: Call, field: str) -> None:
    """A number or bytes for a read's profile, account or store is ``InvalidInput`` naming it,
    as ``Ledger.view(5)`` is (rev48: AttributeError, and for bytes a TypeError)."""
    register(ledger, "p1")
    before = event_count(ledger)
    with pytest.raises(
        InvalidInput,
        match=rf"^invalid {field}: (Input should be a valid string|must be a URL as a str)",
    ):
        call(ledger)
    assert event_count(ledger) == before


ACCESS: list[tuple[str, Call, str]] = [
    ("revoke token_id 5", lambda lg: revoke(lg, token_id=5), "token_id"),
    ("start_session token 5", lambda lg: start_session(lg, 5, 60), "token"),
    ("start_session seconds nan", lambda lg: start_session(lg, "cst_x", float("nan")), "seconds"),
    ("start_session seconds 0", lambda lg: start_session(lg, "cst_x", 0), "seconds"),
    ("start_session seconds 60.0", lambda lg: start_session(lg, "cst_x", 60.0), "seconds"),
    ("start_session seconds huge", lambda lg: start_session(lg, "cst_x", 10**12), "seconds"),
    ("session_holder 5", lambda lg: session_holder(lg, 5), "session"),
    ("end_session 5", lambda lg: end_session(lg, 5), "session"),
    ("token_holder 5", lambda lg: token_holder(lg, 5), "token"),
    ("grant login 5", lambda lg: grant(lg, 5, "worker"), "login"),
    ("grant password 5", lambda lg: grant(lg, "w_login", "worker", password=5), "password"),
]


@pytest.mark.parametrize(("call", "field"), [c[1:] for c in ACCESS], ids=[c[0] for c in ACCESS])
def test_an_access_function_names_a_wrong_argument(ledger: Ledger, call: Call, field: str) -> None:
    """A token, session, token id or login that is no text, a session's length that is not
    a whole number of seconds from 1 to a week: ``InvalidInput`` naming it, no token revoked
    and no session started (rev48: AttributeError, TypeError on PostgreSQL's ``grant``,
    ValueError for NaN)."""
    register(ledger, "p1")
    reviewer = issue_token(ledger, "carol", Role.REVIEWER)
    before = (tokens_issued(ledger), ledger.store.query("SELECT * FROM custody_console_sessions"))
    with pytest.raises(InvalidInput, match=rf"^invalid {field}: "):
        call(ledger)
    after = (tokens_issued(ledger), ledger.store.query("SELECT * FROM custody_console_sessions"))
    assert after == before
    assert start_session(ledger, reviewer.token, 60) is not None  # the same call, well given


def test_a_secret_of_the_wrong_type_is_not_quoted(ledger: Ledger) -> None:
    """A token or session given as bytes is refused without echoing them: the bytes of a
    secret are the secret still (the door quotes what it refuses otherwise)."""
    for call in (
        lambda: start_session(ledger, b"cst_hushhush", 60),  # type: ignore[arg-type]
        lambda: session_holder(ledger, b"ccs_hushhush"),  # type: ignore[arg-type]
        lambda: token_holder(ledger, b"cst_hushhush"),  # type: ignore[arg-type]
        lambda: Ledger.open(b"postgresql://u:hushhush@db/x"),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInput, match="got one of type bytes") as refused:
            call()
        assert "hushhush" not in str(refused.value)


ROUTES: list[tuple[str, dict[str, Any], str]] = [
    ("region 5", {"region": 5}, "region"),
    ("account 5", {"account_id": 5}, "account_id"),
    ("account empty", {"account_id": ""}, "account_id"),
    ("proxy long", {"proxy_id": "x" * 500}, "proxy_id"),
    ("worker NUL", {"worker_id": "w\x00"}, "worker_id"),
    ("run 5", {"run_id": 5}, "run_id"),
    ("task empty", {"task_type": " "}, "task_type"),
]


@pytest.mark.parametrize(("given", "field"), [c[1:] for c in ROUTES], ids=[c[0] for c in ROUTES])
def test_routing_refuses_an_id_as_the_ledger_does(
    ledger: Ledger, given: dict[str, Any], field: str
) -> None:
    """``checkout_for`` with an id the ledger refuses is ``InvalidInput`` naming it (exit 2),
    with no candidate as with one, nothing written (rev48: a region of 5 or holding NUL was
    ``NoProfileAvailable``, a denial, exit 3, echoing the NUL raw)."""
    register(ledger, "p1", account_id="a", region="eu")
    asked: dict[str, Any] = {
        "worker_id": "w",
        "run_id": "r",
        "task_type": "t",
        "account_id": "a",
        **given,
    }
    before = event_count(ledger)
    with pytest.raises(InvalidInput, match=rf"^invalid {field}: ") as refused:
        checkout_for(ledger, **asked)
    assert "\x00" not in str(refused.value)
    assert event_count(ledger) == before
    assert checkout_for(ledger, worker_id="w", run_id="r", task_type="t", account_id="a")


def test_a_region_no_row_holds_is_a_denial_shown_escaped(ledger: Ledger) -> None:
    """A region is only compared with the rows, never recorded: one no profile is registered
    in (a NUL in it, a space at its end) is a denial, not bad input, so that a region stored
    before the ids' rule is still found by its exact text (fixrev 292: " eu" could no longer
    be routed); its line shows it escaped, never a raw NUL."""
    register(ledger, "p1", account_id="a", region="eu")
    before = event_count(ledger)
    for region, said in (("eu\x00", "'eu\\x00'"), ("eu ", '"eu "')):
        with pytest.raises(NoProfileAvailable) as denied:
            checkout_for(ledger, worker_id="w", run_id="r", task_type="t", account_id="a",
                         region=region)  # fmt: skip
        assert f"for a in {said}: none is registered" in str(denied.value), denied.value
        assert "\x00" not in str(denied.value)
    assert event_count(ledger) == before
