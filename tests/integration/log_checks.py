"""What the read model tests build and compare: a lease ended each way, the read models against
the log itself, and copies of the read models under other names (a twin kept incrementally, to
hold a rebuild or another batch size against)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from conftest import StepClock, register

from ledger import Checkout, ForceRelease, Heartbeat, Ledger, Quarantine, Release, Sweep
from ledger.feed import LoggedEvent
from projections import READ_MODELS, ReadModel
from projections._leases import LEASES
from projections._timeline import TIMELINE


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


def twin(model: ReadModel, suffix: str) -> ReadModel:
    """The read model under another name and table (``timeline_<suffix>`` in
    ``custody_timeline_<suffix>``), folding exactly as it does."""
    copy = type(model)()
    copy.name = f"{model.name}_{suffix}"
    copy.table = dataclasses.replace(model.table, name=f"{model.table.name}_{suffix}")
    return copy


def twins(suffix: str = "twin") -> tuple[ReadModel, ...]:
    """A twin of each read model, in ``READ_MODELS``' order."""
    return tuple(twin(model, suffix) for model in READ_MODELS.values())


def take_lease(ledger: Ledger, pid: str, run: str = "r") -> tuple[str, int]:
    """A lease of ``pid`` for run ``run``: its id and fencing token."""
    lease = ledger.handle(Checkout(profile_id=pid, worker_id=f"w-{run}", run_id=run, task_type="t"))
    return lease.lease_id, lease.fencing_token


def every_ending(ledger: Ledger, clock: StepClock) -> dict[str, str]:
    """One lease ended each way; returns the lease id of each ending."""
    ids = {}
    for pid in ("clean", "expected", "review", "quarantine", "stale", "forced", "revoked"):
        register(ledger, pid)
    lid, tok = take_lease(ledger, "clean")
    clock.advance(10)
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="a", safe=True))
    clock.advance(30)
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="b"))
    clock.advance(5)
    ledger.handle(
        Release(lease_id=lid, fencing_token=tok, outcome="success", final_url="https://x/done")
    )
    ids["clean"] = lid
    lid, tok = take_lease(ledger, "expected")
    ledger.handle(
        Release(
            lease_id=lid,
            fencing_token=tok,
            outcome="expected_failure",
            reason="sold out",
            final_url="https://x/sold-out",
        )
    )
    ids["expected_failure"] = lid
    lid, tok = take_lease(ledger, "review")
    ledger.handle(Release(lease_id=lid, fencing_token=tok, outcome="failure"))
    ids["review"] = lid
    lid, tok = take_lease(ledger, "quarantine")
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="pay", mutating=True))
    ledger.handle(Release(lease_id=lid, fencing_token=tok, outcome="failure"))
    ids["quarantine"] = lid
    stale = ledger.handle(
        Checkout(profile_id="stale", worker_id="w", run_id="r", task_type="t", ttl_seconds=5)
    )
    ids["stale"] = stale.lease_id
    clock.advance(60)
    ledger.handle(Sweep())
    lid, _ = take_lease(ledger, "forced")
    ledger.handle(ForceRelease(profile_id="forced", actor="op", reason="stuck"))
    ids["forced"] = lid
    lid, _ = take_lease(ledger, "revoked")
    ledger.handle(Quarantine(profile_id="revoked", actor="op", reason="suspicious"))
    ids["revoked"] = lid
    return ids
