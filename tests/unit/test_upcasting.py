"""Old stored events load as today's classes, through their upcasters, field by field.

The old payloads here are written by hand, the way an earlier release stored them; today's code
never produced them, so they cannot drift with it. Each test pretends today's
``lease_heartbeat`` is version 2 (or 3) of an event whose version 1 stored the step as
``checkpoint`` and the safe flag as ``safe_point`` and had no ``mutating`` flag, and registers
the upcasters that release would have shipped. An upcaster writes today's field names, so
renaming a field of ``LeaseHeartbeat`` without a new version and upcaster fails these tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from ledger._domain import events as ev
from ledger._domain.model import Envelope, Role
from ledger._stores.mapper import ProfileEventMapper, decode

ORIGINATOR_ID = UUID("4d6fdd5f-8809-5c82-bdeb-c99c9fa07f0c")

# lease_heartbeat as version 1 stored it: its envelope had no reason and no command yet.
HEARTBEAT_V1 = (
    b'{"checkpoint":"login","class_version":1,"envelope":{"actor_id":"worker-a",'
    b'"actor_role":"worker","at":"2024-05-01T09:00:03.250000Z","causation_id":"cause-3",'
    b'"command_id":"cmd-3","correlation_id":"corr-3"},"expires_at":"2024-05-01T09:05:03Z",'
    b'"fencing_token":3,"lease_id":"lease-3@profile_shop_17","profile_id":"profile_shop_17",'
    b'"safe_point":true,"url":"https://shop.example/login"}'
)

# The same event as today's code stores it once upcast (keys sorted, as the mapper writes).
HEARTBEAT_UPCAST = {
    "class_version": 2,
    "envelope": {
        "actor_id": "worker-a",
        "actor_role": "worker",
        "at": "2024-05-01T09:00:03.250000Z",
        "causation_id": "cause-3",
        "command": "",
        "command_id": "cmd-3",
        "correlation_id": "corr-3",
        "reason": "",
    },
    "expires_at": "2024-05-01T09:05:03Z",
    "fencing_token": 3,
    "lease_id": "lease-3@profile_shop_17",
    "mutating": False,
    "profile_id": "profile_shop_17",
    "safe": True,
    "step": "login",
    "url": "https://shop.example/login",
}

State = dict[str, Any]


def heartbeat_v1_to_v2(state: State) -> State:
    """What release 2 shipped: rename checkpoint and safe_point; old steps never mutated."""
    upcast = {k: v for k, v in state.items() if k not in ("checkpoint", "safe_point")}
    return {**upcast, "step": state["checkpoint"], "safe": state["safe_point"], "mutating": False}


def _pretend_heartbeat_is(
    monkeypatch: pytest.MonkeyPatch,
    version: int,
    upcasters: dict[int, Callable[[State], State]],
) -> None:
    monkeypatch.setattr(ev.LeaseHeartbeat, "class_version", version)
    for from_version, upcaster in upcasters.items():
        monkeypatch.setitem(ev.UPCASTERS, ("lease_heartbeat", from_version), upcaster)


def _without_class_version(payload: bytes) -> bytes:
    state = json.loads(payload)
    del state["class_version"]
    return json.dumps(state).encode()


@pytest.mark.parametrize(
    "payload",
    [HEARTBEAT_V1, _without_class_version(HEARTBEAT_V1)],
    ids=["stored-as-v1", "stored-without-version"],
)
def test_a_hand_written_v1_heartbeat_is_upcast_to_todays_class(
    monkeypatch: pytest.MonkeyPatch, payload: bytes
) -> None:
    """A v1 payload (or one from before versions were stored) passes its upcaster once and
    loads as today's LeaseHeartbeat with every field where today's class keeps it."""
    seen: list[State] = []

    def spy(state: State) -> State:
        seen.append(dict(state))
        return heartbeat_v1_to_v2(state)

    _pretend_heartbeat_is(monkeypatch, 2, {1: spy})
    stored = StoredEvent(
        originator_id=ORIGINATOR_ID, originator_version=3, topic="lease_heartbeat", state=payload
    )
    event = ProfileEventMapper().to_domain_event(stored)

    assert type(event) is ev.LeaseHeartbeat
    assert (event.originator_id, event.originator_version) == (ORIGINATOR_ID, 3)
    assert event.profile_id == "profile_shop_17"
    assert (event.step, event.safe, event.mutating) == ("login", True, False)
    assert (event.url, event.lease_id, event.fencing_token) == (
        "https://shop.example/login",
        "lease-3@profile_shop_17",
        3,
    )
    assert event.expires_at == datetime(2024, 5, 1, 9, 5, 3, tzinfo=UTC)
    assert event.envelope == Envelope(
        actor_id="worker-a",
        actor_role=Role.WORKER,
        correlation_id="corr-3",
        causation_id="cause-3",
        command_id="cmd-3",
        at=datetime(2024, 5, 1, 9, 0, 3, 250000, tzinfo=UTC),
    )
    assert len(seen) == 1
    assert "class_version" not in seen[0]
    assert seen[0]["checkpoint"] == "login"


def test_an_upcast_heartbeat_is_stored_again_in_todays_layout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Re-encoding an upcast event writes today's field names and the current class_version,
    never the old layout."""
    _pretend_heartbeat_is(monkeypatch, 2, {1: heartbeat_v1_to_v2})
    mapper = ProfileEventMapper()
    event = decode("lease_heartbeat", HEARTBEAT_V1, ORIGINATOR_ID, 3)
    restored = mapper.to_stored_event(event)
    assert json.loads(restored.state) == HEARTBEAT_UPCAST
    assert mapper.to_domain_event(restored) == event


def test_upcasters_run_in_version_order_from_the_stored_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A v1 event under a v3 class passes 1->2 then 2->3, each once and in that order; a v2
    event passes only 2->3."""
    calls: list[str] = []

    def v1_to_v2(state: State) -> State:
        calls.append("1->2")
        return heartbeat_v1_to_v2(state)

    def v2_to_v3(state: State) -> State:
        calls.append("2->3")
        assert "step" in state, "2->3 ran before 1->2"
        return {**state, "url": state["url"].replace("http://", "https://")}

    _pretend_heartbeat_is(monkeypatch, 3, {1: v1_to_v2, 2: v2_to_v3})
    old = HEARTBEAT_V1.replace(b"https://", b"http://")
    assert decode("lease_heartbeat", old, ORIGINATOR_ID, 3).url == "https://shop.example/login"
    assert calls == ["1->2", "2->3"]

    calls.clear()
    v2 = json.dumps({**HEARTBEAT_UPCAST, "url": "http://shop.example/login"}).encode()
    assert decode("lease_heartbeat", v2, ORIGINATOR_ID, 3).step == "login"
    assert calls == ["2->3"]


def test_an_event_at_the_current_version_passes_no_upcaster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An event stored at its class's current version loads as stored; no upcaster runs."""

    def refuse(state: State) -> State:
        raise AssertionError("an upcaster ran on a current event")

    _pretend_heartbeat_is(monkeypatch, 2, {1: refuse})
    current = json.dumps(HEARTBEAT_UPCAST).encode()
    event = decode("lease_heartbeat", current, ORIGINATOR_ID, 3)
    assert (event.step, event.safe, event.mutating) == ("login", True, False)


def test_an_old_event_without_its_upcaster_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A version bump shipped without its upcaster fails loudly on an old event rather than
    loading the old layout as if it were new."""
    _pretend_heartbeat_is(monkeypatch, 2, {})
    with pytest.raises(KeyError, match="lease_heartbeat"):
        decode("lease_heartbeat", HEARTBEAT_V1, ORIGINATOR_ID, 3)


# --- the shipped upcasters: lease_release_requested v1 -> v2 (the screenshot's digest) and
# v2 -> v3 (what went wrong with the evidence) ----------------------------------------------

STORED_EVENTS = Path(__file__).parent.parent / "fixtures" / "stored_events"
RELEASE_V1 = STORED_EVENTS / "lease_release_requested.v1.json"
RELEASE_V2 = STORED_EVENTS / "lease_release_requested.v2.json"


def _spied(monkeypatch: pytest.MonkeyPatch, from_version: int, calls: list[str]) -> None:
    """Wrap the shipped upcaster from ``from_version``, noting each call and what it saw."""
    shipped = ev.UPCASTERS[("lease_release_requested", from_version)]

    def spy(state: State) -> State:
        calls.append(f"{from_version}->{from_version + 1}: {sorted(state)}")
        return shipped(state)

    monkeypatch.setitem(ev.UPCASTERS, ("lease_release_requested", from_version), spy)


def test_a_pinned_v1_release_passes_the_shipped_upcasters_and_has_no_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The release event stored before version 2 (the pinned bytes) passes the upcasters in
    UPCASTERS, 1->2 then 2->3, each once, and loads as today's class with its digest unknown
    and no evidence problem (None) and every other field as stored."""
    calls: list[str] = []
    _spied(monkeypatch, 1, calls)
    _spied(monkeypatch, 2, calls)
    stored = RELEASE_V1.read_bytes()
    assert json.loads(stored)["class_version"] == 1
    assert ev.LeaseReleaseRequested.class_version == 3
    event = decode("lease_release_requested", stored, ORIGINATOR_ID, 5)
    assert type(event) is ev.LeaseReleaseRequested
    assert event.screenshot == "/shots/run-42/final.png"
    assert (event.screenshot_sha256, event.evidence_problem) == (None, None)
    assert [c.split(":")[0] for c in calls] == ["1->2", "2->3"]
    assert "screenshot_sha256" not in calls[0]
    assert "screenshot_sha256" in calls[1]
    assert "evidence_problem" not in calls[1]


def test_a_pinned_v2_release_passes_only_the_v2_upcaster_and_keeps_its_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A release stored at version 2 passes 2->3 alone: its digest stays, its evidence problem
    is None (version 2 could not say one)."""
    calls: list[str] = []
    _spied(monkeypatch, 1, calls)
    _spied(monkeypatch, 2, calls)
    event = decode("lease_release_requested", RELEASE_V2.read_bytes(), ORIGINATOR_ID, 5)
    assert event.screenshot_sha256 == json.loads(RELEASE_V2.read_bytes())["screenshot_sha256"]
    assert event.evidence_problem is None
    assert [c.split(":")[0] for c in calls] == ["2->3"]


@pytest.mark.parametrize("fixture", [RELEASE_V1, RELEASE_V2], ids=["v1", "v2"])
def test_an_upcast_release_is_stored_again_at_the_current_version(fixture: Path) -> None:
    """Re-encoding an upcast v1 or v2 release writes class_version 3 with explicit nulls for
    what it could not know, every stored field unchanged, and that decodes to the same event
    without passing an upcaster."""
    event = decode("lease_release_requested", fixture.read_bytes(), ORIGINATOR_ID, 5)
    restored = ProfileEventMapper().to_stored_event(event)
    state = json.loads(restored.state)
    old = json.loads(fixture.read_bytes())
    assert state["class_version"] == 3
    assert state["evidence_problem"] is None
    assert state["screenshot_sha256"] == old.get("screenshot_sha256")
    added = ("class_version", "screenshot_sha256", "evidence_problem")
    assert {k: v for k, v in state.items() if k not in added} == {
        k: v for k, v in old.items() if k not in added
    }
    assert decode("lease_release_requested", restored.state, ORIGINATOR_ID, 5) == event
