"""The notification log read in order on PostgreSQL, although appends commit out of order.

Appends take no store-wide lock: two writers may draw notification ids 7 and 8 and commit 8
first. A follower that handed on 8 and moved its checkpoint there would never see 7. So a read
hands on no row past a *gap* that may still be filled, and it can tell when one is settled:

- Every append has a transaction id before it draws a notification id (the events table's
  statement trigger ``custody_events_xid_first`` asks for one first, ``ledger._stores.access``).
- A row ``r`` visible in snapshot ``S`` committed before ``S``, so it drew its id before ``S``;
  a missing id ``g < r`` was drawn before ``r``'s, so by a transaction ``T`` that had its id
  before ``S``. Had ``T`` committed before ``S``, its row would be visible: ``T`` rolled back
  (the gap stays forever) or was in progress at ``S``.
- The snapshot does not list every transaction in progress: ``xip`` holds those below its
  ``xmax``, which is the newest *ended* transaction's id plus one, and ``T`` may have a higher
  id. So the read asks the lock table which appends are in progress now (each holds the lock
  of its own id, and the events table's ROW EXCLUSIVE lock, until it ends): ``T``, if it has
  not ended, is among those listed in ``xip`` or at or past ``xmax``. Once each of those has
  ended, a second read sees ``g`` if ``T`` committed; if it does not, it never will. Every gap
  up to the first read's last row is then settled.

Readers run their transactions in READ COMMITTED, whatever the server's default, so that a
second read sees what committed after the first (``SqlViews.transaction``).

The reader waits for them (appends last milliseconds), polling the server's snapshot, at most
the store's timeout; past that it hands on what is settled and the next read goes on from
there, so a transaction left open elsewhere delays followers but never makes them skip or
repeat an event. A follower must not hold a transaction id while it waits (``ledger.feed``
claims a read model's checkpoint with an advisory lock, which takes none): two waiting readers
would each wait for the other. SQLite has one writer at a time and never leaves such a gap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

# The snapshot and this transaction's own id, on every row (one statement gives both).
SNAPSHOT_COLUMNS = (
    "(SELECT pg_current_snapshot()::text), (SELECT pg_current_xact_id_if_assigned()::text)"
)
SNAPSHOT_QUERY = f"SELECT {SNAPSHOT_COLUMNS}"
# The ids (32 bits) of the appends in progress now: each transaction holds the lock of its own
# id until it ends, and an insert holds ROW EXCLUSIVE on the events table (``?``) from before
# it draws a position (taken when the statement is planned) until its transaction ends. One
# read of the lock table (materialised), so the two kinds of lock are seen at one moment.
# (Not pg_stat_activity: a transaction reads that once and keeps its copy.)
RUNNING_QUERY = (
    "WITH locks AS MATERIALIZED (SELECT locktype, mode, granted, relation, transactionid, "
    "virtualtransaction FROM pg_locks) "
    "SELECT x.transactionid::text FROM locks x WHERE x.locktype = 'transactionid' "
    "AND x.mode = 'ExclusiveLock' AND x.granted AND x.virtualtransaction IN "
    "(SELECT r.virtualtransaction FROM locks r WHERE r.locktype = 'relation' "
    "AND r.mode = 'RowExclusiveLock' AND r.relation = to_regclass(?))"
)
_FIRST_PAUSE = 0.0005
_LONGEST_PAUSE = 0.02


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
class Running(NamedTuple):
    """One snapshot: every transaction id below ``xmin`` had ended; ``xip`` lists those still
    running below ``xmax`` (the newest ended one's id plus one); ids from ``xmax`` on may be
    running or not yet begun. This reader's own id is left out."""

    xmin: int
    xmax: int
    xip: frozenset[int]

    @classmethod
    def parse(cls, snapshot: str, own: str | None = None) -> Running:
        """From ``pg_current_snapshot()``'s text (``xmin:xmax:xip,...``)."""
        xmin, xmax, listed = snapshot.split(":")
        xip = {int(x) for x in listed.split(",") if x}
        if own:
            xip.discard(int(own))
        return cls(int(xmin), int(xmax), frozenset(xip))

    def ended(self, xid: int) -> bool:
        """Whether transaction ``xid`` had ended at this snapshot."""
        return xid < self.xmin or (xid < self.xmax and xid not in self.xip)

    def may_have_run(self, xid: int) -> bool:
        """Whether transaction ``xid`` may have been in progress at this snapshot."""
        return xid in self.xip or xid >= self.xmax

    def widen(self, xid32: int) -> int:
        """A 32-bit transaction id (as the lock table gives it) as the 64-bit id nearest
        this snapshot's ``xmax`` (its epoch prefixed)."""
        full = (self.xmax & ~0xFFFFFFFF) | xid32
        if full - self.xmax > 2**31:
            full -= 2**32
        elif self.xmax - full > 2**31:
            full += 2**32
        return full


def first_gap(after: int, ids: Sequence[int], settled_upto: int = 0) -> int:
    """How many of ``ids`` (ascending, all after position ``after``) come before the first gap
    above ``settled_upto`` (gaps up to it are known to stay empty)."""
    expected = after + 1
    for count, found in enumerate(ids):
        if found != expected and found - 1 > settled_upto:
            return count
        expected = found + 1
    return len(ids)


Select = Callable[[int | None, int], list[tuple[Any, ...]]]


class Unsettled(Exception):
    """A strict read found a gap that an append still in progress may fill, and the append
    did not end within the timeout: what follows the gap cannot be read yet."""

    def __init__(self, after: int, waiting: set[int]) -> None:
        self.after, self.waiting = after, sorted(waiting)
        super().__init__(f"the log after position {after} waits for {self.waiting}")


def read_settled(
    select: Select,
    snapshot: Callable[[], Running],
    running: Callable[[], list[int]],
    after: int | None,
    limit: int,
    timeout: float,
    *,
    strict: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    given_up: dict[int, float] | None = None,
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows after position ``after`` (None: from the first row, whatever its
    position), in order, none past a gap that may yet be filled. ``select(after, limit)``
    reads rows whose first item is the position and whose last two are ``SNAPSHOT_COLUMNS``'
    (stripped here); ``snapshot()`` reads the server's snapshot alone; ``running()`` the 32-bit
    ids of the transactions in progress now. Past the timeout a follower gets what is settled
    and reads on later; ``strict`` (a reader that must see the whole log now: the audit)
    raises ``Unsettled`` instead. ``given_up`` (kept by the caller across its reads) holds the
    transactions a read waited the timeout out for, and when: for another timeout a read that
    meets one of them again does not wait for it again (one command's several reads of the
    read models waited the timeout each on the same open append: `why` 10 s, `report --html`
    16 s, rev25); it never reads past the gap either way."""
    rows = select(after, limit)
    if not rows:
        return []
    ids = [int(r[0]) for r in rows]
    # From the first row (None): the sequence draws from 1, only a hand puts one at 0 or below.
    base = after if after is not None else min(0, ids[0] - 1)
    count = first_gap(base, ids)
    if count == len(rows):
        return [r[:-2] for r in rows]
    seen = Running.parse(rows[0][-2], rows[0][-1])
    own = int(rows[0][-1]) if rows[0][-1] else None
    waiting = {x for x in map(seen.widen, running()) if x != own and seen.may_have_run(x)}
    now = clock()
    # Copies of ``given_up``'s items and keys: another thread's reads may add to it.
    recent = {x for x, when in list((given_up or {}).items()) if now - when < timeout}
    left = waiting if waiting & recent else _ended(waiting, snapshot, now + timeout, clock, sleep)
    if left:
        if given_up is not None:
            for x in set(given_up) - recent:
                given_up.pop(x, None)  # older than the timeout: waited for again if met
            given_up.update(dict.fromkeys(left - recent, clock()))
        if strict:
            raise Unsettled(ids[count - 1] if count else base, waiting)
        return [r[:-2] for r in rows[:count]]  # settled so far; the next read goes on
    again = select(after, limit)  # every gap up to the first read's last row is settled now
    return [r[:-2] for r in again[: first_gap(base, [int(r[0]) for r in again], ids[-1])]]


def _ended(
    waiting: set[int],
    snapshot: Callable[[], Running],
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> set[int]:
    """Wait until every transaction of ``waiting`` has ended, at most until ``deadline``:
    those still running then (empty: all ended)."""
    pause = _FIRST_PAUSE
    while waiting:
        later = snapshot()
        waiting = {x for x in waiting if not later.ended(x)}
        if not waiting:
            break
        if clock() >= deadline:
            return waiting
        sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE)
    return set()
