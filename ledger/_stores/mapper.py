"""Stored event format under our control: topic = event type, state = the event's JSON.

The state is the event's canonical body (``ledger._domain.chain``) with its hash-chain link as
the last key, ``"~chain"``: the bytes tamper evidence hashes are exactly the stored ones. We keep
the format ours (not the library's module-path topics), so renaming a Python class never
orphans stored events.

The events and the snapshot are imported by the functions that build or decode them, so that a
store opened only to read its tables imports neither (``ledger._stores.store``).
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent

from ledger._domain.chain import CHAIN_KEY, Link, header_bytes, split, stored

if TYPE_CHECKING:
    from ledger._domain.events import ProfileEvent
    from ledger._domain.snapshot import ProfileSnapshot

# The topic a snapshot is stored under (an event's is its event type): a load that finds none
# never imports the snapshot's model.
SNAPSHOT_TOPIC = "profile_snapshot"


class ProfileEventMapper(Mapper[UUID]):
    """Maps ``ProfileEvent`` models to ``StoredEvent`` rows and back."""

    def __init__(self) -> None:
        super().__init__(transcoder=JSONTranscoder())

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        from ledger._domain.snapshot import ProfileSnapshot

        if isinstance(domain_event, ProfileSnapshot):
            return _stored_snapshot(domain_event)
        event: ProfileEvent = domain_event
        body = event.body()
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=event.event_type,
            state=stored(body, event.chain) if event.chain is not None else body,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        if stored_event.topic == SNAPSHOT_TOPIC:
            return _readable_snapshot(stored_event)
        topic, version = stored_event.topic, stored_event.originator_version
        try:
            return decode(topic, stored_event.state, stored_event.originator_id, version)
        except Exception as e:  # one line naming the event, not a traceback
            from ledger._domain.errors import UnreadableEvent

            # A topic is text as custody writes it; a cell a hand left NULL is named as it is.
            shown = topic[:40] if isinstance(topic, str) else topic
            event = f"the event {shown!r} v{version}{_of_profile(stored_event.state)}"
            raise UnreadableEvent(event, complaint(e)) from e


def _of_profile(state: bytes) -> str:
    """Whose event ``state`` says it is, as a line can name it ('' if it says no profile):
    a load that meets it may be one of many (``custody init``'s migrations load every one)."""
    try:
        profile_id = decode_profile_id(state)
    except Exception:  # a body that names no profile: the event's type and version must do
        return ""
    return f" of profile {profile_id[:128]!r}" if isinstance(profile_id, str) else ""


def complaint(error: Exception) -> str:
    """What a decoder's error says first: a validation error's first field and what is
    wrong with it, any other error's first line, after its type."""
    said = (str(error).splitlines() or [""])[0]
    errors = getattr(error, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):
            first = errors()[0]
            said = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
    return f"{type(error).__name__}: {said}"[:200]


def _stored_snapshot(snapshot: ProfileSnapshot) -> StoredEvent:
    from ledger._domain.snapshot import ProfileSnapshot

    state = snapshot.model_dump(mode="json", exclude={"originator_id", "originator_version"})
    state["class_version"] = ProfileSnapshot.class_version
    return StoredEvent(
        originator_id=snapshot.originator_id,
        originator_version=snapshot.originator_version,
        topic=SNAPSHOT_TOPIC,
        state=json.dumps(state, separators=(",", ":"), sort_keys=True).encode(),
    )


# Fields a snapshot came to carry without a new ``class_version`` (ca2ce1b, schema 15): a
# snapshot written by a custody of that schema from before them, or by an older process left
# running across ``custody init``, lacks them, and a load from it would forget them (rev30: it
# forgot which workers' runs a quarantine lists, so one of them could clear it).
_CARRIED_SINCE_SCHEMA_15 = ("unclean_runs", "last_at")


def readable_snapshot(stored: StoredEvent) -> ProfileSnapshot:
    """A row of the snapshots table as a load decodes it: ``UnreadableSnapshot`` (one line,
    the repair named) for one whose topic is not a snapshot's, edited by hand (rev31 reread:
    it was decoded as an event and named as one, the repair left out), or no load can decode."""
    if stored.topic != SNAPSHOT_TOPIC:
        from ledger._domain.errors import UnreadableSnapshot

        shown = stored.topic[:40] if isinstance(stored.topic, str) else stored.topic
        problem = f"its topic is {shown!r}, not a snapshot's"
        raise UnreadableSnapshot(stored.originator_version, problem, _snapshot_of(stored.state))
    return _readable_snapshot(stored)


def _readable_snapshot(stored: StoredEvent) -> ProfileSnapshot:
    """``_snapshot``, raising ``UnreadableSnapshot`` (one line, the repair named) for one no
    load can decode (rev31: its JSON or pydantic error came out as an internal error)."""
    from ledger._domain.errors import OlderSnapshot, UnreadableSnapshot

    try:
        return _snapshot(stored)
    except OlderSnapshot:
        raise
    except Exception as e:
        version = stored.originator_version
        raise UnreadableSnapshot(version, complaint(e), _snapshot_of(stored.state)) from e


def _snapshot_of(state: bytes) -> str | None:
    """The profile a snapshot's stored state names, if it reads as JSON naming one."""
    try:
        profile_id = json.loads(state).get("profile_id")
    except Exception:  # whatever the bytes are, the load names the profile
        return None
    return profile_id if isinstance(profile_id, str) else None


def _snapshot(stored: StoredEvent) -> ProfileSnapshot:
    """A stored snapshot; ``OlderSnapshot`` for one without a field the fold now keeps (loads
    pass over it: ``CurrentSnapshots``). Changing the snapshot's fields means a new
    ``class_version`` and deleting the stored snapshots (they are a cache: the events rebuild
    them)."""
    from ledger._domain.errors import OlderSnapshot
    from ledger._domain.snapshot import ProfileSnapshot

    data: dict[str, Any] = json.loads(stored.state)
    if isinstance(data, dict) and not all(k in data for k in _CARRIED_SINCE_SCHEMA_15):
        lacks = [k for k in _CARRIED_SINCE_SCHEMA_15 if k not in data]  # rev30: named both
        raise OlderSnapshot(f"a snapshot without {', '.join(lacks)}")
    if data.pop("class_version", 1) < 3:  # 1 and 2 carried the command ids: not state now
        data.pop("commands", None)
    data["originator_id"] = stored.originator_id
    data["originator_version"] = stored.originator_version
    return ProfileSnapshot.model_validate(data)


def decode_data(topic: str, state: bytes) -> dict[str, Any]:
    """A stored event's fields as JSON gives them, upcast from older versions: the event's
    ``model_dump(mode="json")`` without its stream id, version and link."""
    from ledger._domain.events import upcast

    data: dict[str, Any] = json.loads(state)
    data.pop(CHAIN_KEY, None)
    return upcast(topic, data, data.pop("class_version", 1))


def decode(
    topic: str, state: bytes, originator_id: UUID | str, version: int, *, shown: bool = False
) -> ProfileEvent:
    """Rebuild a domain event from its stored topic and bytes, upcasting old versions; with
    ``shown``, its text as a read model can hold it (``decode_shown``)."""
    body, chain = split(state)
    raw: dict[str, Any] = json.loads(body)
    # What an event stored before hash chains hashes (as stored, before any upcast); a linked
    # event's hash is its link's.
    header = header_bytes(raw, version, topic) if chain is None else None
    event = event_of(
        topic, raw, originator_id, version, _link(chain), shown=shown and _NUL_IN_JSON in body
    )
    if header is not None:
        event.as_stored(body, header)
    return event


def event_of(
    topic: str,
    raw: dict[str, Any],
    originator_id: UUID | str,
    version: int,
    link: Link | None = None,
    *,
    shown: bool = False,
) -> ProfileEvent:
    """The domain event of a stored event's parsed JSON body ``raw`` (taken, and changed),
    upcast from older versions, with its stream, version and link: what ``decode`` makes of
    its bytes (``read_of`` with its link's JSON)."""
    from ledger._domain.events import EVENT_CLASSES, upcast

    data = upcast(topic, raw, raw.pop("class_version", 1))
    if shown:
        data = _shown(data)
    data["originator_id"] = originator_id
    data["originator_version"] = version
    if link is not None:
        data["chain"] = link
    return EVENT_CLASSES[topic].model_validate(data)


def read_of(
    topic: str, raw: dict[str, Any], originator_id: UUID | str, version: int, link: bytes | None
) -> ProfileEvent:
    """``event_of`` with its link's stored JSON (None: none), which ``decode`` reads too: what
    ``custody verify`` asks of every event it walks."""
    return event_of(topic, raw, originator_id, version, _link(link))


def _link(chain: bytes | None) -> Link | None:
    return Link.model_validate_json(chain) if chain is not None else None


def decode_shown(topic: str, state: bytes) -> dict[str, Any]:
    """``decode_data``, with any NUL character in a text written as ``\\x00``. custody has
    refused NUL at the door since read models were promised to hold every text exactly; an
    event stored before that may hold one, which PostgreSQL's text columns cannot. Its read
    model rows show it escaped, as the command line shows a control character; the event
    itself (``history``, ``why``, ``who``) keeps it. Only the stored JSON's escape is looked
    for, so an event without one costs a byte search."""
    data = decode_data(topic, state)
    return _shown(data) if _NUL_IN_JSON in state else data


_NUL_IN_JSON = b"\\u0000"  # how json.dumps writes a NUL (and only candidates contain it)


def _shown(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\\x00")
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    return value


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
