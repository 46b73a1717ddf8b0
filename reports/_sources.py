"""What the fleet reports read: every lease, the events that block and clear profiles, and
current availability, each brought up to date first.

The fleet, health, checklist and HTML reports read the same few things; reading them once
through ``Sources`` keeps one page's answers consistent with each other (same moment, same
rows) and the store's work to a few queries.

One moment: every table is read in one snapshot of the store (one read transaction on SQLite,
REPEATABLE READ on PostgreSQL), so nothing committed meanwhile shows in one table and not in
another; and as the log stood at the leases read model's checkpoint, which the availability
rows (written beside each event, so perhaps ahead of it) are brought back to and the timeline
(perhaps caught up further) is cut at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from ledger import Ledger
from projections import (
    LEASES_READ_MODEL,
    TIMELINE_READ_MODEL,
    StatusRow,
    catch_up_all,
    status_at,
)
from projections.queries import LEASES, TIMELINE, in_lease_order, readable_account
from reports._frames import judged, typed

LEASE_TIMES = ("started_at", "expires_at", "ended_at", "last_renewal_at", "marked_stale_at")
LEASE_INTEGERS = ("fencing_token", "ttl_seconds", "heartbeats", "version", "position")

# Every event but heartbeats and extensions (the bulk of a log): enough to follow a profile
# through checkouts, endings, blocks, reviews and returns.
EVENT_TYPES = (
    "profile_registered",
    "lease_acquired",
    "lease_release_requested",
    "lease_released_cleanly",
    "lease_marked_stale",
    "lease_revoked",
    "review_requested",
    "profile_quarantined",
    "profile_reviewed",
    "profile_returned_to_pool",
    "profile_disabled",
    "profile_enabled",
    "browser_stopped",
)
EVENT_COLUMNS = (
    "position",
    "at",
    "profile_id",
    "account_id",
    "version",
    "event_type",
    "actor_id",
    "actor_role",
    "reason",
    "lease_id",
    "worker_id",
    "cause",
    "outcome",
    "detail",
)


@dataclass(frozen=True)
class Sources:
    """One consistent read of the fleet: ``at`` (the store's clock), availability judged at
    ``at``, every lease (its status judged at ``at``: ``overdue`` past its deadline, not ended
    yet), the non-heartbeat events in log order, and every event type's count
    with how many lack an actor or a command id (``bare``; a reason is optional: a worker's
    checkout and heartbeats carry none)."""

    at: datetime
    profiles: list[StatusRow]
    leases: pd.DataFrame
    events: pd.DataFrame
    counts: pd.DataFrame
    # Availability rows of profiles never registered (junk: rebuild drops them), by id.
    junk_rows: tuple[str, ...] = ()


class Frames(Protocol):
    """Where a query is read as a DataFrame: the feed (its own transaction) or a snapshot."""

    def read_frame(self, statement: str, params: Sequence[Any] = ()) -> pd.DataFrame: ...


# How often a read catches up again when the timeline's checkpoint is found behind the
# leases' (another process caught the leases up alone in between).
ATTEMPTS = 3


def read_sources(ledger: Ledger, *, account: str | None = None) -> Sources:
    """Bring the leases and timeline read models up to date, then read every table at one
    moment: the leases read model's checkpoint (only ``account``'s profiles when given). A
    login that may not write the read models (a worker's) reads them as they stand, and a
    timeline behind the leases then lacks the events it has yet to fold."""
    models = (LEASES_READ_MODEL, TIMELINE_READ_MODEL)
    for attempt in range(ATTEMPTS):
        catch_up_all(ledger, models)
        with ledger.feed.snapshot() as snapshot:
            points = snapshot.checkpoints()
            moment = points.get(LEASES_READ_MODEL.name, 0)
            behind = points.get(TIMELINE_READ_MODEL.name, 0) < moment
            if behind and attempt + 1 < ATTEMPTS and ledger.feed.maintains():
                continue
            at, junk = ledger.now(), list[str]()
            return Sources(
                at=at,
                profiles=status_at(ledger, snapshot, moment, at, account_id=account, junk=junk),
                leases=judged(_leases(snapshot, account), at),
                events=read_events(snapshot, account, upto=moment),
                counts=_counts(snapshot, account, moment),
                junk_rows=tuple(junk),
            )
    raise AssertionError("unreachable: the last attempt reads as things stand")


def _where(account: str | None, upto: int | None = None) -> tuple[str, tuple[Any, ...]]:
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    if account is not None:
        where.append("account_id = ?")
        params.append(readable_account(account))
    if upto is not None:  # cast: an SQLite cell a hand made text passes on, for typed() to name
        where.append("CAST(position AS BIGINT) <= ?")
        params.append(upto)
    return " AND ".join(where), tuple(params)


def _leases(source: Frames, account: str | None) -> pd.DataFrame:
    where, params = _where(account)
    columns = ", ".join(LEASES.column_names)
    # Ordered once, in Python (``in_lease_order``: by code point, whatever the collation).
    sql = f"SELECT {columns} FROM {LEASES.name} WHERE {where}"
    frame = typed(
        source.read_frame(sql, params),
        times=LEASE_TIMES,
        integers=LEASE_INTEGERS,
        floats=("longest_gap_seconds", "worst_gap_share"),
        read_model="leases",
    )
    return in_lease_order(frame.loc[:, list(LEASES.column_names)])


def read_events(source: Frames, account: str | None, *, upto: int | None = None) -> pd.DataFrame:
    """Every event but heartbeats and extensions (``EVENT_TYPES``) of ``account``'s profiles
    (every profile's: None), in log order, as the timeline holds them now (up to position
    ``upto`` when given)."""
    where, params = _where(account, upto)
    marks = ", ".join("?" * len(EVENT_TYPES))
    sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {TIMELINE.name} "
        f"WHERE {where} AND event_type IN ({marks}) ORDER BY position"
    )
    frame = source.read_frame(sql, (*params, *EVENT_TYPES))
    frame = typed(frame, times=("at",), integers=("position", "version"), read_model="timeline")
    return frame.loc[:, list(EVENT_COLUMNS)]


def _counts(source: Frames, account: str | None, upto: int) -> pd.DataFrame:
    where, params = _where(account, upto)
    sql = (
        "SELECT event_type, count(*) AS events, "
        "sum(CASE WHEN actor_id = '' OR command_id = '' THEN 1 ELSE 0 END) AS bare "
        f"FROM {TIMELINE.name} WHERE {where} GROUP BY event_type ORDER BY event_type"
    )
    frame = typed(source.read_frame(sql, params), integers=("events", "bare"))
    return frame.loc[:, ["event_type", "events", "bare"]]
