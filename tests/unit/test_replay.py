"""Replay rebuilds a profile exactly, and events survive the stored format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from profile_scene import Scene, eventful_scene as _eventful_scene

from ledger._domain import events as ev
from ledger._domain.errors import UnreadableEvent
from ledger._domain.profile import Profile, replay
from ledger._domain.snapshot import ProfileSnapshot
from ledger._domain.view import availability_of
from ledger._stores.mapper import ProfileEventMapper


def _rebuilt(events: list[ev.ProfileEvent], initial: Profile | None = None) -> Profile:
    profile = replay(initial, events)
    assert profile is not None
    return profile


def _snapshot(p: Profile) -> tuple[Any, ...]:
    return (availability_of(p), p.lease, p.last_lease, p.block, p.version)


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
    with pytest.raises(UnreadableEvent, match="follows v1: versions between are missing"):
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
        assert state["class_version"] == type(event).class_version
        assert state["profile_id"] == event.profile_id
        assert state["envelope"]["command_id"] == event.envelope.command_id
        assert "originator_id" not in state
        assert "originator_version" not in state


# -- snapshots ------------------------------------------------------------------------------------


def test_snapshot_round_trips_typed_and_restores_an_equal_profile() -> None:
    """A snapshot stored and read back holds typed values (a Lease, not a dict), and restoring
    it then folding the rest equals folding every event."""
    mapper = ProfileEventMapper()
    s = _eventful_scene()
    cut = len(s.history) // 2
    head = _rebuilt(s.history[:cut])
    stored = mapper.to_stored_event(ProfileSnapshot.take(head))
    back = mapper.to_domain_event(stored)
    assert stored.topic == "profile_snapshot"
    assert isinstance(back, ProfileSnapshot)
    assert back.originator_version == cut
    assert back.last_lease is None or type(back.last_lease).__name__ == "Lease"
    rebuilt = _rebuilt([back, *s.history[cut:]])  # type: ignore[list-item]
    assert _snapshot(rebuilt) == _snapshot(s.profile)
    assert (rebuilt.since, rebuilt.last_token, rebuilt.unclean_endings) == (
        s.profile.since,
        s.profile.last_token,
        s.profile.unclean_endings,
    )


@pytest.mark.parametrize("class_version", [1, 2])
def test_a_snapshot_of_an_older_format_still_loads(class_version: int) -> None:
    """A stored snapshot of class_version 1 (command ids as a JSON object) or 2 (packed in
    one string) restores the same state as the current format: the ids are dropped."""
    s = _eventful_scene()
    mapper = ProfileEventMapper()
    stored = mapper.to_stored_event(ProfileSnapshot.take(s.profile))
    state = json.loads(stored.state)
    assert "commands" not in state
    state["class_version"] = class_version
    state["commands"] = {"c1": [1, "register:x"]} if class_version == 1 else '["c1",1,"x"]'
    back = mapper.to_domain_event(
        type(stored)(
            originator_id=stored.originator_id,
            originator_version=stored.originator_version,
            topic=stored.topic,
            state=json.dumps(state).encode(),
        )
    )
    assert _snapshot(_rebuilt([back])) == _snapshot(s.profile)
