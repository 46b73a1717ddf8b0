"""What the read model tests compare: the read models against the log itself, and copies of the
read models under other names (an incremental twin to hold a rebuild against)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from ledger import Ledger, LoggedEvent
from projections import LeasesReadModel, TimelineReadModel
from projections.leases import LEASES
from projections.timeline import TIMELINE


def whole_log(ledger: Ledger) -> list[LoggedEvent]:
    """Every event in the store, in log order, read from the notification log itself."""
    found: list[LoggedEvent] = []
    while batch := ledger.feed.read(found[-1].position if found else 0, 1000):
        found += batch
    return found


def rows(ledger: Ledger, table: str, key: str) -> list[dict[str, Any]]:
    """Every row of a read model's table, in key order."""
    return ledger.feed.query(f"SELECT * FROM {table} ORDER BY {key}")


def assert_exact(ledger: Ledger, timeline: str = TIMELINE.name, leases: str = LEASES.name) -> None:
    """The timeline holds each event of the log once (no duplicate, no gap) and each lease row
    counts exactly the heartbeats its events hold."""
    log = whole_log(ledger)
    stored = rows(ledger, timeline, "position")
    assert [r["position"] for r in stored] == [n.position for n in log]
    assert [(r["profile_id"], r["version"]) for r in stored] == [
        (n.event.profile_id, n.event.originator_version) for n in log
    ]
    beats = Counter(
        n.event.lease_id  # type: ignore[attr-defined]
        for n in log
        if n.event.event_type == "lease_heartbeat"
    )
    acquired = {n.event.lease.lease_id for n in log if n.event.event_type == "lease_acquired"}  # type: ignore[attr-defined]
    lease_rows = {r["lease_id"]: r for r in rows(ledger, leases, "lease_id")}
    assert set(lease_rows) == acquired
    assert {k: r["heartbeats"] for k, r in lease_rows.items()} == {
        k: beats.get(k, 0) for k in acquired
    }


class TwinTimeline(TimelineReadModel):
    """The timeline under another name and table: kept incrementally beside the real one."""

    name = "timeline_twin"
    table = dataclasses.replace(TIMELINE, name="custody_timeline_twin")


class TwinLeases(LeasesReadModel):
    name = "leases_twin"
    table = dataclasses.replace(LEASES, name="custody_leases_twin")
