"""``Ledger``: the ledger on one store. Commands go through ``handle``; reads return read models.

A caller builds a command (``ledger._commands``: ``Checkout``, ``Heartbeat``, ...) and hands it to
``Ledger.handle``, which runs it through its handler (``ledger._handlers``) and the unit of work.
Reads answer questions: a profile's view, its history as events, the availability rows, the
clock. Neither ever returns the aggregate.

The aggregate, its events and the rules that judge it are imported by the methods that load a
profile, not with the module: a read of the availability table (``custody status``) pays for
the row's model alone. A read that loads a profile (``view``, ``why``, ``who``) folds its events
into the state machine alone, never the aggregate with its commands and their rules.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Self, TypeVar

from ledger._domain.directories import normalised
from ledger._domain.errors import InvalidInput, StoreUnavailable, UnknownProfile
from ledger._domain.model import parse_lease_id
from ledger._domain.row import Availability, LeaseCheck, lease_check
from ledger._door import CheckoutQuery, Command, LeaseQuery, ProfileQuery
from ledger._stores import connect, initialise
from ledger._stores.settings import StoreSettings
from ledger._stores.sql import SqlStore
from ledger._unit_of_work import Clock, UnitOfWork

if TYPE_CHECKING:
    from ledger._commands import RecordBrowserStop
    from ledger._domain.events import ProfileEvent
    from ledger._domain.model import Denial
    from ledger._domain.state import ProfileStateMachine
    from ledger._domain.view import ProfileView
    from ledger.feed import Feed

R = TypeVar("R")
P = ParamSpec("P")
# The most commands ``handle_together`` writes in one transaction: PostgreSQL takes at most
# 65,535 parameters a statement, and a batch's one statement takes about 25 to 40 a command
# (its events, its availability row's 21 columns, its command id).
TOGETHER_AT_MOST = 500
# Stores a forked child inherited from its parent, never used nor closed there: their sockets
# are the parent's (closing one would end the parent's session), kept so no finaliser runs.
_INHERITED: list[SqlStore] = []


def _in_turn(method: Callable[Concatenate[Ledger, P], R]) -> Callable[Concatenate[Ledger, P], R]:
    """``method`` run while its ledger's calls take turns: threads that share one ledger wait
    for each other (rev35: eight threads on one ledger moved its cached profiles forward at
    once and were told an event of the log could not be read, the log intact)."""

    @functools.wraps(method)
    def taking_turns(self: Ledger, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._turn():
            return method(self, *args, **kwargs)

    return taking_turns


def _not_a_command(given: object) -> InvalidInput:
    """What ``handle`` says of what is not a command (rev48: a name, None raised
    AttributeError from inside the door)."""
    kind = type(given).__name__
    return InvalidInput("command", f"must be a Command (Checkout(...), Heartbeat(...)), not {kind}")


def _commands_given(commands: object) -> list[Any]:
    """``commands`` given to ``handle_together`` as a list: any iterable taken whole (a
    generator too); a text, a single command or what is not iterable ``InvalidInput`` naming
    ``commands`` (rev48: a text was taken as commands one character each, AttributeError, a
    generator TypeError)."""
    kind = type(commands).__name__
    if isinstance(commands, Command):
        raise InvalidInput("commands", f"must be a list of commands, not one {kind}: use handle")
    if isinstance(commands, str | bytes | bytearray) or not isinstance(commands, Iterable):
        raise InvalidInput("commands", f"must be a list of commands, not {kind}")
    return list(commands)


class Ledger:
    """The ledger on one store: ``handle`` runs a command, the other methods read.

    Open with ``Ledger.open(store_url)`` (or ``Ledger.init``); close when done (it is a context
    manager). Threads that share one take turns (one per thread runs them side by side). A
    process forked from one holding it may use it: the child opens the store again on its
    first use, leaving the parent's connections to the parent (on SQLite only if no other
    thread was using a store as it forked: docs/reference/python-api.md). Reads return read models,
    never the aggregate. Not picklable: a process started otherwise opens its own."""

    def __init__(
        self,
        settings: StoreSettings,
        connector: Callable[[bool], SqlStore],
        clock: Clock | None = None,
        *,
        create: bool = True,
    ) -> None:
        self.settings = settings
        self._connector = connector
        self._clock = clock
        self._create = create
        self._uow: UnitOfWork | None = None
        self._store: SqlStore | None = None
        self._pid = 0  # the process that opened the store
        self._reopening = False  # closed by reopen_if_replaced: the file went since it was open
        self._lock = threading.RLock()
        self._lock_pid = os.getpid()  # the process the lock is of

    def _turn(self) -> threading.RLock:
        """The lock the ledger's calls take turns by; a forked child's own (a thread of the
        parent may have held the parent's as it forked, and is not there to release it)."""
        if self._lock_pid != os.getpid():
            self._lock, self._lock_pid = threading.RLock(), os.getpid()
        return self._lock

    def __reduce__(self) -> Any:
        raise TypeError(
            "a Ledger cannot be pickled (it holds the store's connections): pass its store's "
            "URL to the other process and open a Ledger there (Ledger.open(url))"
        )

    @classmethod
    def open(
        cls,
        store_url: str | None = None,
        *,
        clock: Clock | None = None,
        create: bool = True,
        cached_profiles: int | None = None,
    ) -> Self:
        """A ledger on a store (None: ``$CUSTODY_STORE``, else ``./custody.db``).

        The URL is checked now (``InvalidInput``); the store is reached on first use, so a
        command refused for bad input touches nothing. Only a registration may make a new store
        (a missing or empty SQLite file), and not if ``create`` is False; PostgreSQL must have
        been initialised (``custody init``), so that workers never race to create tables.
        ``cached_profiles`` (default 1,000) is how many profiles stay loaded between commands:
        a process renewing more leases than that reloads each one every time.
        """
        settings = StoreSettings.resolve(store_url)
        if cached_profiles is not None:
            settings = settings.model_copy(update={"cached_profiles": max(1, cached_profiles)})
        return cls(
            settings, lambda creating: connect(settings, create=creating), clock, create=create
        )

    @staticmethod
    def anchored_url(store_url: str | None = None) -> str | None:
        """``store_url`` (None: ``$CUSTODY_STORE``, else ``./custody.db``) as a URL naming the
        same store whatever directory the process is in when it is opened: a relative SQLite
        path made absolute against the working directory now; any other URL as given. For a
        process that opens the store again later, on other threads (the worker SDK, the lease
        service): rev34, a worker that changed directory renewed its lease in another
        directory's store, and lost it. ``InvalidInput`` for a malformed URL."""
        settings = StoreSettings.resolve(store_url)
        return settings.anchored_url() if settings.kind == "sqlite" else store_url

    @classmethod
    def init(cls, store_url: str | None = None) -> Self:
        """Create or migrate the schema (idempotent, safe to run concurrently); return a
        ledger on it."""
        settings = StoreSettings.resolve(store_url)
        ledger = cls(settings, lambda _: initialise(settings))
        ledger._open(creating=True)
        return ledger

    @property
    def uow(self) -> UnitOfWork:
        """The unit of work on the open store; a missing store is not created here."""
        return self._open(creating=False)

    @_in_turn
    def _open(self, *, creating: bool) -> UnitOfWork:
        """Open the store on first use. Only a command that makes a profile may create a new
        store (and only if this ledger was opened with ``create``): a mistyped path given to
        any other command must not leave an empty ledger behind. A forked child opens it
        again (rev31: it used the parent's PostgreSQL session, which then failed on a prepared
        statement the child had made, or both hung)."""
        if self._uow is not None and self._pid != os.getpid():
            assert self._store is not None
            _INHERITED.append(self._store)
            self._store, self._uow = None, None
        if self._uow is None:
            try:
                self._store = self._connector(creating and self._create)
            except InvalidInput as e:
                if not self._reopening or e.field != "store":
                    raise
                # A file put at the path since it held a store (not a custody store, one being
                # copied): trouble the long-running reader waits out, as a file not there yet
                # (a review: the sweeper and the projector exited 2 and never saw the store
                # moved back; the service's /healthz answered 422).
                raise StoreUnavailable(str(e)) from None
            self._uow = UnitOfWork(self._store, self._clock)
            self._pid = os.getpid()
            self._reopening = False
        return self._uow

    @property
    def store(self) -> SqlStore:
        """The open store: the repository the commands run on, and what the reads read."""
        self._open(creating=False)
        assert self._store is not None
        return self._store

    @_in_turn
    def close(self) -> None:
        if self._store is not None and self._pid != os.getpid():  # the parent's, not ours
            _INHERITED.append(self._store)
        elif self._store is not None:
            self._store.close()
        self._store, self._uow = None, None

    @_in_turn
    def reopen_if_replaced(self) -> str | None:
        """For a long-running process, at each pass: where the SQLite file at the store's path
        is no longer the one this ledger opened (deleted, or a backup moved over it, since),
        the ledger is closed, what it held forgotten, and its next use opens the file now at
        the path, as a process started now would (none there: ``StoreUnavailable`` then, at
        each use, until one is); returns the line that tells a person so. None otherwise, on
        PostgreSQL, and before the store was opened. One ``os.stat``: a reader that never
        looked went on reading the file no longer there (a review: a sweeper swept a restored
        store's overdue lease never, a service answered from the old file)."""
        store = self._store
        if store is None or self._pid != os.getpid() or not store.file_replaced():
            return None
        self.close()
        self._reopening = True
        return (
            f"store {self.settings.describe()}: its file was deleted or replaced since this "
            "process opened it; the file now at its path is read from here on"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @_in_turn
    def handle(self, command: Command[R]) -> R:
        """Run ``command`` (``Checkout(...)``, ``Heartbeat(...)``, ...; ``ledger._commands``)
        through its handler and return its answer. The store is reached only now, so a
        command refused for bad input (which building it already raises) touches nothing;
        only a command that makes a profile (``RegisterProfile``) may make a new store.
        Raises the domain's answers (``CheckoutDenied``, ``LeaseLost``, ``NotAllowed``,
        ``InvalidInput`` for a reused command id) and ``StoreUnavailable``. A command built
        without validation (``model_construct``) is checked as building it would have, before
        the store is reached (``Door.as_validated``). What is not a ``Command`` (a name, None)
        is ``InvalidInput`` naming ``command``."""
        if not isinstance(command, Command):  # one check: a heartbeat pays for no more here
            raise _not_a_command(command)
        command = command.as_validated()
        return self._handled(self._open(creating=command.creates), command)

    def _handled(self, uow: UnitOfWork, command: Command[R]) -> R:
        """``command`` through its handler; a registration first refused if this host's disk
        shows its directory is another profile's through a symbolic link
        (``ledger._here``)."""
        from ledger import _handlers as handlers  # the command models: not for a read

        # ``command`` is what validation makes (``handle`` and ``handle_together`` see to it):
        # the door's check first, then the disk's look.
        if command.creates:  # only a registration: a heartbeat pays for no look here
            from ledger._commands import RegisterProfile
            from ledger._here import refuse_aliases

            if isinstance(command, RegisterProfile) and command.user_data_dir is not None:
                refuse_aliases(command.profile_id, command.user_data_dir, self.store.overlapping)
        return handlers.handle(uow, command)

    @_in_turn
    def handle_together(self, commands: Iterable[Command[Any]]) -> list[Any]:
        """Run several commands with their writes in one transaction (group commit: a process
        serving many leases renews them in one round of the store, not one each), up to
        ``TOGETHER_AT_MOST`` of them: more go in one transaction per that many, in order. Each
        is judged by the same rules as ``handle`` and answered on its own: the list holds, in
        order, each command's answer or the ``LedgerError`` it raised (``LeaseLost``, a
        denial...). If another writer was first on one of their profiles, each command runs
        again on its own; a command on a profile already in the batch, or a registration, runs
        on its own after it. ``StoreUnavailable`` is raised when the store cannot answer, unless
        a transaction of the call has been written: then the answers to its commands are given,
        and every command after them is answered with that ``StoreUnavailable``.

        ``commands`` may be any iterable of commands (a generator is taken whole first); a
        text, a single command or what is not iterable is ``InvalidInput`` naming
        ``commands``. An item that is not a ``Command`` is answered, in its place, with the
        ``InvalidInput`` naming ``command`` that ``handle`` raises for it."""
        given = commands if isinstance(commands, list | tuple) else _commands_given(commands)
        answers: list[Any] = [None] * len(given)
        # Each command built without validation is checked first, before the store is reached:
        # a registration refused so makes no store (rev35 review: an empty one was left).
        checked: list[tuple[int, Command[Any]]] = []
        for n, command in enumerate(given):
            if not isinstance(command, Command):
                answers[n] = _not_a_command(command)
                continue
            try:
                checked.append((n, command.as_validated()))
            except InvalidInput as refused:
                answers[n] = refused
        if not checked:
            return answers
        uow = self._open(creating=any(c.creates for _, c in checked))
        for start in range(0, len(checked), TOGETHER_AT_MOST):
            batch = checked[start : start + TOGETHER_AT_MOST]
            try:
                got = uow.together([partial(self._handled, uow, c) for _, c in batch])
            except StoreUnavailable as e:
                if not start:  # nothing was written: the call failed as a whole
                    raise
                # The transactions before stand: their answers are given, and each command
                # not written is answered with the failure.
                for n, _ in checked[start:]:
                    answers[n] = e
                return answers
            for (n, _), answer in zip(batch, got, strict=True):
                answers[n] = answer
        return answers

    @property
    def conflicts(self) -> int:
        """How many writes of this ledger's commands were refused and retried so far: version
        races lost, and resent command ids that their write found used (then answered)."""
        return self._uow.conflicts if self._uow is not None else 0

    @_in_turn
    def now(self) -> datetime:
        """The clock every deadline is judged on (the store's, unless a test injects one)."""
        return self.uow.now()

    @_in_turn
    def _state(self, profile_id: str, version: int | None = None) -> ProfileStateMachine:
        """The profile's state as its events leave it (as of ``version``), what every read
        judges: folded without the aggregate's commands (``Store.state``). ``UnknownProfile``
        if absent."""
        state = self.store.state(profile_id, version)
        if state is None:
            raise UnknownProfile(profile_id)
        return state

    @_in_turn
    def view(self, profile_id: str) -> ProfileView:
        """The profile as its events leave it, judged now; ``UnknownProfile`` if absent."""
        from ledger._domain.view import view_of

        pid = ProfileQuery(profile_id=profile_id).profile_id
        profile = self._state(pid)
        return view_of(profile, profile.registration(), self.now())

    @_in_turn
    def checked_view(self, profile_id: str) -> tuple[ProfileView, str | None]:
        """``view``, and what is wrong with the profile's stored availability row (None: it
        agrees), from one load of its events: the row is read first, so an honest row is
        never newer than the events read after it."""
        from ledger._domain.view import view_of

        pid = ProfileQuery(profile_id=profile_id).profile_id
        stored = self.store.availability_row(pid)
        profile = self._state(pid)
        problem = self._row_problem(pid, stored, profile)
        return view_of(profile, profile.registration(), self.now()), problem

    @_in_turn
    def overlapping_profiles(self, view: ProfileView) -> list[str]:
        """The other profiles whose registered directory is, contains or lies inside the
        viewed profile's, in directory order (only a store from before schema 5 can hold any:
        a registration overlapping another is refused). One read of the directories."""
        profile_id, directory = view.record.profile_id, view.record.user_data_dir
        if directory is None:
            return []
        found = self.store.overlapping(normalised(directory))
        return [d.profile_id for d in found if d.profile_id != profile_id]

    @_in_turn
    def check_lease(self, lease_id: str) -> LeaseCheck:
        """Is the lease still its profile's live lease (not ended, not marked stale, its renewal
        deadline not passed on the store's time)? What a worker polls while it holds one, to
        learn of a force-release, a quarantine or a disable within seconds. One indexed read
        of the profile's availability row (written with the events, so never behind them); a
        row missing or damaged is made from the events instead. ``InvalidInput`` for a
        malformed lease id, ``UnknownProfile``."""
        from ledger._domain.view import availability_of

        lid = LeaseQuery(lease_id=lease_id).lease_id
        pid = parse_lease_id(lid)[0]
        row = self.store.availability_row(pid)
        if not isinstance(row, Availability):
            row = availability_of(self._state(pid))
        return lease_check(row, lid, self.now())

    @_in_turn
    def lease_worker(self, lease_id: str) -> str | None:
        """The worker that holds (or last held) the lease, while its profile's availability row
        still names it; None when the row names another lease. One indexed read: what a
        service checks before it lets a caller speak under a lease."""
        from ledger._domain.view import availability_of

        lid = LeaseQuery(lease_id=lease_id).lease_id
        pid = parse_lease_id(lid)[0]
        row = self.store.availability_row(pid)
        if not isinstance(row, Availability):
            row = availability_of(self._state(pid))
        if row.lease_id == lid:
            return row.holder_worker
        return row.last_worker if row.last_lease_id == lid else None

    @_in_turn
    def profile_ids(self) -> list[str]:
        """Every registered profile, read from the event log itself, in id order."""
        return self.store.profile_ids()

    @_in_turn
    def registrations(self) -> tuple[list[str], list[tuple[str, int]]]:
        """``profile_ids``, and the registrations in a stream not their profile's own, which
        register nothing, as (profile id, position): one read of the log's registrations."""
        return self.store.registrations()

    @_in_turn
    def history(self, profile_id: str) -> list[ProfileEvent]:
        """Every event on the profile's stream, oldest first; ``UnknownProfile`` if none."""
        pid = ProfileQuery(profile_id=profile_id).profile_id
        events = self.store.history(pid)
        if not events:
            raise UnknownProfile(pid)
        return events

    @_in_turn
    def require(self, profile_id: str) -> None:
        """``UnknownProfile`` unless the profile was registered (``InvalidInput`` for a
        malformed id); one indexed read, whatever the stream's length."""
        pid = ProfileQuery(profile_id=profile_id).profile_id
        if not self.store.exists(pid):
            raise UnknownProfile(pid)

    @_in_turn
    def may_record(self, command: RecordBrowserStop) -> None:
        """``Forbidden`` unless the store's login may act in the role ``command`` is recorded
        in: asked before what it records is done (a browser stopped), not only when it is
        handled after."""
        self.uow.require(command.acts_as)

    @_in_turn
    def checkout_denial(
        self, profile_id: str, *, account_id: str | None = None, proxy_id: str | None = None
    ) -> Denial | None:
        """What a checkout of the profile (for ``account_id`` and ``proxy_id``, when given)
        would be told now, by the rules ``checkout`` applies, in its order (context, then
        state); None: it would be granted. Writes nothing. ``UnknownProfile`` if absent;
        ``InvalidInput`` for an id ``Checkout`` refuses (``CheckoutQuery``), as a checkout
        would be told, never a denial for an account or proxy no checkout could name."""
        from ledger._domain.denials import also_blocked, context_denial, state_denial

        asked = CheckoutQuery(profile_id=profile_id, account_id=account_id, proxy_id=proxy_id)
        profile, now = self._state(asked.profile_id), self.now()
        denial = context_denial(profile, asked.account_id, asked.proxy_id) or state_denial(
            profile, now
        )
        return None if denial is None else also_blocked(profile, denial, now)

    @_in_turn
    def view_as_of(self, profile_id: str, version: int, at: datetime) -> ProfileView:
        """The profile as its first ``version`` events left it, judged at ``at`` (what a
        checkout at ``at`` would have been told); ``UnknownProfile`` if absent."""
        from ledger._domain.view import view_of

        pid = ProfileQuery(profile_id=profile_id).profile_id
        profile = self._state(pid, version)
        return view_of(profile, profile.registration(), at)

    @property
    def feed(self) -> Feed:
        """The notification log for read models, and their tables (``ledger.feed``)."""
        from ledger.feed import Feed

        return Feed(self.store)

    @_in_turn
    def availability(self) -> list[Availability]:
        """Every readable availability row, as stored beside its events."""
        return self.store.availability()

    @_in_turn
    def availability_rows(self) -> tuple[list[Availability], dict[str, str]]:
        """Every availability row as stored, in one read: the readable ones in profile id
        order, and the unreadable ones by profile id with the problem."""
        return self.store.scan_availability()

    @_in_turn
    def stored_availability(self, profile_id: str) -> Availability | str | None:
        """The profile's availability row as stored: the row, what is wrong with it, or None
        when there is none (one indexed read)."""
        return self.store.availability_row(ProfileQuery(profile_id=profile_id).profile_id)

    @_in_turn
    def damaged_availability(self) -> dict[str, str]:
        """Rows that cannot be read (a NULL, a junk value), by profile id, with the problem."""
        return self.store.damaged_rows()

    @_in_turn
    def availability_from_events(self, profile_id: str, version: int | None = None) -> Availability:
        """The row the profile's events give now (what ``rebuild`` would write), or as its
        first ``version`` events left it."""
        from ledger._domain.view import availability_of

        pid = ProfileQuery(profile_id=profile_id).profile_id
        return availability_of(self._state(pid, version))

    @_in_turn
    def row_problem(self, profile_id: str) -> str | None:
        """What is wrong with a registered profile's stored availability row, or None when it
        agrees with the events."""
        stored = self.store.availability_row(profile_id)
        latest = self._state(profile_id)  # read after the row: never older than an honest row
        return self._row_problem(profile_id, stored, latest)

    def _row_problem(
        self, profile_id: str, stored: Availability | str | None, latest: ProfileStateMachine
    ) -> str | None:
        """What is wrong with ``stored``, the profile's row, given ``latest``, its profile
        loaded after the row was read; None when they agree."""
        from ledger._domain.view import availability_of

        if stored is None:
            return "missing"
        if isinstance(stored, str):
            return f"unreadable: {stored}"
        if stored.version > latest.version:
            return f"version {stored.version} is ahead of the events ({latest.version})"
        if stored.version < latest.version:
            stored_again = self.store.availability_row(profile_id)  # a writer may have moved on
            if not isinstance(stored_again, Availability) or stored_again.version < latest.version:
                return f"version {stored.version} is behind the events ({latest.version})"
            stored = stored_again
        same = stored.version == latest.version  # the usual case: no second load
        fresh = availability_of(latest if same else self._state(profile_id, stored.version))
        fields = [f for f in Availability.model_fields if getattr(stored, f) != getattr(fresh, f)]
        return f"differs in {', '.join(fields)}" if fields else None
