"""A command built without validation (pydantic's ``model_construct``) is checked at the door
as any other: a bad value is one ``InvalidInput`` naming its field and nothing is written, on
both stores; one holding only what validation would have made is handled as if built so.

rev35: such a command went past the door. A profile id holding NUL, or 5,000 characters long,
was recorded for good on SQLite (listed by status, refused by every read naming it: the
profile could never be read, leased or disabled), and PostgreSQL answered it as a store
outage; a release policy no release could apply was recorded (every later release a raw
``KeyError``); a heartbeat's step holding NUL read back as another text; raw ``TypeError``,
``AttributeError`` and pydantic's ``ValidationError`` escaped instead of ``InvalidInput``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import event_count, register

from ledger import (
    Checkout,
    Heartbeat,
    InvalidInput,
    Lease,
    Ledger,
    RegisterProfile,
    Release,
    ReleaseResult,
    Review,
)
from ledger._domain.browser import BrowserCheck
from ledger._domain.events import LeaseHeartbeat

REGISTRATION = {"account_id": "account_shop_17", "proxy_id": "proxy_us_east_12"}
RUN = {"worker_id": "worker_03", "run_id": "run_0945", "task_type": "inventory_check"}


def unchecked(cls: Any, **fields: Any) -> Any:
    """``cls`` built with ``model_construct``: no validator runs."""
    return cls.model_construct(**fields)


def _register(**fields: Any) -> Callable[[Lease], Any]:
    return lambda _: unchecked(RegisterProfile, **{"profile_id": "p_new", **REGISTRATION, **fields})


def _checkout(**fields: Any) -> Callable[[Lease], Any]:
    return lambda _: unchecked(Checkout, **{"profile_id": "free", **RUN, **fields})


def _on_lease(cls: Any, **fields: Any) -> Callable[[Lease], Any]:
    return lambda lease: unchecked(
        cls, **{"lease_id": lease.lease_id, "fencing_token": lease.fencing_token, **fields}
    )


def _review(**inspected: Any) -> Callable[[Lease], Any]:
    browser = unchecked(BrowserCheck, user_data_dir="/srv/p", host="h", detail="d", **inspected)
    return lambda _: unchecked(
        Review, profile_id="free", reviewer="alice", decision="disable", note="n", browser=browser
    )


# (what is wrong, the command made given the live lease of profile "held", the field named)
BAD: list[tuple[str, Callable[[Lease], Any], str]] = [
    ("profile id holding NUL", _register(profile_id="a\x00b"), "profile_id"),
    ("profile id of 5,000 characters", _register(profile_id="z" * 5000), "profile_id"),
    ("account id holding NUL", _register(account_id="a\x00"), "account_id"),
    ("unknown release policy", _register(release_policy="bogus"), "release_policy"),
    ("negative unclean limit", _register(unclean_limit=-3), "unclean_limit"),
    ("directory holding NUL", _register(user_data_dir="/srv/a\x00b"), "user_data_dir"),
    ("directory not text", _register(user_data_dir=5), "user_data_dir"),
    ("account id left out", lambda _: unchecked(RegisterProfile, profile_id="p_new"), "account_id"),
    ("step holding NUL", _on_lease(Heartbeat, step="a\x00b"), "step"),
    ("fencing token as text", _on_lease(Heartbeat, fencing_token="1"), "fencing_token"),  # noqa: S106
    ("TTL as text", _checkout(ttl_seconds="300"), "ttl_seconds"),
    ("worker id None", _checkout(worker_id=None), "worker_id"),
    ("worker id left out", lambda _: unchecked(Checkout, profile_id="free"), "worker_id"),
    ("unknown outcome", _on_lease(Release, outcome="bogus"), "outcome"),
    ("inspection of an unknown status", _review(status="bogus"), "browser.status"),
]


def _scene(ledger: Ledger) -> Lease:
    """A free profile and a leased one; the lease."""
    register(ledger, "free")
    register(ledger, "held")
    return ledger.handle(Checkout(profile_id="held", **RUN))


@pytest.mark.parametrize(("wrong", "build", "field"), BAD, ids=[b[0] for b in BAD])
def test_a_command_built_unchecked_with_a_bad_value_is_refused_writing_nothing(
    sql_store_url: str, wrong: str, build: Callable[[Lease], Any], field: str
) -> None:
    with Ledger.open(sql_store_url) as ledger:
        lease = _scene(ledger)
        before, profiles = event_count(ledger), ledger.profile_ids()
        command = build(lease)
        with pytest.raises(InvalidInput) as refused:
            ledger.handle(command)
        assert refused.value.field == field, refused.value
        # The service's and the SDK's path: several commands in one transaction.
        [answer] = ledger.handle_together([command])
        assert isinstance(answer, InvalidInput), answer
        assert answer.field == field, answer
        assert event_count(ledger) == before
        assert ledger.profile_ids() == profiles
        # The lease is untouched: its worker renews and releases it as ever.
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
        ledger.handle(
            Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success")
        )


def test_a_command_built_unchecked_holding_valid_values_is_handled_as_if_built_so(
    sql_store_url: str,
) -> None:
    """Every value valid: handled; a resend of it with the same command id is recognised as
    the command built the ordinary way (its fingerprint is the same)."""
    with Ledger.open(sql_store_url) as ledger:
        record = ledger.handle(
            unchecked(
                RegisterProfile,
                profile_id="p1",
                release_policy="strict_evidence",
                unclean_limit=2,
                **REGISTRATION,
            )
        )
        assert record.release_policy == "strict_evidence"
        assert record.unclean_limit == 2
        lease = ledger.handle(
            unchecked(Checkout, profile_id="p1", ttl_seconds=120, command_id="c-1", **RUN)
        )
        again = ledger.handle(Checkout(profile_id="p1", ttl_seconds=120, command_id="c-1", **RUN))
        assert again.lease_id == lease.lease_id
        before = event_count(ledger)
        beat = {"lease_id": lease.lease_id, "fencing_token": lease.fencing_token}
        ledger.handle(unchecked(Heartbeat, step="login", command_id="h-1", **beat))
        resent = Heartbeat(
            step="login",
            command_id="h-1",
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
        )
        ledger.handle(resent)  # recognised as the same command: nothing written
        assert event_count(ledger) == before + 1
        steps = [e.step for e in ledger.history("p1") if isinstance(e, LeaseHeartbeat)]
        assert steps == ["login"]
        # An outcome given as its text, not its enum: the same value, handled.
        result = ledger.handle(unchecked(Release, outcome="failure", reason="x", **beat))
        assert isinstance(result, ReleaseResult)
        assert result.lease_id == lease.lease_id
        assert ledger.view("p1").state == "quarantined"  # as strict_evidence has it


def test_a_registration_built_unchecked_is_refused_before_a_store_is_made(
    tmp_path: Path,
) -> None:
    """Only a registration may make a new SQLite store: one built with a bad id is refused
    before the store is reached, so no empty store is left behind (as when building it with
    validation refuses it)."""
    path = tmp_path / "new.db"
    bad = unchecked(RegisterProfile, profile_id="a\x00b", **REGISTRATION)
    with (
        Ledger.open(f"sqlite:///{path}") as ledger,
        pytest.raises(InvalidInput, match="profile_id"),
    ):
        ledger.handle(bad)
    assert not path.exists()
    # Several at once (the service's and the SDK's path): each answered, no store made
    # (rev35 review: handle_together opened, and made, the store first).
    with Ledger.open(f"sqlite:///{path}") as ledger:
        answers = ledger.handle_together([bad, bad])
    assert [type(a) for a in answers] == [InvalidInput, InvalidInput], answers
    assert not path.exists()


@pytest.mark.parametrize("how", ["setattr", "dict", "swapped"])
def test_a_command_altered_after_it_was_made_is_checked_again(sql_store_url: str, how: str) -> None:
    """rev35 review: a heartbeat made by validation, its step then set to a text holding NUL
    (``object.__setattr__`` on the frozen model, or its ``__dict__``), was recorded: the door
    took an instance it had made as checked, whatever it held since; then one whose
    ``__dict__`` held the same objects, the step's and the URL's traded."""
    with Ledger.open(sql_store_url) as ledger:
        lease = _scene(ledger)
        before = event_count(ledger)
        url = "https://x/" + "y" * 3_000  # a URL may be this long; a step may not
        beat = Heartbeat(
            lease_id=lease.lease_id, fencing_token=lease.fencing_token, step="ok", url=url
        )
        if how == "setattr":
            object.__setattr__(beat, "step", "bad\x00step")
        elif how == "dict":
            beat.__dict__["step"] = "y" * 5_000
        else:  # the very objects validation made, in its order, the step's and URL's names traded
            traded = {"step": "url", "url": "step"}
            fields = {traded.get(name, name): value for name, value in beat.__dict__.items()}
            object.__setattr__(beat, "__dict__", fields)
        with pytest.raises(InvalidInput) as refused:
            ledger.handle(beat)
        assert refused.value.field == "step", refused.value
        [answer] = ledger.handle_together([beat])
        assert isinstance(answer, InvalidInput), answer
        assert event_count(ledger) == before


@pytest.mark.parametrize("given", ["checkout", None, 5], ids=["str", "none", "int"])
def test_what_is_not_a_command_is_refused_naming_the_command_writing_nothing(
    store_url: str, given: Any
) -> None:
    """rev48: ``handle("checkout")`` and ``handle(None)`` raised AttributeError from inside the
    door, ``handle_together("abc")`` and ``handle_together([None])`` too. ``handle`` raises one
    ``InvalidInput`` naming ``command``; ``handle_together`` answers such an item, in its place,
    with that error, and handles the commands beside it; nothing is written for it."""
    with Ledger.open(store_url) as ledger:
        register(ledger, "p1")
        before = event_count(ledger)
        with pytest.raises(InvalidInput, match="invalid command: must be a Command") as refused:
            ledger.handle(given)
        assert refused.value.field == "command"
        answers = ledger.handle_together([given])
        assert [type(a) for a in answers] == [InvalidInput], answers
        assert answers[0].field == "command"
        assert event_count(ledger) == before
        beside = RegisterProfile(profile_id="p2", **REGISTRATION)
        first, second = ledger.handle_together([given, beside])
        assert isinstance(first, InvalidInput)
        assert second.profile_id == "p2"
        assert event_count(ledger) == before + 1


@pytest.mark.parametrize(
    "given",
    ["abc", b"abc", 5, None, RegisterProfile(profile_id="p2", **REGISTRATION)],
    ids=["str", "bytes", "int", "none", "one-command"],
)
def test_handle_together_refuses_what_is_not_commands_naming_them(
    store_url: str, given: Any
) -> None:
    """A text (rev48: taken one character a command, AttributeError), a number, None or a
    single command given as ``handle_together``'s commands: one ``InvalidInput`` naming
    ``commands``, nothing written."""
    with Ledger.open(store_url) as ledger:
        register(ledger, "p1")
        before = event_count(ledger)
        with pytest.raises(InvalidInput, match="invalid commands: must be a list of commands"):
            ledger.handle_together(given)
        assert event_count(ledger) == before


def test_handle_together_takes_a_generator_whole(store_url: str) -> None:
    """rev48: a generator raised TypeError (``len``); it is taken whole first, and its
    commands answered in order as a list's."""
    with Ledger.open(store_url) as ledger:
        answers = ledger.handle_together(
            RegisterProfile(profile_id=p, **REGISTRATION) for p in ("p1", "p2")
        )
        assert [a.profile_id for a in answers] == ["p1", "p2"]
        assert ledger.profile_ids() == ["p1", "p2"]


def test_what_is_not_a_command_makes_no_store(tmp_path: Path) -> None:
    """A ledger on a missing SQLite file given what is not a command makes no store."""
    path = tmp_path / "new.db"
    with Ledger.open(f"sqlite:///{path}") as ledger:
        with pytest.raises(InvalidInput):
            ledger.handle(None)  # type: ignore[arg-type]
        assert isinstance(ledger.handle_together([None])[0], InvalidInput)  # type: ignore[list-item]
    assert not path.exists()
