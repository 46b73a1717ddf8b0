"""Every stored snapshot checked against the events it caches: a load starts from the latest
snapshot at or below the version it wants, so a snapshot edited, forged or stored beyond its
stream's end changes what the ledger believes without touching a single event.

A snapshot holds exactly the state its profile's events fold to at its version (its ``head``,
the hash of the event at that version, among it). This pass reads the snapshots in stream and
version order and, for each stream that has any, folds that stream's events from version 1 in
batches with the domain's own fold, decoded as a load decodes them; what a snapshot holds
otherwise is a ``Problem`` naming the profile and the snapshot's version.

Memory holds one profile's state and one batch, never a stream's events: a profile with
snapshots costs one fold of its events up to its last snapshot, a profile without none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from ledger._audit.walk import BATCH, Problem
from ledger._domain.errors import (
    NeverDecided,
    OlderSnapshot,
    StoreUnavailable,
    UnreadableSnapshot,
)
from ledger._domain.events import ProfileEvent
from ledger._domain.profile import Profile
from ledger._domain.snapshot import ProfileSnapshot

# stream id (the originator_id as hex, as the store keys it), version, topic, stored state
SnapshotRow = tuple[str, Any, str, bytes]  # the version as stored: a hand may make it 2.5
# How many differing fields a problem line names.
SHOWN = 3


class SnapshotSource(Protocol):
    """What the check reads: the stored snapshots in (stream, version) order, a stream's
    events as a load reads them, and a snapshot as a load decodes it."""

    def stored_snapshots(self, after: tuple[str, Any] | None, limit: int) -> list[SnapshotRow]:
        """Up to ``limit`` rows after (stream id, version) ``after``."""

    def stream_events(self, stream: UUID, after: int, upto: int, limit: int) -> list[ProfileEvent]:
        """Up to ``limit`` events of ``stream`` in versions ``after`` < v <= ``upto``."""

    def decode_snapshot(
        self, stream: UUID, version: int, topic: str, state: bytes
    ) -> ProfileSnapshot:
        """The decoded snapshot (``UnreadableSnapshot`` for a row that is none, its topic
        another's), or ``OlderSnapshot``."""

    def stream_heads(self) -> list[tuple[str, int]]:
        """Each stream of the log (its id in hex) and its last version, in stream order."""


@dataclass
class _Fold:
    """One stream's events folded as far as a snapshot asked: the profile at its version
    (None: no event yet), or why the fold stopped."""

    stream: UUID
    events: Callable[[UUID, int, int, int], list[ProfileEvent]]
    profile: Profile | None = None
    broken: str | None = None
    # The event the ledger never decides that stopped the fold: its version and why.
    never: tuple[int, str] | None = None
    alone: bool = False  # the never decided is a revoke with nothing after it
    named: bool = False  # a problem of this stream's was said already

    @property
    def version(self) -> int:
        return self.profile.version if self.profile is not None else 0

    def ended(self) -> None:
        """At the stream's last event: a revoke with nothing after it is named there, as the
        event a load meets last (the ledger records one only with its review or quarantine)."""
        if self.never is not None or self.broken is not None or self.profile is None:
            return
        revoked = self.profile.revoked_alone()
        if revoked is not None:
            self.never = self.version, f"{revoked}: the ledger never records one"
            self.alone = True

    def to(self, version: int) -> None:
        """Fold on to ``version``, or to the stream's last event before it."""
        while self.broken is None and self.version < version:
            try:
                batch = self.events(self.stream, self.version, version, BATCH)
            except Exception as e:  # junk bytes that do not decode: named, never a crash
                if isinstance(e, StoreUnavailable) and not _undecodable(e):
                    raise  # the store, not the log: verify answers exit 6
                self.broken = f"an event after v{self.version} cannot be read ({e})"
                return
            if not batch:
                return
            try:
                for event in batch:
                    if self.profile is None:
                        self.profile = Profile(event.originator_id)
                    self.profile.apply(event)
            except NeverDecided as e:  # appended past the ledger, its link computed
                self.never = self.version + 1, e.problem
                self.broken = f"v{self.version + 1} does not fold onto v{self.version} ({e})"
            except Exception as e:  # a damaged stream is named, never a crash
                self.broken = f"v{self.version + 1} does not fold onto v{self.version} ({e})"


def _undecodable(error: BaseException) -> bool:
    """Whether the store's error is text in a cell that is not UTF-8 (SQLite keeps whatever a
    hand writes, and its driver refuses to read it back): damage in the log, named as such.
    Any other ``StoreUnavailable`` (a PostgreSQL restart, a refused connection, a lock) is
    the store's trouble, not the log's (rev41: named as problems, exit 5, for a log that
    holds). The driver's own words, never translated."""
    seen: BaseException | None = error
    while seen is not None:
        if "could not decode to utf-8" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class SnapshotCheck:
    """The pass: how many snapshots it checked and what it found wrong. ``streams``: the
    streams it checks, from the first (None: from the first there is) to before the second
    (None: to the last), as stream ids in hex; two checks of adjacent ranges find together
    what one check of both finds, in the same order."""

    source: SnapshotSource
    streams: tuple[str | None, str | None] = (None, None)
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    _fold: _Fold | None = None
    _stream_hex: str = ""
    _fold_head: int | None = None  # the last version of the stream in hand
    _heads: Iterator[tuple[str, int]] = field(default_factory=lambda: iter(()))
    _next_head: tuple[str, int] | None = None

    def run(self) -> SnapshotCheck:
        first, until = self.streams
        self._heads = iter(
            [(s, v) for s, v in self.source.stream_heads()
             if (first is None or s >= first) and (until is None or s < until)]
        )  # fmt: skip
        self._next_head = next(self._heads, None)
        after: tuple[str, Any] | None = (first, -1) if first is not None else None
        while rows := self.source.stored_snapshots(after, BATCH):
            for row in rows:
                if until is not None and row[0] >= until:
                    self._finish(None)
                    return self
                self.take(row)
            after = rows[-1][0], rows[-1][1]
        self._finish(None)
        return self

    def _finish(self, before: str | None) -> None:
        """Fold the stream in hand on to its last event, then each stream before ``before``
        (None: every one left) that has no snapshot, from its first: a lease the ledger never
        grants is named wherever it is, as every load of its profile meets it. The stream
        ``before`` is next in hand, with its last version."""
        if self._fold is not None and self._fold_head is not None:
            self._fold.to(self._fold_head)
            self._fold.ended()
            self._name_never(self._fold)
        self._fold, self._fold_head = None, None
        while self._next_head is not None and (before is None or self._next_head[0] < before):
            stream_hex, head = self._next_head
            self._next_head = next(self._heads, None)
            fold = _Fold(UUID(hex=stream_hex), self.source.stream_events)
            fold.to(head)
            fold.ended()
            self._name_never(fold)
        if self._next_head is not None and self._next_head[0] == before:
            self._fold_head = self._next_head[1]
            self._next_head = next(self._heads, None)

    def _name_never(self, fold: _Fold) -> None:
        if fold.never is None or fold.named:
            return
        version, why = fold.never
        believed = (
            "every checkout is denied until an operator quarantines it"
            if fold.alone
            else "no load believes it"
        )
        what = f"{why}; appended past the ledger (its link computed): {believed}"
        self._say(fold, fold.stream.hex, version, what)

    def take(self, row: SnapshotRow) -> None:
        """Check one stored snapshot (rows come in stream and version order)."""
        stream_hex, version, topic, state = row
        self.checked += 1
        try:
            stream = UUID(hex=stream_hex)
        except ValueError:
            stream = None
        if type(version) is not int:  # SQLite keeps whatever a hand writes into a cell
            odd = (
                f"a snapshot whose version is {version!r}, which custody never stores: edited "
                f"({_FAILS})"
            )
            owner = self._in_hand(stream, stream_hex, 1) if stream is not None else None
            self.problems.append(Problem(owner or f"stream {stream_hex}", None, odd))
            return
        if stream is None:
            self._say(None, stream_hex, version, "a snapshot under a stream id no profile has")
            return
        self._in_hand(stream, stream_hex, version)
        fold = self._fold
        assert fold is not None  # ``_in_hand`` made it
        try:
            held = self.source.decode_snapshot(stream, version, topic, state)
        except OlderSnapshot as e:  # passed over by every load, but not written by this custody
            older = (
                f"its snapshot is of an older form ({e}), which no load starts from: written by "
                "a custody before schema 16 left running, or outside custody; a cache, so "
                "deleting it loses nothing"
            )
            self._say(fold, stream_hex, version, older)
            return
        except Exception as e:  # junk in the table is named, never a crash
            said = e.problem if isinstance(e, UnreadableSnapshot) else _short(e)
            self._say(fold, stream_hex, version, f"its snapshot is not readable ({said}): {_FAILS}")
            return
        what = _mismatch(fold, held, version)
        if what is not None:
            self._say(fold, held.profile_id, version, what)

    def _in_hand(self, stream: UUID, stream_hex: str, version: int) -> str | None:
        """Take ``stream`` in hand (the stream before it finished) and fold it on to
        ``version``; the profile it is, once an event says (None: none yet)."""
        if self._fold is None or self._stream_hex != stream_hex:
            self._finish(stream_hex)
            self._fold, self._stream_hex = _Fold(stream, self.source.stream_events), stream_hex
        self._fold.to(version)
        return self._fold.profile.profile_id if self._fold.profile is not None else None

    def _say(self, fold: _Fold | None, fallback: str, version: int, what: str) -> None:
        if fold is not None:
            fold.named = True
        profile_id = fold.profile.profile_id if fold and fold.profile else fallback
        self.problems.append(Problem(profile_id, version, what))


def _mismatch(fold: _Fold, held: ProfileSnapshot, version: int) -> str | None:
    """What is wrong with ``held``, the snapshot at ``version``, against the fold there."""
    if fold.broken is not None:
        return f"its snapshot cannot be checked: its events do not fold ({fold.broken})"
    if fold.profile is None:
        return (
            f"a snapshot under stream {fold.stream.hex}, which holds no events: forged, a load "
            "would believe a profile that was never registered"
        )
    if fold.version < version:
        return (
            f"a snapshot beyond the profile's last event (v{fold.version}): forged, a load "
            "would believe events that were never stored"
        )
    folded = ProfileSnapshot.take(fold.profile)
    if held == folded:
        return None
    differs = _differences(held.model_dump(mode="json"), folded.model_dump(mode="json"))
    differs.sort(key=lambda d: d[0] == "head")  # what a load would believe first
    if [d for d, _, _ in differs] == ["head"]:
        return f"its snapshot's head is not the hash of its event v{version}"
    shown = "; ".join(f"{path} {ours!r} where the events say {theirs!r}"
                      for path, ours, theirs in differs[:SHOWN])  # fmt: skip
    more = f" (and {len(differs) - SHOWN} more)" if len(differs) > SHOWN else ""
    return f"its snapshot does not match its events (a load from it would believe {shown}{more})"


def _differences(held: Any, folded: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """The dotted paths where two JSON values differ, with each side's value there."""
    if isinstance(held, dict) and isinstance(folded, dict):
        found = []
        for key in sorted(set(held) | set(folded)):
            found += _differences(held.get(key), folded.get(key), f"{path}.{key}".lstrip("."))
        return found
    return [] if held == folded else [(path, _cut(held), _cut(folded))]


def _cut(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 80 else text[:77] + "..."


_FAILS = (
    "a load of its profile that starts from it fails; a cache, so deleting the row loses nothing"
)


def _short(error: Exception) -> str:
    said = str(error).splitlines()[0] if str(error) else type(error).__name__
    return said[:120]
