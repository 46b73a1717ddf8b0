"""A replay's events around a moment: the timeline's rows, and the events of the log past its
checkpoint where this login may not fold them (a worker's PostgreSQL login, a SQLite file this
user may only read), flattened as a fold would write them."""

from __future__ import annotations

from typing import Any

from ledger import Ledger
from projections._runner import BATCH, catch_up
from projections._timeline import (
    TIMELINE,
    TIMELINE_NAME,
    TIMELINE_READ_MODEL,
    TimelineRow,
    flattened,
    timeline_rows,
)


def around(
    ledger: Ledger, profile_id: str, version: int, count: int
) -> tuple[list[TimelineRow], list[TimelineRow]]:
    """Up to ``count`` events of the profile up to ``version`` and after it, oldest first, as
    the timeline has them once caught up. A login that may not fold the timeline
    (``Feed.maintains``) reads the profile's events past its checkpoint from the log: a replay
    folds its state from the events, and its list of them is never short of that state (rev28:
    a read-only copy listed the previous lease's events "up to then" and none after)."""
    checkpoint = _checkpoint(ledger)
    columns = ", ".join(TIMELINE.column_names)
    where = f"FROM {TIMELINE.name} WHERE profile_id = ? AND position <= ?"
    before = ledger.feed.query(
        f"SELECT {columns} {where} AND version <= ? ORDER BY version DESC LIMIT ?",
        (profile_id, checkpoint, version, count),
    )
    after = ledger.feed.query(
        f"SELECT {columns} {where} AND version > ? ORDER BY version LIMIT ?",
        (profile_id, checkpoint, version, count),
    )
    unfolded = _unfolded(ledger, profile_id, checkpoint)
    up_to = [*reversed(before), *(r for r in unfolded if r["version"] <= version)]
    past = [*after, *(r for r in unfolded if r["version"] > version)]
    return timeline_rows(up_to[max(0, len(up_to) - count) :]), timeline_rows(past[:count])


def _checkpoint(ledger: Ledger) -> int:
    """The timeline's checkpoint, brought up to the log's head first where this login may
    fold it. Where it may not, ``catch_up`` names a read model never installed or its
    checkpoint lost, and is not asked otherwise: it would warn of the events past the
    checkpoint, which ``around`` reads from the log."""
    feed = ledger.feed
    position, _ = feed.standing(TIMELINE_NAME, TIMELINE.name)
    if position is None or feed.maintains():
        catch_up(ledger, TIMELINE_READ_MODEL)
        position, _ = feed.standing(TIMELINE_NAME, TIMELINE.name)
    return 0 if position is None else position  # None: not after a catch-up that returned


def _unfolded(ledger: Ledger, profile_id: str, checkpoint: int) -> list[dict[str, Any]]:
    """The profile's events past ``checkpoint`` as the timeline's rows, in log order: none for
    a login that keeps it current, which has just folded them (a read past the head)."""
    found: list[dict[str, Any]] = []
    after = checkpoint
    while batch := ledger.feed.read(after, BATCH):
        mine = [n for n in batch if n.of(profile_id)]
        found += flattened(ledger.feed, TIMELINE.name, mine)
        after = batch[-1].position
    return found
