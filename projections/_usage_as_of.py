"""Usage as of a moment: the leases read model's rows as the events stood then.

A lease that had ended by the moment is its stored row (every event folded into it is at or
before its ending). A lease still live then (not ended, or ended later) is folded again from
its profile's events up to the moment, by the read model's own fold (``projections._leases``):
no ending, cause, outcome, heartbeat, step or URL recorded after the moment appears, and a
lease past its deadline then but not yet settled by the sweep reads as the read model read it
then (``active``). Nothing here reads the clock: the moment is given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger import InvalidInput, Ledger
from projections._leases import (
    _AFTER_UNNAMED,
    _HEARTBEAT,
    _acquired,
    _as_text,
    _fold_heartbeat,
    _lease_of,
    _time,
    evolve,
    read_usage,
)


def read_usage_as_of(
    ledger: Ledger,
    *,
    at: datetime,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """``read_usage``'s leases (as rows of its columns, oldest first) as the events stood at
    ``at``: only leases started by ``at`` (and by ``until``), each as it read at ``at``.
    ``InvalidInput`` naming ``at`` for a moment after the store's time, and ``since`` for a
    window that starts after ``at`` (the events then cannot tell what was still to come);
    otherwise as ``read_usage``. Each lease live at ``at`` costs one read of its profile's
    events."""
    now = ledger.now()
    if at > now:
        raise InvalidInput("at", f"{at.isoformat()} is after the store's time {now.isoformat()}")
    if since is not None and since > at:
        msg = f"{since.isoformat()} is after the moment judged at, {at.isoformat()}"
        raise InvalidInput("since", f"{msg}: the events then cannot tell what was still to come")
    end = at if until is None or until > at else until
    rows = read_usage(ledger, ledger.feed.query, account_id=account_id, since=since, until=end)
    return [row if _ended_by(row, at) else _as_it_stood(ledger, row, at) for row in rows]


def _ended_by(row: dict[str, Any], at: datetime) -> bool:
    return row["ended_at"] is not None and _time(row["ended_at"]) <= at


def _as_it_stood(ledger: Ledger, stored: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The lease's row folded from its profile's events at or before ``at`` (a stream's times
    never go back, so those are its first events), as ``LeasesReadModel.fold`` folds them."""
    lease_id = str(stored["lease_id"])
    row: dict[str, Any] | None = None
    for event in ledger.history(str(stored["profile_id"])):
        if event.envelope.at > at:
            break
        kind = event.event_type
        if kind == "lease_acquired":
            if _lease_of(event) == lease_id:
                row = _acquired(event)
        elif row is None:
            continue
        elif kind == _HEARTBEAT and _lease_of(event) == lease_id:
            _fold_heartbeat(row, event.model_dump(mode="json"))
        elif _lease_of(event) == lease_id or (
            kind == _AFTER_UNNAMED and row["ending_command_id"] == event.envelope.command_id
        ):
            evolve(row, event)
        else:
            continue
        if row is not None:
            row["version"] = event.originator_version
    if row is None:  # the stored row names a lease its profile's events never acquired
        return stored
    return {**_as_text(row), "position": None}
