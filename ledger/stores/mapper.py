"""Stored event format under our control: topic = event type, state = the event's JSON.

We keep the format ours (not the library's module-path topics) so later tamper evidence can hash
exactly these bytes, and renaming a Python class never orphans stored events.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from ledger.domain.events import EVENT_CLASSES, ProfileEvent, upcast
from ledger.domain.snapshot import SNAPSHOT_TOPIC, ProfileSnapshot


class ProfileEventMapper(Mapper[UUID]):
    """Maps ``ProfileEvent`` models to ``StoredEvent`` rows and back."""

    def __init__(self) -> None:
        super().__init__(transcoder=JSONTranscoder())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        if isinstance(domain_event, ProfileSnapshot):
            return _stored_snapshot(domain_event)
        event: ProfileEvent = domain_event
        state = event.model_dump(mode="json", exclude={"originator_id", "originator_version"})
        state["class_version"] = type(event).class_version
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=event.event_type,
            state=json.dumps(state, separators=(",", ":"), sort_keys=True).encode(),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        if stored_event.topic == SNAPSHOT_TOPIC:
            return _snapshot(stored_event)
        return decode(
            stored_event.topic,
            stored_event.state,
            stored_event.originator_id,
            stored_event.originator_version,
        )


def _stored_snapshot(snapshot: ProfileSnapshot) -> StoredEvent:
    state = snapshot.model_dump(mode="json", exclude={"originator_id", "originator_version"})
    state["class_version"] = ProfileSnapshot.class_version
    return StoredEvent(
        originator_id=snapshot.originator_id,
        originator_version=snapshot.originator_version,
        topic=SNAPSHOT_TOPIC,
        state=json.dumps(state, separators=(",", ":"), sort_keys=True).encode(),
    )


def _snapshot(stored: StoredEvent) -> ProfileSnapshot:
    """A stored snapshot. Changing the snapshot's fields means a new ``class_version`` and
    deleting the stored snapshots (they are a cache: the events rebuild them)."""
    data: dict[str, Any] = json.loads(stored.state)
    if data.pop("class_version", 1) < 3:  # 1 and 2 carried the command ids: not state now
        data.pop("commands", None)
    data["originator_id"] = stored.originator_id
    data["originator_version"] = stored.originator_version
    return ProfileSnapshot.model_validate(data)


def decode_data(topic: str, state: bytes) -> dict[str, Any]:
    """A stored event's fields as JSON gives them, upcast from older versions: the event's
    ``model_dump(mode="json")`` without its stream id and version."""
    data: dict[str, Any] = json.loads(state)
    return upcast(topic, data, data.pop("class_version", 1))


def decode(topic: str, state: bytes, originator_id: UUID | str, version: int) -> ProfileEvent:
    """Rebuild a domain event from its stored topic and bytes, upcasting old versions."""
    data = decode_data(topic, state)
    data["originator_id"] = originator_id
    data["originator_version"] = version
    return EVENT_CLASSES[topic].model_validate(data)


def command_of(state: bytes) -> tuple[str, str, str]:
    """The (command id, profile id, command fingerprint) a stored event names, without
    building the whole event."""
    data = json.loads(state)
    envelope = data["envelope"]
    return str(envelope["command_id"]), str(data["profile_id"]), str(envelope.get("command", ""))


def decode_profile_id(state: bytes) -> str:
    """The profile id a stored event names, without building the whole event."""
    profile_id: str = json.loads(state)["profile_id"]
    return profile_id
