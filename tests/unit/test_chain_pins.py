"""The hash chain's encoding is pinned: the pinned stored events (``tests/fixtures/stored_events``)
chained in a fixed order give the hard-coded header, body and event hashes below, and the tree
over them the hard-coded root. Every digest and every stored link ever written depends on these
bytes: a change of the canonical header or body, of the hash's layout or of the tree fails here
(and would need a new chain version, never a silent change).

The values were computed once from the code and are written out here by hand; the event hash is
also recomputed in the test from the formula ``ledger._domain.chain`` documents.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from uuid import UUID

import pytest

from ledger._audit.merkle import leaf_hash, tree_root
from ledger._audit.walk import Walk, walk
from ledger._domain.chain import GENESIS, Link, header_bytes, split
from ledger._stores.mapper import ProfileEventMapper, decode

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stored_events"
ORIGINATOR_ID = UUID("4d6fdd5f-8809-5c82-bdeb-c99c9fa07f0c")  # Profile.create_id(PROFILE_ID)

# The stream: the newest fixture of each type, at the version its sample was made for (its
# envelope's second past T0). Per event: SHA-256 of its header, its body hash, its hash.
CHAIN = [
    (
        "profile_registered.v2",
        "b47a739eb8e5549b0e6e9208bf83146e614323e727c6092171661a034be19c0e",
        "b12fc86704f49b25f6113b06b4d94f79839b308bd13aa961a16edd1973709435",
        "e3ee05f187e04f72917f9d861ce14600253d26f0354bb048caa04ed85cca3269",
    ),
    (
        "lease_acquired.v2",
        "90a8dc01cb2fbd6d51b81bd6a055a8a526cf58fcb7d58d2b6aafd0b7712dfd38",
        "633bbe1e29ac548acf4486e01a9d1ed6a92f1b00c5a2b0cef99fb68ee361ca13",
        "ac89a1d79f062caff5b5c1f2db3dd95e64967e714966d5a28e8d6f82203dc1d8",
    ),
    (
        "lease_heartbeat.v1",
        "d4d0e978dc5c53d29ad3b26b02be072c50a5d22bad0e93439f65d14d117ac07e",
        "07ecf294945167cba375d64545f95e5f31bebfb75f0ce8bc88187279da74f30b",
        "1074b6145054211e64e8ed222943c61e097fee5ea2fa21640a3767fcac594c6f",
    ),
    (
        "lease_extended.v1",
        "9d9e0d0bb71f2f1945ec176cc83456340a93d819468c8488b602c17d1a7238ce",
        "dd53326e028b0981935c7e2850fc9032c0ec180ce1ac56f49f1aad2479d315e8",
        "ab5732d671fd79f2ef3b29211a8ee610becea3bea242d08b5dee03de6fb6e669",
    ),
    (
        "lease_release_requested.v3",
        "f0c79aab355f0aaa139288cb427084a90a99edad95544e91c9bae58ec3eafb68",
        "dd3ea1c5b85994e1d2060a047294128496760799f6a4392be9736913da777e9c",
        "b9793190b2876cd764a814c56d7a2bad05bbd639cdcc073340a321f173840cae",
    ),
    (
        "lease_released_cleanly.v1",
        "d8a517e912e56b8e5775527633fdd2b87c318e4026745a1fa0f9071113eeb48b",
        "42bcda27b44900881d1985dcbd6b588b3c592c447457fc4003738dbbbf8a8bf3",
        "bc05c18a63100ddf79d0ca002b0c64b0e9d5585e116d430f58d164fc5d08aa11",
    ),
    (
        "lease_marked_stale.v1",
        "caea4feef873d448d51a6d729da4df2ba6a6fdd6689f0c1142a23e2e4e86a296",
        "012feee2326907599cc98adfb302a322278677b5a2afb60947237c090c7d7223",
        "7446bd3bb9e24182478c379c0240ea6e7b552c999e1063a87dc9cd9bf9575c32",
    ),
    (
        "lease_revoked.v1",
        "effea0edb2123493343a3a9c779988b7662f78daa5d8c2e1316241ad6101251c",
        "d59258d5223e74fdb6c9e2bb56b24faecdc6d9bbb6b0239844b2180691829d69",
        "92a607b4fa6bf964957afbdccd16fedc6f7ccfd89adc6480b1446e8bada60b2d",
    ),
    (
        "review_requested.v1",
        "8e2e074a7b471653da9251c2f32fc6fa804500a26287a4569df8a7a79a0b8666",
        "f7818391723df39dc0fac7f5dbe8693c945f3e8db7f51c3c296eaab7167622d2",
        "162f6a3eb03a4ac6b2cae45bfa6c0fb6257af24898ecb341524151fa5f667dff",
    ),
    (
        "profile_quarantined.v1",
        "0fd527de66ea9e670112dac186f49e693b8937e1a00cbe65a9c933c8eea405fb",
        "7d0ed232f3f7480ab43b8a7e86099de0bc71653efd83e6531c2ddf8bb13d07fc",
        "3c005b3739ea2c984531a731eb678fff6456fca10294dad49fc80bf6cea48189",
    ),
    (
        "profile_reviewed.v1",
        "5df10193407a1b595ce8897a15c5dca82dbeedaf1a2faf4d3327175b63d8cfc3",
        "cdafcf70ada17c19fa7f0db82051bf59e7c7caa6e6faff836370c40d85648dc2",
        "973c644b8ad5189220f176a95f7800314b9ca58ab4ef19e87af19df68e79661c",
    ),
    (
        "profile_returned_to_pool.v1",
        "9c965dd5995a5488695d79d7ced43eb61bbce609ccf6bd34927fa2ff53d320c8",
        "1b0150570305efb7e41fe404f1cdb4e5b4038b129ac2dbaa6f8bf7e80d6f2b81",
        "93f23e11df68b35a308b5d0a2ecdd46f4367d13fc5bbc445da4b9db7004954a4",
    ),
    (
        "profile_disabled.v1",
        "29f7b17b9d80fb41014c4acbea31daea18e06b363ff7b8e5fbc683e4c79ed12f",
        "5b89807a72332d3d32251aafb5ea9e70a14364ea0f3fcc41d924adf55cb85507",
        "592cb2c083405e294b45fa1abe2badc119eea0cb66f3cee5c098812963678bbb",
    ),
    (
        "profile_enabled.v1",
        "e6886cf438065cd8360a5c35d10a901fed5e99d569d0282ee360cb52e6862033",
        "b1160b96331d1faddefb6e5a6550fc609d8141863ed61035770d5d2ead15685e",
        "d1afcb11099bd37f048624208fce3e13d8710dda13d10457b6a71f658529364d",
    ),
    (
        "browser_stopped.v1",
        "720d2bf23c31d4d3bc0ae99c04358aef8abfee0d0e2c6206a4d8ff3e86d7ed4b",
        "e55c5a5eaf953d61739f3dd3bc4968f098f58ad625203492c3961d87c618e940",
        "d55308f56dc64723b8d319ebb3fb7d624334e21de9d5e83ea4c616360a2f33fa",
    ),
]
# RFC 9162 tree heads over the events' hashes: all fifteen, and the first eight.
ROOT = "7b2549b68b3e3112b10a66ed979565f49b8c06188cfc729f714268177ebea2f0"
ROOT_OF_8 = "6cabd00d8f0341049335a169f4767af199cfcb8c68bf07bea8962976e78e74d3"

# The canonical header of the heartbeat (v3), byte for byte.
HEARTBEAT_HEADER = (
    b'["profile_shop_17",3,"lease_heartbeat",1,"2024-05-01T09:00:03.123456Z","worker-a",'
    b'"worker","cmd-3","corr-3","cause-3","fingerprint-3"]'
)

# Each fixture stored as the first event of a stream before hash chains (no link): the hash
# it is chained by, from its stored bytes at its stored class version (not as upcast).
UNLINKED_FIRST = {
    "browser_stopped.v1": "df001652d73adc89a4c4454543f67104fd544ef7af62ffab50f9e2273eb68e53",
    "lease_acquired.v1": "86d3183235ff809d233ff9647d61c020d45aabb307fa0d95237c65f75ef998aa",
    "lease_acquired.v2": "51b4fbadd65f61c4026aaf0215bf05b7680cf9f360e694ae8780f9637461f41a",
    "lease_extended.v1": "327020a3493c2ead98d66166a0829b0501a65bf36c8121be89d8ac209fca7120",
    "lease_heartbeat.v1": "5d36ac46c91fe0d8710e65f842bb90da7fb64665bcc38888e61c696e79e79988",
    "lease_marked_stale.v1": "ff76b858ac2c739724269f5719d81ca2006bae93d39b1593ac526aa01ea8d74c",
    "lease_release_requested.v1": (
        "f7b79d067546843e87b1ee5116714d6619ae09c5821bf8ca44788ed10667016a"
    ),
    "lease_release_requested.v2": (
        "5da6e06b60460cd2764e3b9b29e47ef98f681b1a36f63724b6c742f93f72cc5d"
    ),
    "lease_release_requested.v3": (
        "a3cd5bbaaeef3a8de3745dbd624beb2d919ef194ba53b941e52d435f04d2735a"
    ),
    "lease_released_cleanly.v1": "2133bcb4a227e4c2a1d212bc6bb4da65acbeb2d98f75ca08d2e30809102488a5",
    "lease_revoked.v1": "e14ef049d092d6dbd1a6708d69efa6590ef37092166a6f85253cac9bb7d546d7",
    "profile_disabled.v1": "6f13312f1b642273a742d513049490c21b983482a7806753fb20b89dd79b45e5",
    "profile_enabled.v1": "618368e3fd9704c31182c18734a4a52d0fe591d89b3cd5805333612b95fa41cc",
    "profile_quarantined.v1": "937edcadab440e5beead034340782923aa13c38dc639e360e92d85535fe4caed",
    "profile_registered.v1": "8ff093889018e6d8cef149d5a50d13b027b98e6d2ad6101051b14905fed3d0b9",
    "profile_registered.v2": "e3ee05f187e04f72917f9d861ce14600253d26f0354bb048caa04ed85cca3269",
    "profile_returned_to_pool.v1": (
        "4bc552e63fea8a9c13fa2342ddd290d9c4e6c4b009763433570cd32fed785d53"
    ),
    "profile_reviewed.v1": "c7750141b9837bf4f86a9a2668dc35f822e5952cc51b8b73b54c7eb115c47d4f",
    "review_requested.v1": "ae861b819234797f97ea708e61216dd72fcdb73f564732bc35f292394d4550fe",
}


def _topic(name: str) -> str:
    return name.split(".")[0]


def _linked_stream() -> list[tuple[str, bytes, Link]]:
    """The fixtures chained as the aggregate chains new events (``ProfileEvent.linked``) and
    stored as the mapper stores them: (topic, stored state, link) per version."""
    mapper, head, stream = ProfileEventMapper(), GENESIS, []
    for version, (name, *_) in enumerate(CHAIN, 1):
        state = (FIXTURES / f"{name}.json").read_bytes()
        event = decode(_topic(name), state, ORIGINATOR_ID, version).linked(head)
        assert event.chain is not None
        stream.append((_topic(name), mapper.to_stored_event(event).state, event.chain))
        head = event.chain.hash
    return stream


def _documented_hash(prev: str, header: bytes, body_hash: str) -> str:
    """The event hash as ``ledger._domain.chain`` documents it, written out independently."""
    return hashlib.sha256(
        b"custody/event/1\n" + header + b"\n" + prev.encode() + b"\n" + body_hash.encode()
    ).hexdigest()


def test_each_event_of_the_pinned_stream_has_its_pinned_hashes() -> None:
    """Header hash, body hash (of exactly the fixture's bytes) and event hash of each of the
    fifteen events, each linking to the one before; the hash follows the documented formula."""
    prev = GENESIS
    for version, ((topic, state, chain), (name, header_hash, body_hash, own)) in enumerate(
        zip(_linked_stream(), CHAIN, strict=True), 1
    ):
        fixture = (FIXTURES / f"{name}.json").read_bytes()
        header = header_bytes(json.loads(fixture), version, topic)
        assert hashlib.sha256(header).hexdigest() == header_hash, name
        assert split(state)[0] == fixture, name  # the body stored is the fixture's bytes
        assert hashlib.sha256(fixture).hexdigest() == body_hash == chain.body, name
        assert chain == Link(prev=prev, body=body_hash, hash=own), name
        assert _documented_hash(prev, header, body_hash) == own, name
        prev = own


def test_the_heartbeats_header_and_stored_bytes_are_pinned_byte_for_byte() -> None:
    """The canonical header is the JSON array of profile, version, type, class version, time,
    actor, role and the command's ids; the store keeps the body with the link last."""
    _, state, chain = _linked_stream()[2]
    fixture = (FIXTURES / "lease_heartbeat.v1.json").read_bytes()
    assert header_bytes(json.loads(fixture), 3, "lease_heartbeat") == HEARTBEAT_HEADER
    assert state == fixture[:-1] + (
        b',"~chain":{"body":"07ecf294945167cba375d64545f95e5f31bebfb75f0ce8bc88187279da74f30b",'
        b'"hash":"1074b6145054211e64e8ed222943c61e097fee5ea2fa21640a3767fcac594c6f",'
        b'"prev":"ac89a1d79f062caff5b5c1f2db3dd95e64967e714966d5a28e8d6f82203dc1d8"}}'
    )
    assert chain.hash == CHAIN[2][3]


def test_the_tree_over_the_pinned_stream_has_its_pinned_root() -> None:
    """The RFC 9162 tree heads over the events' hashes (leaf = 0x00 || hash) are pinned, and
    verify's walk over the stored rows finds no problem and the same root and head."""
    hashes = [bytes.fromhex(h) for *_, h in CHAIN]
    assert tree_root(leaf_hash(h) for h in hashes) == (15, bytes.fromhex(ROOT))
    assert tree_root(leaf_hash(h) for h in hashes[:8]) == (8, bytes.fromhex(ROOT_OF_8))
    rows = [
        (version, ORIGINATOR_ID.hex, version, topic, state)
        for version, (topic, state, _) in enumerate(_linked_stream(), 1)
    ]
    walked = walk(lambda after, limit: rows[after or 0 : (after or 0) + limit], Walk(sizes={8}))
    assert walked.problems == []
    assert walked.tree.root().hex() == ROOT
    assert walked.roots[8].hex() == ROOT_OF_8
    assert walked.streams["profile_shop_17"].head == CHAIN[-1][3]


@pytest.mark.parametrize("name", sorted(UNLINKED_FIRST))
def test_an_event_stored_before_chains_hashes_from_its_stored_bytes(name: str) -> None:
    """A fixture read back as a stream's first event with no link (what a store of schema 6
    holds) hashes from its stored bytes and stored class version, as pinned: the head schema 7
    records for it, whatever its class reads as after upcasting."""
    state = (FIXTURES / f"{name}.json").read_bytes()
    event = decode(_topic(name), state, ORIGINATOR_ID, 1)
    assert event.chain is None
    assert event.hash_after(GENESIS) == UNLINKED_FIRST[name]
    header = header_bytes(json.loads(state), 1, _topic(name))
    assert (
        _documented_hash(GENESIS, header, hashlib.sha256(state).hexdigest())
        == (UNLINKED_FIRST[name])
    )


def test_every_fixture_is_pinned_as_an_unlinked_first_event() -> None:
    """A new fixture (a new event type or class version) gets its pinned hash here too."""
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(UNLINKED_FIRST)
