"""Several leases held by one process renew together (the process's renewal hub,
``workers._hub``), on real SQLite and PostgreSQL: their background heartbeats share each
transaction, and a lease the ledger ended is lost alone while the others go on.

What proves a shared transaction: on PostgreSQL, the transaction id that wrote each event row
(``xmin``); on SQLite, which shows no transaction, the one store time a batch is judged at
(every heartbeat of a round carries it) beside the hub's count of store calls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from worker_scene import sdk_settings

from ledger import Checkout, ForceRelease, Ledger, RegisterProfile
from ledger._domain import events as ev
from workers import aio
from workers._guard import LeaseGuard, Progress
from workers._hub import RenewalHub
from workers._leases import ProfileLeases

PROFILES = ("p1", "p2", "p3")
TTL = 3  # renew every second; a lease due goes with those due within half a second


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> str:
    with Ledger.open(store_url, create=False) as ledger:
        for pid in PROFILES:
            ledger.handle(
                RegisterProfile(
                    profile_id=pid,
                    account_id="a",
                    proxy_id="px",
                    user_data_dir=str(tmp_path / pid),
                )
            )
    return store_url


def background_beats(
    url: str, after: int, upto: int | None = None
) -> list[tuple[str, object, str | None]]:
    """Each heartbeat without a step after position ``after`` (up to ``upto``: every one when
    None) (what the hub sends for a task that reported none): its profile, its store time and,
    on PostgreSQL, the transaction id that wrote it."""
    with Ledger.open(url, create=False) as ledger:
        logged = ledger.feed.read(after, 10_000)
    if upto is not None:
        logged = [e for e in logged if e.position <= upto]
    writers: dict[int, str] = {}
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT notification_id, xmin::text FROM custody_events WHERE notification_id > %s",
                (after,),
            ).fetchall()
        writers = {int(n): str(xid) for n, xid in rows}
    found = []
    for e in logged:
        event = e.event
        if isinstance(event, ev.LeaseHeartbeat) and event.step is None:
            found.append((event.profile_id, event.envelope.at, writers.get(e.position)))
    return found


def rounds(beats: list[tuple[str, object, str | None]], url: str) -> list[set[str]]:
    """The profiles renewed in each transaction (PostgreSQL) or at each store time (SQLite)."""
    by: dict[object, set[str]] = defaultdict(set)
    for profile, at, xid in beats:
        by[xid if url.startswith("postgresql") else at].add(profile)
    return list(by.values())


def head(url: str) -> int:
    with Ledger.open(url, create=False) as ledger:
        return ledger.feed.head()


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_process_s_leases_renew_in_shared_transactions(
    store: str, tmp_path: Path, flavour: str
) -> None:
    """Three leases held by one worker (TTL 3: renewed every second) for 2.6 s: every background
    heartbeat was written in a transaction with the other two leases' (each round: the three
    profiles), and the hub made one store call per round, not one per lease; on both flavours.
    Once the leases start to end, those left are renewed without the ones gone: on a slow
    machine a round can come due while the others are being released (counted in the store
    calls, not in the rounds that must be shared)."""
    settings = sdk_settings(tmp_path)
    start = head(store)
    held_until: list[int] = []  # the log's head when the leases start to end

    def run_sync() -> RenewalHub:
        with contextlib.ExitStack() as held:
            leases = held.enter_context(ProfileLeases.open(store, worker_id="w", settings=settings))
            for pid in PROFILES:
                held.enter_context(leases.checkout(pid, run_id=pid, task_type="t", ttl_seconds=TTL))
            time.sleep(2.6)
            held_until.append(head(store))
            return leases.renewals

    async def run_async() -> RenewalHub:
        async with contextlib.AsyncExitStack() as held:
            leases = aio.ProfileLeases.open(store, worker_id="w", settings=settings)
            await held.enter_async_context(leases)
            for pid in PROFILES:
                await held.enter_async_context(
                    leases.checkout(pid, run_id=pid, task_type="t", ttl_seconds=TTL)
                )
            await asyncio.sleep(2.6)
            held_until.append(head(store))
            return leases.renewals

    hub = run_sync() if flavour == "sync" else asyncio.run(run_async())
    found = rounds(background_beats(store, start, upto=held_until[0]), store)
    assert len(found) >= 2
    assert found == [set(PROFILES)] * len(found), found
    every = rounds(background_beats(store, start), store)  # the ending's rounds too
    assert (hub.store_calls, hub.heartbeats_sent) == (len(every), sum(map(len, every))), every


def test_a_lease_lost_in_a_batch_leaves_the_others_renewing(store: str) -> None:
    """Three leases renewed by one hub; an operator force-releases p2's. The next batch's
    heartbeat for p2 is answered LeaseLost: p2's guard is lost with the ledger's reason, and
    p1 and p3 are renewed on, together, in the transactions after it. (No revocation watch
    runs here: the batch's answer is how p2 learns it.) The batch that carried p2's heartbeat
    was decided on the profiles the hub held, p2's behind the store: it conflicted, and its
    heartbeats were sent again one to a transaction (p1 and p3 each alone once)."""
    held: dict[str, tuple[Any, LeaseGuard]] = {}
    hub = RenewalHub(partial(Ledger.open, store, create=False), time.monotonic)
    with Ledger.open(store, create=False) as ledger:
        for pid in PROFILES:
            started = time.monotonic()
            lease = ledger.handle(
                Checkout(profile_id=pid, worker_id="w", run_id=pid, task_type="t", ttl_seconds=TTL)
            )
            guard = LeaseGuard.for_lease(lease, started)
            held[pid] = (hub.join(lease, guard, Progress()), guard)
        deadline = time.monotonic() + 5  # the first batch answered: a round of its own after
        while not all(r.renewals for r, _ in held.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        ledger.handle(ForceRelease(profile_id="p2", actor="ops", reason="browser hung"))
    after = head(store)
    assert held["p2"][1].lost.wait(3)
    assert "ended" in held["p2"][1].why
    time.sleep(2.2)
    for pid in ("p1", "p3"):
        assert held[pid][0].renewing
        assert held[pid][1].held()
    assert not held["p2"][0].renewing
    for renewal, _ in held.values():
        assert renewal.leave(timeout=5)
    found = rounds(background_beats(store, after), store)
    alone = [beats for beats in found if beats != {"p1", "p3"}]
    assert alone in ([], [{"p1"}, {"p3"}], [{"p3"}, {"p1"}]), found
    assert len(found) - len(alone) >= 2
