"""The fleet at a glance: how many profiles stand where, by account, which have been stuck the
longest, and how long profiles wait for a reviewer."""

from __future__ import annotations

import statistics
from datetime import datetime

from ledger import ProfileState
from projections import ReadResult, StatusRow
from reports._frames import Source, opened
from reports._reviews import ReviewWait, waits
from reports._sources import Sources, read_sources

STATES = tuple(s.value for s in ProfileState)
_STUCK = (ProfileState.STALE, ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED)


class Stuck(ReadResult):
    """A profile in trouble and for how long: ``overdue`` (its lease missed its deadline and
    no sweep has settled it yet: ``since`` is the deadline), ``stale``, ``review_required`` or
    ``quarantined`` (``since``: when it got there)."""

    profile_id: str
    account_id: str
    trouble: str
    since: datetime | None
    seconds: float | None
    cause: str | None
    worker_id: str | None


class ReviewTimes(ReadResult):
    """Waits for a reviewer's verdict: the finished ones' count, median, 95th percentile and
    longest (seconds), and the open ones' count and oldest age."""

    finished: int
    median_seconds: float | None
    p95_seconds: float | None
    max_seconds: float | None
    waiting: int
    oldest_waiting_seconds: float | None


class Fleet(ReadResult):
    """Counts by state (every state, zeros included) and by account and state; ``overdue``
    counts leased profiles past their deadline. ``stuck`` lists overdue, stale, review and
    quarantined profiles, longest first; ``waiting`` the open review waits, oldest first.
    ``damaged_rows``: profiles whose availability row is damaged or missing, each with what is
    wrong (counted all the same, as their events stand); ``junk_rows``: availability rows of
    profiles never registered, counted nowhere (``custody projections rebuild availability``
    mends both)."""

    at: datetime
    account: str | None
    profiles: int
    by_state: dict[str, int]
    overdue: int
    by_account: dict[str, int]
    by_account_state: dict[str, dict[str, int]]
    stuck: list[Stuck]
    review: ReviewTimes
    waiting: list[ReviewWait]
    damaged_rows: dict[str, str]
    junk_rows: list[str]


def fleet(*, account: str | None = None, ledger: Source = None) -> Fleet:
    """The fleet summary judged at the store's clock, after bringing the read models up to
    date; only ``account``'s profiles when given."""
    with opened(ledger) as source:
        return summarise(read_sources(source, account=account), account=account)


def summarise(sources: Sources, *, account: str | None = None) -> Fleet:
    """The fleet summary of an already-read ``Sources``."""
    rows = sources.profiles
    by_account: dict[str, dict[str, int]] = {}
    for r in rows:
        counts = by_account.setdefault(r.account_id, dict.fromkeys(STATES, 0))
        counts[r.state.value] += 1
    all_waits = waits(sources.events, sources.at)
    open_waits = [w for w in all_waits if w.ended_at is None]
    return Fleet(
        at=sources.at,
        account=account,
        profiles=len(rows),
        by_state={s: sum(1 for r in rows if r.state.value == s) for s in STATES},
        overdue=sum(1 for r in rows if r.overdue),
        by_account={a: sum(c.values()) for a, c in sorted(by_account.items())},
        by_account_state=dict(sorted(by_account.items())),
        stuck=stuck(rows, sources.at),
        review=review_times(all_waits),
        waiting=open_waits,
        # Named, not only counted (rev36 left this: the checklist and the report named them).
        damaged_rows={r.profile_id: r.damaged for r in rows if r.damaged},
        junk_rows=list(sources.junk_rows),
    )


def stuck(rows: list[StatusRow], now: datetime) -> list[Stuck]:
    """Overdue, stale, review and quarantined profiles, the longest stuck first."""
    found = []
    for r in rows:
        if r.overdue or r.state in _STUCK:
            found.append(_stuck(r, "overdue" if r.overdue else r.state.value, now))
    return sorted(found, key=lambda s: (-(s.seconds or 0.0), s.profile_id))


def _stuck(r: StatusRow, trouble: str, now: datetime) -> Stuck:
    since = r.since  # an overdue lease's deadline (``projections.status``)
    seconds = None if since is None else max(0.0, (now - since).total_seconds())
    return Stuck(
        profile_id=r.profile_id,
        account_id=r.account_id,
        trouble=trouble,
        since=since,
        seconds=seconds,
        cause=r.cause,
        worker_id=r.holder_worker or r.last_worker,
    )


def review_times(all_waits: list[ReviewWait]) -> ReviewTimes:
    finished = sorted(w.seconds for w in all_waits if w.ended_at is not None)
    waiting = [w.seconds for w in all_waits if w.ended_at is None]
    return ReviewTimes(
        finished=len(finished),
        median_seconds=statistics.median(finished) if finished else None,
        p95_seconds=percentile(finished, 0.95),
        max_seconds=finished[-1] if finished else None,
        waiting=len(waiting),
        oldest_waiting_seconds=max(waiting) if waiting else None,
    )


def percentile(ordered: list[float], share: float) -> float | None:
    """The value at ``share`` of a sorted list, interpolated linearly (as numpy and pandas do
    by default); None for an empty list."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * share
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
