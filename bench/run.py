"""custody's benchmark: every figure beside its raw baseline, measured in the same run.

    .venv/bin/python bench/run.py [--quick] [--store sqlite|postgresql|both] [--heartbeat-only]
        [--json FILE]

Each figure is the median of three rounds; custody and its baselines alternate within a round,
so drift on the machine hits both sides alike. PostgreSQL runs on a throwaway cluster
(tests/pg_cluster.py) that is stopped and deleted at the end, as are the SQLite files.
bench/README.md says what each figure measures.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from time import perf_counter, process_time

import leases
import raw as rawio
from parallel import Writers
from psycopg.conninfo import conninfo_to_dict

from ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3
SERVER_ROUNDS, SERVER_OPS = 5, 1_000  # the server's CPU: rounds, operations per round
WRITERS = 4


@dataclass(frozen=True)
class Sizes:
    heartbeats: int  # figure 1: heartbeats per round, all on one fresh lease
    parallel: int  # figure 2: heartbeats per process per round
    cycles: int  # figure 3: checkout+release cycles per round, on one fresh profile
    histories: tuple[int, ...]  # figure 4: events on the profile before the timed checkout


FULL = Sizes(heartbeats=500, parallel=100, cycles=60, histories=(10, 1_000, 5_000))
QUICK = Sizes(heartbeats=100, parallel=40, cycles=25, histories=(10, 1_000))


@dataclass(frozen=True)
class Target:
    kind: str
    custody_url: str
    raw: str  # an SQLite file path or a PostgreSQL URL (a database apart from custody's)
    postmaster: int | None = None  # PostgreSQL: the pid of this run's own server


@dataclass(frozen=True)
class Figure:
    name: str
    store: str
    custody: float
    raw: float
    plain: float | None = None


@dataclass(frozen=True)
class Cost:
    """What one operation costs the writing process itself: CPU time (user + system, µs) and
    Python function calls, for a heartbeat and for the raw sides measured beside it."""

    store: str
    heartbeat_us: float
    raw_us: float
    plain_us: float
    heartbeat_calls: float
    plain_calls: float
    # PostgreSQL: the server's CPU (its backends', µs) per heartbeat, per raw baseline
    # operation and per plain INSERT; None on SQLite, which runs in the writing process.
    server_heartbeat_us: float | None = None
    server_raw_us: float | None = None
    server_plain_us: float | None = None


SERVER_FIELDS = ("server_heartbeat_us", "server_raw_us", "server_plain_us")
MISSIZED: list[str] = []  # event types whose raw rows were not the size of custody's events


@dataclass(frozen=True)
class Replay:
    store: str
    events: int
    checkout_ms: float
    cycle_ms: float


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rate(n: int, loop: Callable[[], None], cpu: list[float] | None = None) -> float:
    """Operations per second of wall time; with ``cpu``, also appends the process's CPU time
    per operation in µs (the client's own cost, which wall time mixes with the server's)."""
    start, started_cpu = perf_counter(), process_time()
    loop()
    elapsed, used = perf_counter() - start, process_time() - started_cpu
    if cpu is not None:
        cpu.append(used / n * 1e6)
    return n / elapsed


def backend_seconds(postmaster: int, database: str) -> float:
    """CPU seconds (user + system) used so far by the server's backends connected to
    ``database``: those of this run's own PostgreSQL (children of ``postmaster``, on this
    machine) whose title names it, read from Linux's /proc in clock ticks (10 ms: the callers
    measure thousands of operations). A backend that ends meanwhile takes its time along;
    the pools keep theirs open."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            title = Path(entry.path, "cmdline").read_bytes().split()
        except OSError:  # ended meanwhile, or another user's
            continue
        # A backend's title: "postgres: USER DATABASE HOST(PORT) STATE".
        if int(stat[1]) == postmaster and title[2:3] == [database.encode()]:
            total += int(stat[11]) + int(stat[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def server_cpu(target: Target, n: int) -> tuple[float, float, float]:
    """The server's CPU per operation (µs) for heartbeats, the raw baseline and plain INSERTs
    on PostgreSQL: ``SERVER_ROUNDS`` rounds of ``n`` each, taking turns, the time summed
    over the rounds (a tick is 10 ms)."""
    assert target.postmaster is not None
    pid, used = target.postmaster, {"custody": 0.0, "raw": 0.0, "plain": 0.0}
    custody_db = conninfo_to_dict(target.custody_url)["dbname"]
    raw_db = conninfo_to_dict(target.raw)["dbname"]
    with Ledger.open(target.custody_url) as ledger:
        store = rawio.open_raw(target.kind, target.raw)
        try:
            lease = leases.fresh_lease(ledger, "bench-server")
            stream, profile = rawio.fresh_stream(store, leases.unique("bench-server"))
            plain, rows = uuid.uuid4(), rawio.plain_rows(n)  # built before the clock
            sides = (
                ("custody", custody_db, lambda: leases.heartbeats(ledger, lease, n)),
                ("raw", raw_db, lambda: rawio.heartbeats(store, stream, profile, n)),
                ("plain", raw_db, lambda: rawio.plain_inserts(store, plain, rows)),
            )
            for _ in range(SERVER_ROUNDS):
                for side, database, loop in sides:
                    if side == "plain":  # a fresh stream's versions for every round
                        plain = uuid.uuid4()
                    before = backend_seconds(pid, database)
                    loop()
                    used[side] += backend_seconds(pid, database) - before
        finally:
            store.close()
    per_op = {side: seconds / (n * SERVER_ROUNDS) * 1e6 for side, seconds in used.items()}
    return per_op["custody"], per_op["raw"], per_op["plain"]


def calls_per_op(n: int, loop: Callable[[], None]) -> float:
    """Python function calls (cProfile's count, C functions included) per operation."""
    profile = cProfile.Profile()
    profile.runcall(loop)
    profile.create_stats()
    return sum(calls for _, calls, _, _, _ in profile.stats.values()) / n


# -- the figures ---------------------------------------------------------------------------------


def heartbeats_one_process(target: Target, n: int) -> tuple[Figure, Cost]:
    custody, raw, plain = [], [], []
    cpu: dict[str, list[float]] = {"custody": [], "raw": [], "plain": []}
    with Ledger.open(target.custody_url) as ledger:
        store = rawio.open_raw(target.kind, target.raw)
        try:
            for _ in range(ROUNDS):
                lease = leases.fresh_lease(ledger, "bench-hb")
                loop = partial(leases.heartbeats, ledger, lease, n)
                custody.append(rate(n, loop, cpu["custody"]))
                stream, pid = rawio.fresh_stream(store, leases.unique("bench-hb"))
                loop = partial(rawio.heartbeats, store, stream, pid, n)
                raw.append(rate(n, loop, cpu["raw"]))
                rows = rawio.plain_rows(n)  # built before the clock: the floor is the INSERT
                loop = partial(rawio.plain_inserts, store, uuid.uuid4(), rows)
                plain.append(rate(n, loop, cpu["plain"]))
            # Counted after the timed rounds: the profiler slows what it counts.
            lease = leases.fresh_lease(ledger, "bench-hb")
            calls = calls_per_op(n, partial(leases.heartbeats, ledger, lease, n))
            rows = rawio.plain_rows(n)
            plain_calls = calls_per_op(n, partial(rawio.plain_inserts, store, uuid.uuid4(), rows))
        finally:
            store.close()
    name = f"heartbeat, 1 process ({n}/round on one lease)"
    figure = Figure(name, target.kind, *map(statistics.median, (custody, raw, plain)))
    mid = {side: statistics.median(us) for side, us in cpu.items()}
    cost = Cost(target.kind, mid["custody"], mid["raw"], mid["plain"], calls, plain_calls)
    if target.postmaster is not None:
        server = server_cpu(target, SERVER_OPS)
        cost = replace(cost, **dict(zip(SERVER_FIELDS, server, strict=True)))
    return figure, cost


def heartbeats_parallel(target: Target, writers: Writers, n: int) -> Figure:
    custody, raw, plain = [], [], []
    for _ in range(ROUNDS):
        custody.append(writers.ops_per_second("custody", target.kind, target.custody_url, n))
        raw.append(writers.ops_per_second("raw", target.kind, target.raw, n))
        plain.append(writers.ops_per_second("plain", target.kind, target.raw, n))
    name = f"heartbeat, {writers.count} processes ({n}/round each, own lease)"
    return Figure(name, target.kind, *map(statistics.median, (custody, raw, plain)))


def checkout_release_cycles(target: Target, n: int) -> Figure:
    custody, raw = [], []
    with Ledger.open(target.custody_url) as ledger:
        store = rawio.open_raw(target.kind, target.raw)
        try:
            for _ in range(ROUNDS):
                pid = leases.register(ledger, leases.unique("bench-cycle"))
                custody.append(rate(n, partial(leases.cycles, ledger, pid, n)))
                stream, raw_pid = uuid.uuid4(), leases.unique("bench-cycle")
                raw.append(rate(n, partial(rawio.cycles, store, stream, raw_pid, n)))
        finally:
            store.close()
    name = f"checkout+release cycles/s ({n}/round on one profile)"
    return Figure(name, target.kind, statistics.median(custody), statistics.median(raw))


def checkout_with_history(target: Target, events: int) -> Replay:
    """Time checkout+release on a profile that already holds ``events`` events, warm: on the
    ledger that wrote the history, which holds the profile loaded, so nothing is replayed (the
    cold checkout, by a process that has never seen the profile, is bench/checkouts.py's)."""
    with Ledger.open(target.custody_url) as ledger:
        lease = leases.fresh_lease(ledger, "bench-history")
        # registered + acquired + heartbeats + release requested + released cleanly
        leases.grow_history(ledger, lease, max(0, events - 4))
        leases.release(ledger, lease)
        held_events, checkout_ms, cycle_ms = [], [], []
        for _ in range(ROUNDS):
            held_events.append(ledger.view(lease.profile_id).version)
            start = perf_counter()
            held = leases.checkout(ledger, lease.profile_id, ttl_seconds=300)
            acquired = perf_counter()
            leases.release(ledger, held)
            checkout_ms.append((acquired - start) * 1e3)
            cycle_ms.append((perf_counter() - start) * 1e3)
    return Replay(
        target.kind,
        int(statistics.median(held_events)),
        statistics.median(checkout_ms),
        statistics.median(cycle_ms),
    )


# -- stores --------------------------------------------------------------------------------------


def memory_backed_parent() -> str | None:
    """The shared-memory tmpfs when usable, else None (the temp dir).

    PostgreSQL's throwaway cluster lives there too, with fsync off, so neither store pays for
    disk flushes and the ratios compare software, not disks.
    """
    shm = Path("/dev/shm")  # noqa: S108 - only a parent: the directory comes from mkdtemp
    usable = shm.is_dir() and os.access(shm, os.W_OK | os.X_OK)
    return str(shm) if usable and shutil.disk_usage(shm).free >= 1 << 30 else None


@contextmanager
def store_target(kind: str, directory: Path) -> Iterator[Target]:
    """A fresh custody store and raw store of ``kind``; PostgreSQL's cluster lives as long."""
    if kind == "sqlite":
        yield sqlite_target(directory)
    else:
        with postgres_target() as target:
            yield target


def sqlite_target(directory: Path) -> Target:
    custody_url = f"sqlite:///{directory / 'custody.db'}"
    Ledger.init(custody_url).close()
    raw = str(directory / "raw.db")
    rawio.create_raw("sqlite", raw)
    return Target("sqlite", custody_url, raw)


@contextmanager
def postgres_target() -> Iterator[Target]:
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_cluster import PostgresCluster, create_database

    say("starting a throwaway PostgreSQL cluster ...")
    cluster = PostgresCluster.start()
    try:
        custody_url = create_database(cluster.admin_url, "bench_custody")
        Ledger.init(custody_url).close()
        raw = create_database(cluster.admin_url, "bench_raw")
        rawio.create_raw("postgresql", raw)
        assert cluster.base_dir is not None
        pid_file = cluster.base_dir / "data" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0])
        yield Target("postgresql", custody_url, raw, postmaster)
    finally:
        cluster.stop()


# -- output --------------------------------------------------------------------------------------


def _ops(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def throughput_table(figures: list[Figure]) -> str:
    lines = [
        "| figure | store | custody ops/s | raw baseline ops/s | ratio | plain INSERT ops/s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for f in figures:
        ratio = f.custody / f.raw
        lines.append(
            f"| {f.name} | {f.store} | {_ops(f.custody)} | {_ops(f.raw)} | "
            f"{ratio:.2f} (1/{1 / ratio:.1f}) | {_ops(f.plain)} |"
        )
    return "\n".join(lines)


def cost_table(costs: list[Cost]) -> str:
    lines = [
        "| store | heartbeat CPU µs | raw baseline CPU µs | plain INSERT CPU µs "
        "| heartbeat / plain INSERT | calls per heartbeat | calls per plain INSERT |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {c.store} | {c.heartbeat_us:,.0f} | {c.raw_us:,.0f} | {c.plain_us:,.0f} "
        f"| {c.heartbeat_us / c.plain_us:.1f}x | {c.heartbeat_calls:,.0f} | {c.plain_calls:,.0f} |"
        for c in costs
    ]
    served = [
        (c.store, c.server_heartbeat_us, c.server_raw_us, c.server_plain_us)
        for c in costs
        if c.server_heartbeat_us is not None
    ]
    if served:
        lines += [
            "",
            "| store | server CPU µs per heartbeat | per raw baseline op | per plain INSERT "
            "| heartbeat / plain INSERT |",
            "|---|---:|---:|---:|---:|",
        ]
    for store, heartbeat, raw, plain in served:
        ratio = f"{heartbeat / plain:.1f}x" if plain else "-"  # under a tick: no figure
        row = f"| {store} | {heartbeat:,.0f} | {raw or 0:,.0f} | {plain or 0:,.0f} | {ratio} |"
        lines.append(row)
    return "\n".join(lines)


def replay_table(rows: list[Replay]) -> str:
    lines = [
        "| events in the history (warm: nothing replayed) | store | checkout ms "
        "| checkout+release ms |",
        "|---:|---|---:|---:|",
    ]
    lines += [
        f"| {r.events:,} | {r.store} | {r.checkout_ms:.1f} | {r.cycle_ms:.1f} |" for r in rows
    ]
    return "\n".join(lines)


SIZE_TOLERANCE = 16  # bytes: steps and URLs of more digits as a run's heartbeats go on


def sizes_line(target: Target) -> tuple[str, list[str]]:
    """Custody's stored event sizes beside the raw rows' on one store, and the event types
    whose raw rows differ from custody's by more than ``SIZE_TOLERANCE`` bytes."""
    with Ledger.open(target.custody_url) as ledger:
        sizes = leases.event_sizes(ledger)
    raw_sizes = rawio.stored_sizes(target.kind, target.raw)
    measured = ", ".join(
        f"{topic} {size:.0f}/{raw_sizes[topic]:.0f}"
        if topic in raw_sizes
        else f"{topic} {size:.0f}/-"
        for topic, size in sizes.items()
    )
    off = [
        f"{topic} custody {size:.0f} raw {raw_sizes[topic]:.0f}"
        for topic, size in sizes.items()
        if topic in raw_sizes and abs(size - raw_sizes[topic]) > SIZE_TOLERANCE
    ]
    return f"[{target.kind}] event bytes, custody/raw: {measured}", off


# -- the run -------------------------------------------------------------------------------------


def bench_store(
    target: Target, sizes: Sizes, writers: Writers | None
) -> tuple[list[Figure], list[Replay], Cost]:
    """Every figure on one store; without ``writers``, only the single-process heartbeats."""
    say(f"[{target.kind}] heartbeats, 1 process ...")
    figure, cost = heartbeats_one_process(target, sizes.heartbeats)
    figures = [figure]
    if writers is None:
        return figures, [], cost
    say(f"[{target.kind}] heartbeats, {writers.count} processes ...")
    figures.append(heartbeats_parallel(target, writers, sizes.parallel))
    say(f"[{target.kind}] checkout+release cycles ...")
    figures.append(checkout_release_cycles(target, sizes.cycles))
    replays = []
    for events in sizes.histories:
        say(f"[{target.kind}] warm checkout on a {events:,}-event history ...")
        replays.append(checkout_with_history(target, events))
    line, off = sizes_line(target)
    say(line)
    if off:
        say(f"[{target.kind}] WARNING: raw rows not the size of custody's events: {'; '.join(off)}")
        MISSIZED.extend(f"{target.kind} {o}" for o in off)
    return figures, replays, cost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller rounds (a smoke run)")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--heartbeat-only", action="store_true", help="only figure 1 and its CPU and calls"
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file too")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    kinds = ("sqlite", "postgresql") if args.store == "both" else (args.store,)

    began = perf_counter()
    load_before = os.getloadavg()[0]
    figures: list[list[Figure]] = []  # one list per store, figures in order
    replays: list[Replay] = []
    costs: list[Cost] = []
    directory = Path(tempfile.mkdtemp(prefix="custody-bench-", dir=memory_backed_parent()))
    say(f"custody's event sizes, for the raw rows: {rawio.custody_sizes()}")
    writers = None if args.heartbeat_only else Writers(WRITERS)
    try:
        for kind in kinds:
            with store_target(kind, directory) as target:
                per_store, replayed, cost = bench_store(target, sizes, writers)
            figures.append(per_store)
            costs.append(cost)
            replays += replayed
        if writers is not None:
            writers.close()
    except BaseException:
        if writers is not None:
            writers.terminate()
        raise
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print(throughput_table([f for same_figure in zip(*figures, strict=True) for f in same_figure]))
    print()
    print(cost_table(costs))
    print()
    if replays:
        print(replay_table(sorted(replays, key=lambda r: (r.events, r.store))))
        print()
    print(
        f"{ROUNDS} rounds per figure, median shown; whole run {perf_counter() - began:.0f} s; "
        f"{os.cpu_count()} cores, 1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )
    if args.json:
        found = {
            "throughput": [asdict(f) for same_store in figures for f in same_store],
            "cost": [asdict(c) for c in costs],
            "history": [asdict(r) for r in replays],
            "load": [load_before, os.getloadavg()[0]],
        }
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    if MISSIZED:  # the raw side then did other I/O than custody's: its figures compare nothing
        say(f"FAILED: raw rows not the size of custody's events: {'; '.join(MISSIZED)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
