"""One read of the fleet is one moment (``reports._sources.read_sources``), on every store: a
release another process commits while the fleet is read shows in every table or in none, and
a profile registered meanwhile in none."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import StepClock

import reports._sources as sources_module
from ledger import Checkout, Ledger, RegisterProfile, Release
from projections import LEASES_READ_MODEL, TIMELINE_READ_MODEL, catch_up_all
from reports._health import assess
from reports._sources import Sources, read_sources


@pytest.fixture
def other(store_url: str, clock: StepClock) -> Iterator[Ledger]:
    """Another process's ledger on the same store (its own connections)."""
    with Ledger.open(store_url, clock=clock) as opened:
        yield opened


def _agree(found: Sources) -> None:
    """Availability, leases and timeline tell one story: a leased profile's lease is live, a
    profile's last lease ended as its row says, and every lease and event is of a profile
    the rows know."""
    leases = {str(r["lease_id"]): r for r in found.leases.to_dict("records")}
    for row in found.profiles:
        if row.lease_id is not None:
            assert leases[row.lease_id]["ending"] is None, row
        if row.last_lease_id is not None:
            assert leases[row.last_lease_id]["ending"] == row.last_ending, row
    endings = {"lease_released_cleanly", "lease_revoked", "review_requested"}
    ending_events = found.events.loc[found.events["event_type"].isin(endings)]
    ended = {k for k, r in leases.items() if r["ending"] is not None}
    assert ended == set(ending_events["lease_id"].dropna())
    known = {row.profile_id for row in found.profiles}
    assert set(found.leases["profile_id"]) <= known
    assert set(found.events["profile_id"]) <= known
    assert int(found.counts["events"].sum()) >= len(found.events)


def _meanwhile(monkeypatch: pytest.MonkeyPatch, name: str, act: Callable[[], None]) -> None:
    """Run ``act`` (another process's commands) just before ``reports._sources.<name>``."""
    real = getattr(sources_module, name)

    def hooked(*args: Any, **kwargs: Any) -> Any:
        act()
        return real(*args, **kwargs)

    monkeypatch.setattr(sources_module, name, hooked)


@pytest.mark.parametrize("when", ["status_at", "_leases"])
def test_a_release_committed_while_the_fleet_is_read_is_in_no_table(
    ledger: Ledger, other: Ledger, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """p1's release commits, and a runner folds it, after the snapshot began (before the
    availability is read, or between that and the leases): the whole read still shows p1
    leased and its lease live."""
    ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
    lease = ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
    release = Release(
        lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="https://x/"
    )

    def act() -> None:  # a worker releases, and a runner (projections run) folds it
        other.handle(release)
        catch_up_all(other, (LEASES_READ_MODEL, TIMELINE_READ_MODEL))

    _meanwhile(monkeypatch, when, act)
    found = read_sources(ledger)
    _agree(found)
    assert [(r.profile_id, r.state.value) for r in found.profiles] == [("p1", "leased")]
    assert assess(found).endings["profile"]["live"].tolist() == [1]


@pytest.mark.parametrize("folded", [(), ("timeline",), ("leases",)])
def test_a_release_committed_after_the_catch_up_is_read_as_before_it(
    ledger: Ledger, other: Ledger, monkeypatch: pytest.MonkeyPatch, folded: tuple[str, ...]
) -> None:
    """Between the catch-up and the snapshot, p1's release commits and p2 is registered, and
    another process folds them into no read model, the timeline alone, or the leases alone.
    The read is one moment: the events as the leases read model's checkpoint holds them (p1
    leased, no p2, no release in the timeline's rows or counts), or, when the leases are
    ahead of the timeline, after catching up again (p1 available, its release in both)."""
    ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
    lease = ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
    models = {"leases": LEASES_READ_MODEL, "timeline": TIMELINE_READ_MODEL}
    real = sources_module.catch_up_all
    acted: list[bool] = []

    def then_act(*args: Any, **kwargs: Any) -> int:
        done = real(*args, **kwargs)
        if not acted:
            acted.append(True)
            release = Release(
                lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="https://x/"
            )
            other.handle(release)
            other.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
            catch_up_all(other, [models[name] for name in folded])
        return done

    monkeypatch.setattr(sources_module, "catch_up_all", then_act)
    found = read_sources(ledger)
    _agree(found)
    counted = set(found.counts["event_type"])
    if folded == ("leases",):
        assert [(r.profile_id, r.state.value) for r in found.profiles] == [
            ("p1", "available"),
            ("p2", "available"),
        ]
        assert "lease_released_cleanly" in counted
    else:
        assert [(r.profile_id, r.state.value) for r in found.profiles] == [("p1", "leased")]
        assert "lease_released_cleanly" not in counted
    monkeypatch.undo()
    after = read_sources(ledger)
    _agree(after)
    assert [(r.profile_id, r.state.value) for r in after.profiles] == [
        ("p1", "available"),
        ("p2", "available"),
    ]
