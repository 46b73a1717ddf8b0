"""Schema 6: stores written before endings were one word (``review_requested:lease_expired``
where every report says ``stale``) are migrated by ``custody init``: the availability rows and
the snapshots that carried the old words say what the events say."""

from __future__ import annotations

import json

import pytest
from conftest import StepClock, register

from ledger import (
    Checkout,
    ForceRelease,
    Heartbeat,
    Ledger,
    Release,
    Review,
    StoreUnavailable,
    Sweep,
    verify_availability,
)
from ledger._domain.profile import Profile
from ledger._stores.sql import SCHEMA_VERSION
from ledger._stores.store import SNAPSHOT_INTERVAL

# What custody wrote before schema 6, for each ending this test makes.
OLD_WORDS = {
    "clean": "released_cleanly:success",
    "stale": "review_requested:lease_expired",
    "forced": "revoked:force_release",
    "review": "review_requested:unexpected_failure",
}


def _history(ledger: Ledger, clock: StepClock) -> None:
    """Four profiles whose last leases ended clean, forced, in review and stale; the stale
    one has gone on past a snapshot, which holds that ended lease."""
    for pid in ("clean", "forced", "review", "long"):
        register(ledger, pid)
    ledger.handle(
        Release(lease_id=_lease(ledger, "clean"), fencing_token=1, outcome="success", final_url="u")
    )
    _lease(ledger, "forced")
    ledger.handle(ForceRelease(profile_id="forced", actor="op", reason="stuck"))
    ledger.handle(Release(lease_id=_lease(ledger, "review"), fencing_token=1, outcome="failure"))
    ledger.handle(
        Checkout(profile_id="long", worker_id="w", run_id="r1", task_type="t", ttl_seconds=5)
    )
    clock.advance(10)
    ledger.handle(Sweep())
    ledger.handle(Review(profile_id="long", reviewer="rev", decision="return", note="fine"))
    live = _lease(ledger, "long", run="r2")
    while ledger.view("long").version < SNAPSHOT_INTERVAL + 3:
        ledger.handle(Heartbeat(lease_id=live, fencing_token=2, step="s"))


def _lease(ledger: Ledger, pid: str, run: str = "r") -> str:
    return ledger.handle(
        Checkout(profile_id=pid, worker_id="w", run_id=run, task_type="t")
    ).lease_id


def _as_written_before(ledger: Ledger, version: int) -> None:
    """Put the old words where custody used to write them: the availability rows, and the
    snapshot (class version 3) of the long stream; record the schema as ``version``."""
    store = ledger.store
    for pid, word in (("clean", "clean"), ("forced", "forced"), ("review", "review")):
        store.execute(  # type: ignore[attr-defined]
            "UPDATE custody_availability SET last_ending = ? WHERE profile_id = ?",
            (OLD_WORDS[word], pid),
        )
    recorder = store.app.snapshots.recorder  # type: ignore[union-attr]
    (snapshot,) = recorder.select_events(Profile.create_id("long"))
    state = json.loads(snapshot.state)
    assert state["last_lease"]["ending"] == "stale"
    state["last_lease"]["ending"] = OLD_WORDS["stale"]
    del state["last_lease"]["ending_cause"]
    state["class_version"] = 3
    store.execute(  # type: ignore[attr-defined]
        f"UPDATE {recorder.events_table_name} SET state = ? WHERE originator_version = ?",
        (json.dumps(state).encode(), snapshot.originator_version),
    )
    store.execute("UPDATE custody_schema SET version = ?", (version,))  # type: ignore[attr-defined]


@pytest.mark.parametrize("version", [4, 5])
def test_init_rewrites_the_old_ending_words_from_the_events(
    sql_store_url: str, version: int
) -> None:
    """A store of schema 4 or 5 is refused until init; init then leaves every availability
    row agreeing with its events (one-word endings) and no snapshot with the old words, so
    the long stream's last lease reads ``stale`` as its events say. Guard: the schema 6
    migration in ``SqlStore._create_schema``."""
    clock = StepClock()
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        _history(ledger, clock)
        _as_written_before(ledger, SCHEMA_VERSION)
    with Ledger.open(sql_store_url, clock=clock) as cold:  # loads from the snapshot
        assert cold.view("long").last_lease.ending == OLD_WORDS["stale"]  # type: ignore[union-attr]
        cold.store.execute("UPDATE custody_schema SET version = ?", (version,))  # type: ignore[attr-defined]
    with Ledger.open(sql_store_url) as old, pytest.raises(StoreUnavailable, match="migrate"):
        old.view("clean")
    Ledger.init(sql_store_url).close()
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        assert verify_availability(ledger) == []
        endings = {r.profile_id: r.last_ending for r in ledger.availability()}
        assert endings == {"clean": "clean", "forced": "forced", "review": "review", "long": None}
        last = ledger.view("long").last_lease
        assert last is not None
        assert (last.ending, last.ending_cause) == ("stale", "lease_expired")
