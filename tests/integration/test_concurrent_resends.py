"""The same command (same id, same arguments) sent twice at once gets one answer: the promise
"resending a command with the same id and the same arguments returns the first result and
appends nothing" (docs/explanation/audit-envelope.md) holds while the first copy is still being
written, not only after it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import StepClock, register
from racing import run_all

from ledger import Checkout, ForceRelease, Lease, Ledger, Release
from ledger._door import Command


@pytest.fixture
def first(store_url: str, clock: StepClock) -> Iterator[Ledger]:
    """Another process on the same store, whose copy of the command lands first. It sets the
    scene, so that ``ledger`` holds no copy of the profile and loads it (as a process that
    has not seen it since the first copy was sent)."""
    with Ledger.open(store_url, clock=clock) as opened:
        yield opened


def _first_copy_lands_after_the_lookup(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, first: Ledger, command: Command[Any]
) -> list[object]:
    """``ledger`` looks the command id up and finds nothing; right then ``first`` writes the
    identical command, before ``ledger`` loads the profile (the window two copies sent at
    once fall into). Asserts, when ``ledger`` has answered, that the first copy did land."""
    repository = ledger.uow.repository
    looked_up: Callable[[str], Any] = repository.command_record
    landed = []

    def then_the_first_copy_lands(command_id: str) -> Any:
        found = looked_up(command_id)
        if found is None and command_id == command.command_id and not landed:
            landed.append(first.handle(command))
        return found

    monkeypatch.setattr(repository, "command_record", then_the_first_copy_lands)
    return landed


def _lease(ledger: Ledger, worker: str = "w") -> Lease:
    return ledger.handle(
        Checkout(profile_id="profile_shop_17", worker_id=worker, run_id="r", task_type="t")
    )


def test_a_checkout_sent_twice_at_once_is_not_denied_by_its_own_first_copy(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, first: Ledger
) -> None:
    """Both copies of one checkout get the lease (rev28: the second was denied "already
    leased to worker w for run r", its own worker and run, exit 3: a worker may give up a
    lease it holds, which then goes stale)."""
    register(first)
    checkout = Checkout(
        profile_id="profile_shop_17", worker_id="w", run_id="r", task_type="t", command_id="co-1"
    )
    landed = _first_copy_lands_after_the_lookup(monkeypatch, ledger, first, checkout)

    lease = ledger.handle(checkout)

    assert landed == [lease]
    assert [e.event_type for e in ledger.history("profile_shop_17")].count("lease_acquired") == 1


def test_a_release_sent_twice_at_once_is_not_told_its_lease_is_lost(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, first: Ledger
) -> None:
    """Both copies of one release get its result (rev28: the second was told ``LeaseLost``,
    exit 4, by the ending its own first copy wrote)."""
    register(first)
    lease = _lease(first)
    release = Release(
        lease_id=lease.lease_id,
        fencing_token=lease.fencing_token,
        outcome="failure",
        reason="boom",
        command_id="rel-1",
    )
    landed = _first_copy_lands_after_the_lookup(monkeypatch, ledger, first, release)

    result = ledger.handle(release)

    # The first copy's answer, marked as recorded then (rev37), as a force-release's is.
    assert [r.model_dump(exclude={"message"}) for r in landed] == [
        result.model_dump(exclude={"message", "resent"})
    ]
    assert getattr(result, "resent", False) is True
    history = ledger.history("profile_shop_17")
    written = [e.event_type for e in history if e.envelope.command_id == "rel-1"]
    assert written, "the release was not written"
    assert len(written) == len(set(written)), "the release was written twice"


def test_a_force_release_sent_twice_at_once_is_allowed(
    monkeypatch: pytest.MonkeyPatch, ledger: Ledger, first: Ledger
) -> None:
    """Both copies of one force-release get its result (rev28: the second was refused ``no
    live lease to force-release``, exit 1, the lease its own first copy ended)."""
    register(first)
    _lease(first)
    forced = ForceRelease(
        profile_id="profile_shop_17", actor="op", reason="stuck", command_id="force-1"
    )
    landed = _first_copy_lands_after_the_lookup(monkeypatch, ledger, first, forced)

    again = ledger.handle(forced)  # the first copy's answer, said to be as recorded then
    assert [r.model_dump(exclude={"message"}) for r in landed] == [
        again.model_dump(exclude={"message", "resent"})
    ]
    assert "(resent: its answer as recorded" in again.message, again.message


RACER = Path(__file__).with_name("resend_racer.py")


@pytest.mark.slow
def test_copies_sent_at_once_from_several_processes_get_one_answer(sql_store_url: str) -> None:
    """Three processes send each of 12 commands (checkouts, releases, force-releases) with
    one id, at the same instant: every copy answers as the first did, and each is written once
    (rev28, on PostgreSQL: 9 of 24 copies were refused by their own first copy)."""
    kinds = ["checkout", "release", "force_release"]
    items = []
    with Ledger.open(sql_store_url) as ledger:
        for n in range(12):
            profile_id, kind = f"resent_{n}", kinds[n % 3]
            register(ledger, profile_id)
            item = {"kind": kind, "profile_id": profile_id, "command_id": f"cmd-{n}"}
            if kind != "checkout":
                item["lease_id"] = ledger.handle(
                    Checkout(profile_id=profile_id, worker_id="w", run_id="r", task_type="t")
                ).lease_id
            items.append(item)
    start_at = str(time.time() + 3.0)  # every process started and connected
    argv = [sql_store_url, start_at, "0.1", json.dumps(items)]
    answers = run_all(str(RACER), [argv] * 3)

    for n, item in enumerate(items):
        copies = [process[n] for process in answers]
        assert copies[0][0] == "ok", f"{item}: {copies}"
        assert copies == [copies[0]] * 3, f"{item['kind']} copies answered apart: {copies}"
    with Ledger.open(sql_store_url) as ledger:
        for item in items:
            history = ledger.history(item["profile_id"])
            written = [e.event_type for e in history if e.envelope.command_id == item["command_id"]]
            assert written, f"{item}: nothing written"
            assert len(written) == len(set(written)), f"{item}: written twice: {written}"
