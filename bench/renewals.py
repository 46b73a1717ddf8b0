"""Several leases held by one process, renewed with the renewal hub and without it, beside the
raw baseline, in the same run.

    .venv/bin/python bench/renewals.py [--leases N] [--beats B] [--rounds R]
        [--store sqlite|postgresql|both] [--json FILE]

One process holds ``--leases`` leases (default 16), each renewed ``--beats`` times per round
(default 50):

- **hub**: the process's renewal hub (``workers._hub``) as the SDK runs it, driven a round at a
  time on a clock the bench moves by one renewal interval, so every lease is due together: one
  ``Ledger.handle_together`` of all the leases' heartbeats per round.
- **per lease**: what the SDK did before the hub, one heartbeat thread per lease, each with a
  ``Ledger`` of its own, sending its heartbeats (``workers._renewal.renew``) back to back.
- **raw, batched**: the hub's baseline: the bench's raw heartbeat (``bench/raw.py``: read the
  version, insert the event, upsert the availability row) for every lease, a round of them in
  one transaction, as the hub commits them, from one thread on one connection.
- **raw, one per heartbeat**: the per-lease side's baseline: the same raw heartbeat, one
  transaction each, from as many threads of the process, each on a connection of its own.

Each figure is heartbeats/s over the span from the first start to the last finish, the median
of ``--rounds`` (default 3), the four sides taking turns within each round, on fresh leases.
The hub is set against the batched raw side, the per-lease side against the unbatched one:
each against raw code committing as often as it does.
Beside them, the transactions each heartbeat cost: on PostgreSQL counted by the server (the
distinct transaction ids on the event rows the side appended), on SQLite, which shows none, the
hub's store calls (each a transaction; per lease, one each). PostgreSQL is a throwaway server
on the disk with ``fsync`` on (``bench/appenders.py``), SQLite a file on the disk
(``/var/tmp``) as the library runs it (WAL, default ``synchronous``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import leases  # noqa: E402
import psycopg  # noqa: E402
import raw as rawio  # noqa: E402
from appenders import durable_cluster  # noqa: E402
from pg_cluster import create_database  # noqa: E402

from ledger import Lease, Ledger  # noqa: E402
from workers._guard import LeaseGuard, Progress  # noqa: E402
from workers._hub import RenewalHub  # noqa: E402
from workers._renewal import heartbeat, renew  # noqa: E402


class SteppedClock:
    """The hub's clock: moved by the bench one renewal interval a round."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def held_leases(url: str, count: int) -> list[Lease]:
    with Ledger.open(url, create=False) as ledger:
        return [leases.fresh_lease(ledger, "bench-renew") for _ in range(count)]


def hub_side(url: str, held: list[Lease], beats: int, count_tx: Counter) -> tuple[float, float]:
    """Heartbeats/s through the renewal hub, and the transactions each heartbeat took."""
    clock = SteppedClock()
    with Ledger.open(url, create=False) as ledger:
        hub = RenewalHub(lambda: ledger, clock, run=False)
        for lease in held:
            hub.join(lease, LeaseGuard.for_lease(lease, clock.now, clock), Progress())
        hub.renew_due(ledger)  # the connection opened, nothing due yet
        interval = leases.TTL / 3

        def rounds() -> None:
            for _ in range(beats):
                clock.now += interval
                hub.renew_due(ledger)

        spent, used = count_tx(rounds)
    total = len(held) * beats
    assert hub.heartbeats_sent == total, hub.heartbeats_sent
    return total / spent, (hub.store_calls if used is None else used) / total


def per_lease_side(
    url: str, held: list[Lease], beats: int, count_tx: Counter
) -> tuple[float, float]:
    """Heartbeats/s from one thread and ledger per lease, as before the hub, and the
    transactions each heartbeat took."""

    def beating(lease: Lease) -> Job:
        def job(ready: threading.Barrier, go: threading.Barrier) -> None:
            guard = LeaseGuard.for_lease(lease, time.monotonic())
            with Ledger.open(url, create=False) as ledger:
                ledger.now()  # connected before the start
                ready.wait()
                go.wait()
                for _ in range(beats):
                    beat = heartbeat(lease, step=None, url=None)
                    assert renew(ledger, beat, guard, wait=lambda _: False)

        return job

    total = len(held) * beats
    spent, used = count_tx(started_together([beating(lease) for lease in held]))
    return total / spent, (total if used is None else used) / total


def raw_batched_side(kind: str, target: str, count: int, beats: int) -> float:
    """Heartbeats/s of the raw baseline as the hub commits: ``count`` heartbeats (one per
    stream) in one transaction per round, from one thread on one connection."""
    store = rawio.open_raw(kind, target)
    try:
        held = [rawio.fresh_stream(store, leases.unique("bench-rawb")) for _ in range(count)]
        store.append_together([])  # the connection used before the start, as the hub's
        started = time.perf_counter()
        rawio.heartbeats_together(store, held, beats)
        spent = time.perf_counter() - started
    finally:
        store.close()
    return count * beats / spent


def raw_side(kind: str, target: str, count: int, beats: int) -> float:
    """Heartbeats/s of the raw baseline one transaction per heartbeat, from as many threads,
    one connection each."""

    def beating(n: int) -> Job:
        def job(ready: threading.Barrier, go: threading.Barrier) -> None:
            store = rawio.open_raw(kind, target)
            try:
                stream, profile_id = rawio.fresh_stream(store, leases.unique(f"bench-raw{n}"))
                ready.wait()
                go.wait()
                rawio.heartbeats(store, stream, profile_id, beats)
            finally:
                store.close()

        return job

    spent, _ = no_count(started_together([beating(n) for n in range(count)]))
    return count * beats / spent


Job = Callable[[threading.Barrier, threading.Barrier], None]
Counter = Callable[[Callable[[], None]], tuple[float, int | None]]


def started_together(work: list[Job]) -> Callable[[], None]:
    """A thread per job, started now: each sets up, says it is ``ready`` and waits to ``go``.
    Returns what lets them all go and waits for the last to finish (the part timed)."""
    ready, go = threading.Barrier(len(work) + 1), threading.Barrier(len(work) + 1)
    threads = [threading.Thread(target=job, args=(ready, go)) for job in work]
    for t in threads:
        t.start()
    ready.wait()

    def run() -> None:
        go.wait()
        for t in threads:
            t.join()

    return run


def no_count(timed: Callable[[], None]) -> tuple[float, int | None]:
    """Seconds ``timed`` took; no transaction count (SQLite shows none)."""
    started = time.perf_counter()
    timed()
    return time.perf_counter() - started, None


def server_count(url: str) -> Counter:
    """Seconds ``timed`` took, and how many transactions wrote the event rows appended
    meanwhile (the distinct transaction ids on the rows, as the server recorded them)."""

    def count(timed: Callable[[], None]) -> tuple[float, int | None]:
        with psycopg.connect(url, autocommit=True) as conn:
            head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM custody_events")
            after = head.fetchone()
            started = time.perf_counter()
            timed()
            spent = time.perf_counter() - started
            row = conn.execute(
                "SELECT count(DISTINCT xmin::text) FROM custody_events WHERE notification_id > %s",
                (after[0] if after else 0,),
            ).fetchone()
            return spent, int(row[0]) if row else None

    return count


def measure(
    kind: str, url: str, raw_target: str, count: int, beats: int, rounds: int
) -> dict[str, Any]:
    """The three sides, taking turns in each round, on fresh leases; medians of the rounds."""
    count_tx = server_count(url) if kind == "postgresql" else no_count
    names = ("hub", "lease", "raw_batched", "raw", "tx_hub", "tx_lease")
    sides: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(rounds):
        rate, tx = hub_side(url, held_leases(url, count), beats, count_tx)
        sides["hub"].append(rate)
        sides["tx_hub"].append(tx)
        rate, tx = per_lease_side(url, held_leases(url, count), beats, count_tx)
        sides["lease"].append(rate)
        sides["tx_lease"].append(tx)
        sides["raw_batched"].append(raw_batched_side(kind, raw_target, count, beats))
        sides["raw"].append(raw_side(kind, raw_target, count, beats))
    hub, lease, batched, raw = (
        statistics.median(sides[k]) for k in ("hub", "lease", "raw_batched", "raw")
    )
    return {
        "store": kind,
        "leases": count,
        "hub_heartbeats_per_s": round(hub),
        "per_lease_heartbeats_per_s": round(lease),
        "raw_batched_heartbeats_per_s": round(batched),
        "raw_heartbeats_per_s": round(raw),
        "hub_vs_raw_batched": round(hub / batched, 2),
        "hub_vs_raw": round(hub / raw, 2),
        "per_lease_vs_raw": round(lease / raw, 2),
        "transactions_per_heartbeat_hub": round(statistics.median(sides["tx_hub"]), 3),
        "transactions_per_heartbeat_per_lease": round(statistics.median(sides["tx_lease"]), 3),
    }


def show(f: dict[str, Any]) -> None:
    print(
        f"{f['store']:<10} {f['leases']:>3} leases: "
        f"hub {f['hub_heartbeats_per_s']:6,} hb/s ({f['transactions_per_heartbeat_hub']:.3f} tx/hb)"
        f"  per lease {f['per_lease_heartbeats_per_s']:6,} hb/s "
        f"({f['transactions_per_heartbeat_per_lease']:.3f} tx/hb)"
        f"  raw batched {f['raw_batched_heartbeats_per_s']:6,} hb/s"
        f"  raw one per hb {f['raw_heartbeats_per_s']:6,} hb/s"
        f"  ratios: hub / raw batched {f['hub_vs_raw_batched']:.2f}"
        f" (/ raw one per hb {f['hub_vs_raw']:.2f}),"
        f" per lease / raw one per hb {f['per_lease_vs_raw']:.2f}",
        flush=True,
    )


def sqlite_targets(base: Path) -> tuple[str, str]:
    custody, raw = base / "custody.db", base / "raw.db"
    Ledger.init(f"sqlite:///{custody}").close()
    rawio.create_raw("sqlite", str(raw))
    return f"sqlite:///{custody}", str(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=16)
    parser.add_argument("--beats", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    kinds = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    figures = []
    base = Path(tempfile.mkdtemp(prefix="custody-bench-renewals-", dir="/var/tmp"))
    cluster = durable_cluster() if "postgresql" in kinds else None
    try:
        for kind in kinds:
            if cluster is None or kind == "sqlite":
                url, raw_target = sqlite_targets(base)
            else:
                url = create_database(cluster.admin_url, "bench_renewals")
                raw_target = create_database(cluster.admin_url, "bench_renewals_raw")
                Ledger.init(url).close()
                rawio.create_raw("postgresql", raw_target)
            figure = measure(kind, url, raw_target, args.leases, args.beats, args.rounds)
            figures.append(figure)
            show(figure)
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    load = os.getloadavg()[0]
    print(
        f"1-minute load average {load:.1f}; {args.leases} leases in one process, {args.beats} "
        f"heartbeats each per round, median of {args.rounds} rounds; PostgreSQL with fsync on"
    )
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "load": load}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
