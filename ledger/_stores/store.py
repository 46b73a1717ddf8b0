"""The store port: one profile's stream loaded and saved, the availability rows beside it.

``Store`` holds an eventsourcing application and does what every database does alike (load,
save, history, the registered profiles); ``SqlStore`` adds the store's clock, the availability
table and the read models' database, on SQLite and PostgreSQL. Together they are the ledger's
``Repository`` (``ledger.ports``) and what its reads need. Driver errors stop here: callers see
``StoreUnavailable`` or ``StreamConflict``, never psycopg, sqlite3 or eventsourcing exceptions.

The domain (the aggregate, its events and snapshots) is imported by the methods that load,
save or decode a stream, not with the module: a store opened to read its tables (``custody
status``, a worker's lease check) pays for none of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from copy import deepcopy
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, Cache, LRUCache
from eventsourcing.persistence import EventStore, IntegrityError, Mapper, StoredEvent
from eventsourcing.utils import Environment

from ledger._domain.directories import normalised
from ledger._domain.errors import OlderSnapshot, UnreadableSnapshot
from ledger._domain.model import stream_id, takes_profile_id
from ledger._domain.row import Availability
from ledger._stores.connections import store_errors as store_errors, store_failure as store_failure
from ledger._stores.mapper import ProfileEventMapper, decode_profile_id, readable_snapshot
from ledger._stores.replaced import replaced_of
from ledger._stores.settings import APPLICATION_NAME, StoreSettings
from ledger.ports import (
    Authority,
    CommandRecord,
    DirectoryRecord,
    LateSave,
    Misdated,
    Save,
    StreamConflict,
)

if TYPE_CHECKING:
    from ledger._domain.events import ProfileEvent
    from ledger._domain.profile import Profile
    from ledger._domain.snapshot import ProfileSnapshot
    from ledger._domain.state import ProfileStateMachine
    from ledger._stores.views import Views

# Each process keeps the profiles it touched (``StoreSettings.cached_profiles`` of them) and
# fast-forwards them with only the events it has not seen, so a command does not replay the
# whole stream every time.
# A profile's state is snapshotted after every event whose version is a multiple of this, so a
# load (now, or as of any version) folds at most this many events after the nearest snapshot.
# A snapshot is the state alone (1-2 KB, whatever the stream's length): the interval trades
# the snapshots table's size against the events a load folds (bench/scale.py measures both).
SNAPSHOT_INTERVAL = 50


def claimed_directories(profile: Profile) -> list[tuple[str, str]]:
    """The (profile id, normalised directory) a save of ``profile`` claims: the directory of
    a registration among its pending events."""
    from ledger._domain.events import ProfileRegistered

    return [
        (profile.profile_id, normalised(e.user_data_dir))
        for e in profile.pending_events
        if isinstance(e, ProfileRegistered) and e.user_data_dir is not None
    ]


def _registered_id(state: bytes) -> str | tuple[str]:
    """The profile id a stored registration names, if it is one custody takes; else, in a
    1-tuple, what it names as a line shows it (``repr``, cut): a registration of no profile."""
    try:
        named: Any = decode_profile_id(state)
    except Exception:  # a body that is no JSON object naming a profile: verify names it
        return ("no profile id",)
    if takes_profile_id(named):
        return str(named)
    return (repr(named)[:60],)


class LedgerApplication(Application[UUID]):
    """The eventsourcing application holding every profile's event stream. It names no
    aggregate class (see the module's docstring): nothing of custody calls ``save`` on it,
    the store appends and takes snapshots itself (``Store.save_together``)."""

    name = APPLICATION_NAME

    # False for a PostgreSQL login that may not write snapshots (``ledger._stores.access``):
    # its loads still start from the snapshots others wrote.
    takes_snapshots = True

    def construct_env(self, name: str, env: Any = None) -> Environment:
        # Configuration comes from the store URL alone; stray POSTGRES_* variables in the
        # process environment must not redirect the ledger.
        return Environment(name, {"IS_SNAPSHOTTING_ENABLED": "y", **dict(env or {})})

    def construct_mapper(self) -> Mapper[UUID]:
        return ProfileEventMapper()

    def construct_snapshot_store(self) -> EventStore[UUID]:
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return CurrentSnapshots(mapper=self.mapper, recorder=recorder)


class CurrentSnapshots(EventStore[UUID]):
    """The snapshots a load may start from: one of an older form (``OlderSnapshot``) is passed
    over for the one before it, or for none (a load then folds every event), as if it had
    never been taken: a snapshot is a cache, and that one would give another state than the
    events give."""

    def get(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[Any]:
        while True:
            rows = self.recorder.select_events(
                originator_id=originator_id, gt=gt, lte=lte, desc=desc, limit=limit
            )
            passed = False
            for row in rows:
                try:
                    yield readable_snapshot(row)
                except OlderSnapshot:
                    passed = True
                else:
                    if limit is not None:
                        limit -= 1
            if not (passed and limit):  # all asked for given (or all there are)
                return
            # The limit cut the rows short by those passed over: read on past the last one.
            last = rows[-1].originator_version
            lte, gt = (last - 1, gt) if desc else (lte, last)


class Store:
    """An open store. Not shared across threads: open one per thread."""

    def __init__(self, settings: StoreSettings, app: LedgerApplication) -> None:
        self.settings = settings
        self.app = app
        # What opening the store has to tell a person: a migration's findings (``init``).
        self.notes: list[str] = []
        # The states reads folded (``state``), as many as the repository keeps aggregates for
        # the commands, apart from those: a read makes no aggregate, a command needs one.
        self._states: Cache[UUID, ProfileStateMachine] | None = (
            LRUCache(maxsize=settings.cached_profiles) if app.repository.cache else None
        )
        # PostgreSQL's count of lost connections: what the process holds is dropped after one.
        self._replaced = replaced_of(getattr(app.recorder, "datastore", None))

    def _trusted(self) -> None:
        """Forget every profile this process holds if a connection to the store was lost or
        replaced since they were last trusted: the server may have lost what it acknowledged
        (``ledger._stores.postgres.Replaced``)."""
        replaced = self._replaced
        if replaced is None or replaced.count == replaced.trusted:
            return
        replaced.trusted = replaced.count
        for cache in (self.app.repository.cache, self._states):
            if isinstance(cache, LRUCache):  # its links, its map and its fullness, as new
                with cache.lock:
                    cache.cache.clear()
                    cache.clear()
                    cache.full = False
            elif cache is not None:
                cache.cache.clear()

    def close(self) -> None:
        self.app.close()

    # -- the event streams ------------------------------------------------------------------

    def load(self, profile_id: str, version: int | None = None) -> Profile | None:
        """The profile's aggregate (as of ``version``), or None if it was never registered."""
        from ledger._domain.profile import replay

        stream = stream_id(profile_id)
        self._trusted()
        try:
            with store_errors(self.settings):
                held = self.app.repository.cache
                if version is None and (cached := self._fast_forwarded(stream, held)) is not None:
                    return cast("Profile", cached)
                profile: Profile = self.app.repository.get(
                    stream, version=version, projector_func=replay
                )
        except AggregateNotFoundError:
            return None
        except UnreadableSnapshot as e:  # the stream's bytes may not say whose it is
            raise e.of(profile_id) from e
        return profile

    def state(self, profile_id: str, version: int | None = None) -> ProfileStateMachine | None:
        """The profile's state as its events leave it (as of ``version``), or None if it was
        never registered: what a read judges, folded by the same state machine as ``load``
        but without the aggregate's commands (``ledger._domain.profile`` and the rules it
        imports, which a read never runs). A profile this store holds, as an aggregate or as
        a state a read folded, is fast-forwarded as ``load`` does; another is read as the
        library's repository reads it (the latest snapshot up to ``version``, then the events
        after it) and kept apart from the repository's cache, which holds aggregates."""
        from ledger._domain.loading import fold
        from ledger._domain.state import ProfileStateMachine

        stream = stream_id(profile_id)
        app = self.app
        self._trusted()
        with store_errors(self.settings):
            if version is None:
                for cache in (app.repository.cache, self._states):
                    if (held := self._fast_forwarded(stream, cache)) is not None:
                        return held
            snapshots = app.snapshots
            try:
                found = (
                    list(snapshots.get(stream, desc=True, limit=1, lte=version))
                    if snapshots
                    else []
                )
            except UnreadableSnapshot as e:  # the stream's bytes may not say whose it is
                raise e.of(profile_id) from e
            after = found[0].originator_version if found else None
            events = app.events.get(stream, gt=after, lte=version)
            state = fold(None, [*found, *events], ProfileStateMachine)  # type: ignore[list-item]
        if state is None or version is not None or self._states is None:
            return state
        self._states.put(stream, state)
        return deepcopy(state)  # the held one stays as folded

    def cached(self, profile_id: str) -> Profile | None:
        """A copy of the profile this store last loaded or saved, without a read (it may be
        behind the store: see ``ledger.ports.Repository.cached``)."""
        self._trusted()
        cache = self.app.repository.cache
        if cache is None:
            return None
        try:
            held = cast("Profile", cache.get(stream_id(profile_id)))
        except KeyError:
            return None
        return deepcopy(held)

    def _fast_forwarded(
        self, stream: UUID, cache: Cache[UUID, Any] | None
    ) -> ProfileStateMachine | None:
        """A copy of the profile ``cache`` holds (the repository's aggregates, or the states
        reads folded), brought up to date with the events appended since (usually none: one
        indexed read), or None when it is not held. What the library's repository does for a
        cached aggregate, without its per-stream lock for threads sharing one application (a
        store is never shared across threads)."""
        from ledger._domain.loading import fold

        if cache is None:
            return None
        try:
            held: ProfileStateMachine = cache.get(stream)
        except KeyError:
            return None
        fold(held, self.app.events.get(stream, gt=held.version), type(held))  # type: ignore[arg-type]
        return deepcopy(held)

    def save(
        self,
        profile: Profile,
        row: Availability,
        command: tuple[str, str] | None = None,
        *,
        in_time: float | None = None,
    ) -> None:
        """Append the profile's pending events, upsert its availability row, record the
        caller's ``command`` (its id and fingerprint) with the version the events reach and
        the directory a registration claims, in one transaction; ``StreamConflict`` if another
        writer took that version or that command id first, ``InvalidInput`` if the directory
        overlaps another profile's (nothing kept). ``in_time``: ``Repository.save``."""
        self.save_together([(profile, row, command)], in_time=in_time)

    def save_together(self, saves: Sequence[Save], *, in_time: float | None = None) -> None:
        """``save`` of several profiles in one transaction (group commit), all or nothing.
        Written in profile order, so two batches that share profiles take their rows' locks in
        one order and never deadlock."""
        saves = sorted(saves, key=lambda save: save[0].profile_id)
        commands, rows, directories = [], [], []
        for profile, row, command in saves:
            if command is not None:
                command_id, fingerprint = command
                commands.append((command_id, profile.profile_id, profile.version, fingerprint))
            rows.append(row)
            directories += claimed_directories(profile)
        collected = [profile.collect_events() for profile, _, _ in saves]
        app = self.app
        try:
            with store_errors(self.settings):
                # What ``Application.save`` does, without its runtime Protocol checks (a walk
                # of the Protocol's attributes per isinstance) and deprecated hooks.
                app.recorder.insert_events(
                    [app.mapper.to_stored_event(e) for each in collected for e in each],
                    availability=rows,
                    commands=commands,
                    directories=directories,
                    in_time=in_time,
                    due=None if in_time is None else self.latest_by(in_time),
                )
        except IntegrityError:
            raise StreamConflict(", ".join(p.profile_id for p, _, _ in saves)) from None
        except Misdated:
            self.doubt_clock()  # the server's clock may have stepped since it was measured
            raise
        except LateSave as e:
            # The server's clock may have been set forward since it was measured: the bound
            # the check was sent with is early then, and so is the offset the command was
            # decided on (review 280: the bound alone measured again, the command decided
            # again on the old offset passed the check by the whole step: a release kept 5 s
            # past its deadline).
            if e.by_the_store:
                self.doubt_clock()
            raise
        # The saved profile is the cached one now: the next load fast-forwards from its
        # version and finds nothing, instead of reading back and decoding its own events
        # (the library caches nothing after a save when it fast-forwards).
        cache = app.repository.cache
        for (profile, _, _), events in zip(saves, collected, strict=True):
            self._snapshot_if_due(profile, events)  # the cache still holds the profile before
            if cache is not None and events:
                cache.put(profile.id, profile)

    def _snapshot_if_due(self, profile: Profile, events: Sequence[ProfileEvent]) -> None:
        """A snapshot at each saved version that is a multiple of ``SNAPSHOT_INTERVAL``, as
        ``Application.save`` takes them (not for a login that may not write snapshots). At the
        saved profile's own version it is taken from the profile in hand instead of folding
        the stream again from the store (``custody verify`` checks each against the fold);
        at another (a save of several events, a release's), from the profile this process held
        before the save, folded on to it with the saved events, when it held the stream up to
        them; else from the stream folded to it, as ``Application.take_snapshot`` does (a fold
        from the store, most of a checkout+release cycle's snapshot cost)."""
        due = [e for e in events if not e.originator_version % SNAPSHOT_INTERVAL]
        app = self.app
        if not due or app.snapshots is None or not app.takes_snapshots:
            return
        from ledger._domain.acting import Forbidden
        from ledger._domain.errors import StoreUnavailable
        from ledger._domain.profile import replay
        from ledger._domain.snapshot import ProfileSnapshot

        # Taken after the command's events committed, and only a cache: a store that fails
        # now (a lock held past the timeout, a lost connection) leaves the snapshot to the
        # next writer at a multiple of the interval, never the committed command reported as
        # failed, which a caller without a command id could not tell from one that wrote
        # nothing (rev30).
        with contextlib.suppress(StoreUnavailable, Forbidden), store_errors(self.settings):
            for event in due:
                version = event.originator_version
                # One already there is this very state (only the writer of a version takes
                # it): never a reason to run the command again.
                with contextlib.suppress(IntegrityError):
                    taken: Profile | None = profile
                    if version != profile.version:
                        taken = self._held_before(profile, events, version)
                    if taken is None:
                        taken = app.repository.get(
                            event.originator_id, version=version, projector_func=replay
                        )
                    app.snapshots.put([ProfileSnapshot.take(taken)])

    def _held_before(
        self, profile: Profile, events: Sequence[ProfileEvent], version: int
    ) -> Profile | None:
        """The profile at ``version``, one of ``events`` just saved: a copy of the profile this
        process held before the save (the cache's, not yet replaced by the saved one) with the
        saved events up to it folded on, if it held the stream up to the first of them; else
        None. What it held is what the decision stood on, and the save's version check proved
        the stream had nothing after it."""
        from ledger._domain.loading import fold

        cache = self.app.repository.cache
        try:
            held = cache.get(profile.id) if cache is not None else None
        except KeyError:
            return None
        if held is None or held.version != events[0].originator_version - 1:
            return None
        upto = [e for e in events if e.originator_version <= version]
        return cast("Profile", fold(deepcopy(held), upto, type(held)))

    def history(self, profile_id: str) -> list[ProfileEvent]:
        """Every event on the profile's stream, oldest first (empty if none)."""
        with store_errors(self.settings):
            events = self.app.events.get(stream_id(profile_id))
            return list(events)  # type: ignore[arg-type]

    def event_at(self, profile_id: str, version: int) -> ProfileEvent | None:
        """The profile's event at ``version`` (None: there is none): one indexed read."""
        found = self.stream_events(stream_id(profile_id), version - 1, version, 1)
        return found[0] if found else None

    def stream_events(self, stream: UUID, after: int, upto: int, limit: int) -> list[ProfileEvent]:
        """Up to ``limit`` events of ``stream`` after version ``after`` and up to ``upto``,
        oldest first, read and decoded as a load reads them (upcast, without any snapshot)."""
        with store_errors(self.settings):
            events = self.app.events.get(stream, gt=after, lte=upto, limit=limit)
            return list(events)  # type: ignore[arg-type]

    def decode_snapshot(
        self, stream: UUID, version: int, topic: str, state: bytes
    ) -> ProfileSnapshot:
        """A stored snapshot as a load decodes it (the store's own mapper); raises whatever the
        mapper raises on bytes it cannot read."""
        stored = StoredEvent(
            originator_id=stream, originator_version=version, topic=topic, state=state
        )
        return readable_snapshot(stored)

    def exists(self, profile_id: str) -> bool:
        """Whether the profile was registered: one indexed read of its first event."""
        with store_errors(self.settings):
            found = self.app.recorder.select_events(stream_id(profile_id), limit=1)
            return bool(found)

    def profile_ids(self) -> list[str]:
        """Every registered profile, read from the event log itself, in id order: each once,
        by a registration in its own stream (``registrations``)."""
        return self.registrations()[0]

    def registrations(self) -> tuple[list[str], list[tuple[str, int]]]:
        """The registered profiles (in id order), and the registrations that register none,
        as (profile id as a line shows it, position), in log order: in a stream that is not
        their profile's own (``stream_id``), which every read and load of the profile goes to,
        or naming no profile id custody takes (not a text, or not one ``register`` accepts).
        Put there past custody (an operator's login before schema 19, or by hand): taken for a
        registration, one made every timeline and ``status`` fail (rev37; its review: an id
        ``a b`` failed status as bad input, a number as an internal error, init too);
        ``custody verify`` names them."""
        own: set[str] = set()
        stray: list[tuple[str, int]] = []
        start = 1
        with store_errors(self.settings):
            while batch := self.app.recorder.select_notifications(
                start, 1000, topics=["profile_registered"]
            ):
                for n in batch:
                    pid = _registered_id(n.state)
                    stream = n.originator_id
                    if isinstance(pid, str) and (
                        stream if isinstance(stream, UUID) else UUID(stream)
                    ) == stream_id(pid):
                        own.add(pid)
                    else:
                        stray.append((pid if isinstance(pid, str) else pid[0], n.id))
                start = batch[-1].id + 1
        return sorted(own), stray

    def event_count(self) -> int:
        """How many events the store holds (the notification log's last id, gaps included)."""
        with store_errors(self.settings):
            return self.app.recorder.max_notification_id() or 0

    def sweep_endings(self, sweep_id: str, after: int) -> list[ProfileEvent]:
        """The events past log position ``after`` that ended a lease for the sweep
        ``sweep_id`` (``ReviewRequested``, ``ProfileQuarantined`` carrying it as their command
        id), in log order: read by topic, a page at a time, decoded as a load decodes them."""
        # The events' module only here: the read commands import none of it (start-up).
        from ledger._domain.events import ProfileQuarantined, ReviewRequested

        found: list[ProfileEvent] = []
        start = after + 1
        topics = [ReviewRequested.event_type, ProfileQuarantined.event_type]
        with store_errors(self.settings):
            while batch := self.app.recorder.select_notifications(start, 1000, topics=topics):
                for n in batch:
                    event = cast("ProfileEvent", self.app.mapper.to_domain_event(n))
                    if event.envelope.command_id == sweep_id:
                        found.append(event)
                start = batch[-1].id + 1
        return found

    # -- what each backend provides ---------------------------------------------------------

    def now(self) -> datetime:
        """The clock every deadline is judged on."""
        raise NotImplementedError

    def doubt_clock(self) -> None:
        """The store refused a save as dated too far from its clock (``Misdated``) or as late
        on that clock (``LateSave.by_the_store``): the next ``now`` and ``latest_by`` read the
        store's clock again. Nothing to do where the clock is this host's."""

    def latest_by(self, in_time: float) -> float | None:
        """``in_time`` (``time.monotonic``) on the store's own clock, as seconds since the
        epoch, never earlier than it is there: the latest the store's clock may read when a
        save due then holds its locks (the save's own check, where the store is reached over a
        network whose delay before the transaction begins it cannot see otherwise). None where
        the store's clock is this host's: the monotonic clock judges alone."""
        return None

    def authority(self, *, fresh: bool = False) -> Authority:
        raise NotImplementedError

    def command_record(self, command_id: str) -> CommandRecord | None:
        """Where and how a caller's command id was used, if it was."""
        raise NotImplementedError

    def record_sweep(self, command_id: str, command: str) -> bool:
        """Record a sweep's command id (``Repository.record_sweep``)."""
        raise NotImplementedError

    def exclusive(self, name: str) -> contextlib.AbstractContextManager[None]:
        """The lock ``name`` across every process on the store (``Repository.exclusive``)."""
        return self.views.exclusive(name)

    def directories(self) -> list[DirectoryRecord]:
        """Every recorded profile directory, in profile id order."""
        raise NotImplementedError

    def overlapping(self, directory: str) -> list[DirectoryRecord]:
        """The recorded directories that are, contain or lie inside the normalised
        ``directory`` (only a store from before schema 5 can hold two that overlap)."""
        raise NotImplementedError

    def availability(self) -> list[Availability]:
        """Every readable availability row, in profile id order (see ``damaged_rows``)."""
        return self.scan_availability()[0]

    def damaged_rows(self) -> dict[str, str]:
        """Rows that cannot be read as availability (a NULL or junk value), by profile id."""
        return self.scan_availability()[1]

    def scan_availability(self) -> tuple[list[Availability], dict[str, str]]:
        """The readable rows in profile id order, and the unreadable ones with the problem."""
        raise NotImplementedError

    def availability_row(self, profile_id: str) -> Availability | str | None:
        """One profile's row: the row, what is wrong with it, or None when there is none."""
        raise NotImplementedError

    def overdue(self, now: datetime) -> list[str]:
        """Profiles whose row says stale or a lease past its deadline at ``now``."""
        raise NotImplementedError

    def sweep_candidates(self, now: datetime) -> list[str]:
        """Profiles whose row says stale or overdue at ``now``, and those whose row is missing
        or unreadable, in id order (``ledger.ports.Repository``)."""
        readable, _ = self.scan_availability()
        unseen = set(self.profile_ids()) - {r.profile_id for r in readable}
        return sorted(set(self.overdue(now)) | unseen)

    def write_availability(self, rows: list[Availability]) -> None:
        """Upsert rows as given (tests and tools; the ledger writes rows with their events)."""
        raise NotImplementedError

    def replace_availability(self, row: Availability) -> bool:
        """Replace the profile's row, whatever it holds, by ``row`` if the profile's stream is
        still at ``row.version`` (checked in the same transaction, against writers); returns
        whether it was replaced."""
        raise NotImplementedError

    def delete_availability(self, profile_id: str) -> None:
        raise NotImplementedError

    @property
    def views(self) -> Views:
        """Where the read models fed from the notification log keep their tables."""
        raise NotImplementedError
