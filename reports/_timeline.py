"""The timeline as a DataFrame: the events of a profile, an account or the fleet in a window."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from projections import PAGE_ROWS, read_timeline, timeline_pages_read
from reports._frames import Moment, Source, moment, opened, typed

TIMES = ("at",)
INTEGERS = ("position", "version", "fencing_token")


def timeline(
    profile: str | None = None,
    *,
    account: str | None = None,
    since: Moment = None,
    until: Moment = None,
    last: int | None = None,
    ledger: Source = None,
) -> pd.DataFrame:
    """One row per event (time, profile, account, version, event type, actor, role, reason,
    lease, run, worker, step, URL, correlation, causation and command ids), oldest first,
    for one profile and/or account and a time window (``since`` <= at <= ``until``, a date
    alone meaning the whole day), each optional; ``last``: only the last so many of those
    events: ``projections.read_timeline`` read as a DataFrame, so it answers and refuses
    exactly as ``projections.timeline`` does (brought up to date first, so no command that
    finished before is missing)."""
    start, end = moment("since", since), moment("until", until, until=True)
    with opened(ledger) as source:
        frame = read_timeline(
            source,
            source.feed.read_frame,
            profile_id=profile,
            account_id=account,
            since=start,
            until=end,
            last=last,
        )
    return typed(frame, times=TIMES, integers=INTEGERS, read_model="timeline")


def timeline_pages(
    profile: str | None = None,
    *,
    account: str | None = None,
    since: Moment = None,
    until: Moment = None,
    last: int | None = None,
    ledger: Source = None,
    rows: int = PAGE_ROWS,
) -> Iterator[pd.DataFrame]:
    """``timeline``'s answer as DataFrames of at most ``rows`` events each, oldest first
    (``projections.timeline_pages_read``): a timeline of any length with one page in memory,
    each page typed as ``timeline`` types its frame. The first page comes even when empty
    (its columns say the shape) and refuses as ``timeline`` does; every later one holds
    events. The events are those of the moment the first page was read."""
    start, end = moment("since", since), moment("until", until, until=True)
    with opened(ledger) as source, source.feed.frames() as read:
        pages = timeline_pages_read(
            source,
            read,
            profile_id=profile,
            account_id=account,
            since=start,
            until=end,
            last=last,
            rows=rows,
        )
        for frame in pages:
            yield typed(frame, times=TIMES, integers=INTEGERS, read_model="timeline")
