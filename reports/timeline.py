"""The timeline as a DataFrame: the events of a profile, an account or the fleet in a window."""

from __future__ import annotations

import pandas as pd

from projections import TIMELINE_READ_MODEL, catch_up
from projections.timeline import require_account, select
from reports.frames import Moment, Source, moment, opened, typed

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
    events. The timeline is brought up to date first, so no command that finished before is
    missing. ``UnknownProfile`` for a
    profile never registered; ``InvalidInput`` for a ``last`` below 1 or an account no profile
    was registered under."""
    start, end = moment("since", since), moment("until", until, until=True)
    sql, params = select(profile_id=profile, account_id=account, since=start, until=end, last=last)
    with opened(ledger) as source:
        catch_up(source, TIMELINE_READ_MODEL)
        frame = source.feed.read_frame(sql, params)
        if frame.empty and profile is not None:
            source.history(profile)  # UnknownProfile, or InvalidInput for a malformed id
        if frame.empty and account is not None:
            require_account(source, account)
    return typed(frame, times=TIMES, integers=INTEGERS)
