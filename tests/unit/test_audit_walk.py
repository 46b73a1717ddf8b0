"""verify's walk over the log reaches, through its shortcut for events stored intact, exactly
what checking every stored event one by one (``Walk.take``) reaches: the same problems, heads,
tree and digest evidence, on an intact log and on one edited in any byte or order."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings, strategies as st
from profile_scene import Scene, eventful_scene

from ledger._audit.merkle import TreeBuilder, consistency_ranges, leaf_hash
from ledger._audit.walk import Row, Walk, walk
from ledger._domain.chain import header_bytes, header_fields, link, split, stored
from ledger._domain.model import Outcome
from ledger._domain.profile import Profile
from ledger._stores.mapper import ProfileEventMapper


def _log() -> list[Row]:
    """Three profiles' events, interleaved as a store's log holds them: one through every
    kind of event, two through lease cycles (one with texts outside ASCII in its events)."""
    streams = [eventful_scene().history]
    for name, worker, note in (
        ("profile_b", "worker-b", "plain"),
        ("profile_u", "wörker", "Grüße"),  # an id register takes: ASCII
    ):
        scene = Scene(name)
        for _ in range(3):
            lease = scene.checkout(worker)
            scene.heartbeat(lease, step=note, url=f"https://shop.example/{note}")
            scene.release(lease, Outcome.SUCCESS)
        streams.append(scene.history)
    mapper, rows = ProfileEventMapper(), []
    for i in range(max(map(len, streams))):
        for history in streams:
            if i < len(history):
                event = mapper.to_stored_event(history[i])
                stream = Profile.create_id(history[i].profile_id).hex
                rows.append(
                    (len(rows) + 1, stream, event.originator_version, event.topic, event.state)
                )
    return rows


LOG = _log()


def _pages(rows: list[Row]) -> Callable[[int, int], list[Row]]:
    """The log in pages of at most 7 rows (so that pages end mid-stream), as ``logged_events``
    serves it."""
    return lambda after, limit: [r for r in rows if after is None or r[0] > after][: min(limit, 7)]


def _one_by_one(rows: list[Row], state: Walk) -> Walk:
    for row in rows:
        state.take(row)
    state.finish()
    return state


def _outcome(state: Walk) -> tuple[Any, ...]:
    streams = {
        p: (s.version, s.head, s.position, dict(s.hashes_at)) for p, s in state.streams.items()
    }
    problems = [p.line() for p in state.problems]
    tree = (state.events, state.tree.root(), dict(state.tree.found), dict(state.roots))
    return problems, streams, tree, state.last_position


def _digest_options(rows: list[Row]) -> dict[str, Any]:
    """What verify asks the walk to keep when it checks two digests."""
    n = max(len(rows), 2)
    profiles = {json.loads(split(r[4])[0])["profile_id"] for r in LOG}
    return {
        "watch": {(p, v) for p in profiles for v in (1, 2, 9, 40)},
        "sizes": {1, 3, n - 1, n},
        "wanted": frozenset(consistency_ranges(3, n)),
    }


def _same_either_way(rows: list[Row], **options: Any) -> tuple[Any, ...]:
    """The walk's outcome, asserted equal to taking each row one by one (or failing alike)."""
    try:
        expected: tuple[Any, ...] | type[BaseException] = _outcome(
            _one_by_one(rows, Walk(**options))
        )
    except Exception as e:
        expected = type(e)
    if isinstance(expected, type):
        with pytest.raises(expected):
            walk(_pages(rows), Walk(**options))
        return ()
    walked = _outcome(walk(_pages(rows), Walk(**options)))
    assert walked == expected
    return walked


def test_an_intact_log_walks_to_its_heads_and_the_tree_of_its_hashes() -> None:
    """Nothing wrong; each profile's head is its last event's link; the tree is over every
    event's hash in log order; with digests to check, the same and what they ask for."""
    problems, streams, (events, root, _, _), last = _same_either_way(LOG)
    assert problems == []
    assert events == len(LOG)
    assert last == LOG[-1][0]
    tree, heads = TreeBuilder(), {}
    for row in LOG:
        body, chain = split(row[4])
        own = json.loads(chain or b"{}")["hash"]
        tree.add(leaf_hash(bytes.fromhex(own)))
        heads[json.loads(body)["profile_id"]] = own
    assert root == tree.root()
    assert {p: s[1] for p, s in streams.items()} == heads
    assert _same_either_way(LOG, **_digest_options(LOG))[0] == []


_EDITS = st.sampled_from(["replace", "delete", "insert", "unlink"])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), edit=_EDITS, digests=st.booleans())
def test_a_row_edited_anywhere_walks_as_taken_one_by_one(
    data: st.DataObject, edit: str, digests: bool
) -> None:
    """One stored event edited in one byte (or stripped of its link): the walk names the same
    problems, keeps the same heads and builds the same tree as ``take`` row by row."""
    rows = list(LOG)
    i = data.draw(st.integers(0, len(rows) - 1), label="row")
    position, stream, version, topic, state = rows[i]
    at = data.draw(st.integers(0, len(state) - 1), label="at")
    byte = bytes([data.draw(st.sampled_from(b'{}[]",:\\ 0aef\x00\xff\x7f'), label="byte")])
    if edit == "replace":
        state = state[:at] + byte + state[at + 1 :]
    elif edit == "delete":
        state = state[:at] + state[at + 1 :]
    elif edit == "insert":
        state = state[:at] + byte + state[at:]
    else:
        state = split(state)[0]
    rows[i] = (position, stream, version, topic, state)
    _same_either_way(rows, **(_digest_options(rows) if digests else {}))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), edit=st.sampled_from(["swap", "drop", "repeat", "renumber"]))
def test_rows_moved_dropped_or_repeated_walk_as_taken_one_by_one(
    data: st.DataObject, edit: str
) -> None:
    """Events reordered, deleted, repeated or given another version: same outcome."""
    rows = list(LOG)
    i = data.draw(st.integers(0, len(rows) - 2), label="row")
    j = data.draw(st.integers(i + 1, len(rows) - 1), label="other")
    if edit == "swap":
        rows[i], rows[j] = (rows[i][0], *rows[j][1:]), (rows[j][0], *rows[i][1:])
    elif edit == "drop":
        del rows[i]
    elif edit == "repeat":
        rows.insert(j, rows[i])
        rows = [(n, *r[1:]) for n, r in enumerate(rows, start=1)]
    else:
        version = data.draw(st.integers(0, 60), label="version")
        rows[i] = (rows[i][0], rows[i][1], version, *rows[i][3:])
    _same_either_way(rows)


def _relinked(i: int, body: bytes, *, header_from: bytes | None = None) -> list[Row]:
    """The log with row ``i``'s body replaced and its link recomputed, as someone who knows
    the scheme would do, over the header of ``header_from`` (default: the new body)."""
    position, stream, version, topic, state = LOG[i]
    prev = json.loads(split(state)[1] or b"{}")["prev"]
    parsed = json.loads(header_from if header_from is not None else body)
    rows = list(LOG)
    rows[i] = (
        position,
        stream,
        version,
        topic,
        stored(body, link(prev, header_bytes(parsed, version, topic), body)),
    )
    return rows


def _body(i: int) -> bytes:
    return split(LOG[i][4])[0]


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("an escape for a plain letter", lambda b: b.replace(b'"worker-b"', b'"worker\\u002db"')),
        ("a second envelope after the first", lambda b: b[:-1] + b',"envelope":{"actor_id":"x"}}'),
        ("a second profile_id", lambda b: b[:-1] + b',"profile_id":"profile_shop_17"}'),
        ("a space after each colon", lambda b: b.replace(b'":', b'": ')),
        ("raw UTF-8 for an escape", lambda b: b.replace(b"\\u00fc", "ü".encode())),
        (
            "a number for the profile",
            lambda b: b.replace(b'"profile_id":"profile_b"', b'"profile_id":7'),
        ),
        (
            "a float class version",
            lambda b: b.replace(b'"class_version":1,', b'"class_version":1.0,'),
        ),
        (
            "the envelope as a list",
            lambda b: b.replace(b'"envelope":{', b'"envelope":[{').replace(b'},"', b'}],"', 1),
        ),
        ("nothing after the link", lambda b: b[:-1] + b' } {"a":1}'),
    ],
)
@pytest.mark.parametrize("header_from_original", [False, True])
def test_bodies_rewritten_and_relinked_walk_as_taken_one_by_one(
    name: str, edit: Callable[[bytes], bytes], header_from_original: bool
) -> None:
    """A body rewritten so that it still parses (or nearly), with its link recomputed over
    the new body's header or the old one's: a shortcut reading the body otherwise than
    ``json.loads`` would disagree with ``take`` here."""
    edited = [i for i in range(len(LOG)) if edit(_body(i)) != _body(i)]
    assert edited, f"{name}: no event of the log has what the edit changes"
    for i in edited[:4]:
        original = _body(i)
        body = edit(original)
        try:
            rows = _relinked(i, body, header_from=original if header_from_original else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            rows = _relinked(i, body, header_from=original)
        _same_either_way(rows)


def test_a_link_or_body_no_parser_should_trust_is_named_not_a_crash() -> None:
    """Damage the first bench of verify crashed on: a link whose hash is not hex, an envelope
    that is not an object, a body nested past the parser's recursion limit. Each is named
    with its profile and version (or as bytes custody never stored), and the walk goes on."""
    position, stream, version, topic, state = LOG[0]
    body, chain = split(state)
    assert chain is not None
    profile = json.loads(body)["profile_id"]
    not_hex = chain.replace(json.loads(chain)["hash"].encode(), b"zz" * 32)
    no_envelope = json.loads(body)
    no_envelope["envelope"] = ["not", "an", "object"]
    nested = b'{"profile_id":"x","deep":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    damaged = {
        "hash not hex": state[: -len(chain) - 1] + not_hex + b"}",
        "envelope a list": json.dumps(no_envelope, separators=(",", ":")).encode(),
        "nested": nested,
    }
    for name, stored_state in damaged.items():
        rows = [(position, stream, version, topic, stored_state), *LOG[1:]]
        found = walk(_pages(rows), Walk())
        lines = [p.line() for p in found.problems]
        assert lines, name
        assert found.events >= len(LOG) - 1, name
        if name == "hash not hex":
            assert lines[0] == f"{profile} v1: its link is not readable", lines
        else:
            assert "not an event custody stored" in lines[0], lines


# Header fields whose JSON orjson writes otherwise than json (or reads otherwise: an integer past
# 64 bits is a float to orjson), each put where the header holds it.
_WRITTEN_OTHERWISE = {
    "an actor outside ASCII": (b'"actor_id":"ops-olga"', '"actor_id":"ops-\\u00f6lga"'),
    "an actor with DEL": (b'"actor_id":"ops-olga"', '"actor_id":"ops-\\u007folga"'),
    "a command as an object": (b'"command":""', '"command":{"b":"\\u00f6"}'),
    "a class version past 64 bits": (b'"class_version":2', '"class_version":18446744073709551617'),
    "a float class version json writes as 1e-05": (b'"class_version":2', '"class_version":1e-5'),
}
# Header fields both write alike, escaped: the shortcut leaves them to ``take`` all the same.
_ESCAPED = {
    "an actor with a quote": (b'"actor_id":"ops-olga"', '"actor_id":"ops-\\"olga"'),
    "an actor with a backslash": (b'"actor_id":"ops-olga"', '"actor_id":"ops-\\\\olga"'),
    "an actor with a control character": (b'"actor_id":"ops-olga"', '"actor_id":"ops-\\u0001"'),
}


def _orjson_header(body: bytes, version: int, topic: str) -> bytes:
    """The header a shortcut trusting orjson both ways would hash."""
    return orjson.dumps(header_fields(orjson.loads(body), version, topic))


@pytest.mark.parametrize("name", sorted(_WRITTEN_OTHERWISE) + sorted(_ESCAPED))
def test_a_link_over_a_header_orjson_writes_otherwise_is_named_as_take_names_it(
    name: str,
) -> None:
    """A body whose header fields orjson writes (or reads) otherwise than json, relinked over
    orjson's bytes, as a forger who knows the shortcut would: ``take`` names the header as
    edited, so the shortcut (which parses with orjson) must not vouch for it; relinked over
    json's bytes, custody's own, it holds either way."""
    old, new = {**_WRITTEN_OTHERWISE, **_ESCAPED}[name]
    i = 0  # the registration of profile_shop_17: class version 2, every envelope field
    position, stream, version, topic, state = LOG[i]
    body = _body(i).replace(old, new.encode())
    assert body != _body(i)
    honest = _same_either_way(_relinked(i, body))[0]  # v2 follows v1's old hash, so is named
    assert honest
    assert not [p for p in honest if p.startswith("profile_shop_17 v1:")]
    if name in _ESCAPED:
        return
    assert header_bytes(json.loads(body), version, topic) != _orjson_header(body, version, topic)
    prev = json.loads(split(state)[1] or b"{}")["prev"]
    forged = link(prev, _orjson_header(body, version, topic), body)
    rows = list(LOG)
    rows[i] = (position, stream, version, topic, stored(body, forged))
    problems = _same_either_way(rows)[0]
    assert problems[0] == "profile_shop_17 v1: " + _HEADER_EDITED


def test_a_body_nested_past_json_s_depth_but_not_orjson_s_is_named_as_take_names_it() -> None:
    """A relinked body nested 1,000 deep: json.loads (as ``take`` reads it) meets the
    recursion limit, orjson (1,024 deep) reads it; the shortcut must leave it to ``take``."""
    position, stream, version, topic, state = LOG[0]
    body = _body(0)[:-1] + b',"deep":' + b"[" * 1000 + b"]" * 1000 + b"}"
    with pytest.raises(RecursionError):
        json.loads(body)
    prev = json.loads(split(state)[1] or b"{}")["prev"]
    honest = link(prev, header_bytes(orjson.loads(body), version, topic), body)
    rows = [(position, stream, version, topic, stored(body, honest)), *LOG[1:]]
    problems = _same_either_way(rows)[0]
    assert problems[0] == (
        f"the log: holds bytes at position {position} that are not an event custody stored"
    )


_HEADER_EDITED = "its header (who, when, which command) was edited after it was stored"


def test_every_byte_of_a_link_edited_walks_as_taken_one_by_one() -> None:
    """Each byte of one event's link (the part the shortcut reads at fixed offsets) replaced
    in turn: the walk says what ``take`` says, every time, and that is a problem for each, the
    stored state's closing byte too (which ``split`` reads past: guard ``_TAIL_EDITED``)."""
    position, stream, version, topic, state = LOG[7]
    link_length = len(state) - len(split(state)[0]) + 1
    for at in range(len(state) - link_length, len(state)):
        swapped = b"0" if state[at : at + 1] != b"0" else b"a"
        rows = list(LOG)
        rows[7] = (position, stream, version, topic, state[:at] + swapped + state[at + 1 :])
        problems = _same_either_way(rows)[0]
        assert problems, at


@pytest.mark.parametrize(
    ("cell", "named"),
    [
        (1, "its stream id as a blob, where custody stores text"),
        (3, "its event type as a blob, where custody stores text"),
        (4, "its state as text, where custody stores a blob"),
    ],
)
def test_an_event_in_a_cell_of_another_kind_is_named_and_walked_as_its_bytes_spell(
    cell: int, named: str
) -> None:
    """One event's stream id or type given as bytes, or its state as text (what an SQLite
    cell of the other kind holds: the store hands it on as it is): the walk names that
    event once, by its profile and version, and otherwise walks it as the event its bytes
    spell (the same heads and tree), with or without a digest's questions (rev38: the store
    cast every cell alike, and verify passed it while every read that met it failed)."""
    i = 9
    row = list(LOG[i])
    row[cell] = row[cell].decode() if isinstance(row[cell], bytes) else row[cell].encode()
    rows = [*LOG[:i], tuple(row), *LOG[i + 1 :]]
    profile = json.loads(split(LOG[i][4])[0])["profile_id"]
    for options in ({}, _digest_options(rows)):
        problems, *rest = _same_either_way(rows, **options)
        assert problems == [
            f"{profile} v{LOG[i][2]}: is stored at position {LOG[i][0]} with {named}: no read "
            "takes it as the event its bytes spell (a load of its profile passes over it or "
            "fails on it, and every read model that folds the log fails on it): appended or "
            "edited outside custody"
        ]
        assert rest == list(_same_either_way(LOG, **options)[1:])
