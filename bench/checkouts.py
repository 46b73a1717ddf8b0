"""Checkouts in users' terms, each beside its raw baseline in the same run (issue 16).

    .venv/bin/python bench/checkouts.py [--store sqlite|postgresql|both]
        [--histories 10,10000,100000] [--samples N] [--racers N] [--rounds R] [--json FILE]

Stores with durable commits: an SQLite file on the disk (WAL, the default ``synchronous``) and
a throwaway PostgreSQL on the disk with ``fsync``, ``synchronous_commit`` and
``full_page_writes`` on (``bench/appenders.py``'s ``durable_cluster``), both deleted at the end.

1. **Cold and warm checkout on a long history.** For each of ``--histories`` (default 10, 10,000
   and 100,000 events) a profile whose stream holds that many real events, decided by the
   ``Profile`` aggregate and written with a snapshot every 50 versions as the ledger writes
   them (``bench/scale_data.py``), ending with its lease released. *Cold*: a process that has
   never seen the profile (a ``Ledger`` opened for the sample, which first checks out and
   releases another profile, so that its connection, clock and prepared statements are ready
   as a working process's are) checks it out. *Warm*: one ``Ledger`` that already holds the
   profile checks it out again after each release. Only the checkout is timed; the release
   follows untimed. Beside them the raw baseline: one SELECT-then-INSERT transaction on an open
   connection (``bench/raw.py``: the stream's last version, the event row, the availability
   upsert). ``--samples`` of each per round; medians over all rounds. The issue's target: a cold
   checkout at 100,000 events within 1.5x of one at 10.
2. **Racing checkouts.** ``--racers`` (default 32) ``spawn``ed processes, each with its own
   ``Ledger`` (kept across rounds), wait on one barrier and check out the same profile at once,
   the same profile every round: between rounds the main process releases the winner's lease
   cleanly, so from the second round on every racer holds a stale copy of the profile (the
   one it loaded in the round before, one lease and release behind). Each round checks that
   exactly one won, that every other was denied as already leased, and that the round added
   exactly one ``LeaseAcquired`` to the profile's stream (read back from the store). It prints
   the winner's latency and the denials' median and slowest, beside the raw baseline: as many
   processes running the raw SELECT-then-INSERT transaction on one stream at once (PostgreSQL
   refuses all but one of a version with its unique key; SQLite serialises them all).

Prints a table per figure and the 1-minute load average; ``--json`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Barrier
from pathlib import Path
from time import perf_counter
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import leases  # noqa: E402
import psycopg  # noqa: E402
import raw as rawio  # noqa: E402
from appenders import durable_cluster  # noqa: E402
from pg_cluster import create_database  # noqa: E402
from scale_data import Layout, generate  # noqa: E402

from ledger import CheckoutDenied, DenialReason, Lease, Ledger  # noqa: E402
from ledger._domain.events import LeaseAcquired  # noqa: E402
from ledger._domain.profile import Profile  # noqa: E402

_BARRIER_TIMEOUT_S = 300


@dataclass(frozen=True)
class Target:
    kind: str
    url: str  # custody's store URL
    raw: str  # the raw baseline's SQLite file or PostgreSQL URL


@dataclass(frozen=True)
class History:
    store: str
    events: int  # in the profile's stream before the first sample
    cold_ms: float
    warm_ms: float
    raw_ms: float


@dataclass(frozen=True)
class Race:
    store: str
    racers: int
    rounds: int
    winner_ms: float  # median over the rounds
    denial_ms: float  # median over every denial of every round
    slowest_denial_ms: float
    raw_ms: float  # median of the raw transactions of every round
    slowest_raw_ms: float
    raw_refused: int  # raw transactions the store refused, over all rounds


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ms(seconds: list[float]) -> float:
    return round(statistics.median(seconds) * 1000, 2)


# -- stores -------------------------------------------------------------------------------------


@contextmanager
def target(kind: str) -> Iterator[Target]:
    """A fresh custody store and a raw one beside it, deleted at the end."""
    if kind == "sqlite":
        scratch = Path(tempfile.mkdtemp(prefix="custody-bench-", dir="/var/tmp"))
        try:
            found = Target(kind, f"sqlite:///{scratch / 'custody.db'}", str(scratch / "raw.db"))
            Ledger.init(found.url).close()
            rawio.create_raw(kind, found.raw)
            yield found
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    say("starting a throwaway PostgreSQL on the disk, fsync on ...")
    cluster = durable_cluster()
    try:
        found = Target(
            kind,
            create_database(cluster.admin_url, "bench_custody"),
            create_database(cluster.admin_url, "bench_raw"),
        )
        Ledger.init(found.url).close()
        rawio.create_raw(kind, found.raw)
        yield found
    finally:
        cluster.stop()


# -- 1. cold and warm checkout ------------------------------------------------------------------


def settled_profile(url: str, events: int) -> tuple[str, int]:
    """A profile whose stream holds at least ``events`` real events, ending with its lease
    released (up to a lease's 23 events more), and how many it holds."""
    profile_id = f"history_{events}"
    layout = Layout(
        profiles=2,
        events=events + 100,
        long=events,
        big=profile_id,
        small=warm_up_profile(profile_id),
        settled=True,
    )
    with Ledger.open(url) as ledger:
        generate(ledger, layout)
        return profile_id, ledger.uow.load(profile_id).version


def _timed_checkout(ledger: Ledger, profile_id: str) -> float:
    started = perf_counter()
    lease = leases.checkout(ledger, profile_id, ttl_seconds=300)
    took = perf_counter() - started
    leases.release(ledger, lease)
    return took


def cold_checkout(url: str, profile_id: str) -> float:
    """A checkout by a process that has never seen the profile, but has worked: it checked
    out and released another profile first, so that its connection, its clock and its
    prepared statements are ready, as a worker's are after its first lease."""
    with Ledger.open(url) as ledger:
        _timed_checkout(ledger, warm_up_profile(profile_id))
        return _timed_checkout(ledger, profile_id)


def warm_up_profile(profile_id: str) -> str:
    """The other profile ``settled_profile`` writes beside ``profile_id`` (100 events)."""
    return f"{profile_id}_small"


def raw_checkouts(store: rawio.RawStore, n: int) -> list[float]:
    """The raw checkout transaction ``n`` times on one stream, each followed by the raw
    release (untimed)."""
    stream, profile_id = rawio.fresh_stream(store, leases.unique("raw-history"))
    took = []
    for _ in range(n):
        started = perf_counter()
        store.append(stream, profile_id, [rawio.event("lease_acquired")], "leased")
        took.append(perf_counter() - started)
        released = [rawio.event("lease_release_requested"), rawio.event("lease_released_cleanly")]
        store.append(stream, profile_id, released, "available")
    return took


def histories(found: Target, sizes: list[int], samples: int, rounds: int) -> list[History]:
    figures = []
    raw = rawio.open_raw(found.kind, found.raw)
    try:
        for events in sizes:
            say(f"[{found.kind}] writing a profile of {events:,} events ...")
            profile_id, held_events = settled_profile(found.url, events)
            cold: list[float] = []
            warm: list[float] = []
            raw_side: list[float] = []
            with Ledger.open(found.url) as held:
                held.now()
                _timed_checkout(held, profile_id)  # now the process holds the profile
                for n in range(rounds):
                    say(f"[{found.kind}] {events:,} events, round {n + 1}: cold, warm, raw ...")
                    cold += [cold_checkout(found.url, profile_id) for _ in range(samples)]
                    warm += [_timed_checkout(held, profile_id) for _ in range(samples)]
                    raw_side += raw_checkouts(raw, samples)
            figures.append(History(found.kind, held_events, _ms(cold), _ms(warm), _ms(raw_side)))
    finally:
        raw.close()
    return figures


# -- 2. racing checkouts ------------------------------------------------------------------------

_barrier: Barrier | None = None
_held: dict[str, Any] = {}  # each racer's own ledger (or raw store), kept across rounds


def _install(barrier: Barrier) -> None:
    # The pool initializer is the only way to hand each racer the shared barrier.
    global _barrier
    _barrier = barrier


# A racer's outcome, how long its attempt took, and (the custody winner's) the lease it won.
Outcome = tuple[str, float, Lease | None]


def _race(attempt: Callable[[], str | Lease]) -> Outcome:
    assert _barrier is not None
    try:
        _barrier.wait(_BARRIER_TIMEOUT_S)
        started = perf_counter()
        outcome = attempt()
        took = perf_counter() - started
        if isinstance(outcome, Lease):
            return "won", took, outcome
        return outcome, took, None
    except BaseException:
        _barrier.abort()  # release the others instead of leaving them to time out
        raise


def race_task(task: tuple[str, str, str, str]) -> Outcome:
    """One racer's attempt: ``won``, a denial's reason, or (raw) ``refused``."""
    side, kind, where, name = task
    if side == "ready":
        return _race(lambda: "ready")
    if side == "custody":
        ledger = _held.get(where)
        if ledger is None:
            ledger = _held[where] = Ledger.open(where)
            ledger.now()

        def attempt() -> str | Lease:
            try:
                return leases.checkout(ledger, name, ttl_seconds=300)
            except CheckoutDenied as denied:
                return str(denied.reason)

        return _race(attempt)
    store = _held.get(where)
    if store is None:
        store = _held[where] = rawio.open_raw(kind, where)

    row = rawio.event("lease_acquired")  # the row built before the race, as a worker would

    def raw_attempt() -> str:
        stream = uuid.UUID(name)
        try:
            store.append(stream, name, [row], "leased")
        except (psycopg.IntegrityError, sqlite3.IntegrityError):
            if kind == "postgresql":
                store.conn.rollback()
            return "refused"
        return "won"

    return _race(raw_attempt)


def acquisitions(url: str, profile_id: str) -> int:
    """``LeaseAcquired`` events in the profile's stream, read back from the store."""
    with Ledger.open(url) as ledger:
        events = ledger.store.stream_events(Profile.create_id(profile_id), 0, 1_000_000, 1_000)
    return sum(isinstance(event, LeaseAcquired) for event in events)


def race(found: Target, racers: int, rounds: int) -> Race:
    rawio.custody_sizes()  # measured here, once, for the racers to inherit
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(racers, initializer=_install, initargs=(context.Barrier(racers),))
    winners: list[float] = []
    denials: list[float] = []
    raw_side: list[float] = []
    refused = 0
    try:
        pool.map(race_task, [("ready", "", "", "")] * racers, chunksize=1)
        raw = rawio.open_raw(found.kind, found.raw)
        try:
            # One profile raced for every round, so that from the second round on each racer's
            # ledger holds the copy it loaded the round before, now stale.
            with Ledger.open(found.url) as ledger:
                profile_id = leases.register(ledger, leases.unique("race"))
            for n in range(rounds):
                say(f"[{found.kind}] race {n + 1}: {racers} checkouts of one profile at once ...")
                before = acquisitions(found.url, profile_id)
                task = ("custody", found.kind, found.url, profile_id)
                ran = pool.map(race_task, [task] * racers, chunksize=1)
                won = [(took, lease) for outcome, took, lease in ran if outcome == "won"]
                others = {outcome for outcome, _, _ in ran if outcome != "won"}
                leased = str(DenialReason.ALREADY_LEASED)
                if len(won) != 1 or others - {leased}:
                    raise SystemExit(f"race {n + 1}: {len(won)} won; others: {sorted(others)}")
                if (count := acquisitions(found.url, profile_id) - before) != 1:
                    raise SystemExit(f"race {n + 1}: the stream gained {count} LeaseAcquired")
                (took, lease), *_ = won
                assert lease is not None
                with Ledger.open(found.url) as ledger:  # available again for the next round
                    leases.release(ledger, lease)
                winners.append(took)
                denials += [took for outcome, took, _ in ran if outcome != "won"]
                stream, _ = rawio.fresh_stream(raw, leases.unique("raw-race"))
                task = ("raw", found.kind, found.raw, str(stream))
                ran = pool.map(race_task, [task] * racers, chunksize=1)
                raw_side += [took for _, took, _ in ran]
                refused += sum(outcome == "refused" for outcome, _, _ in ran)
        finally:
            raw.close()
    finally:
        pool.terminate()
        pool.join()
    return Race(
        found.kind,
        racers,
        rounds,
        winner_ms=_ms(winners),
        denial_ms=_ms(denials),
        slowest_denial_ms=round(max(denials) * 1000, 2),
        raw_ms=_ms(raw_side),
        slowest_raw_ms=round(max(raw_side) * 1000, 2),
        raw_refused=refused,
    )


# -- output -------------------------------------------------------------------------------------


def history_table(rows: list[History]) -> str:
    lines = [
        "| store | events before | cold checkout ms | warm checkout ms | raw SELECT-then-INSERT ms "
        "| cold / raw | warm / raw | cold / cold at the smallest |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        first = next(r for r in rows if r.store == row.store)
        lines.append(
            f"| {row.store} | {row.events:,} | {row.cold_ms:.2f} | {row.warm_ms:.2f} "
            f"| {row.raw_ms:.2f} | {row.cold_ms / row.raw_ms:.1f} | {row.warm_ms / row.raw_ms:.1f} "
            f"| {row.cold_ms / first.cold_ms:.2f} |"
        )
    return "\n".join(lines)


def race_table(rows: list[Race]) -> str:
    lines = [
        "| store | racers x rounds | winner ms | denial ms (median / slowest) "
        "| raw transaction ms (median / slowest) | raw refused |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.store} | {r.racers} x {r.rounds} | {r.winner_ms:.1f} "
        f"| {r.denial_ms:.1f} / {r.slowest_denial_ms:.1f} "
        f"| {r.raw_ms:.1f} / {r.slowest_raw_ms:.1f} | {r.raw_refused} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--histories", default="10,10000,100000")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--racers", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = sorted(int(n) for n in args.histories.split(","))  # the smallest first
    kinds = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    started, load_before = perf_counter(), os.getloadavg()[0]
    found_histories: list[History] = []
    races: list[Race] = []
    for kind in kinds:
        with target(kind) as found:
            found_histories += histories(found, sizes, args.samples, args.rounds)
            races.append(race(found, args.racers, args.rounds))
    load = os.getloadavg()[0]
    print(history_table(found_histories))
    print()
    print(race_table(races))
    print()
    print(
        f"{args.rounds} rounds, {args.samples} samples of each per round, medians; whole run "
        f"{perf_counter() - started:.0f} s; {os.cpu_count()} cores, 1-min load average "
        f"{load_before:.1f} before, {load:.1f} after"
    )
    if args.json:
        figures = {
            "histories": [asdict(h) for h in found_histories],
            "races": [asdict(r) for r in races],
            "load": [load_before, load],
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
