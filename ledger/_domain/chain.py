"""Each profile's events form a hash chain: an event records the hash of the event before it on
the same stream and its own, over a canonical encoding, so that an edited, deleted, reordered or
inserted event shows.

An event's *body* is its canonical JSON: every field but its stream id and version, as
``json.dumps(sort_keys=True, separators=(",", ":"))`` writes it (ASCII, escapes for everything
else), with its ``class_version``: exactly the bytes a store keeps. Its *header* is what says
which event it is and who made it: profile, version, type, class version, time, actor, role and
the command's ids. The event's hash covers the header, the previous event's hash and the hash
of the body, kept apart (``Link.body``) so that a body's field could one day be redacted without
breaking the chain: the header and the link still prove the event was there.

Everything here is a pure function of its arguments (hashlib and json only): the aggregate links
its events as it triggers them, the fold takes the stored links, and ``custody verify``
recomputes all of them from the stored bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ledger._domain.model import Frozen

# The "previous hash" of a stream's first event.
GENESIS = "0" * 64
# The key a store keeps an event's link under, last in its JSON (``~`` sorts after letters).
CHAIN_KEY = "~chain"
_CHAIN_AT = b',"~chain":'
_DOMAIN = b"custody/event/1\n"
_HEADER_ENVELOPE = (
    "at",
    "actor_id",
    "actor_role",
    "command_id",
    "correlation_id",
    "causation_id",
    "command",
)
_ABSENT = ("",) * len(_HEADER_ENVELOPE)  # what the header holds for an envelope field missing
# What json.dumps(fields, separators=(",", ":")) builds on every call; verify encodes a header
# per event, and building the encoder once halves what one costs. The body's and the link's
# likewise: json.dumps(..., separators=(",", ":"), sort_keys=True), built once.
_HEADER_JSON = json.JSONEncoder(separators=(",", ":"))
_SORTED_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)


class Link(Frozen):
    """An event's place in its profile's chain: the previous event's hash, the hash of this
    event's body, and this event's hash (hex SHA-256 each)."""

    prev: str
    body: str
    hash: str


def body_bytes(dumped: dict[str, Any]) -> bytes:
    """The canonical body of an event from its JSON fields (``model_dump(mode="json")``
    without stream id, version or link, plus ``class_version``)."""
    return _SORTED_JSON.encode(dumped).encode()


def header_bytes(dumped: dict[str, Any], version: int, event_type: str) -> bytes:
    """The canonical header: which event this is, and who made it under which command."""
    return _HEADER_JSON.encode(header_fields(dumped, version, event_type)).encode()


def header_fields(dumped: dict[str, Any], version: int, event_type: str) -> list[Any]:
    """What the header holds, in its order: the JSON array ``header_bytes`` encodes."""
    envelope = dumped["envelope"]
    return [
        dumped["profile_id"],
        version,
        event_type,
        dumped.get("class_version", 1),
        *map(envelope.get, _HEADER_ENVELOPE, _ABSENT),
    ]


def link(prev: str, header: bytes, body: bytes) -> Link:
    """The link of an event with this header and body, after the event hashed ``prev``."""
    body_hash = hashlib.sha256(body).hexdigest()
    return Link(prev=prev, body=body_hash, hash=event_hash(prev, header, body_hash))


def event_hash(prev: str, header: bytes, body_hash: str) -> str:
    """An event's hash: over its header, the previous event's hash and its body's hash."""
    digest = hashlib.sha256(_DOMAIN)
    digest.update(header)
    digest.update(b"\n" + prev.encode() + b"\n" + body_hash.encode())
    return digest.hexdigest()


def stored(body: bytes, chain: Link) -> bytes:
    """What a store keeps for an event: its body with its link as the last key."""
    tail = _SORTED_JSON.encode(chain.__dict__)  # its model_dump(): three texts
    return body[:-1] + _CHAIN_AT + tail.encode() + b"}"


def split(state: bytes) -> tuple[bytes, bytes | None]:
    """A stored event's body and its link's JSON (None: stored before hash chains). The link
    is the last key, so its opening is the last ``,"~chain":`` in the bytes: inside a JSON
    string a quote is always escaped, so no text can fake it."""
    at = state.rfind(_CHAIN_AT)
    if at < 0:
        return state, None
    return state[:at] + b"}", state[at + len(_CHAIN_AT) : -1]
