"""The timeline as a DataFrame: the events of a profile, an account or the fleet in a window."""

from __future__ import annotations

import pandas as pd

from projections import read_timeline
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
