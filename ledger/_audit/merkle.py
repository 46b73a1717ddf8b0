"""The Merkle tree of the whole log, as RFC 9162 (Certificate Transparency v2) defines it: the
tree head of a list of leaves, computed in one pass with memory that grows with the log's
height, not its length, and the consistency proof that a later tree extends an earlier one.

    leaf hash  = SHA-256(0x00 || leaf)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256()
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n

A leaf is given already hashed (``leaf_hash``); every function here is pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass
class TreeBuilder:
    """Leaf hashes in, the tree head out: ``add`` each leaf hash in order, then ``root``.

    Keeps one hash per level (a binary counter of complete subtrees), so a million leaves need
    about twenty. ``wanted`` names ranges ``(start, end)`` whose subtree hashes a consistency
    proof needs; those are kept as they are formed (``found``)."""

    wanted: frozenset[tuple[int, int]] = frozenset()
    size: int = 0
    found: dict[tuple[int, int], bytes] = field(default_factory=dict)
    # The complete subtrees, widest (leftmost) first: one per set bit of ``size``, so that the
    # subtree of bit k spans 2**k leaves, starting where the wider ones before it end.
    _stack: list[bytes] = field(default_factory=list)

    def add(self, leaf: bytes) -> None:
        # The new leaf joins the subtrees of equal width below it, as a carry ripples through
        # the trailing ones of the old size: one node hash per add on average.
        n, stack, wanted = self.size, self._stack, self.wanted
        start, end, value = n, n + 1, leaf
        self.size = end
        if wanted:
            self._keep(start, end, value)
        width = 1
        while n & 1:
            value = node_hash(stack.pop(), value)
            start -= width
            width <<= 1
            n >>= 1
            if wanted:
                self._keep(start, end, value)
        stack.append(value)

    def _keep(self, start: int, end: int, value: bytes) -> None:
        if (start, end) in self.wanted:
            self.found[(start, end)] = value

    def root(self) -> bytes:
        """MTH of the leaves added so far (the complete subtrees, folded from the right)."""
        return self.range_root(0)

    def range_root(self, start: int) -> bytes:
        """MTH of the leaves from ``start`` to the end, when ``start`` begins a complete
        subtree on the stack (true of every range a consistency proof asks for)."""
        if not self._stack:
            return EMPTY_ROOT
        starts, first = [], 0
        for bit in reversed(range(self.size.bit_length())):
            if self.size >> bit & 1:
                starts.append(first)
                first += 1 << bit
        if start not in starts:
            raise ValueError(f"leaf {start} does not begin a subtree of a {self.size}-leaf tree")
        parts = self._stack[starts.index(start) :]
        value = parts[-1]
        for left in reversed(parts[:-1]):
            value = node_hash(left, value)
        return value


def tree_root(leaves: Iterable[bytes]) -> tuple[int, bytes]:
    """The number of leaf hashes and their tree head, in one pass."""
    builder = TreeBuilder()
    for leaf in leaves:
        builder.add(leaf)
    return builder.size, builder.root()


def _subproof(m: int, start: int, end: int, complete: bool) -> Iterator[tuple[int, int]]:
    """RFC 9162 2.1.4.1 SUBPROOF(m, D[start:end], complete), as the ranges whose hashes it
    lists, in the proof's order."""
    n = end - start
    if m == n:
        if not complete:
            yield (start, end)
        return
    k = _split(n)
    if m <= k:
        yield from _subproof(m, start, start + k, complete)
        yield (start + k, end)
    else:
        yield from _subproof(m - k, start + k, end, False)
        yield (start, start + k)


def consistency_ranges(m: int, n: int) -> list[tuple[int, int]]:
    """The leaf ranges whose subtree hashes make up the proof that the first ``m`` leaves'
    tree is a prefix of the first ``n`` leaves' (0 < m <= n)."""
    if not 0 < m <= n:
        raise ValueError(f"no consistency proof from {m} to {n} leaves")
    return [] if m == n else list(_subproof(m, 0, n, True))


def consistency_proof(leaves: Iterable[bytes], m: int, n: int) -> tuple[bytes, list[bytes]]:
    """From the first ``n`` leaf hashes of a log (``leaves`` may go on: the rest is not read):
    the ``n``-leaf tree head and the proof that its first ``m`` leaves form the earlier tree.
    One pass; memory in the tree's height and the proof's length."""
    ranges = consistency_ranges(m, n)
    builder = TreeBuilder(wanted=frozenset(ranges))
    for leaf in leaves:
        builder.add(leaf)
        if builder.size == n:
            break
    if builder.size != n:
        raise ValueError(f"the log holds {builder.size} leaves, not {n}")
    proof = [builder.found.get(r) or builder.range_root(r[0]) for r in ranges]
    return builder.root(), proof


def verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2: whether ``proof`` shows the ``n``-leaf tree with head ``new_root``
    extends the ``m``-leaf tree with head ``old_root``."""
    if not 0 < m <= n:
        return False
    if m == n:
        return old_root == new_root and not proof
    if not proof:
        return False
    if m & (m - 1) == 0:  # m is a power of two: old_root is the first node
        proof = [old_root, *proof]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn != 0 and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0
