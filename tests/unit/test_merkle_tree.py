"""The log's Merkle tree is RFC 9162's (RFC 6962's hashing): the one-pass builder gives the
tree heads and consistency proofs of the RFC's recursive definitions and of Certificate
Transparency's reference vectors, at every size, whatever its internal bookkeeping."""

from __future__ import annotations

import hashlib

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

# Certificate Transparency's reference leaves and the tree heads of their first 0..8
# (the vectors of RFC 6962's reference implementation, shared by trillian and others).
CT_LEAVES = [
    bytes.fromhex(x)
    for x in (
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
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_CONSISTENCY = {
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}
LEAVES = [leaf_hash(str(n).encode()) for n in range(140)]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1, as written: the tree head of leaf hashes, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def subtree_starts(size: int) -> list[int]:
    """Where the complete subtrees of a ``size``-leaf tree begin, widest first."""
    starts, first = [], 0
    for bit in reversed(range(size.bit_length())):
        if size >> bit & 1:
            starts.append(first)
            first += 1 << bit
    return starts


def test_tree_heads_are_certificate_transparencys() -> None:
    """The reference vectors: the empty tree and the heads of the first 1..8 leaves."""
    assert EMPTY_ROOT.hex() == CT_ROOTS[0]
    builder = TreeBuilder()
    assert builder.root().hex() == CT_ROOTS[0]
    for n, leaf in enumerate(CT_LEAVES, start=1):
        builder.add(leaf_hash(leaf))
        assert builder.root().hex() == CT_ROOTS[n]


def test_consistency_proofs_are_certificate_transparencys() -> None:
    """The reference consistency proofs, made in one pass and verified against both heads."""
    leaves = [leaf_hash(leaf) for leaf in CT_LEAVES]
    for (m, n), expected in CT_CONSISTENCY.items():
        root, proof = consistency_proof(leaves, m, n)
        assert root.hex() == CT_ROOTS[n]
        assert [p.hex() for p in proof] == expected
        old, new = bytes.fromhex(CT_ROOTS[m]), bytes.fromhex(CT_ROOTS[n])
        assert verify_consistency(m, n, old, new, proof)


def test_every_size_has_the_recursive_definitions_head() -> None:
    """0 to 139 leaves (every carry pattern up to 2**7 and past it): the builder's head is
    the recursive MTH, and ``tree_root`` counts the leaves."""
    builder = TreeBuilder()
    for n, leaf in enumerate(LEAVES):
        assert builder.size == n
        assert builder.root() == mth(LEAVES[:n])
        builder.add(leaf)
    assert tree_root(LEAVES) == (len(LEAVES), mth(LEAVES))


def test_range_root_of_each_subtree_start_and_only_those() -> None:
    """``range_root(start)`` is the head of the leaves from ``start`` on, for each start of a
    complete subtree; any other start is refused."""
    for n in range(1, 70):
        builder = TreeBuilder()
        for leaf in LEAVES[:n]:
            builder.add(leaf)
        starts = subtree_starts(n)
        for start in range(n + 1):
            if start in starts:
                assert builder.range_root(start) == mth(LEAVES[start:n])
            else:
                with pytest.raises(ValueError, match="does not begin a subtree"):
                    builder.range_root(start)


def test_wanted_ranges_are_kept_as_they_form() -> None:
    """Every range a consistency proof from m to n leaves asks for is found by the time the
    tree has n leaves, holding that range's head, and the proof verifies; a wrong old head
    does not."""
    for n in range(1, 45):
        for m in range(1, n + 1):
            ranges = consistency_ranges(m, n)
            builder = TreeBuilder(wanted=frozenset(ranges))
            for leaf in LEAVES[:n]:
                builder.add(leaf)
            proof = [builder.found.get(r) or builder.range_root(r[0]) for r in ranges]
            assert proof == [mth(LEAVES[a:b]) for a, b in ranges]
            old, new = mth(LEAVES[:m]), mth(LEAVES[:n])
            assert verify_consistency(m, n, old, new, proof)
            if m < n:
                assert not verify_consistency(m, n, mth(LEAVES[1 : m + 1]), new, proof)
