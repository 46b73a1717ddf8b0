"""Usage as of a moment: the leases read model's rows as the events stood then.

A profile's events as of the moment are those before its first stamped after it, as replay
takes them (``projections._timeline.version_at``). A lease every event of which is among them is
its stored row. Any other (live then, or ended later) is folded again from those events by the
read model's own fold (``projections._leases``), and left out if they do not acquire it:
no ending, cause, outcome, heartbeat, step or URL recorded after the moment appears. The rows
are the read model's, their status as the events left it; a reader judges it at its moment
(``judged``, by the ledger's rule ``lease_status_at``): a lease past its deadline then that
nothing had ended reads ``overdue``, as ``replay`` calls it stale then (TTL is a deadline, not
a cleanup: rev42 listed it ``active``). Nothing here reads the clock: the moment is given.
``usage`` gives these rows, or the stored ones as they stand now (judged at the store's time),
as ``LeaseRow``s for a person's table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger import InvalidInput, Ledger
from ledger.rules import lease_status_at
from projections._base import require_window, utc, validated_rows
from projections._leases import (
    _AFTER_UNNAMED,
    _HEARTBEAT,
    LeaseRow,
    _acquired,
    _as_text,
    _fold_heartbeat,
    _lease_of,
    _time,
    evolve,
    read_usage,
)
from projections._timeline import _stored, versions_as_of


def read_usage_as_of(
    ledger: Ledger,
    *,
    at: datetime,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """``read_usage``'s leases (as rows of its columns, oldest first) as the events stood at
    ``at``: only leases started by ``at`` (and by ``until``), each as it read at ``at`` (its
    status as the events left it: ``judged`` tells an overdue one).
    ``InvalidInput`` naming ``at`` for a moment after the store's time, and ``since`` for a
    window that starts after ``at`` (the events then cannot tell what was still to come);
    otherwise as ``read_usage``. Each profile with a lease to fold again (every one, on a login
    that keeps no read model) costs one read of its events."""
    at, since, until = utc(at), since and utc(since), until and utc(until)
    now = ledger.now()
    if at > now:
        raise InvalidInput("at", f"{at.isoformat()} is after the store's time {now.isoformat()}")
    require_window(since, until)  # as ``read_usage`` does, given no start here (rev30)
    if since is not None and since > at:
        msg = f"{since.isoformat()} is after the moment judged at, {at.isoformat()}"
        raise InvalidInput("since", f"{msg}: the events then cannot tell what was still to come")
    # No lease started after ``at`` is among its events then; cut here, the rows are fewer.
    # The window's start is judged after the fold: a lease's stored end may have been written
    # after an event stamped past ``at`` (rev30's third reading: one live then was left out).
    end = at if until is None or until > at else until
    rows = read_usage(ledger, ledger.feed.query, account_id=account_id, until=end)
    # A profile's events as of ``at`` end before its first stamped after it, as replay's do
    # (``version_at``): after the store's clock was set back, a later event may be stamped
    # earlier (rev30: a lease written after such a step was listed as of a moment before it).
    # A stored row is taken only from read models kept up to date here: a login that keeps
    # none (a worker's) may read rows behind the events, so each lease is folded again (rev30's
    # third reading: a lease released before the moment read as live).
    kept_up = ledger.feed.maintains()
    as_of = versions_as_of(ledger, {str(row["profile_id"]) for row in rows}, at) if kept_up else {}
    histories: dict[str, list[Any]] = {}
    kept = []
    for row in rows:
        upto = as_of.get(str(row["profile_id"]))
        if kept_up and (upto is None or row["version"] <= upto):  # every event of it by then
            kept.append(row)
        elif (stood := _as_it_stood(ledger, row, at, histories)) is not None:
            kept.append(stood)
    if since is None:
        return kept
    return [row for row in kept if row["ended_at"] is None or _time(row["ended_at"]) >= since]


def _as_it_stood(
    ledger: Ledger, stored: dict[str, Any], at: datetime, histories: dict[str, list[Any]]
) -> dict[str, Any] | None:
    """The lease's row folded from its profile's events up to the first stamped after ``at``,
    as ``LeasesReadModel.fold`` folds them; None if they do not acquire it. ``histories``:
    each profile's events, read once for all its leases."""
    lease_id, profile_id = str(stored["lease_id"]), str(stored["profile_id"])
    if profile_id not in histories:
        histories[profile_id] = ledger.history(profile_id)
    row: dict[str, Any] | None = None
    for event in histories[profile_id]:
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
    if row is None:  # not acquired by then
        return None
    return {**_as_text(row), "position": None}


def usage(
    ledger: Ledger,
    account_id: str | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    at: datetime | None = None,
) -> list[LeaseRow]:
    """``read_usage`` as rows (``reports.usage`` gives the same as a DataFrame), without
    pandas: what a person's table of an account's leases needs, each status judged at the
    store's time (``judged``: an unended lease past its deadline is ``overdue``). With ``at``,
    as the events stood at that moment (``read_usage_as_of``), judged then, as
    ``reports.usage(at=)``. ``InvalidInput`` names ``since``, ``until`` or ``at`` for what is
    no datetime or has no instant in UTC, as ``timeline`` does (rev33: text raised
    AttributeError, year 1 east of UTC OverflowError)."""
    since, until, at = (_instant(f, v) for f, v in (("since", since), ("until", until), ("at", at)))
    # The store's time read before the rows: a lease renewed since is judged on its renewed
    # deadline, never one read before a renewal against a later time.
    moment = ledger.now() if at is None else at
    if at is None:
        rows = read_usage(
            ledger, ledger.feed.query, account_id=account_id, since=since, until=until
        )
    else:
        rows = read_usage_as_of(ledger, at=at, account_id=account_id, since=since, until=until)
    return [judged(validated_rows("leases", LeaseRow.model_validate, r), moment) for r in rows]


def judged(row: LeaseRow, at: datetime) -> LeaseRow:
    """``row`` with its status as at ``at`` (``ledger.rules.lease_status_at``): ``overdue``
    for an active lease past its deadline then, which no sweep had marked stale yet."""
    status = lease_status_at(row.status, row.expires_at, at)
    return row if status == row.status else row.model_copy(update={"status": status})


def _instant(field: str, value: datetime | None) -> datetime | None:
    """``value`` checked as the timeline checks a time (``_stored``), as an aware UTC datetime
    (one without an offset is UTC)."""
    _stored(field, value)
    return None if value is None else utc(value)
