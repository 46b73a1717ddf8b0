"""Running read models: catch-up (exactly once), status, and rebuild into a shadow table.

A read catches up first, so an answer never lags the command before it. ``run`` keeps the read
models current between reads: on PostgreSQL it is woken by each committed append (LISTEN/NOTIFY),
on every store at the latest after its polling interval. Each batch is one
transaction: claim the position row, read the events after it, write the rows, move the
position; so a crash (or a kill) at any moment leaves rows and position as they were, and two
runners of one read model take turns instead of applying an event twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable

from ledger import Feed, Ledger, StoreUnavailable
from projections.base import Projection, ReadModel

BATCH = 500
SHADOW = "__next"  # the suffix of a rebuild's table and position row


class ProjectionStatus(ReadModel):
    """Where a read model stands: its position and how many events it has yet to apply."""

    name: str
    position: int | None  # None: not installed yet (the first read installs it)
    head: int
    lag: int
    rows: int | None
    rebuilding: bool


class Rebuilt(ReadModel):
    """A rebuild that was swapped in: the position it reached and the rows it holds."""

    name: str
    position: int
    rows: int
    seconds: float


def install(ledger: Ledger, projection: Projection) -> bool:
    """Create the read model's table and position row if missing; True if made now."""
    return ledger.feed.install(projection.name, projection.table.ddl(projection.table.name, "a"))


def catch_up(ledger: Ledger, projection: Projection, *, batch: int = BATCH) -> int:
    """Apply every event committed after the read model's position; return how many. An
    answer read after this sees every command that finished before it."""
    position, head = ledger.feed.standing(projection.name)
    if position is None:
        install(ledger, projection)
    elif position >= head:  # the common case for a reader: one short read transaction
        return 0
    return _catch_up(ledger.feed, projection, projection.name, projection.table.name, batch)


def _catch_up(feed: Feed, projection: Projection, name: str, table: str, batch: int) -> int:
    applied = 0  # the caller has seen there is something to apply (or is rebuilding)
    while True:
        with feed.transaction() as tx:
            position = tx.claim(name)  # first: another runner of this model waits here
            found = tx.notifications(position, batch)
            if found:
                projection.apply(tx, table, found)
                tx.track(name, found[-1].position)
        applied += len(found)
        if len(found) < batch:
            return applied


def run(
    ledger: Ledger,
    projections: Iterable[Projection],
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
    again, ``rounds`` times or until ``stop`` is set. Returns the events applied. A store
    that fails after the first catch-up (``StoreUnavailable``) is announced and tried again."""
    models = list(projections)
    stop = stop or threading.Event()
    applied, done = 0, 0
    with ledger.feed.wakeups(interval, announce) as wakeups:  # listening before catching up
        while not stop.is_set():
            try:
                for projection in models:
                    applied += catch_up(ledger, projection, batch=batch)
            except StoreUnavailable as e:
                if done == 0:  # a store that cannot be reached at all is said at once
                    raise
                # A restarting server or a lock held too long: the next wake-up tries again.
                (announce or _unheard)(f"{e}; catching up again at the next wake-up")
            done += 1
            if rounds is not None and done >= rounds:
                break
            wakeups.wait(stop)
    return applied


def _unheard(line: str) -> None:
    pass


def status(ledger: Ledger, projections: Iterable[Projection]) -> list[ProjectionStatus]:
    """Each read model's position, the log's head and the lag between them (no catch-up)."""
    feed = ledger.feed
    positions = feed.positions()
    head = feed.head()
    found = []
    for projection in projections:
        position = positions.get(projection.name)
        rows = None
        if position is not None:
            counted = feed.query(f"SELECT count(*) AS n FROM {projection.table.name}")
            rows = int(counted[0]["n"])
        found.append(
            ProjectionStatus(
                name=projection.name,
                position=position,
                head=head,
                lag=feed.lag(position or 0),
                rows=rows,
                rebuilding=projection.name + SHADOW in positions,
            )
        )
    return found


def rebuild(ledger: Ledger, projection: Projection, *, batch: int = 1000) -> Rebuilt:
    """Rebuild the read model from the whole log into a shadow table while writers go on,
    then swap it in: one transaction applies the last events, replaces the live table and
    moves the position, so readers see the old table or the new one, never a mix. A second
    rebuild of the same read model meanwhile is refused (``NotAllowed``)."""
    started = time.monotonic()
    feed = ledger.feed
    install(ledger, projection)
    live, shadow = projection.table.name, projection.table.name + SHADOW
    name, shadow_name = projection.name, projection.name + SHADOW
    with feed.exclusive(f"rebuild-{name}"):
        with feed.transaction() as tx:  # whatever a dead rebuild left is started afresh
            tx.start(shadow_name)
            tx.execute(f"DROP TABLE IF EXISTS {shadow}")
            for statement in projection.table.ddl(shadow, uuid.uuid4().hex[:8]):
                tx.execute(statement)
        _catch_up(feed, projection, shadow_name, shadow, batch)
        with feed.transaction() as tx:
            tx.claim(name)  # live catch-ups wait for the swap, then continue from its position
            position = tx.claim(shadow_name)
            while found := tx.notifications(position, batch):
                projection.apply(tx, shadow, found)
                position = found[-1].position
            tx.execute(f"DROP TABLE {live}")
            tx.execute(f"ALTER TABLE {shadow} RENAME TO {live}")
            tx.track(name, position)
            tx.forget(shadow_name)
            rows = int(tx.query(f"SELECT count(*) AS n FROM {live}")[0]["n"])
    seconds = round(time.monotonic() - started, 3)
    return Rebuilt(name=name, position=position, rows=rows, seconds=seconds)
