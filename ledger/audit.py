"""Tamper evidence for the whole ledger: digests and their verification.

Every profile's events form a hash chain (each event hashes its header, its body and the event
before it), and the log of all events forms a Merkle tree as RFC 9162 defines it. ``digest``
writes down the tree's size and root and every profile's head (signed with an Ed25519 key, if
one is given); ``verify`` recomputes every chain and the tree from the stored bytes and names,
with the profile and version, every event that was edited, deleted, reordered or inserted, and
a digest that was forged or does not match. Given two digests it proves the later log extends
the earlier one, with the RFC's consistency proof. Both also check every stored snapshot against
the events it caches (``ledger._audit.snapshots``): a load starts from one, so a snapshot edited
or forged changes what the ledger believes though every chain holds.

One pass over the log each, in batches, and one fold of each profile that has snapshots, up to
its last: memory grows with the number of profiles, not events. On a log of ``BESIDE_FROM``
events or more the fold runs in a process of its own while the walk runs
(``ledger._audit.beside``), with the same problems in the same order.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ledger._application import Ledger
from ledger._audit.beside import SnapshotsBeside, share
from ledger._audit.digest import (
    Digest,
    Head,
    TreeHead,
    _load_private,
    _public_hex,
    file_hash,
    generate_key,
    load,
    public_pem,
    sign,
    signature_problem,
)
from ledger._audit.merkle import consistency_ranges, verify_consistency
from ledger._audit.snapshots import SnapshotCheck
from ledger._audit.walk import Problem, Walk, walk
from ledger._domain.errors import InvalidInput, LedgerError
from ledger._domain.model import Frozen, stream_id, takes_profile_id
from ledger._domain.row import Availability
from ledger._stores.mapper import read_of
from ledger._stores.recorders import DIRECTORIES_TABLE
from ledger.ports import DirectoryRecord

__all__ = [
    "Digest",
    "DigestRefused",
    "Problem",
    "Verification",
    "digest",
    "file_hash",
    "generate_key",
    "load",
    "verify",
]

Progress = Callable[[int], None]
# From this many events on, the snapshot check runs in a child process beside the walk: below,
# starting an interpreter for it (about 0.2 s) costs more than it saves.
BESIDE_FROM = 20_000


class DigestRefused(LedgerError):
    """The log does not verify: a digest of it would bless what was done to it."""

    exit_code = 5


class Verification(Frozen):
    """What ``verify`` found: how many events, profiles and snapshots it checked, the tree's
    size and root, the problems (none: everything holds), and, given two digests, the
    consistency proof that the later log extends the earlier."""

    events: int
    profiles: int
    snapshots: int = 0
    tree_size: int
    root: str
    problems: list[str]
    proof: list[str] | None = None

    @property
    def holds(self) -> bool:
        return not self.problems


def digest(
    ledger: Ledger,
    *,
    previous: bytes | None = None,
    key: bytes | None = None,
    progress: Progress | None = None,
    beside: bool | None = None,
) -> Digest:
    """A digest of the log as it stands, after verifying every chain (``DigestRefused``,
    naming what is wrong, when one does not hold). ``previous``: the bytes of the digest
    before it (its hash is recorded; ``InvalidInput`` naming ``previous`` unless they are a
    digest's); ``key``: an Ed25519 private key (PEM) to sign with. With ``previous`` the log
    must also still hold what that digest recorded (``DigestRefused`` otherwise): a chain's
    links are unkeyed, so a history rewritten with its links made again holds every chain,
    and only the digest before it can tell. With both, ``previous`` must be signed by
    ``key`` and verify (``DigestRefused`` otherwise, before the log is read): a previous
    digest edited to match a rewritten log would have its successor signed."""
    before = load(previous, "previous") if previous is not None else None
    if key is not None:  # bad input is said before the log is read, whatever the log holds
        _load_private(key)
        signed = signature_problem(before, public_pem(key)) if before is not None else None
        if signed is not None:
            raise DigestRefused(
                f"the previous digest {signed} (the public half of --key), so no digest was "
                "made: a digest signs on only from one its key signed (to begin signing, or "
                "with a new key, write a first signed digest to a new file without --previous "
                "and keep the old chain's last digest with it)"
            )
    walked = _planned(*ledger.store.chain_origins(), before, None)
    walked.clock = ledger.now  # an event dated ahead of it is named
    _, found = _walked_and_found(ledger, walked, progress, beside)
    here = _this_store(ledger)
    if found:
        raise DigestRefused(f"the log does not verify, so no digest was made: {_shown(found)}")
    # rev31: a previous digest of another store says so first, as verify's --digest does.
    lost = _of_another_store(_holds(walked, before), before, here) if before is not None else []
    if lost:
        said = _shown([f"the previous digest {p}" for p in lost])
        raise DigestRefused(
            "every chain holds, but the log no longer holds what the previous digest recorded, so "
            f"no digest was made: {said}"
        )
    made = Digest(
        store=here,
        at=ledger.now(),
        tree=TreeHead(
            size=walked.events,
            root=walked.tree.root().hex(),
            position=walked.last_position,
        ),
        heads={p: Head(version=s.version, hash=s.head) for p, s in sorted(walked.streams.items())},
        previous=file_hash(previous) if previous is not None else None,
    )
    return sign(made, key) if key is not None else made


def verify(
    ledger: Ledger,
    *,
    against: Digest | bytes | None = None,
    since: Digest | bytes | None = None,
    public_key: bytes | None = None,
    progress: Progress | None = None,
    beside: bool | None = None,
) -> Verification:
    """Recompute every chain and the tree from the stored bytes; with ``against``, check the
    log holds what that digest recorded (and its signature); with ``since`` too, prove the
    log of ``against`` extends the log of ``since``. Each digest is a ``Digest`` or a digest
    file's bytes (``InvalidInput`` naming the argument for anything else, before the log is
    read). ``beside``: check the snapshots in a child process while the walk runs (None: on a
    log of ``BESIDE_FROM`` events or more); what verify finds is the same either way. Writes
    nothing. ``public_key`` (PEM bytes) needs a digest whose signature it checks: without
    ``against`` or ``since``, ``InvalidInput`` naming it, as the command line's ``verify``
    refuses ``--public-key`` without ``--digest``."""
    against, since = _digest_given(against, "against"), _digest_given(since, "since")
    if public_key is not None:  # read now, before the log, whatever the digests
        # rev48: without a digest it was ignored, whatever it was (5, b"xx"): a caller could
        # believe a signature had been checked.
        _public_hex(public_key)
        if against is None and since is None:
            msg = "needs against: the digest whose signature it checks"
            raise InvalidInput("public_key", msg)
    state = _planned(*ledger.store.chain_origins(), against, since)
    state.clock = ledger.now  # an event dated ahead of it is named
    checked, problems = _walked_and_found(ledger, state, progress, beside)
    proof = None
    here = _this_store(ledger)
    for name, recorded in (("the digest", against), ("the earlier digest", since)):
        if recorded is not None:
            found = _of_another_store(_against(state, recorded, public_key), recorded, here)
            problems += [f"{name} {p}" for p in found]
    if against is not None and since is not None:
        problems_, proof = _extends(state, since, against)
        problems += problems_
    return Verification(
        events=state.events,
        profiles=len(state.streams),
        snapshots=checked,
        tree_size=state.events,
        root=state.tree.root().hex(),
        problems=problems,
        proof=proof,
    )


def _digest_given(given: Digest | bytes | None, name: str) -> Digest | None:
    """The digest ``given`` as itself or as a file's bytes (``load``, ``InvalidInput`` naming
    ``name`` for anything else)."""
    if given is None or isinstance(given, Digest):
        return given
    if not isinstance(given, bytes | bytearray):
        kind = type(given).__name__
        raise InvalidInput(name, f"must be a Digest or the bytes of a digest file, not {kind}")
    return load(given, name)


def _walked_and_found(
    ledger: Ledger, state: Walk, progress: Progress | None, beside: bool | None
) -> tuple[int, list[str]]:
    """Walk the log through ``state``; how many snapshots were checked and every line of
    what is wrong with the log, its snapshots, its availability rows (a deleted tail) and the
    guards that refuse a rewrite: what verify reports and digest refuses (rev35: digest
    signed a log whose newest events were deleted, and a store whose guards were dropped,
    both of which verify named)."""
    # Read before the walk: every row read was written with its events, which the walk reads.
    rows, _ = ledger.store.scan_availability()
    before = ledger.store.directories()
    checked, snapshot_problems = _walk_and_check(ledger, state, progress, beside)
    mistyped = ledger.store.mistyped_snapshots()  # which that check passes over
    checked += len(mistyped)
    snapshot_problems += _mistyped_snapshots(state, mistyped)
    # Read after it too: every registration walked had its row written with it by then.
    directories = _directory_rows(state, before, ledger.store.directories())
    problems = [
        p.line() for p in state.problems + snapshot_problems + _behind(state, rows) + directories
    ]
    problems += ledger.store.guard_problems()  # what would refuse the next rewrite
    return checked, problems


def _mistyped_snapshots(state: Walk, rows: list[tuple[str, str, Any]]) -> list[Problem]:
    """Each snapshot whose stream id is stored as other than a text (kind, the id as SQL spells
    it, version), by the profile whose stream id its bytes spell when the walk met one: no
    load reads it (a load asks for the text), and the check of the snapshots passes over it
    (rev38: its pages began at it again for ever, and verify's memory grew without end)."""
    if not rows:
        return []
    streams = {stream_id(p).hex: p for p in state.streams if takes_profile_id(p)}
    problems = []
    for kind, spelt, version in rows:
        blob = re.fullmatch(r"X'([0-9A-F]*)'", spelt)
        owner = streams.get(bytes.fromhex(blob[1]).decode("latin-1")) if blob else None
        what = (
            f"a snapshot whose stream id is stored as {_KINDS.get(kind, kind)} ({spelt[:80]}), "
            f"where custody stores text: no load reads it; {_SNAPSHOT_CACHE}"
        )
        at = version if owner is not None and type(version) is int else None
        problems.append(Problem(owner, at, what))
    return problems


_SNAPSHOT_CACHE = "a cache, so deleting the row loses nothing"
_KINDS = {"blob": "a blob", "integer": "an integer", "real": "a real number", "null": "NULL"}


def _behind(state: Walk, rows: list[Availability]) -> list[Problem]:
    """Each profile whose log ends before the version its availability row was written at,
    in the same transaction as its last events: its tail was deleted (or the row edited).
    No chain can tell a deleted tail from one never written; the row can, without a digest
    (rev29: verify passed a log whose newest events were deleted, and ``projections
    status`` sent the user to rebuild the read models that still knew them)."""
    problems = []
    for row in rows:
        stream = state.streams.get(row.profile_id)
        have = stream.version if stream is not None else 0
        if row.version > have:
            problems.append(
                Problem(
                    row.profile_id,
                    None,
                    f"the log ends it at v{have}, but its availability row was written with "
                    f"v{row.version}: events of it were deleted (or the row edited); a digest "
                    "made before says which",
                )
            )
    return problems


def _directory_rows(
    state: Walk, before: list[DirectoryRecord], after: list[DirectoryRecord]
) -> list[Problem]:
    """Each profile whose row in the table of directories disagrees with its registration:
    missing (read after the walk, which saw the registration: a registration over that
    directory would be let through, and two profiles share it), of a profile no registration
    gives that directory, or another directory (read before the walk, which then saw the
    registration written with it). Two reads of the table, none per profile (rev36: a row
    deleted by hand went unnoticed by verify, and a second profile was registered on it)."""
    registered = state.registered_directories
    kept = {row.profile_id for row in after}
    problems = [
        Problem(
            profile_id,
            1,
            f"registers the directory {directory}, but {DIRECTORIES_TABLE} has no row of it "
            f"(deleted by hand?): another profile may be registered on it; {_MEND}",
        )
        for profile_id, directory in sorted(registered.items())
        if profile_id not in kept
    ]
    for profile_id, directory in before:
        given = registered.get(profile_id)
        if given is None:
            what = f"has a row {directory} in {DIRECTORIES_TABLE}, but no registration of it "
            what += "gives that directory"
        elif given != directory:
            what = f"registers the directory {given}, but its row in {DIRECTORIES_TABLE} says "
            what += directory
        else:
            continue
        problems.append(Problem(profile_id, None, f"{what} (written by hand?); {_MEND}"))
    return problems


_MEND = "custody init writes the table again from the registrations"


def _this_store(ledger: Ledger) -> str:
    """The store ``ledger`` opened, as a digest records it (``_place``): a SQLite file named
    against the directory it was opened in, wherever the process is now."""
    settings = ledger.settings
    if settings.kind == "sqlite":
        return _SQLITE + os.path.realpath(settings.sqlite_opened())
    return _place(settings.describe(), login=True)


def _place(described: str, login: bool = False) -> str:
    """A store's description without the login that described it (a digest the owner made,
    checked under a reviewer's login, is of the same database; ``login``: kept), and a SQLite
    file by its real absolute path: the default ``sqlite:///custody.db`` names a file only
    with the directory it was made in (rev29: the same file named absolutely read as another
    store, and another directory's ``custody.db`` as this one, its differences as tampering).
    A relative path a digest recorded before is taken from this directory."""
    if described.startswith(_SQLITE):
        return _SQLITE + os.path.realpath(described[len(_SQLITE) :])
    return described if login else re.sub(r"^(postgresql://)[^@/]*@", r"\1", described)


_SQLITE = "sqlite:///"


def _shown(found: list[str]) -> str:
    """The first five of ``found``, and how many more."""
    more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
    return "; ".join(found[:5]) + more


def _of_another_store(found: list[str], recorded: Digest, here: str) -> list[str]:
    """``found``, what ``recorded`` says the log no longer holds, led by the line saying that
    it was made of another store when it was: its differences would read as tampering."""
    if found and _place(recorded.store) != _place(here):  # a restored copy too: said
        return [_another_store(recorded.store, here), *found]
    return found


def _another_store(theirs: str, here: str) -> str:
    return (
        f"was made of another store, {theirs} (this is {here}): unless this one is a copy of "
        "it, what follows compares two stores, not this log with its past"
    )


def _walk_and_check(
    ledger: Ledger, state: Walk, progress: Progress | None, beside: bool | None
) -> tuple[int, list[Problem]]:
    """Walk the log through ``state`` and check every snapshot: how many snapshots and what
    is wrong with them. With ``beside``, a child process checks the first streams' snapshots
    during the walk and this one the rest after it (``beside.share``); if the child does not
    answer, this process checks them all again."""
    store = ledger.store
    state.reads = read_of
    events = store.event_count() if beside is not False else 0
    if beside is None:
        beside = events >= BESIDE_FROM
    extents = store.stream_heads() if beside else []  # the check folds each stream to its end
    if not extents:
        walk(store.logged_events, state, progress)
        done = SnapshotCheck(store).run()
        return done.checked, done.problems
    until = share(extents, events)
    with SnapshotsBeside(store.settings_for_another_process, until) as child:
        walk(store.logged_events, state, progress)
        own = SnapshotCheck(store, streams=(until, None)).run() if until is not None else None
        answer = child.result()
    if answer is None:
        done = SnapshotCheck(store).run()
        return done.checked, done.problems
    checked, problems = answer
    if own is not None:
        return checked + own.checked, problems + own.problems
    return checked, problems


def _planned(
    origins: dict[str, tuple[int, str, int]],
    odd: list[tuple[str, str]],
    against: Digest | None,
    since: Digest | None,
) -> Walk:
    """A walk that keeps what the digests will be checked against as it passes; ``odd``:
    chain-origin rows it cannot read, (profile, what is wrong), named first."""
    recorded = [d for d in (against, since) if d is not None]
    watch = {(p, h.version) for d in recorded for p, h in d.heads.items()}
    sizes = {d.tree.size for d in recorded}
    wanted: frozenset[tuple[int, int]] = frozenset()
    if against is not None and since is not None and 0 < since.tree.size <= against.tree.size:
        wanted = frozenset(consistency_ranges(since.tree.size, against.tree.size))
    planned = Walk(origins=origins, watch=watch, sizes=sizes, wanted=wanted)
    planned.problems += [Problem(profile_id, None, what) for profile_id, what in odd]
    return planned


def _against(state: Walk, recorded: Digest, public_key: bytes | None) -> list[str]:
    """What the log holds that the digest does not say, and what is wrong with the digest."""
    signed = signature_problem(recorded, public_key)
    return ([signed] if signed is not None else []) + _holds(state, recorded)


def _holds(state: Walk, recorded: Digest) -> list[str]:
    """What the log holds that the digest does not say (its signature aside)."""
    problems = []
    size = recorded.tree.size
    if state.events < size:
        problems.append(f"records {size} events; the log holds {state.events}: events were deleted")
    elif state.roots.get(size, b"").hex() != recorded.tree.root:
        problems.append(
            f"records the tree of the first {size} events with root {recorded.tree.root[:16]}; "
            "the log's first events differ: edited, deleted, reordered or inserted into the past"
        )
    elif size and (at := state.positions.get(size)) != recorded.tree.position:
        # The tree covers the events' hashes, not their positions: a log renumbered holds it
        # (rev38), while every read model, which keeps positions, no longer matches the log.
        problems.append(
            f"records its event {size} (its last) at position {recorded.tree.position}; the "
            f"log holds it at position {at}: the log was renumbered (the read models' "
            "positions no longer match it)"
        )
    problems += _heads(state, recorded)
    return problems


def _heads(state: Walk, recorded: Digest) -> list[str]:
    problems = []
    for profile_id, head in sorted(recorded.heads.items()):
        stream = state.streams.get(profile_id)
        if stream is None or stream.version < head.version:
            have = stream.version if stream else 0
            problems.append(
                f"records {profile_id} at v{head.version}; the log ends it at v{have}: events "
                "of it were deleted (its last, or any with the later ones renumbered and relinked)"
            )
        elif stream.hashes_at.get(head.version) != head.hash:
            problems.append(
                f"records another {profile_id} v{head.version} than the log holds: that event "
                "or one before it was replaced"
            )
    inserted = [(p, s) for p, s in state.streams.items() if p not in recorded.heads and s.version]
    for profile_id, stream in sorted(inserted):
        first = stream.first_position  # rev31: read only of a profile with one event
        if first and first <= recorded.tree.position:
            problems.append(
                f"does not know {profile_id}, whose v1 lies inside its log (position "
                f"{first}): inserted into the past"
            )
    return problems


def _extends(state: Walk, earlier: Digest, later: Digest) -> tuple[list[str], list[str] | None]:
    """The RFC 9162 consistency proof from the earlier digest's tree to the later one's,
    made from the log and checked against both roots."""
    m, n = earlier.tree.size, later.tree.size
    if m > n:
        return [f"the earlier digest ({m} events) is not older than the later one ({n})"], None
    if m == 0:  # the empty log begins every log (its root was checked against the empty tree's)
        return [], []
    found = [state.tree.found.get(r) for r in consistency_ranges(m, n)]
    proof = [p for p in found if p is not None]
    if len(proof) < len(found):  # the log no longer holds the later digest's events
        return [
            f"no proof that the log of {n} events extends the log of {m}: the log holds "
            f"{state.events} now"
        ], None
    old, new = bytes.fromhex(earlier.tree.root), bytes.fromhex(later.tree.root)
    if not verify_consistency(m, n, old, new, proof):
        msg = f"the log of {n} events does not extend the log of {m} the earlier digest records"
        return [msg], [p.hex() for p in proof]
    return [], [p.hex() for p in proof]
