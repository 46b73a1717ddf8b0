"""What the fleet reports read: every lease, the events that block and clear profiles, and
current availability, each brought up to date first.

The fleet, health, checklist and HTML reports read the same few things; reading them once
through ``Sources`` keeps one page's answers consistent with each other (same moment, same
rows) and the store's work to three queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from ledger import Ledger
from projections import LEASES_READ_MODEL, TIMELINE_READ_MODEL, StatusRow, catch_up_all, status
from projections.queries import LEASES, TIMELINE, readable_account
from reports._frames import typed

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
    ``at``, every lease, the non-heartbeat events in log order, and every event type's count
    with how many lack an actor or a command id (``bare``; a reason is optional: a worker's
    checkout and heartbeats carry none)."""

    at: datetime
    profiles: list[StatusRow]
    leases: pd.DataFrame
    events: pd.DataFrame
    counts: pd.DataFrame


def read_sources(ledger: Ledger, *, account: str | None = None) -> Sources:
    """Bring the leases and timeline read models up to date, then read them (only
    ``account``'s profiles when given)."""
    catch_up_all(ledger, (LEASES_READ_MODEL, TIMELINE_READ_MODEL))
    return Sources(
        at=ledger.now(),
        profiles=status(ledger, account_id=account),
        leases=_leases(ledger, account),
        events=read_events(ledger, account),
        counts=_counts(ledger, account),
    )


def _where(account: str | None) -> tuple[str, tuple[str, ...]]:
    if account is None:
        return "1 = 1", ()
    return "account_id = ?", (readable_account(account),)


def _leases(ledger: Ledger, account: str | None) -> pd.DataFrame:
    where, params = _where(account)
    columns = ", ".join(LEASES.column_names)
    sql = f"SELECT {columns} FROM {LEASES.name} WHERE {where} ORDER BY started_at, lease_id"
    frame = typed(
        ledger.feed.read_frame(sql, params),
        times=LEASE_TIMES,
        integers=LEASE_INTEGERS,
        floats=("longest_gap_seconds", "worst_gap_share"),
    )
    return frame.loc[:, list(LEASES.column_names)]


def read_events(ledger: Ledger, account: str | None) -> pd.DataFrame:
    """Every event but heartbeats and extensions (``EVENT_TYPES``) of ``account``'s profiles
    (every profile's: None), in log order, as the timeline holds them now."""
    where, params = _where(account)
    marks = ", ".join("?" * len(EVENT_TYPES))
    sql = (
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {TIMELINE.name} "
        f"WHERE {where} AND event_type IN ({marks}) ORDER BY position"
    )
    frame = ledger.feed.read_frame(sql, (*params, *EVENT_TYPES))
    frame = typed(frame, times=("at",), integers=("position", "version"))
    return frame.loc[:, list(EVENT_COLUMNS)]


def _counts(ledger: Ledger, account: str | None) -> pd.DataFrame:
    where, params = _where(account)
    sql = (
        "SELECT event_type, count(*) AS events, "
        "sum(CASE WHEN actor_id = '' OR command_id = '' THEN 1 ELSE 0 END) AS bare "
        f"FROM {TIMELINE.name} WHERE {where} GROUP BY event_type ORDER BY event_type"
    )
    frame = typed(ledger.feed.read_frame(sql, params), integers=("events", "bare"))
    return frame.loc[:, ["event_type", "events", "bare"]]
