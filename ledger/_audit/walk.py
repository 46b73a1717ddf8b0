"""One pass over the whole log, in log order, recomputing every profile's hash chain and the
log's Merkle tree from the stored bytes; what it finds wrong is a ``Problem`` naming the profile
and the version.

Memory grows with the number of profiles (each one's head) and the tree's height, never with
the number of events: a million events stream through in batches.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ledger._audit.merkle import EMPTY_ROOT, TreeBuilder, leaf_hash
from ledger._audit.origins import Linked, mismatch
from ledger._domain.chain import GENESIS, event_hash, header_bytes, header_fields, split
from ledger._domain.directories import normalised
from ledger._domain.events import TIME_FORM, ProfileRegistered, times_held
from ledger._domain.model import stream_id, takes_profile_id
from ledger._stores.access import CLOCK_SLACK_SECONDS
from ledger._stores.directories import Recorded
from ledger._stores.mapper import complaint

_REGISTERED = ProfileRegistered.event_type
_TIMES = times_held()
_TIME = re.compile(TIME_FORM)
# position, stream id (the originator_id as hex, as the store keys it), version, event type,
# stored state; each as stored where a hand made it another kind (a version not an integer,
# a stream id or event type as bytes, a state as text: an SQLite cell keeps any), to be named
Row = tuple[int, str, int, str, bytes]
BATCH = 5000
# How far after the store's clock an event may be dated before verify names it: as far as the
# store's guard lets a login date one (``ledger._stores.access.CLOCK_SLACK_SECONDS``).
AHEAD_AT_MOST = timedelta(seconds=CLOCK_SLACK_SECONDS)
_NEVER = datetime.max.replace(tzinfo=UTC)  # no clock asked: no event is dated too late


@dataclass(frozen=True)
class Problem:
    """One thing the log says that its chains or its digest do not: which profile, which
    version (None: the whole profile or the whole log), and what is wrong."""

    profile_id: str | None
    version: int | None
    what: str

    def line(self) -> str:
        where = self.profile_id or "the log"
        at = f" v{self.version}" if self.version is not None else ""
        return f"{where}{at}: {self.what}"


@dataclass
class Stream:
    """A profile's chain as walked so far: its last version and hash, and where it was."""

    version: int = 0
    head: str = GENESIS
    position: int = 0
    hashes_at: dict[int, str] = field(default_factory=dict)  # versions a digest asks about
    linked_from: int | None = None  # its first version stored with a link (None: none yet)
    first_position: int = 0  # where its v1 lies in the log (0: not walked)


@dataclass
class Walk:
    """The state of one pass. ``watch`` names (profile, version) whose hash a digest records
    (kept as they pass); ``sizes`` the tree sizes whose roots (and last events' positions) a
    digest records; ``wanted`` the subtree ranges a consistency proof needs."""

    origins: dict[str, tuple[int, str, int]] = field(default_factory=dict)
    watch: set[tuple[str, int]] = field(default_factory=set)
    sizes: set[int] = field(default_factory=set)
    wanted: frozenset[tuple[int, int]] = frozenset()
    streams: dict[str, Stream] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    roots: dict[int, bytes] = field(default_factory=dict)
    positions: dict[int, int] = field(default_factory=dict)  # where each of those sizes ends
    tree: TreeBuilder = field(init=False)
    last_position: int = 0
    # How a read makes an event of a stored one's parsed body (type, body, stream id as hex,
    # version, its link's JSON), raising on one it cannot read: a row its chain vouches for may
    # still be one no read can take (anyone can link an event; a worker's login can append one,
    # and no hash covers the link's own keys). None: not asked (``ledger._stores.mapper``).
    reads: Callable[[str, dict[str, Any], str, int, bytes | None], Any] | None = None
    # Each registration's directory, normalised, in log order (position, profile): two
    # profiles on one directory are named at the end (``finish``).
    directories: list[tuple[int, str, str]] = field(default_factory=list)
    # The same, by profile, once the pass is done (``finish``): what the store's table of
    # directories must hold (``ledger.audit._directory_rows``).
    registered_directories: dict[str, str] = field(default_factory=dict)
    first_linked: Linked | None = None  # the log's first event stored with a link
    # The store's clock (None: not asked): an event dated more than ``AHEAD_AT_MOST`` after
    # it, as read after each batch, is named (``dated``).
    clock: Callable[[], datetime] | None = None
    latest: datetime = _NEVER  # the latest time an event may carry

    def __post_init__(self) -> None:
        self.tree = TreeBuilder(wanted=self.wanted)
        if 0 in self.sizes:  # a digest of the empty log
            self.roots[0] = EMPTY_ROOT

    @property
    def events(self) -> int:
        return self.tree.size

    def _say(self, profile_id: str | None, version: int | None, what: str) -> None:
        self.problems.append(Problem(profile_id, version, what))

    def take(self, row: Row) -> None:
        """Walk one stored event."""
        said = len(self.problems)
        odd = _mistyped(row)
        if odd:  # walked as the event its bytes spell, and named
            row = (row[0], _as_text(row[1]), row[2], _as_text(row[3]), _as_bytes(row[4]))
        taken = self._take(row)
        if odd:
            self._kinds(row, taken, odd)
        if taken is not None:
            self.registered(row, taken[0], str(taken[0].get("profile_id")))
            self.named(row, taken[0])
        if taken is not None and len(self.problems) == said:  # nothing else wrong with it
            raw, link = taken
            self.readable(row, raw, link=link)

    def _kinds(
        self, row: Row, taken: tuple[dict[str, Any], bytes | None] | None, odd: list[str]
    ) -> None:
        """Name ``row``, whose cells ``odd`` lists are of another kind than custody stores,
        by the profile its body names (or whose stream it is, when its body is none)."""
        owner = str(taken[0]["profile_id"]) if taken is not None else self._owner(row[1])
        version = row[2] if owner is not None and type(row[2]) is int else None
        self._say(owner, version, f"is stored at position {row[0]} with {'; '.join(odd)}: "
                  f"{_MISTYPED}")  # fmt: skip

    def named(self, row: Row, raw: dict[str, Any]) -> None:
        """Name an event whose profile id is a text ``register`` refuses (one not a text, the
        read's decoding names): no profile has it, so no read takes it for one (rev37's review:
        an operator's login registered ``a b`` in that id's own stream, and verify said every
        chain holds while status refused the whole fleet)."""
        named = raw.get("profile_id")
        if isinstance(named, str) and not takes_profile_id(named):
            what = (
                f"names the profile {named[:60]!r}, an id custody never takes (register refuses "
                "it): a login that may append wrote it (docs/operations/roles.md)"
            )
            self._say(named[:128], row[2], what)

    def dated(self, event: Any, version: int) -> None:
        """Name ``event`` (as a read decodes it) if it is dated after ``latest``: custody dates
        every event by the store's clock, and a lease renewed from a time ahead of it keeps
        its profile out of the sweep's sight (rev34: a worker's login appended heartbeats
        each dated at the deadline before it, and verify said every chain holds). Its time as
        decoded, however it is spelt (rev34 review: one spelt with a space, an offset or as
        a number passed a comparison of the text)."""
        at = event.at
        if at <= self.latest:
            return
        what = (
            f"is dated {at.isoformat()}, more than {AHEAD_AT_MOST.seconds} s after the store's "
            f"clock as verify read it ({self.latest.isoformat()}): custody dates every event "
            "by that clock, so a login that may append wrote it (docs/operations/roles.md), or "
            "the store's clock was set back"
        )
        self._say(event.profile_id, version, what)

    def read_clock(self) -> None:
        """``latest`` from the store's clock now (after a batch was read: every event in it
        was committed, and so dated, before)."""
        if self.clock is not None:
            self.latest = self.clock() + AHEAD_AT_MOST

    def registered(self, row: Row, raw: dict[str, Any], profile_id: str) -> None:
        """Keep the directory of a registration (``raw``, the body of ``row``), if it is one."""
        if row[3] != _REGISTERED or row[2] != 1:
            return
        given = raw.get("user_data_dir")
        if isinstance(given, str) and given:
            self.directories.append((row[0], profile_id, normalised(given)))

    def readable(
        self, row: Row, raw: dict[str, Any], profile_id: str | None = None,
        link: bytes | None = None,
    ) -> None:  # fmt: skip
        """Whether a read can make an event of ``row``, whose body parses to ``raw`` (taken)
        and whose link is ``link`` (None: none, or one exactly as custody writes it), of
        ``profile_id`` (None: the profile whose chain it moved on last); a problem if not."""
        if self.reads is None:
            return
        _, stream_hex, version, event_type, _ = row
        try:
            event = self.reads(event_type, raw, stream_hex, version, link)
        except Exception as e:  # whatever the decoder raises is what every read would meet
            if profile_id is None:
                at = row[0]
                profile_id = next((p for p, s in self.streams.items() if s.position == at), None)
            self._say(profile_id, version, f"{_UNREADABLE} ({complaint(e)})")
            return
        self.dated(event, version)
        self.spelt(raw, event_type, event.profile_id, version)

    def spelt(self, raw: dict[str, Any], event_type: str, profile_id: str, version: int) -> None:
        """Name each time of a readable event's body not in the one form custody writes:
        the database's guard reads a lease's deadline in no other, so every stale mark of
        that lease is refused (rev37: a worker's login wrote a deadline "+00:00", and the
        sweep never settled it)."""
        for path in _TIMES.get(event_type, ()):
            given: Any = raw
            for key in path:
                given = given.get(key) if isinstance(given, dict) else None
            if given is not None and not (isinstance(given, str) and _TIME.fullmatch(given)):
                what = (
                    f"its {'.'.join(path)} is written {str(given)[:40]!r}, not as custody writes "
                    "a time (UTC, ending Z): a login that may append wrote it "
                    "(docs/operations/roles.md), and the database refuses the sweep's stale mark "
                    "of its lease"
                )
                self._say(profile_id, version, what)

    def _take(self, row: Row) -> tuple[dict[str, Any], bytes | None] | None:
        """``take`` but for the read; the body's JSON if it parsed, and the link's."""
        position, stream_id, version, event_type, state = row
        if type(version) is not int:  # SQLite keeps whatever a hand writes into a cell
            what = (
                f"holds a row at position {position} whose version in its stream is "
                f"{version!r}, which custody never stores: edited after it was stored"
            )
            self._say(None, None, what)
            return None
        body, chain = split(state)
        try:
            raw = json.loads(body)
            profile_id = str(raw["profile_id"])
            header = header_bytes(raw, version, event_type)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            what = f"holds bytes at position {position} that are not an event custody stored"
            if not event_type:  # a cell a hand left NULL or empty: every read stops there
                what += " (it has no event type)"
            owner = self._owner(stream_id)  # a load of that profile meets it
            self._say(owner, version if owner is not None else None, what)
            return None
        if position < 1:  # a load reads it by its stream and version all the same
            what = (
                f"is stored at position {position}, where custody never puts an event (the log "
                "begins at 1): inserted outside custody"
            )
            self._say(profile_id, version, what)
        if stream_id != _stream_id(profile_id):
            # The chain is the body's; the ledger reads a profile's events by stream id.
            self._say(profile_id, version, _MOVED)
        stream = self.streams.setdefault(profile_id, Stream())
        self._in_order(profile_id, stream, version)
        digest = hashlib.sha256(body).hexdigest()
        if chain is None:
            own = self._unlinked(profile_id, stream, (version, position), header, digest)
        else:
            own = self._linked(profile_id, stream, version, (header, digest), chain)
            if not state.endswith(b"}"):  # ``split`` reads past the last byte
                self._say(profile_id, version, _TAIL_EDITED)
        self._moved(profile_id, stream, version, own, position, linked=chain is not None)
        return (raw, chain) if isinstance(raw, dict) else None

    def _owner(self, stream_id: str) -> str | None:
        """The profile walked so far whose events are stored under ``stream_id`` (None: none)."""
        return next((p for p in self.streams if _stream_id(p) == stream_id), None)

    def _in_order(self, profile_id: str, stream: Stream, version: int) -> None:
        if version == stream.version + 1:
            return
        if version <= stream.version:
            what = f"comes after v{stream.version} in the log: events reordered or repeated"
        else:
            gap = f"v{stream.version + 1}"
            if version - 1 > stream.version + 1:
                gap += f"..v{version - 1}"
            what = f"follows v{stream.version}: {gap} deleted"
        self._say(profile_id, version, what)

    def _unlinked(
        self, profile_id: str, stream: Stream, at: tuple[int, int], header: bytes, digest: str
    ) -> str:
        """An event stored without a link is one stored before hash chains began; after that
        (or on a store made with chains) it was put there by hand."""
        version, position = at
        origin = self.origins.get(profile_id)
        if origin is None or version > origin[0] or position > origin[2]:
            self._say(profile_id, version, _UNLINKED)
        own = event_hash(stream.head, header, digest)
        if origin is not None and version == origin[0] and own != origin[1]:
            self._say(profile_id, version, _NOT_THE_ORIGIN)
        return own

    def _linked(
        self, profile_id: str, stream: Stream, version: int, hashed: tuple[bytes, str],
        chain: bytes,
    ) -> str:  # fmt: skip
        header, digest = hashed
        try:
            link = json.loads(chain)
            prev, body, own = str(link["prev"]), str(link["body"]), str(link["hash"])
            if not all(_HASH.fullmatch(h) for h in (prev, body, own)):
                raise ValueError("a link holds three hex SHA-256s")
        except (ValueError, KeyError, TypeError, RecursionError):
            self._say(profile_id, version, "its link is not readable")
            return event_hash(stream.head, header, digest)
        if prev != stream.head:
            if body == digest and own == event_hash(stream.head, header, digest):
                # rev31: also named its header, which hashed onto the edited prev no longer
                self._say(profile_id, version, f"{_PREV_EDITED} v{stream.version} before it)")
                return own
            what = f"its link names another previous event than the v{stream.version} before it"
            self._say(profile_id, version, f"{what}: edited, deleted, reordered or inserted")
        if body != digest:
            self._say(profile_id, version, _BODY_EDITED)
        elif own != event_hash(prev, header, body):
            self._say(profile_id, version, _HEADER_EDITED)
        return own

    def _moved(
        self, profile_id: str, stream: Stream, version: int, own: str, at: int, *, linked: bool
    ) -> None:
        stream.version, stream.head, stream.position = version, own, at
        if version == 1 and not stream.first_position:
            stream.first_position = at
        if linked and stream.linked_from is None:
            stream.linked_from = version
            if self.first_linked is None:
                self.first_linked = (at, profile_id, version)
        if self.watch and (profile_id, version) in self.watch:
            stream.hashes_at[version] = own
        self.tree.add(leaf_hash(bytes.fromhex(own)))
        self.last_position = at
        size = self.tree.size
        if size in self.sizes:
            self.roots[size] = self.tree.root()
            self.positions[size] = at
            for start, end in self.wanted:  # a proof's ranges that end here end the tree now
                if end == size and (start, end) not in self.tree.found:
                    self.tree.found[(start, end)] = self.tree.range_root(start)

    def finish(self) -> None:
        """What only the whole pass can tell: a profile that lost events its chain's origin
        recorded, and a registration on a directory another profile registered before it (is,
        contains or lies inside it), which custody refuses: the table of directories was
        edited to let it (two profiles leased on one directory at once). Not before chains
        began (the chain-origin rows' position): a store older than that comparison may hold
        such registrations of its own. An origin row the log contradicts is named, and sets
        no such bound (rev31: one forged row switched the comparison off)."""
        trusted = self._trusted_origins()
        legacy = max((position for _, _, position in trusted.values()), default=0)
        recorded = Recorded()
        for position, profile_id, directory in self.directories:
            found = recorded.first_overlap(directory)
            if found is not None and position > legacy:
                first, theirs = found
                how = "is" if theirs == directory else "overlaps"
                what = (
                    f"registers the directory {directory}, which {how} {first}'s ({theirs}): "
                    "two profiles on one directory, which custody refuses (its table of "
                    "directories was edited)"
                )
                self._say(profile_id, 1, what)
            recorded.add(profile_id, directory)
        self.registered_directories = {p: d for _, p, d in self.directories}
        self.directories.clear()
        for profile_id, (version, _, _) in trusted.items():
            stream = self.streams.get(profile_id)
            have = stream.version if stream else 0
            if have < version:
                what = f"ends at v{have}, but v{version} was recorded when chains began"
                self._say(profile_id, None, f"{what}: its tail was deleted")

    def _trusted_origins(self) -> dict[str, tuple[int, str, int]]:
        """The chain-origin rows the log bears out; each other one named."""
        trusted = {}
        for profile_id, origin in sorted(self.origins.items()):
            stream = self.streams.get(profile_id)
            linked_from = stream.linked_from if stream is not None else None
            wrong = mismatch(origin, linked_from, self.first_linked, self.last_position)
            if wrong is not None:
                self._say(profile_id, None, wrong)
            else:
                trusted[profile_id] = origin
        return trusted


def _mistyped(row: Row) -> list[str]:
    """Which cells of ``row`` are of another kind than custody stores (none: empty): SQLite
    keeps what an INSERT gives, and a read keys a stream by its text and decodes a state's
    bytes, so the same bytes in a cell of the other kind are no event custody reads."""
    _, stream, _, event_type, state = row
    odd: list[str] = []
    if not isinstance(stream, str):
        odd.append("its stream id as a blob, where custody stores text")
    if not isinstance(event_type, str):
        odd.append("its event type as a blob, where custody stores text")
    if not isinstance(state, bytes):
        odd.append("its state as text, where custody stores a blob")
    return odd


def _as_text(cell: object) -> str:
    return cell.decode("utf-8", "surrogateescape") if isinstance(cell, bytes) else str(cell)


def _as_bytes(cell: object) -> bytes:
    if isinstance(cell, str):
        return cell.encode("utf-8", "surrogateescape")
    return cell if isinstance(cell, bytes) else str(cell).encode()


_MISTYPED = (
    "no read takes it as the event its bytes spell (a load of its profile passes over it or "
    "fails on it, and every read model that folds the log fails on it): appended or edited "
    "outside custody"
)
_UNLINKED = (
    "carries no hash-chain link though it was stored after chains began: inserted or "
    "rewritten outside custody"
)
_NOT_THE_ORIGIN = (
    "does not hash to the head recorded when chains began: an event up to here was edited"
)
_MOVED = (
    "is stored under another stream than its profile's: moved between streams, so the ledger "
    "does not read it as this profile's"
)
_TAIL_EDITED = (
    "its stored bytes end otherwise than custody wrote them (edited after it was stored; the "
    "link and the body read the same)"
)
_UNREADABLE = (
    "links into its chain, but custody cannot read it: every read that folds it (the read "
    "models, its profile's commands) fails"
)
_BODY_EDITED = "its body was edited after it was stored (it no longer hashes to its link)"
_HEADER_EDITED = "its header (who, when, which command) was edited after it was stored"
_PREV_EDITED = (
    "its link's previous hash was edited after it was stored (the event and its own hash "
    "still follow the"
)


def walk(
    batches: Callable[[int | None, int], list[Row]],
    state: Walk,
    progress: Callable[[int], None] | None = None,
) -> Walk:
    """Feed every stored event, in log order, through ``state``; ``progress`` hears the
    number walked after each batch. From the first row whatever its position: a row put at
    position 0 or below by hand is read by every load of its stream, so it is walked too."""
    after: int | None = None
    while rows := batches(after, BATCH):
        state.read_clock()
        _each(state, rows)
        after = rows[-1][0]
        if progress is not None:
            progress(state.events)
    state.finish()
    return state


def _each(state: Walk, rows: Iterable[Row]) -> None:
    """``state.take`` each row; a row ``_intact`` vouches for moves its chain on here, to the
    outcome ``take`` would give it (nothing wrong), parsing each part of it once."""
    streams = state.streams
    for row in rows:
        intact = _intact(streams, row) if type(row[2]) is int and row[0] > 0 else None
        if intact is None:
            state.take(row)
            continue
        profile_id, own, stream, raw = intact
        if stream is None:
            stream = streams[profile_id] = Stream()
        state._moved(profile_id, stream, row[2], own, row[0], linked=True)
        state.registered(row, raw, profile_id)
        if state.reads is not None:  # its link is custody's three hashes, as a read takes it
            state.readable(row, raw, profile_id)


def _intact(
    streams: dict[str, Stream], row: Row
) -> tuple[str, str, Stream | None, dict[str, Any]] | None:
    """The profile, hash, stream (None: new) and parsed body of a stored event that holds
    exactly what custody stored and comes next in its chain, checked as ``Walk.take`` checks
    it; None for any other row, before anything of it is kept, so that ``take`` says what is
    wrong.

    The body is parsed by orjson, not json: where the two could read it apart (a lone
    surrogate, NaN, nesting json's recursion limit stops) orjson refuses or ``_header`` does,
    and the row is left to ``take``. An integer past 64 bits orjson reads as a float, json as
    an integer (rev30: this said orjson refused it): ``_header`` refuses a float, but one in
    the body reaches the event's decoding as that float, which an integer field takes only
    when it is whole."""
    _, stream_id, version, event_type, stored = row
    if type(stored) is not bytes or type(stream_id) is not str or type(event_type) is not str:
        return None  # a cell of another kind than custody stores: ``take`` names it
    tail = stored[-_LINK_LENGTH:].decode("latin-1")
    if tail[:19] != _OPENS or tail[83:93] != _HASH_AT or tail[157:167] != _PREV_AT:
        return None
    if tail[231:] != '"}}' or not stored.startswith(b'{"'):
        return None
    # Each of the three is compared below with a hex SHA-256 it must equal (the body's, the
    # event's, the head before it), so none needs a look of its own.
    body_hash, own, prev = tail[19:83], tail[93:157], tail[167:231]
    body = stored[:-_LINK_LENGTH] + b"}"  # ``split``: the link is the last key
    if body.count(b"{") + body.count(b"[") > _NESTED:
        return None  # json.loads may meet the recursion limit where orjson does not
    try:
        # As json.loads(body) (UTF-8 for bytes opening with '{"'), where orjson accepts it:
        # orjson is strict UTF-8 and takes nothing after the object but whitespace.
        raw = orjson.loads(body)
        profile_id = raw["profile_id"]
        header = _header(header_fields(raw, version, event_type))
    except Exception:  # take says what is wrong with it, or fails as it fails
        return None
    if header is None or type(profile_id) is not str or stream_id != _taken_stream(profile_id):
        return None
    stream = streams.get(profile_id)
    head, last = (stream.head, stream.version) if stream is not None else (GENESIS, 0)
    if version != last + 1 or prev != head or hashlib.sha256(body).hexdigest() != body_hash:
        return None
    return (profile_id, own, stream, raw) if event_hash(prev, header, body_hash) == own else None


def _header(fields: list[Any]) -> bytes | None:
    """``header_bytes`` of these fields, encoded by orjson; None where its bytes could differ
    from json's. They agree on strings of printable ASCII without a quote or a backslash
    (anything else orjson writes escaped, or as itself outside ASCII or as DEL, where json
    writes ``\\uXXXX``), on integers (orjson reads those past 64 bits as floats, which this
    refuses) and on true, false and null; never trusted for floats, objects or arrays."""
    if not _PLAIN.issuperset(map(type, fields)):
        return None
    encoded = orjson.dumps(fields)
    if not encoded.isascii() or b"\\" in encoded or b"\x7f" in encoded:
        return None
    return encoded


@functools.lru_cache(maxsize=65536)
def _stream_id(profile_id: str) -> str:
    """The stream a profile's events are stored under, as ``logged_events`` spells it (a
    uuid5 a walk would otherwise compute once per event)."""
    return stream_id(profile_id).hex


@functools.lru_cache(maxsize=65536)
def _taken_stream(profile_id: str) -> str | None:
    """``_stream_id``, for the shortcut: None for an id custody never takes, which ``take``
    names (``Walk.named``)."""
    if not takes_profile_id(profile_id):
        return None
    return _stream_id(profile_id)


_HASH = re.compile(r"[0-9a-f]{64}")

# An intact link as ``chain.stored`` writes it, last in the stored JSON: three hex SHA-256s,
# ',"~chain":{"body":"<64>","hash":"<64>","prev":"<64>"}}', read at these offsets.
_OPENS, _HASH_AT, _PREV_AT = ',"~chain":{"body":"', '","hash":"', '","prev":"'
_LINK_LENGTH = len(',"~chain":{"body":"","hash":"","prev":""}}') + 3 * 64
# At most this many brackets in a body the shortcut reads: its nesting is then far below the
# depth where json.loads raises RecursionError (about 1,000 less the caller's frames) and
# orjson (1,024) goes on. custody's events hold a handful.
_NESTED = 100
# The types of header fields whose JSON orjson writes as json does (see ``_header``).
_PLAIN = frozenset({str, int, bool, type(None)})
