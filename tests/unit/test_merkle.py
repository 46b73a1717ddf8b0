"""The log's Merkle tree is RFC 9162's (RFC 6962's hashing): checked against the published
Certificate Transparency test vectors (google/certificate-transparency,
``cpp/merkletree/merkle_tree_test.cc``: the eight reference inputs, their tree heads and four
consistency proofs), and against the RFC's recursive definitions written out naively here, for
every pair of tree sizes up to 40: the tree head, the consistency proof (as
``consistency_proof`` makes it and as verify's walk collects it from the log) and the proof's
verification, which must also refuse every proof or root altered the ways CT's tests alter them.
"""

from __future__ import annotations

import hashlib
from functools import cache

import pytest

from ledger._audit.merkle import (
    EMPTY_ROOT,
    TreeBuilder,
    consistency_proof,
    consistency_ranges,
    leaf_hash,
    node_hash,
    tree_root,
    verify_consistency,
)
from ledger._audit.walk import Walk, walk
from ledger._domain.chain import GENESIS, header_bytes, link, stored
from ledger._domain.profile import Profile

# The CT reference tree: its inputs, the tree heads of its first 1..8 leaves, and proofs.
INPUTS = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
PROOFS = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
MAX = 40


# -- RFC 9162, section 2.1, written out as the RFC says it ------------------------------------

# Leaves for the naive checks: leaf hashes of distinct inputs.
LEAVES = tuple(hashlib.sha256(b"\x00" + bytes([i, i * 7 % 256])).digest() for i in range(MAX))


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@cache
def mth(start: int, end: int) -> bytes:
    """MTH(D[start:end]) over LEAVES (already leaf-hashed)."""
    n = end - start
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return LEAVES[start]
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(start, start + k) + mth(start + k, end)).digest()


def subproof(m: int, start: int, end: int, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[start:end], b)."""
    n = end - start
    if m == n:
        return [] if complete else [mth(start, end)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, start, start + k, complete), mth(start + k, end)]
    return [*subproof(m - k, start + k, end, False), mth(start, start + k)]


def naive_proof(m: int, n: int) -> list[bytes]:
    """PROOF(m, D[n]) for 0 < m <= n (empty when m == n)."""
    return [] if m == n else subproof(m, 0, n, True)


# -- the published vectors -------------------------------------------------------------------


def test_leaf_and_node_hashes_carry_the_rfc_prefixes() -> None:
    """A leaf is hashed after 0x00, a node after 0x01; the empty tree's head is SHA-256 of
    nothing."""
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert (
        node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    )
    assert EMPTY_ROOT.hex() == EMPTY
    assert tree_root([]) == (0, bytes.fromhex(EMPTY))
    assert TreeBuilder().root().hex() == EMPTY


def test_the_tree_heads_of_the_ct_reference_tree() -> None:
    """The heads of the first 1 to 8 leaves of CT's reference inputs, as published, whether
    computed at once or as the builder grows."""
    leaves = [leaf_hash(data) for data in INPUTS]
    builder = TreeBuilder()
    for size, (leaf, expected) in enumerate(zip(leaves, ROOTS, strict=True), 1):
        builder.add(leaf)
        assert builder.root().hex() == expected, size
        assert tree_root(leaves[:size]) == (size, bytes.fromhex(expected))


def test_the_consistency_proofs_of_the_ct_reference_tree() -> None:
    """CT's four published proofs, made from the leaves and verified against the heads."""
    leaves = [leaf_hash(data) for data in INPUTS]
    for m, n, expected in PROOFS:
        root, proof = consistency_proof(iter(leaves), m, n)
        assert root.hex() == ROOTS[n - 1]
        assert [p.hex() for p in proof] == expected, (m, n)
        old, new = bytes.fromhex(ROOTS[m - 1]), bytes.fromhex(ROOTS[n - 1])
        assert verify_consistency(m, n, old, new, proof), (m, n)


# -- every size up to 40 against the RFC's definitions ---------------------------------------


def test_every_tree_head_up_to_40_leaves_is_the_rfcs() -> None:
    """The builder's head after each leaf, and the head of every suffix that begins a
    complete subtree (what a proof asks for), equal MTH."""
    builder = TreeBuilder()
    for size in range(1, MAX + 1):
        builder.add(LEAVES[size - 1])
        assert builder.root() == mth(0, size), size
        assert tree_root(LEAVES[:size]) == (size, mth(0, size))
        start = 0
        for bit in reversed(range(size.bit_length())):  # each complete subtree held
            if size >> bit & 1:
                assert builder.range_root(start) == mth(start, size), (size, start)
                start += 1 << bit


def test_every_consistency_proof_up_to_40_leaves_is_the_rfcs_and_verifies() -> None:
    """For every 0 < m <= n <= 40: the proof equals SUBPROOF's, verifies against both heads,
    and the ranges it names are the subtrees SUBPROOF hashes."""
    for n in range(1, MAX + 1):
        for m in range(1, n + 1):
            expected = naive_proof(m, n)
            root, proof = consistency_proof(iter(LEAVES), m, n)
            assert (root, proof) == (mth(0, n), expected), (m, n)
            assert [mth(s, e) for s, e in consistency_ranges(m, n)] == expected, (m, n)
            assert verify_consistency(m, n, mth(0, m), mth(0, n), proof), (m, n)


def _altered(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> list[tuple]:
    """The alterations CT's MerkleVerifierTest makes of a good, non-empty proof."""
    wrong = hashlib.sha256(b"wrong").digest()
    cases: list[tuple] = [
        (m - 1, n, old, new, proof),
        (m + 1, n, old, new, proof),
        (m ^ 2, n, old, new, proof),
        (m, n * 2, old, new, proof),
        (m, n // 2, old, new, proof),
        (m, n, old, wrong, proof),
        (m, n, wrong, new, proof),
        (m, n, new, old, proof),
        (m, n, old, new, []),
        (m, n, old, new, [*proof, EMPTY_ROOT]),
        (m, n, old, new, [*proof, proof[-1]]),
        (m, n, old, new, proof[:-1]),
        (m, n, old, new, [EMPTY_ROOT, *proof]),
        (m, n, old, new, [proof[0], *proof]),
    ]
    for at in range(len(proof)):
        cases.append((m, n, old, new, [*proof[:at], EMPTY_ROOT, *proof[at + 1 :]]))
    return [c for c in cases if c[:2] != (m, n) or c[2:] != (old, new, proof)]


def _genuine(m: int, n: int, old: bytes, new: bytes, proof: list[bytes]) -> bool:
    """Whether this is a good proof between good heads after all."""
    if not 0 < m <= n <= MAX:
        return False
    return (old, new, proof) == (mth(0, m), mth(0, n), naive_proof(m, n))


def test_every_altered_proof_or_head_up_to_40_leaves_is_refused() -> None:
    """A wrong size, a wrong or swapped head, an empty, shortened, lengthened or edited
    proof: verify_consistency refuses each, for every 0 < m < n <= 40."""
    for n in range(2, MAX + 1):
        for m in range(1, n):
            old, new, proof = mth(0, m), mth(0, n), naive_proof(m, n)
            for case in _altered(m, n, old, new, proof):
                if _genuine(*case):
                    continue  # the alteration happens to be another pair's good proof
                assert not verify_consistency(*case), (m, n, case[:2])


def _log(size: int) -> tuple[list[tuple[int, str, int, str, bytes]], list[bytes]]:
    """``size`` linked events of one profile, as logged_events gives them, and their hashes."""
    rows, hashes, head = [], [], GENESIS
    stream = Profile.create_id("p").hex
    for version in range(1, size + 1):
        body = f'{{"envelope":{{}},"n":{version},"profile_id":"p"}}'.encode()
        made = link(head, header_bytes({"profile_id": "p", "envelope": {}}, version, "t"), body)
        rows.append((version, stream, version, "t", stored(body, made)))
        hashes.append(bytes.fromhex(made.hash))
        head = made.hash
    return rows, hashes


def test_verify_collects_every_proof_up_to_40_events_from_the_log() -> None:
    """The walk verify makes over the log keeps, for every 0 < m <= n <= 40, exactly the
    subtree hashes SUBPROOF names, and the roots of both sizes (leaves: the events' hashes)."""
    rows, hashes = _log(MAX)
    leaves = [leaf_hash(h) for h in hashes]
    for n in range(1, MAX + 1):
        for m in range(1, n + 1):
            ranges = consistency_ranges(m, n)
            state = walk(
                lambda after, limit: rows[after or 0 : (after or 0) + limit],
                Walk(sizes={m, n}, wanted=frozenset(ranges)),
            )
            assert state.problems == []
            assert state.roots[m] == tree_root(leaves[:m])[1]
            assert state.roots[n] == tree_root(leaves[:n])[1]
            collected = [state.tree.found[r] for r in ranges]
            assert collected == consistency_proof(iter(leaves), m, n)[1], (m, n)


def _subtree_starts(size: int) -> list[int]:
    """Where the complete subtrees of a ``size``-leaf tree begin, widest first."""
    starts, first = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            starts.append(first)
            first += 1 << bit
    return starts


def test_range_root_of_each_subtree_start_and_only_those() -> None:
    """``range_root(start)`` is the head of the leaves from ``start`` on, for each start of a
    complete subtree; any other start is refused."""
    for n in range(1, MAX + 1):
        builder = TreeBuilder()
        for leaf in LEAVES[:n]:
            builder.add(leaf)
        starts = _subtree_starts(n)
        for start in range(n + 1):
            if start in starts:
                assert builder.range_root(start) == mth(start, n)
            else:
                with pytest.raises(ValueError, match="does not begin a subtree"):
                    builder.range_root(start)


def test_wanted_ranges_are_kept_as_they_form() -> None:
    """Every range a consistency proof from m to n leaves asks for is found by the time the
    tree has n leaves (or is a subtree still open then), holding that range's head."""
    for n in range(1, MAX + 1):
        for m in range(1, n + 1):
            ranges = consistency_ranges(m, n)
            builder = TreeBuilder(wanted=frozenset(ranges))
            for leaf in LEAVES[:n]:
                builder.add(leaf)
            proof = [builder.found.get(r) or builder.range_root(r[0]) for r in ranges]
            assert proof == [mth(a, b) for a, b in ranges], (m, n)
