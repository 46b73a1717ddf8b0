"""Keeping read models current: catch-up (exactly once), status, and rebuild into a shadow table.

A read catches up first, so an answer never lags the command before it. ``run`` keeps the read
models current between reads: on PostgreSQL it is woken by each committed append (LISTEN/NOTIFY),
on every store at the latest after its polling interval. Each batch is one transaction: claim
the read model's checkpoint, read the events after it, fold them into rows, move the
checkpoint; so a crash (or a kill) at any moment leaves rows and checkpoint as they were, and
two runners of one read model take turns instead of folding an event twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ledger import (
    Forbidden,
    InvalidInput,
    Ledger,
    LedgerError,
    NotAllowed,
    ReadModelDamaged,
    StoreUnavailable,
)
from ledger.feed import (
    Feed,
    FeedTransaction,
    LoggedEvent,
    PositionLost,
    ReadModelBehind,
    RowConflict,
    UnreadableEvent,
    unreadable_position,
)
from projections._base import ReadModel, ReadResult, layout_problem

BATCH = 500
SHADOW = "__next"  # the suffix of a rebuild's table and checkpoint


class ReadModelStatus(ReadResult):
    """Where a read model stands: its checkpoint's position, how many events it has yet to
    fold, and what is wrong with its rows (``projections._verify``: one line each, with its
    repair)."""

    name: str
    position: int | None  # None: not installed yet (the first read installs it)
    head: int
    lag: int
    rows: int | None
    rebuilding: bool
    problems: list[str] = []


class Rebuilt(ReadResult):
    """A rebuild that was swapped in: the position it reached and the rows it holds."""

    name: str
    position: int
    rows: int
    seconds: float


def install(ledger: Ledger, model: ReadModel) -> bool:
    """Create the read model's table and checkpoint if missing; True if made now.
    ``PositionLost`` (a ``ReadModelDamaged``) when its table is there without its checkpoint:
    what its rows hold is unknown, and only a rebuild (``upgrade``, ``rebuild``) repairs it."""
    table = model.table.name
    return ledger.feed.install(model.name, table, model.table.ddl(table, "a"))


def catch_up(ledger: Ledger, model: ReadModel, *, batch: int = BATCH) -> int:
    """Fold every event committed after the read model's checkpoint; return how many. An
    answer read after this sees every command that finished before it."""
    head = _behind(ledger, model)
    if head is None:  # the common case for a reader: one short read transaction
        return 0
    applied = _catch_up(ledger.feed, model, model.name, model.table.name, batch)
    _short_of(ledger.feed, [model], head)
    return applied


def catch_up_all(ledger: Ledger, models: Iterable[ReadModel], *, batch: int = BATCH) -> int:
    """``catch_up`` of each read model, reading the log once for all of those behind: one
    transaction per batch claims every one's checkpoint (in name order), reads the events after
    the least of them, folds into each only the events after its own and moves each checkpoint.
    Each event is still folded once per read model (the claims are ``catch_up``'s), and an event
    is read and decoded once for all of them, where one catch-up each would read and decode
    it once per read model. Returns the events folded, summed over the read models. A read
    model named twice is caught up once (one checkpoint, one claim); two different read models
    under one name are ``InvalidInput`` (they would share a checkpoint)."""
    progress = _Progress()
    _catch_up_all(ledger, models, batch, progress)
    return progress.events


@dataclasses.dataclass
class _Progress:
    """What a catch-up's committed batches did, kept whatever fails after them."""

    batches: int = 0
    events: int = 0


def _catch_up_all(
    ledger: Ledger,
    models: Iterable[ReadModel],
    batch: int,
    progress: _Progress,
    stop: threading.Event | None = None,
) -> None:
    """``catch_up_all``, counting into ``progress``; stopped between two batches once ``stop``
    is set (each batch is its own transaction: nothing is lost)."""
    found = [(m, head) for m in _once_each(models) if (head := _behind(ledger, m)) is not None]
    if not found:
        return
    behind = sorted((m for m, _ in found), key=lambda m: m.name)
    _catch_up_together(ledger.feed, behind, batch, progress, stop)
    if stop is None or not stop.is_set():  # stopped, it is short by its own choice: no note
        _short_of(ledger.feed, behind, min(head for _, head in found))


def _short_of(feed: Feed, models: list[ReadModel], head: int) -> None:
    """Warn ``ReadModelBehind`` for each read model a catch-up left short of ``head``, the log's
    head before it began: a read of the log hands on only what is settled once the store's
    timeout passes, and a transaction still open (an append, or any writer holding a gap)
    kept it from an event committed before the read. The answer leaves that out: said, never
    silently (rev24: an owner's ``timeline`` left out a finished heartbeat, exit 0, no note)."""
    checkpoints = feed.checkpoints()
    for model in models:
        position = checkpoints.get(model.name)
        if position is not None and position < head:
            _note(ReadModelBehind(model.name, feed.lag(position), held_at=position), 4)


# The notes already warned within a ``notes_once`` block (None: outside one, each is warned).
_SAID: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("notes", default=None)


@contextlib.contextmanager
def notes_once() -> Iterator[None]:
    """Within the block, each ``ReadModelBehind`` note is warned once, however many reads find
    it: an answer that reads a read model once per profile (the checklist's and the report's
    explanations of the blocked profiles) said the same line for each (rev28: 7 times in one
    ``report --html``). Per thread and task (a context variable): other answers still hear
    theirs."""
    token = _SAID.set(set())
    try:
        yield
    finally:
        _SAID.reset(token)


# The notes heard within a ``hearing_notes`` block, beside their warnings (None: outside one).
_HEARD: contextvars.ContextVar[list[ReadModelBehind] | None] = contextvars.ContextVar(
    "heard_notes", default=None
)


@contextlib.contextmanager
def hearing_notes() -> Iterator[list[ReadModelBehind]]:
    """Within the block, each ``ReadModelBehind`` note is also kept in the list it gives, as
    well as warned: for a program that answers someone else than its own user (the lease
    service's ``Custody-Note`` header), without touching the process's warnings filters. Per
    thread and task (a context variable)."""
    heard: list[ReadModelBehind] = []
    token = _HEARD.set(heard)
    try:
        yield heard
    finally:
        _HEARD.reset(token)


def _note(behind: ReadModelBehind, stacklevel: int) -> None:
    heard = _HEARD.get()
    if heard is not None:
        heard.append(behind)
    said = _SAID.get()
    if said is not None and str(behind) in said:
        return
    if said is not None:
        said.add(str(behind))
    warnings.warn(behind, stacklevel=stacklevel)


def _once_each(models: Iterable[ReadModel]) -> list[ReadModel]:
    """Each read model once, in the order given: its checkpoint claimed twice in one
    transaction would give both claims the same position, and every event would be folded
    twice."""
    named: dict[str, ReadModel] = {}
    for model in models:
        first = named.setdefault(model.name, model)
        if type(first) is not type(model) or first.table.name != model.table.name:
            msg = (
                f"two different read models are named {model.name!r}: they would share a checkpoint"
            )
            raise InvalidInput("read_models", msg)
    return list(named.values())


def _behind(ledger: Ledger, model: ReadModel) -> int | None:
    """The log's head if the read model has events to fold up to it, else None: installed
    now if missing, and
    ``ReadModelDamaged`` if its table is missing or of another layout, its checkpoint past the
    log's head, or lost beside its table (``PositionLost``). Never for a login that may not
    write it (``Feed.maintains``: a worker's): it reads what the maintainers folded."""
    feed = ledger.feed
    position, head = feed.standing(model.name, model.table.name)  # names a missing table
    if position is not None and position > head:
        _refuse_ahead(feed, model, position)
    if not feed.maintains():  # a worker's login reads the read model as it stands
        if position is None and feed.columns(model.table.name):  # its checkpoint lost
            raise PositionLost(model.name, model.table.name)
        if position is None:  # but cannot make it: one line, not the table's absence
            msg = (
                f"the {model.name} read model was never installed in this store, and this "
                "store login may not install it: run custody projections run where the store "
                "may be written (a scheduler's, reviewer's or operator's login, or a writable "
                "copy of a SQLite file)"
            )
            raise Forbidden(msg)
        if position < head:  # the answer leaves them out: said, never silently
            _note(ReadModelBehind(model.name, feed.lag(position)), 3)
        return None
    if position is None:
        install(ledger, model)
        return head
    _check_layout(feed, model)
    return head if position < head else None


def _refuse_ahead(feed: Feed, model: ReadModel, position: int) -> None:
    """``ReadModelDamaged`` for a checkpoint past the log's head: events appended up to it
    would never be folded. The head is read again, after the checkpoint (on PostgreSQL each
    statement of ``standing`` sees its own moment, and a runner may have moved it since)."""
    head = feed.head()
    if position > head:
        said = (
            f"its position {position} is ahead of the log's head {head} (the events written "
            "up to it would be skipped)"
        )
        raise ReadModelDamaged(model.name, said)


def _last_batch(found: Sequence[Any], batch: int, stop: threading.Event | None) -> bool:
    """Whether a catch-up ends after the batch that read ``found``: it came back short (caught
    up), or ``stop`` was set (each batch is its own transaction: stopping loses nothing)."""
    return len(found) < batch or (stop is not None and stop.is_set())


def _catch_up_together(
    feed: Feed,
    models: list[ReadModel],
    batch: int,
    progress: _Progress,
    stop: threading.Event | None,
) -> None:
    while True:
        applied = 0
        with feed.transaction() as tx:
            # Claimed in one order by every caller, so two callers never wait for each other.
            positions = [tx.claim_checkpoint(model.name) for model in models]
            least = min(positions)
            found = tx.events_after(least, batch)
            for model, position in zip(models, positions, strict=True):
                mine = found if position == least else [n for n in found if n.position > position]
                if mine:
                    _fold(model, tx, model.table.name, mine)
                    tx.move_checkpoint(model.name, mine[-1].position)
                applied += len(mine)
        progress.batches, progress.events = progress.batches + 1, progress.events + applied
        # Writers that keep every batch full kept a runner told to stop for minutes (rev37).
        if _last_batch(found, batch, stop):
            return


def _check_layout(feed: Feed, model: ReadModel) -> None:
    """``ReadModelDamaged`` unless the read model's table has the columns it writes (read once
    per table in this process)."""
    table = model.table
    if table.name in feed.checked_layouts:
        return
    found = feed.columns(table.name)
    if found != list(table.stored_names):
        raise ReadModelDamaged(model.name, layout_problem(table, found))
    feed.checked_layouts.add(table.name)


def _fold(model: ReadModel, tx: FeedTransaction, table: str, events: list[LoggedEvent]) -> None:
    """``model.fold``; where it fails on an event no read can decode (put there outside
    custody: ``custody verify`` names it), ``UnreadableEvent`` names that event in one line;
    where a row it writes is there already (its checkpoint was set back behind its rows),
    ``ReadModelDamaged`` names the read model and its rebuild. An event outside its profile's
    own stream is passed over (``LoggedEvent.of``). Only what reading an event's
    fields raises is looked into (a missing key, a wrong kind, a model's validation): a
    store's failure (a driver's error, any other ``LedgerError``) is itself."""
    try:
        # Only each event of its profile's own stream, the one every load and read of the
        # profile goes to: one in another (appended past custody) is no event of the profile
        # (``custody verify`` names it), and folded it took another's row, which wedged the
        # read model for the whole fleet and failed its rebuild (rev37).
        own = [n for n in events if n.of(n.data()["profile_id"])]
        if own:
            model.fold(tx, table, own)
    except RowConflict as error:  # a row written already: its checkpoint was set back
        if table.endswith(SHADOW):  # a rebuild's own table, from nothing: two events, one row
            where = f"an event at positions {events[0].position} to {events[-1].position}"
            twice = (
                "it names a profile's version another event named: one of them is in a stream "
                "custody did not begin"
            )
            then = f"so read model {model.name} cannot be rebuilt; custody verify names it"
            raise UnreadableEvent(where, twice, then=then) from error
        said = "a row it would write is there already (its position was set back behind its rows)"
        raise ReadModelDamaged(model.name, said) from error
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        for event in events:
            if (problem := event.unreadable()) is not None:
                what = f"the event at position {event.position} ({event.event_type[:40]!r})"
                raise UnreadableEvent(what, problem) from error
        raise


def _catch_up(
    feed: Feed,
    model: ReadModel,
    name: str,
    table: str,
    batch: int,
    stop: threading.Event | None = None,
    progress: _Progress | None = None,
) -> int:
    """Fold batch after batch into ``table`` until one comes back short, or ``stop`` is set
    (looked at between two batches: each is its own transaction); each committed batch is
    counted into ``progress`` too, kept whatever fails after it."""
    applied = 0  # the caller has seen there is something to apply (or is rebuilding)
    while True:
        with feed.transaction() as tx:
            position = tx.claim_checkpoint(name)  # first: another runner of it waits here
            found = tx.events_after(position, batch)
            if found:
                _fold(model, tx, table, found)
                tx.move_checkpoint(name, found[-1].position)
        applied += len(found)
        if progress is not None:
            progress.batches, progress.events = progress.batches + 1, progress.events + len(found)
        if _last_batch(found, batch, stop):
            return applied


def run(
    ledger: Ledger,
    read_models: Iterable[ReadModel],
    *,
    interval: float = 1.0,
    batch: int = BATCH,
    rounds: int | None = None,
    stop: threading.Event | None = None,
    announce: Callable[[str], None] | None = None,
) -> int:
    """Keep the read models current for other readers: catch up, wait for the next wake-up
    (a committed append on PostgreSQL, at the latest ``interval`` seconds on every store; see
    ``Feed.wakeups``, which tells ``announce`` when it switches between push and polling), and
    again, ``rounds`` times or until ``stop`` is set (looked at between two batches too: each
    is its own transaction). Returns the events folded. A store that fails after the first
    catch-up or its first batch (``StoreUnavailable``), or is busy at the first (another
    runner or a rebuild holds a read model while it waits out a gap in the log), is announced
    and tried again at the next wake-up, if another round is to come: runners take turns; one
    that cannot be reached at all is raised at once. A SQLite file deleted or replaced under
    its path (a restored backup) is opened again at the next wake-up, and announced
    (``Ledger.reopen_if_replaced``). A damaged read model
    (``ReadModelDamaged``) is announced once and tried again at each wake-up, while the others
    are caught up without it; a run of ``rounds`` whose last catch-up left one damaged (not
    caught up) raises it at the end, saying the events the others folded (they are kept), so
    that a one-shot catch-up that failed is told from one that did not (rev45: exit 0). A run
    that ``stop`` ends returns as before."""
    if not ledger.feed.maintains():  # it would fold nothing, forever, and say nothing
        msg = (
            "this store login may not write the read models (a worker's reads them): run "
            "custody projections run under a scheduler's, reviewer's or operator's login"
        )
        raise Forbidden(msg)
    models = list(read_models)
    _drop_leftovers(ledger, models, announce or _unheard)
    stop = stop or threading.Event()
    done = 0
    progress = _Progress()  # every batch committed, whatever failed after it
    said: set[str] = set()  # the damage announced already (once each, not every wake-up)
    left: list[ReadModelDamaged] = []  # the damage the round just ended left behind
    with ledger.feed.wakeups(interval, announce) as wakeups:  # listening before catching up
        while not stop.is_set():
            if (said_again := ledger.reopen_if_replaced()) is not None:  # a restored SQLite file
                (announce or _unheard)(said_again)
            left = []
            try:
                try:
                    _catch_up_all(ledger, models, batch, progress, stop)
                    said.clear()
                except ReadModelDamaged:  # the others one by one: an outage there is one too
                    left = _catch_up_each(ledger, models, batch, announce or _unheard, said,
                                          stop, progress)  # fmt: skip
            except StoreUnavailable as e:
                last = rounds is not None and done + 1 >= rounds
                if done == 0 and (last or not e.busy):  # no store: said at once
                    # Unless a batch was committed before it failed: a server that restarts
                    # during a long first catch-up is tried again (rev37: it was exit 6).
                    begun = progress.batches > 0 and not last
                    if not begun and progress.events:  # what it did is kept: said (rev37)
                        raise _after_folding(e, progress.events) from e
                    if not begun:
                        raise
                # A restarting server or a lock held too long: the next wake-up tries again.
                (announce or _unheard)(f"{e}; catching up again at the next wake-up")
            done += 1
            if rounds is not None and done >= rounds:
                break
            wakeups.wait(stop)
    if left and not stop.is_set():  # the last of its rounds, and no signal ended it
        raise _left_damaged(left, progress.events)
    return progress.events


def _left_damaged(left: list[ReadModelDamaged], events: int) -> ReadModelDamaged:
    """The first damage a run's last catch-up left, its line saying that the run ended with it
    not caught up, the others damaged with it and the events the others folded."""
    first, others = left[0], [damaged.name for damaged in left[1:]]
    said = f"{first.problem}; the run ended with it not caught up"
    if others:
        said += f" (damaged too: {', '.join(others)})"
    if events:
        said += f", {events} event(s) folded into the other read models are kept"
    return ReadModelDamaged(first.name, said)


def _unheard(line: str) -> None:
    pass


def _after_folding(error: StoreUnavailable, events: int) -> StoreUnavailable:
    """The outage that ended a run whose committed batches had folded ``events``: its line
    says so, and of the batch under way only (rev37: ``--rounds 1`` with an outage after
    committed batches said only the outage, exit 6, the events folded never reported)."""
    said = str(error).replace("nothing was written", "nothing of the batch under way was written")
    said += (
        f"; {events} event(s) were folded into the read models before it, and are kept "
        "(each batch is committed on its own)"
    )
    return StoreUnavailable(said, busy=error.busy, lost=error.lost)


def _drop_leftovers(
    ledger: Ledger, models: list[ReadModel], announce: Callable[[str], None]
) -> None:
    """Drop the copy and position a rebuild left when it failed on a store that failed (its
    own clean-up failed with it: a full disk, a server gone) or died, where no rebuild holds
    its lock now: ``projections status`` called the read models damaged for it, through every
    runner, until a new rebuild (rev25). A rebuild under way is left alone; so is a leftover
    that cannot be dropped now (said by ``status``, as before)."""
    checkpoints = ledger.feed.checkpoints()
    for model in _once_each(models):
        shadow_name = model.name + SHADOW
        if shadow_name not in checkpoints:
            continue
        try:
            with ledger.feed.exclusive(f"rebuild-{model.name}"):
                if shadow_name not in ledger.feed.checkpoints():
                    continue  # a rebuild finished since
                _abandon(ledger.feed, shadow_name, model.table.name + SHADOW)
        except (NotAllowed, StoreUnavailable):
            continue
        if shadow_name not in ledger.feed.checkpoints():
            announce(f"dropped the copy an unfinished rebuild of {model.name} left")


def _catch_up_each(
    ledger: Ledger,
    models: list[ReadModel],
    batch: int,
    announce: Callable[[str], None],
    said: set[str],
    stop: threading.Event,
    progress: _Progress,
) -> list[ReadModelDamaged]:
    """Catch up each read model in a transaction of its own, when one of them is damaged: the
    others stay current while it waits for its rebuild (tried again at each wake-up, so a
    rebuild is followed without a restart). Each damage is announced once. Stopped between
    two batches once ``stop`` is set (rev37: a runner SIGTERMed beside a damaged read model
    folded the whole backlog first). Each committed batch is counted into ``progress``.
    Returns the damage met, each read model's."""
    met: list[ReadModelDamaged] = []
    for model in _once_each(models):
        if stop.is_set():
            break
        try:
            head = _behind(ledger, model)
            if head is None:
                continue
            _catch_up(ledger.feed, model, model.name, model.table.name, batch, stop, progress)
            if not stop.is_set():  # stopped, it is short by its own choice: no note
                _short_of(ledger.feed, [model], head)
        except ReadModelDamaged as e:
            met.append(e)
            if str(e) not in said:
                said.add(str(e))
                announce(f"{e}; the other read models are kept current meanwhile")
    return met


def status(ledger: Ledger, models: Iterable[ReadModel]) -> list[ReadModelStatus]:
    """Each read model's checkpoint, the log's head and the lag between them (no catch-up),
    and what is wrong with it: its rows and checkpoint checked against the log at one moment
    (``projections._verify.check``), and a rebuild left unfinished by a process that died."""
    from projections._verify import check, repair, unfinished  # not for a read's catch-up

    found = []
    for model in models:
        with ledger.feed.snapshot() as snapshot:
            checkpoints = snapshot.checkpoints()
            unreadable = snapshot.unreadable_checkpoints()
            head = snapshot.head()
            position = checkpoints.get(model.name)
            rows: int | None = None
            problems: list[str] = []
            if model.name in unreadable:  # rev36: was an internal error
                junk = unreadable_position(model.name, unreadable[model.name])
                problems = [f"{model.name}: {junk.problem}: {repair(model)}"]
            elif position is not None:
                rows, problems = check(snapshot, model, position)
            elif snapshot.columns(model.table.name):  # its checkpoint lost
                lost = PositionLost(model.name, model.table.name)
                problems = [f"{model.name}: {lost.problem}: {repair(model)}"]
        shadow = model.name + SHADOW
        left = unfinished(ledger, model, shadow) if shadow in checkpoints else None
        found.append(
            ReadModelStatus(
                name=model.name,
                position=position,
                head=head,
                lag=ledger.feed.lag(min(position or 0, head)),
                rows=rows,
                rebuilding=shadow in checkpoints and left is None,
                problems=problems if left is None else [*problems, left],
            )
        )
    return found


def upgrade(ledger: Ledger, models: Iterable[ReadModel]) -> list[Rebuilt]:
    """Rebuild each installed read model whose table is missing or not of the layout its
    read model writes now (made by an older custody: other columns, or an index missing),
    and each whose table is there without its checkpoint (``PositionLost``): what ``custody
    init`` runs, so a change of a read model's table reaches existing stores. A current one
    is left alone."""
    done = []
    feed = ledger.feed
    checkpoints = feed.checkpoints()
    for model in models:
        table = model.table
        found = feed.columns(table.name)
        if model.name not in checkpoints:
            damaged = bool(found)  # a table, its checkpoint lost
        else:
            damaged = found != list(table.stored_names) or not table.indexed_by(
                feed.indexes(table.name)
            )
        if damaged:
            done.append(rebuild(ledger, model))
    return done


def rebuild(ledger: Ledger, model: ReadModel, *, batch: int = 1000) -> Rebuilt:
    """Rebuild the read model from the whole log into a shadow table while writers go on,
    then swap it in: one transaction applies the last events, replaces the live table (or
    makes it, if it was dropped) and moves the checkpoint, so readers see the old table or the
    new one, never a mix. A second rebuild of the same read model meanwhile is refused as busy
    (``StoreUnavailable``, exit 6: try again when it ends); a rebuild that fails drops what it
    made, so none is said to be under way. One held by a gap an open transaction may fill is
    refused (busy) short of what its read model had folded, and swapped in as far as it with
    ``ReadModelBehind`` warned.
    ``Forbidden`` first on a store this login may write nothing to (``Feed.refuse_read_only``)."""
    started = time.monotonic()
    feed = ledger.feed
    feed.refuse_read_only(f"the {model.name} read model")
    try:
        install(ledger, model)
    except PositionLost:  # the table is replaced below: its checkpoint is made again first
        with feed.transaction() as tx:
            tx.restore_checkpoint(model.name)
    name, shadow_name = model.name, model.name + SHADOW
    shadow = model.table.name + SHADOW
    with _rebuilding(feed, name):
        # One transaction: failing, it made nothing to drop, and a lock it could not take is
        # not waited for again by the clean-up (rev29: twice the timeout, said once).
        _fresh_shadow(feed, model, shadow)
        try:
            position, rows = _rebuild(feed, model, shadow, batch)
        except BaseException:
            _abandon(feed, shadow_name, shadow)
            raise
    feed.checked_layouts.discard(model.table.name)
    seconds = round(time.monotonic() - started, 3)
    return Rebuilt(name=name, position=position, rows=rows, seconds=seconds)


@contextlib.contextmanager
def _rebuilding(feed: Feed, name: str) -> Iterator[None]:
    """The lock of the read model ``name``'s rebuilds for the block; held by another process,
    busy at once, naming the read model as typed (rev45: ``NotAllowed``, exit 1, naming
    "rebuild-timeline", where a store busy with another's work is 6, retry)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(feed.exclusive(f"rebuild-{name}"))
        except NotAllowed:
            msg = f"projections rebuild {name} is already running in another process"
            raise StoreUnavailable(f"{msg}; try again when it ends", busy=True) from None
        yield


def _fresh_shadow(feed: Feed, model: ReadModel, shadow: str) -> None:
    """The rebuild's shadow table, empty, and its checkpoint at the start: whatever a dead
    rebuild left is started afresh."""
    with feed.transaction() as tx:
        tx.reset_checkpoint(model.name + SHADOW)
        tx.execute(f"DROP TABLE IF EXISTS {shadow}")
        for statement in model.table.ddl(shadow, uuid.uuid4().hex[:8]):
            tx.execute(statement)


def _rebuild(feed: Feed, model: ReadModel, shadow: str, batch: int) -> tuple[int, int]:
    live = model.table.name
    name, shadow_name = model.name, model.name + SHADOW
    _catch_up(feed, model, shadow_name, shadow, batch)
    head = feed.head()  # before the last read: what it could have folded
    with feed.transaction() as tx:
        # Live catch-ups wait for the swap, then go on; a position that is no position (junk
        # put there by hand) is set again by the swap (rev36: the rebuild failed on it).
        folded = tx.claim_checkpoint(name, unreadable=0)
        position = tx.claim_checkpoint(shadow_name)
        while found := tx.events_after(position, batch):
            _fold(model, tx, shadow, found)
            position = found[-1].position
        if position < min(folded, feed.head()):
            # A read of the log stops at a gap a transaction still open may fill (its timeout
            # passed): the live table had folded further. Swapped in, the shorter one would
            # answer short, exit 0 (rev24: usage said 0 leases of 3). Refused; left as it was.
            msg = (
                f"store {feed.describe()} busy: read model {name} was rebuilt "
                f"only to position {position}, short of the {folded} it had folded: a transaction "
                "appending to the log is still open; the read model is left as it was; try "
                "again once it ends"
            )
            raise StoreUnavailable(msg)
        tx.execute(f"DROP TABLE IF EXISTS {live}")  # a dropped table is made again
        tx.execute(f"ALTER TABLE {shadow} RENAME TO {live}")
        tx.move_checkpoint(name, position)
        tx.drop_checkpoint(shadow_name)
        rows = int(tx.query(f"SELECT count(*) AS n FROM {live}")[0]["n"])
    if position < head:  # as far as the live table had folded, short of events committed
        # before its last read, at a gap an open transaction may fill: said, as a read says
        # it, never silently (rev37: "rebuilt to position 2", exit 0, with the head at 43).
        _note(ReadModelBehind(name, feed.lag(position), held_at=position), 4)
    return position, rows


def _abandon(feed: Feed, shadow_name: str, shadow: str) -> None:
    """Drop a failed rebuild's table and checkpoint (best effort: the store may be what
    failed; the next rebuild starts afresh anyway)."""
    with contextlib.suppress(LedgerError), feed.transaction() as tx:
        tx.drop_checkpoint(shadow_name)
        tx.execute(f"DROP TABLE IF EXISTS {shadow}")
