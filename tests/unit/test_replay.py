"""Replay rebuilds a profile exactly, and events survive the stored format (and its upcasting)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent
from profile_scene import Scene

from ledger.domain import events as ev
from ledger.domain.model import Outcome, ReviewDecision, Role
from ledger.domain.profile import Profile, replay
from ledger.domain.view import availability_of
from ledger.stores.mapper import ProfileEventMapper


def _eventful_scene() -> Scene:
    """One profile taken through every kind of event the aggregate can record."""
    s = Scene()
    lease = s.checkout("worker-a", 120)
    s.heartbeat(lease, step="login", url="https://shop.example/login", safe=True)
    s.profile.extend(lease.lease_id, lease.fencing_token, 600, s.ctx("worker-a"))
    s.collect()
    s.release(lease, Outcome.SUCCESS)
    lease = s.checkout("worker-b", 60)
    s.heartbeat(lease, step="submit_order", mutating=True)
    s.advance(61)
    s.sweep()
    s.review(ReviewDecision.RETURN)
    s.checkout("worker-c")
    s.force_release()
    s.review(ReviewDecision.DISABLE)
    s.enable()
    s.quarantine()
    s.review(ReviewDecision.RETURN, reviewer="rolf")
    s.advance(3600)
    s.release(s.checkout("worker-d"), prompt_seen=True)
    return s


def _rebuilt(events: list[ev.ProfileEvent], initial: Profile | None = None) -> Profile:
    profile = replay(initial, events)
    assert profile is not None
    return profile


def _snapshot(p: Profile) -> tuple[Any, ...]:
    return (availability_of(p), p.lease, p.last_lease, p.block, p.commands, p.version)


def test_eventful_scene_covers_every_event_type() -> None:
    """The replay fixtures below exercise every event class the stream may hold."""
    assert set(_eventful_scene().types()) == set(ev.EVENT_CLASSES)


def test_replaying_collected_events_rebuilds_an_equal_profile() -> None:
    """Folding a profile's collected events onto nothing gives the live aggregate's state."""
    s = _eventful_scene()
    rebuilt = _rebuilt(s.history)
    assert _snapshot(rebuilt) == _snapshot(s.profile)
    assert (rebuilt.id, rebuilt.state, rebuilt.last_token) == (
        s.profile.id,
        s.profile.state,
        s.profile.last_token,
    )
    assert rebuilt.pending_events == []


def test_replay_in_two_parts_equals_replay_in_one() -> None:
    """Replaying a prefix and then the rest onto it is the same as replaying all at once."""
    s = _eventful_scene()
    for cut in (1, len(s.history) // 2, len(s.history) - 1):
        head = _rebuilt(s.history[:cut])
        assert _snapshot(_rebuilt(s.history[cut:], head)) == _snapshot(s.profile)


def test_replaying_the_same_events_twice_gives_identical_results() -> None:
    """Applying events reads no clock and makes no ids: two replays agree to the last field."""
    s = _eventful_scene()
    first, second = _rebuilt(s.history), _rebuilt(s.history)
    assert _snapshot(first) == _snapshot(second)
    assert first.since == second.since == s.profile.since


def test_replaying_the_registration_alone_gives_available_profile() -> None:
    """A fresh profile's stream is one registration; replaying it yields the registered record."""
    s = Scene()
    rebuilt = _rebuilt(s.history)
    assert rebuilt.registration() == s.profile.registration()
    assert rebuilt.id == Profile.create_id("profile_shop_17")


@pytest.mark.parametrize("skew", [0, 2])
def test_apply_refuses_an_out_of_order_version(skew: int) -> None:
    """``apply`` raises when an event is not the next one in the stream (repeat or gap)."""
    s = Scene()
    s.checkout()
    rebuilt = _rebuilt(s.history[:1])
    wrong = s.history[1].model_copy(update={"originator_version": 1 + skew})
    with pytest.raises(ValueError, match="does not follow 1"):
        rebuilt.apply(wrong)
    assert rebuilt.version == 1


# -- the stored format ----------------------------------------------------------------------------


def test_events_round_trip_through_the_mapper() -> None:
    """to_stored_event then to_domain_event gives back an equal event of the same class."""
    mapper = ProfileEventMapper()
    for event in _eventful_scene().history:
        back = mapper.to_domain_event(mapper.to_stored_event(event))
        assert type(back) is type(event)
        assert back == event


def test_replay_of_decoded_events_rebuilds_an_equal_profile() -> None:
    """A profile rebuilt from stored-and-decoded events equals the live aggregate."""
    mapper = ProfileEventMapper()
    s = _eventful_scene()
    decoded = [mapper.to_domain_event(mapper.to_stored_event(e)) for e in s.history]
    assert _snapshot(_rebuilt(decoded)) == _snapshot(s.profile)


def test_stored_state_is_json_under_the_event_type_topic() -> None:
    """The stored topic is the event type and the state is the event's JSON with its version."""
    mapper = ProfileEventMapper()
    for event in _eventful_scene().history:
        stored = mapper.to_stored_event(event)
        assert stored.topic == event.event_type
        assert (stored.originator_id, stored.originator_version) == (
            event.originator_id,
            event.originator_version,
        )
        state = json.loads(stored.state)
        assert state["class_version"] == 1
        assert state["profile_id"] == event.profile_id
        assert state["envelope"]["command_id"] == event.envelope.command_id
        assert "originator_id" not in state
        assert "originator_version" not in state


class _LeaseExtendedV2(ev.LeaseExtended):
    """A hypothetical second version of lease_extended that names who extended the lease."""

    class_version = 2
    extended_by: str


def _old_extended_state(with_version: bool) -> bytes:
    s = Scene()
    lease = s.checkout("worker-a")
    s.profile.extend(lease.lease_id, lease.fencing_token, 900, s.ctx("worker-a"))
    state = json.loads(ProfileEventMapper().to_stored_event(s.collect()[-1]).state)
    if not with_version:
        del state["class_version"]
    return json.dumps(state).encode()


@pytest.mark.parametrize("with_version", [True, False])
def test_old_stored_event_is_upcast_to_the_current_class_version(
    monkeypatch: pytest.MonkeyPatch, with_version: bool
) -> None:
    """A stored v1 event (or one without a version) passes its upcaster and loads as v2."""
    calls: list[dict[str, Any]] = []

    def v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
        calls.append(state)
        return {**state, "extended_by": state["envelope"]["actor_id"]}

    old = _old_extended_state(with_version)
    monkeypatch.setitem(ev.EVENT_CLASSES, "lease_extended", _LeaseExtendedV2)
    monkeypatch.setitem(ev.UPCASTERS, ("lease_extended", 1), v1_to_v2)
    uid = Profile.create_id("profile_shop_17")
    stored = StoredEvent(originator_id=uid, originator_version=3, topic="lease_extended", state=old)
    event = ProfileEventMapper().to_domain_event(stored)
    assert isinstance(event, _LeaseExtendedV2)
    assert event.extended_by == "worker-a"
    assert (event.ttl_seconds, event.originator_version, event.originator_id) == (900, 3, uid)
    assert len(calls) == 1
    assert "class_version" not in calls[0]


def test_current_version_event_is_not_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event stored at the current class_version loads without passing any upcaster."""

    def refuse(state: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("upcaster ran on a current event")

    monkeypatch.setitem(ev.EVENT_CLASSES, "lease_extended", _LeaseExtendedV2)
    monkeypatch.setitem(ev.UPCASTERS, ("lease_extended", 1), refuse)
    s = Scene()
    lease = s.checkout("worker-a")
    ctx = s.ctx("worker-a", Role.WORKER)
    s.profile.extend(lease.lease_id, lease.fencing_token, 900, ctx)
    v1 = s.collect()[-1]
    v2 = _LeaseExtendedV2(**v1.model_dump(), extended_by="worker-a")
    mapper = ProfileEventMapper()
    stored = mapper.to_stored_event(v2)
    assert json.loads(stored.state)["class_version"] == 2
    assert mapper.to_domain_event(stored) == v2
