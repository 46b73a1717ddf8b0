"""Compliance: every lease on any profile of an account in a window, and how each ended;
and of those, the runs that ended unknown."""

from __future__ import annotations

import pandas as pd

from ledger.rules import ENDED_UNKNOWN, OVERDUE
from projections.queries import LEASES, read_usage, read_usage_as_of
from reports._frames import Moment, Source, judged, moment, opened, typed

COLUMNS = (
    "profile_id",
    "account_id",
    "lease_id",
    "worker_id",
    "run_id",
    "task_type",
    "proxy_id",
    "fencing_token",
    "started_at",
    "expires_at",
    "ended_at",
    "status",
    "outcome",
    "ending",
    "cause",
    "profile_state_after",
    "heartbeats",
    "longest_gap_seconds",
    "last_safe_step",
    "mutating_step",
    "last_step",
    "last_url",
)
TIMES = ("started_at", "ended_at", "expires_at", "marked_stale_at", "last_renewal_at")


def usage(
    account: str | None,
    *,
    since: Moment = None,
    until: Moment = None,
    at: Moment = None,
    ledger: Source = None,
) -> pd.DataFrame:
    """Every lease on a profile of ``account`` (of every account: None) that was live at any moment
    of the window (started by ``until``, not ended before ``since``), oldest first (by start,
    then profile, then fencing token): profile, account, lease, worker, run, task, proxy,
    fencing token, start, deadline (``expires_at``: the last one in force) and end, its status
    (``active``, ``overdue``: past its deadline, not ended yet, or ``ended``), the worker's
    outcome and how the lease ended (``ending``: clean, expected_failure, review, quarantine,
    stale, forced, revoked; empty until it ends), where the profile went, heartbeats and the
    longest gap between renewals in seconds, the last safe step and an unconfirmed mutating
    step: ``projections.read_usage``'s leases, as a DataFrame (``projections.usage`` has them as
    rows). Brought up to date first. Times as in ``reports._frames.moment``: a date alone means
    the whole day. ``InvalidInput`` naming ``account`` for an account no profile was registered
    under.

    With ``at``, as the events stood at that moment (``projections.read_usage_as_of``): only
    leases started by then, and a lease not ended then has no end, ending or cause, with the
    heartbeats, steps and URL it had reported by then: ``active`` if its deadline was still
    ahead then, ``overdue`` if it had passed; ``InvalidInput`` for ``at`` after the store's
    time or before ``since``. Without it, as they stand now, judged at the store's time."""
    start, end = moment("since", since), moment("until", until, until=True)
    when = moment("at", at)
    with opened(ledger) as source:
        if when is None:
            when = source.now()  # before the read: a renewal since is judged on its deadline
            frame = read_usage(
                source, source.feed.read_frame, account_id=account, since=start, until=end
            )
        else:
            rows = read_usage_as_of(source, at=when, account_id=account, since=start, until=end)
            frame = pd.DataFrame(rows, columns=list(LEASES.column_names))
    frame = typed(
        frame,
        times=TIMES,
        integers=("fencing_token", "heartbeats", "ttl_seconds", "version", "position"),
        floats=("longest_gap_seconds",),
        read_model="leases",
    )
    return judged(frame, when).loc[:, list(COLUMNS)]


def ended_unknown(
    *,
    account: str | None = None,
    since: Moment = None,
    until: Moment = None,
    at: Moment = None,
    ledger: Source = None,
) -> pd.DataFrame:
    """The runs that ended unknown: of ``usage``'s leases (same window, same columns and
    order; every account's when ``account`` is None), those no worker said the ending of,
    because the sweep or an operator ended them: ``stale``, ``forced`` or ``revoked``
    (``ledger.ENDED_UNKNOWN``); and those ``overdue``, past their deadline with nothing ended
    yet (no ending: no worker may say it any more, and the sweep or an operator will end it
    so). With ``at``, those that had ended so, or were overdue, at that moment."""
    leases = usage(account, since=since, until=until, at=at, ledger=ledger)
    unknown = leases["ending"].isin(ENDED_UNKNOWN) | leases["status"].eq(OVERDUE)
    return leases.loc[unknown.fillna(False).astype(bool)].reset_index(drop=True)
