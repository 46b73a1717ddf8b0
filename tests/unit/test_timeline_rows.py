"""A timeline row is made from an event's stored JSON, never from its decoded model: the row
must be the one the model gives, field for field."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from profile_scene import eventful_scene

from ledger._domain import events as ev
from ledger._stores.mapper import ProfileEventMapper, decode_data
from projections._base import iso
from projections._timeline import flat

_IDS = {"originator_id", "originator_version"}


def test_a_row_from_the_stored_json_equals_the_row_from_the_model() -> None:
    """For every kind of event (and an upcast one): the stored bytes sort their keys and write
    times in JSON's form, and the row is still the one the model's own dump gives.
    Guard: ``_payload_fields`` (detail in the model's field order)."""
    events = eventful_scene().history
    assert {e.event_type for e in events} == set(ev.EVENT_CLASSES)
    mapper = ProfileEventMapper()
    for event in events:
        stored = mapper.to_stored_event(event)
        from_store = flat(
            event.event_type, event.originator_version, decode_data(stored.topic, stored.state)
        )
        from_model = flat(
            event.event_type, event.originator_version, event.model_dump(mode="json", exclude=_IDS)
        )
        assert from_store == from_model, event.event_type
        assert from_store["at"] == event.envelope.at.isoformat(timespec="microseconds")


def test_an_upcast_event_gives_the_row_of_its_current_version() -> None:
    """A release request stored at class_version 1 (before the screenshot digest) gives the
    row its upcast model gives."""
    request = next(e for e in eventful_scene().history if e.event_type == "lease_release_requested")
    stored = ProfileEventMapper().to_stored_event(request)
    old = json.loads(stored.state)
    old["class_version"] = 1
    del old["screenshot_sha256"]
    data = decode_data(stored.topic, json.dumps(old).encode())
    upcast = ev.LeaseReleaseRequested.model_validate(
        {**data, "originator_id": request.originator_id, "originator_version": 3}
    )
    assert flat(request.event_type, 3, data) == flat(
        request.event_type, 3, upcast.model_dump(mode="json", exclude=_IDS)
    )


@pytest.mark.parametrize(
    "at",
    [
        datetime(2026, 11, 28, 3, 15, 0, 120000, tzinfo=UTC),
        datetime(2026, 11, 28, 3, 15, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 28, 3, 15, 0, 5, tzinfo=UTC),
        datetime(2026, 11, 28, 4, 15, 0, 5, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_a_row_keeps_the_time_as_iso_text_however_json_wrote_it(at: datetime) -> None:
    """The row's time is ``iso`` of the event's time (UTC, microseconds, +00:00), whether the
    JSON has microseconds or not: the text the timeline's indexes sort and compare."""
    event = eventful_scene().history[0]
    data = event.model_dump(mode="json", exclude=_IDS)
    data["envelope"] = event.envelope.model_copy(update={"at": at}).model_dump(mode="json")
    assert flat(event.event_type, 1, data)["at"] == iso(at)
