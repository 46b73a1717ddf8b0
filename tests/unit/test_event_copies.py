"""An event read back without a link (stored before hash chains, at an older class_version)
hashes from the bytes it was stored with, and so does every copy of it. Since those bytes moved
from a pydantic private attribute (which ``copy.copy``, ``copy.deepcopy``, pickling and
``model_copy`` carry over) to a slot of the event's own (which none of them does), a copy of
the very same event hashed from its upcast canonical bytes instead: another hash for one event,
and another head for a profile folded from the copies (found by review11)."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent

from ledger._domain import events as ev
from ledger._domain.chain import GENESIS
from ledger._stores.mapper import ProfileEventMapper

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stored_events"
ORIGINATOR_ID = UUID("4d6fdd5f-8809-5c82-bdeb-c99c9fa07f0c")

# Fixtures stored at a class_version older than their class's: upcast when read back.
OLDER = sorted(
    f.name.removesuffix(".json")
    for f in FIXTURES.glob("*.v1.json")
    if ev.EVENT_CLASSES[f.name.split(".")[0]].class_version > 1
)

COPIES: dict[str, Callable[[Any], Any]] = {
    "copy.copy": copy.copy,
    "copy.deepcopy": copy.deepcopy,
    "pickle": lambda e: pickle.loads(pickle.dumps(e)),  # noqa: S301 (our own bytes)
    "model_copy": lambda e: e.model_copy(),
    "model_copy(deep=True)": lambda e: e.model_copy(deep=True),
}


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("name", OLDER)
def test_a_copy_of_an_event_stored_before_chains_hashes_as_the_event(name: str, how: str) -> None:
    topic = name.split(".")[0]
    row = StoredEvent(
        originator_id=ORIGINATOR_ID,
        originator_version=1,
        topic=topic,
        state=(FIXTURES / f"{name}.json").read_bytes(),
    )
    event = ProfileEventMapper().to_domain_event(row)  # as a store reads it back
    assert event.chain is None
    copied = COPIES[how](event)
    assert copied == event
    assert copied.hash_after(GENESIS) == event.hash_after(GENESIS)


@pytest.mark.parametrize("name", ["lease_heartbeat", "lease_acquired", "profile_registered"])
def test_an_event_linked_in_place_is_the_event_linked_on_a_copy(name: str) -> None:
    """``link_after`` (a command's new event, linked where it was made) gives what ``linked``
    gives: the same fields, fields set, canonical bytes, link and stored bytes."""
    fixture = sorted(FIXTURES.glob(f"{name}.v*.json"))[-1]  # its current class version
    row = StoredEvent(ORIGINATOR_ID, 3, name, fixture.read_bytes())
    read = ProfileEventMapper().to_domain_event(row)

    def made() -> Any:  # as a command makes it: nothing cached, no link
        return type(read).model_validate(read.model_dump(exclude={"chain"}))

    prev = "ab" * 32
    on_a_copy, in_place = made().linked(prev), made().link_after(prev)
    assert in_place.chain is not None
    assert in_place.chain == on_a_copy.chain
    assert in_place == on_a_copy
    assert in_place.model_fields_set == on_a_copy.model_fields_set
    assert (in_place.body(), in_place.header()) == (on_a_copy.body(), on_a_copy.header())
    mapper = ProfileEventMapper()
    assert mapper.to_stored_event(in_place) == mapper.to_stored_event(on_a_copy)
