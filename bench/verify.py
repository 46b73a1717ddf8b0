"""How fast ``custody verify`` walks the log, beside a bare read of the same events table, and
how much memory it holds as the log grows.

    .venv/bin/python bench/verify.py [--events N] [--profiles P] [--store sqlite|postgresql|both]

Writes ``--events`` real, hash-chained domain events over ``--profiles`` profiles
(``bench/scale_data.py``: the ``Profile`` aggregate decides and links every event) into a fresh
store (a SQLite file on /dev/shm, or a throwaway PostgreSQL from ``tests/pg_cluster.py``, fsync
off), then, in each of 3 rounds, one after the other:

- the bare read: plain ``sqlite3`` / ``psycopg`` on a connection of its own, ``SELECT position,
  originator_version, topic, state FROM <events> WHERE position > ? ORDER BY position LIMIT
  5000`` to the end (``rowid`` on SQLite, ``notification_id`` on PostgreSQL), adding up the
  states' lengths so that every row's bytes are fetched (PostgreSQL's rows in its binary format,
  as verify reads them);
- the same read, parsing each stored event's JSON (``json.loads``): what reading the events
  costs once each is looked into at all (verify parses every body; not a baseline it must meet);
- ``ledger.audit.verify`` over the same store (which must find nothing wrong).

It prints the median events/s of each and verify's ratio to the bare read (the issue asks for at
least 0.5). Then it runs verify once more in a child process of its own and prints that process's
resident memory (now and its peak so far) before the walk and after 10,000, 100,000, 1,000,000
... events of it: memory may grow with the profiles (one head each), never with the events.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from scale_data import Layout, generate

from ledger import Ledger, audit

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3
BATCH = 5_000  # the bare read's page, as verify's (ledger._audit.walk.BATCH)
CHECKPOINTS = (10_000, 100_000, 1_000_000, 10_000_000)


@dataclass(frozen=True)
class Target:
    kind: str
    url: str  # the ledger's store URL
    bare: str  # the SQLite file, or the PostgreSQL URL psycopg connects to


@dataclass(frozen=True)
class Rates:
    bare: float  # events/s, median of the rounds
    parsed: float  # the bare read with each event's JSON parsed
    verify: float


@dataclass(frozen=True)
class Result:
    kind: str
    events: int
    profiles: int
    generated_s: float
    rates: Rates
    rss_kib: list[tuple[int, int, int]]  # ``memory``


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the sides ----------------------------------------------------------------------------------


def bare_read(target: Target, *, parse: bool = False) -> int:
    """Every stored event, in log order and in pages, read with the driver alone; with
    ``parse``, each one's stored JSON parsed too (``json.loads``). Returns the events read."""
    if target.kind == "sqlite":
        conn: sqlite3.Connection | psycopg.Connection = sqlite3.connect(target.bare)
        statement = (
            "SELECT rowid, originator_version, topic, state FROM stored_events "
            "WHERE rowid > ? ORDER BY rowid LIMIT ?"
        )
    else:
        conn = psycopg.connect(target.bare, autocommit=True)
        statement = (
            "SELECT notification_id, originator_version, topic, state FROM custody_events "
            "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        )
    # PostgreSQL's rows in its binary format, as verify reads them (a bytea as itself, not as
    # hex text twice its size): the fastest the driver alone reads them.
    binary = {} if target.kind == "sqlite" else {"binary": True}
    events = size = after = 0
    try:
        while rows := conn.execute(statement, (after, BATCH), **binary).fetchall():
            for _, _, _, state in rows:
                size += len(json.loads(state)) if parse else len(state)
            events += len(rows)
            after = rows[-1][0]
    finally:
        conn.close()
    return events


def rates(target: Target, events: int) -> Rates:
    """Median events/s of the bare read (without and with parsing) and of verify, taking
    turns for ``ROUNDS`` rounds."""
    bare, parsed, verify = [], [], []
    with Ledger.open(target.url) as ledger:
        for n in range(ROUNDS):
            say(f"[{target.kind}] round {n + 1}: bare read, bare read and parse, verify ...")
            started = time.perf_counter()
            read = bare_read(target)
            bare.append(read / (time.perf_counter() - started))
            started = time.perf_counter()
            read = bare_read(target, parse=True)
            parsed.append(read / (time.perf_counter() - started))
            started = time.perf_counter()
            done = audit.verify(ledger)
            verify.append(done.events / (time.perf_counter() - started))
            if not done.holds:
                raise SystemExit(f"verify found problems in a generated log: {done.problems[:3]}")
            assert read == done.events == events, (read, done.events, events)
    return Rates(*map(statistics.median, (bare, parsed, verify)))


# -- memory: verify alone in a child process ----------------------------------------------------


def _rss_kib() -> tuple[int, int]:
    """This process's resident memory now and at its peak so far (VmRSS, VmHWM), in KiB."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def child(url: str) -> None:
    """Run verify once; print its resident memory (now, peak) before the walk and as the
    walk passes each checkpoint."""
    samples: list[tuple[int, int, int]] = []
    ahead = list(CHECKPOINTS)

    def progress(walked: int) -> None:
        while ahead and walked >= ahead[0]:
            samples.append((ahead.pop(0), *_rss_kib()))

    with Ledger.open(url) as ledger:
        ledger.store.event_count()  # the connection is open before the first sample
        samples.append((0, *_rss_kib()))
        done = audit.verify(ledger, progress=progress)
    if samples[-1][0] != done.events:
        samples.append((done.events, *_rss_kib()))
    print(json.dumps(samples))


def memory(url: str) -> list[tuple[int, int, int]]:
    """verify's resident memory as it walks, in a process of its own: (events walked, RSS
    now, peak RSS), in KiB; 0 events: before the walk."""
    ran = subprocess.run(
        [sys.executable, __file__, "--child", url],
        capture_output=True,
        text=True,
        check=True,
    )
    return [(int(n), int(now), int(peak)) for n, now, peak in json.loads(ran.stdout)]


# -- stores -------------------------------------------------------------------------------------


@contextmanager
def store(kind: str) -> Iterator[Target]:
    if kind == "sqlite":
        parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
        with tempfile.TemporaryDirectory(prefix="custody-bench-", dir=parent) as scratch:
            path = Path(scratch) / "bench.db"
            yield Target(kind, f"sqlite:///{path}", str(path))
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_cluster import PostgresCluster

    say("starting a throwaway PostgreSQL cluster ...")
    cluster = PostgresCluster.start()
    try:
        yield Target(kind, cluster.url, cluster.url)
    finally:
        cluster.stop()


def measure(kind: str, layout: Layout) -> Result:
    with store(kind) as target:
        Ledger.init(target.url).close()
        say(f"[{kind}] writing {layout.events:,} events over {layout.profiles:,} profiles ...")
        started = time.perf_counter()
        with Ledger.open(target.url) as ledger:
            events = generate(ledger, layout)
        generated = time.perf_counter() - started
        measured = rates(target, events)
        say(f"[{kind}] verify in a child process, for its memory ...")
        rss = memory(target.url)
    return Result(kind, events, layout.profiles, generated, measured, rss)


# -- output -------------------------------------------------------------------------------------


def rate_table(results: list[Result]) -> str:
    lines = [
        "| store | events | profiles | bare read events/s | bare read + json.loads events/s "
        "| verify events/s | verify / bare |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rate = r.rates
        lines.append(
            f"| {r.kind} | {r.events:,} | {r.profiles:,} | {rate.bare:,.0f} | "
            f"{rate.parsed:,.0f} | {rate.verify:,.0f} | {rate.verify / rate.bare:.2f} |"
        )
    return "\n".join(lines)


def memory_table(results: list[Result]) -> str:
    lines = ["| store | events walked | verify's RSS | its peak so far |", "|---|---:|---:|---:|"]
    for r in results:
        for walked, now, peak in r.rss_kib:
            shown = "before the walk" if walked == 0 else f"{walked:,}"
            lines.append(f"| {r.kind} | {shown} | {now / 1024:,.1f} MiB | {peak / 1024:,.1f} MiB |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--profiles", type=int, default=1_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    layout = Layout(profiles=args.profiles, events=args.events)
    began, load = time.perf_counter(), os.getloadavg()[0]
    kinds = ("sqlite", "postgresql") if args.store == "both" else (args.store,)
    results = [measure(kind, layout) for kind in kinds]
    print(rate_table(results))
    print()
    print(memory_table(results))
    print()
    for r in results:
        print(f"[{r.kind}] writing the events took {r.generated_s:.0f} s")
    print(
        f"{ROUNDS} rounds, median shown; whole run {time.perf_counter() - began:.0f} s; "
        f"{os.cpu_count()} cores, 1-min load average {load:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
