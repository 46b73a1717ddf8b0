"""Time in review: each wait of a blocked profile for a reviewer's verdict, from the events.

A wait begins when a profile is sent to review or quarantine (``review_requested``,
``profile_quarantined``, or ``profile_enabled`` back into one of those states) and ends at the
reviewer's verdict (``profile_reviewed``) or when an operator takes the profile out of
rotation (``profile_disabled``). A verdict of quarantine ends one wait and its
``profile_quarantined`` begins the next, so each row is one wait for one decision. The fleet
summary's time in review, the checklist and ``review_waits`` all count these waits.

A wait's ``state`` is where the profile waits: the blocked state it was in when the wait ended,
or at the report's moment for an open wait. An operator's quarantine of a profile in review
gives no verdict, so the wait goes on, now in quarantine; its ``cause`` stays why it began.
An enable back into review or quarantine begins a wait for the cause and lease of the one the
disabling ended, an operator's or a reviewer's verdict of disable (the enable carries neither).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from projections import TIMELINE_READ_MODEL, ReadResult, catch_up
from projections.queries import require_account
from reports._frames import Moment, Source, as_of, moment, opened, rows_of, typed
from reports._sources import read_events

_BLOCKED = ("review_required", "quarantined")
_STARTS = {"review_requested": "review_required", "profile_quarantined": "quarantined"}


class ReviewWait(ReadResult):
    """One wait for a verdict: which profile, where it waits (``state``: review_required or
    quarantined, as it stood when the wait ended, or now for an open one), why the wait began
    (``cause``), from when, until when (None: still waiting), how long (until the report's
    moment if still open), and how it ended."""

    profile_id: str
    account_id: str | None
    state: str
    cause: str | None
    lease_id: str | None
    started_at: datetime
    ended_at: datetime | None
    seconds: float
    ended_by: str | None


COLUMNS = tuple(ReviewWait.model_fields)


def review_waits(
    *,
    account: str | None = None,
    since: Moment = None,
    until: Moment = None,
    at: Moment = None,
    ledger: Source = None,
) -> pd.DataFrame:
    """Every wait for a reviewer's verdict (in review or in quarantine, one row per decision
    waited for) that was open at any moment of the window, in the order they began, as the
    events stood at ``at`` (default: the store's time; a wait still open then is counted up
    to it, its ``ended_at`` empty): ``account``'s profiles' (every profile's: None). Brought
    up to date first. ``InvalidInput`` for ``at`` after the store's time, or for an account
    no profile was registered under."""
    start, end = moment("since", since), moment("until", until, until=True)
    with opened(ledger) as source:
        catch_up(source, TIMELINE_READ_MODEL)
        events = read_events(source.feed, account)
        if events.empty and account is not None:
            require_account(source, account)
        when = as_of(source, moment("at", at))
    found = [
        w
        for w in waits(_as_they_stood(events, when), when)
        if (end is None or w.started_at <= end)
        and (start is None or w.ended_at is None or w.ended_at >= start)
    ]
    frame = pd.DataFrame([w.model_dump() for w in found], columns=list(COLUMNS))
    return typed(frame, times=("started_at", "ended_at"), floats=("seconds",))


def _as_they_stood(events: pd.DataFrame, when: datetime) -> pd.DataFrame:
    """Each profile's events as of ``when``: those before its first stamped after it, as
    replay and usage as of a moment take them (``projections`` ``version_at``), never one
    recorded later with an earlier time after the store's clock was set back (rev31: a
    verdict written after such a step ended, as of a moment before it, a wait replay showed
    open)."""
    later = (events["at"] > when).groupby(events["profile_id"], sort=False).cummax()
    return events.loc[~later]


def waits(events: pd.DataFrame, now: datetime) -> list[ReviewWait]:
    """Every wait the events show, in the order they began (``events``: timeline rows in log
    order, see ``reports._sources``)."""
    open_: dict[str, dict[str, Any]] = {}
    parked: dict[str, dict[str, Any]] = {}  # each profile's wait its disabling ended
    done: list[ReviewWait] = []
    for row in rows_of(events):
        pid, kind = str(row["profile_id"]), str(row["event_type"])
        state = _entered(kind, row["detail"])
        if state is not None and pid not in open_:
            open_[pid] = _begin(row, state, parked.pop(pid, None))
        elif state is not None:  # blocked again, no verdict yet: the same wait, in that state
            open_[pid]["state"] = state
        elif kind in ("profile_reviewed", "profile_disabled") and pid in open_:
            wait = open_.pop(pid)
            done.append(_end(wait, row))
            if kind == "profile_disabled" or _decision(row) == "disable":
                # A reviewer's disable ends the wait before its own profile_disabled does.
                parked[pid] = wait
    still = [_waiting(w, now) for w in open_.values()]
    return sorted([*done, *still], key=lambda w: (w.started_at, w.profile_id))


def _entered(kind: str, detail: Any) -> str | None:
    """The blocked state an event puts its profile in, if any."""
    if kind in _STARTS:
        return _STARTS[kind]
    if kind == "profile_enabled":  # the timeline's detail of this event is "state=<state>"
        state = str(detail).removeprefix("state=")
        return state if state in _BLOCKED else None
    return None


def _text(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _begin(row: dict[str, Any], state: str, parked: dict[str, Any] | None) -> dict[str, Any]:
    """A wait that ``row`` begins. An enable back into review or quarantine carries no cause
    or lease: it resumes the wait its profile's disabling ended (``parked``), for the same
    cause, as ``why`` and the fleet's stuck profiles say (rev28: the cause read None)."""
    resumed = parked if parked is not None and row["event_type"] == "profile_enabled" else None
    return {
        "profile_id": str(row["profile_id"]),
        "account_id": _text(row["account_id"]),
        "state": state,
        "cause": resumed["cause"] if resumed else _text(row["cause"]),
        "lease_id": resumed["lease_id"] if resumed else _text(row["lease_id"]),
        "started_at": row["at"].to_pydatetime(),
    }


def _decision(row: dict[str, Any]) -> str | None:
    """A verdict's decision (None for another event): its detail starts "decision=<it>"."""
    if row["event_type"] != "profile_reviewed":
        return None
    return str(row["detail"]).split(", ", 1)[0].removeprefix("decision=")


def _end(wait: dict[str, Any], row: dict[str, Any]) -> ReviewWait:
    ended = row["at"].to_pydatetime()
    if row["event_type"] == "profile_reviewed":
        how = f"{_decision(row)} by {row['actor_id']}"
    else:
        how = f"disabled by {row['actor_id']}"
    seconds = (ended - wait["started_at"]).total_seconds()
    return ReviewWait(**wait, ended_at=ended, seconds=seconds, ended_by=how)


def _waiting(wait: dict[str, Any], now: datetime) -> ReviewWait:
    seconds = max(0.0, (now - wait["started_at"]).total_seconds())
    return ReviewWait(**wait, ended_at=None, seconds=seconds, ended_by=None)
