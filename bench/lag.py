"""How long an appended event takes to reach the read models under load, beside a bare follower
that only reads and decodes, in the same run (issue 16).

    .venv/bin/python bench/lag.py [--store sqlite|postgresql|both] [--writers N] [--rate R]
        [--seconds S] [--interval I] [--rounds K] [--json FILE]

The load: ``--writers`` (default 4) ``spawn``ed processes, each heartbeating its own lease at
``--rate`` heartbeats/s (default 50, paced) for ``--seconds`` (default 10); each heartbeat's step
names it, and its writer notes when it sent the heartbeat (before ``handle``) and when
``handle`` returned (committed), by ``perf_counter``, which is one monotonic clock for every
process of the machine.

The follower, in a process of its own, as ``custody projections run --interval I`` keeps every
read model current: the store's wake-ups (PostgreSQL's NOTIFY on each commit; SQLite polls every
``--interval``, default 1.0 s as the command's), then ``catch_up_all`` of the read models
(one read of the log for all); after each pass it notes the time and the least of the read
models' checkpoints (every read model has every event up to it). The baseline is a bare
follower on the same wake-ups that reads the new events (``Ledger.feed.read``) and decodes each
one's stored JSON (``LoggedEvent.data()``), as the read models do, and writes nothing: what
following costs before any read model is written. The two take turns, ``--rounds`` times each
(default 2), under the same load; between rounds, with no follower running, every read model is
brought to the head, so that each round's follower starts with nothing behind it.

An event's lag runs from the moment its write was sent to the end of the first pass whose
position covers it (the events' positions are read back from the timeline afterwards): an upper
bound, holding the write's own round trip, the same for both sides. The commit itself cannot be
seen from outside: PostgreSQL's NOTIFY leaves with it, so a follower may finish its pass before
``handle`` returns to the writer, and a lag counted from that return would be clamped to 0,
lowest for the faster follower, and so an inflated ratio. It prints the median, p99 and slowest
lag of each side and their ratio, beside each side's median from ``handle``'s return (a lower
bound, clamped at 0), and the load average; ``--json`` writes the figures.
Stores: an SQLite file on the disk and a throwaway PostgreSQL on the disk with ``fsync`` on
(``bench/appenders.py``'s ``durable_cluster``), deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from time import perf_counter

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import leases  # noqa: E402
from checkouts import target  # noqa: E402

from ledger import Heartbeat, Ledger  # noqa: E402
from projections import READ_MODELS, TIMELINE_READ_MODEL, catch_up, catch_up_all, install  # noqa: E402

# (time a pass ended, the position it reached)
Mark = tuple[float, int]


@dataclass(frozen=True)
class Lag:
    store: str
    side: str  # "read models" or "bare read"
    events: int
    median_ms: float  # from the write's sending, as p99 and slowest
    p99_ms: float
    slowest_ms: float
    median_from_return_ms: float  # from handle's return, clamped at 0: a lower bound


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the processes ------------------------------------------------------------------------------


# (a heartbeat's step, when its write was sent, when handle returned)
Written = tuple[str, float, float]


def write(url: str, name: str, rate: float, seconds: float) -> list[Written]:
    """Heartbeat one lease at ``rate``/s for ``seconds``; each step's name, the time its write
    was sent and the time ``handle`` returned (committed)."""
    committed = []
    with Ledger.open(url) as ledger:
        lease = leases.fresh_lease(ledger, name)
        start = perf_counter()
        for i in range(int(rate * seconds)):
            due = start + i / rate
            if (ahead := due - perf_counter()) > 0:
                time.sleep(ahead)
            step = f"{name}-{i}"
            beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=step)
            sent = perf_counter()
            ledger.handle(beat)
            committed.append((step, sent, perf_counter()))
    return committed


def follow(url: str, side: str, interval: float, stop: Event, marks: list[Mark]) -> None:
    """Follow the log until ``stop``: catch every read model up (``side`` "read models") or
    read and decode the new events (``side`` "bare read"), noting each pass's end."""
    with Ledger.open(url) as ledger:
        position = ledger.feed.head()
        with ledger.feed.wakeups(interval) as wakeups:
            while not stop.is_set():
                if side == "read models":
                    catch_up_all(ledger, READ_MODELS.values())  # as `projections run`
                    ended = perf_counter()
                    # every read model has the events up to the least of their checkpoints
                    checkpoints = ledger.feed.checkpoints()
                    position = min(checkpoints[name] for name in READ_MODELS)
                else:
                    while events := ledger.feed.read(position, 500):
                        for event in events:
                            _ = event.data()  # its stored JSON, as the read models decode it
                        position = events[-1].position
                    ended = perf_counter()
                marks.append((ended, position))
                wakeups.wait(stop)


def follower(url: str, side: str, interval: float, stop: Event, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    marks: list[Mark] = []
    follow(url, side, interval, stop, marks)
    out.put(marks)


# -- one round ----------------------------------------------------------------------------------


def round_of(url: str, side: str, args: argparse.Namespace, n: int) -> list[tuple[float, float]]:
    """Every event's lag (seconds) in one round of ``side`` under the writers' load: from its
    write's sending, and from ``handle``'s return (clamped at 0)."""
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    follower_process = context.Process(
        target=follower, args=(url, side, args.interval, stop, out), daemon=True
    )
    follower_process.start()
    with context.Pool(args.writers) as pool:
        names = [f"lag-{side[0]}{n}-{w}" for w in range(args.writers)]
        tasks = [(url, name, args.rate, args.seconds) for name in names]
        committed = [c for written in pool.starmap(write, tasks) for c in written]
    with Ledger.open(url) as ledger:
        head = ledger.feed.head()
    time.sleep(args.interval + 1)  # the follower's last pass reaches the head
    stop.set()
    marks: list[Mark] = out.get(timeout=60)
    follower_process.join(30)
    if not marks or marks[-1][1] < head:
        raise SystemExit(f"{side}: the follower stopped at {marks[-1:]} before the head {head}")
    with Ledger.open(url) as ledger:
        # Only now that the follower has stopped: every read model brought to the head, so
        # that the next round's follower, of either side, starts with nothing behind it, and
        # this round's steps found at their positions.
        for model in READ_MODELS.values():
            catch_up(ledger, model)
        rows = ledger.store.query(
            f"SELECT step, position FROM {TIMELINE_READ_MODEL.table.name} WHERE step LIKE ?",
            (f"lag-{side[0]}{n}-%",),
        )
    positions = {row["step"]: int(row["position"]) for row in rows}
    lags = []
    for step, sent, returned in committed:
        position = positions[step]
        reached = next(ended for ended, upto in marks if upto >= position)
        # No pass covers an event before its write was sent; one may end between the commit
        # (its NOTIFY) and handle's return: that lag from the return is clamped to 0.
        lags.append((reached - sent, max(0.0, reached - returned)))
    return lags


def lag_figure(store: str, side: str, both: list[tuple[float, float]]) -> Lag:
    lags = [from_sent for from_sent, _ in both]
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Lag(
        store,
        side,
        len(lags),
        round(statistics.median(lags) * 1000, 1),
        round(p99 * 1000, 1),
        round(ordered[-1] * 1000, 1),
        round(statistics.median(from_return for _, from_return in both) * 1000, 1),
    )


def _ratio(ms: float, bare_ms: float) -> str:
    return f"{ms / bare_ms:.2f}" if bare_ms > 0 else "-"  # a bare median may round to 0.0 ms


def table(rows: list[Lag]) -> str:
    lines = [
        "| store | follower | events | lag from send: median ms | p99 ms | slowest ms "
        "| median / bare | from handle's return: median ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        bare = next(r for r in rows if r.store == row.store and r.side == "bare read")
        lines.append(
            f"| {row.store} | {row.side} | {row.events:,} | {row.median_ms:.1f} "
            f"| {row.p99_ms:.1f} | {row.slowest_ms:.1f} | {_ratio(row.median_ms, bare.median_ms)} "
            f"| {row.median_from_return_ms:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    started, load_before = perf_counter(), os.getloadavg()[0]
    rows: list[Lag] = []
    for kind in kinds:
        with target(kind) as found:
            with Ledger.open(found.url) as ledger:
                for model in READ_MODELS.values():
                    install(ledger, model)
            lags: dict[str, list[tuple[float, float]]] = {"read models": [], "bare read": []}
            for n in range(args.rounds):
                for side in lags:
                    say(f"[{kind}] round {n + 1}: {side} under {args.writers} writers ...")
                    lags[side] += round_of(found.url, side, args, n)
            rows += [lag_figure(kind, side, found_lags) for side, found_lags in lags.items()]
    load = os.getloadavg()[0]
    print(table(rows))
    print()
    print(
        f"{args.writers} writers x {args.rate:g} heartbeats/s for {args.seconds:g} s, "
        f"{args.rounds} rounds per side, --interval {args.interval:g}; whole run "
        f"{perf_counter() - started:.0f} s; {os.cpu_count()} cores, 1-min load average "
        f"{load_before:.1f} before, {load:.1f} after"
    )
    if args.json:
        figures = {"lags": [asdict(row) for row in rows], "load": [load_before, load]}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
