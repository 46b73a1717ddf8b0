"""custody's whole benchmark in one command: every figure issue 16 asks for, each beside its raw
baseline in the same run, printed as tables and written as one JSON file.

    .venv/bin/python bench/suite.py [--quick] [--only NAME,...] [--json FILE]

Runs each part in a process of its own, one after the other, so that no two share the cores:

- ``appends``: ``bench/appenders.py``: heartbeats from 1, 4 and 16 processes against as many
  processes' autocommit INSERTs (PostgreSQL on the disk, fsync on);
- ``commands``: ``bench/run.py``: heartbeats and checkout+release cycles against the raw
  SELECT-then-INSERT transactions, and the client's CPU and Python calls per heartbeat (both
  stores on ``/dev/shm``, PostgreSQL with fsync off: software against software, not disks);
- ``checkouts``: ``bench/checkouts.py``: cold and warm checkouts at 10, 10,000 and 100,000
  events, and 32 processes racing for one profile;
- ``catch-up``: ``bench/read_models.py``: read-model catch-up against a bare read-and-decode
  of the events' stored JSON, the decoding the read models do (an SQLite file);
- ``lag``: ``bench/lag.py``: append-to-read-model lag under the load of 4 writers;
- ``start-up``: ``bench/startup.py``: the read commands against ``python -c pass``.

Each part prints its own tables as it goes; then the suite prints the issue's targets, each with
the figure this run measured and whether it is met, and writes every part's figures with the
targets, the date and the load to ``--json`` (default ``bench-results.json`` in the current
directory). ``--quick`` runs every part small (a smoke run of a few minutes, not figures to
quote); ``--only`` runs the parts named.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable

# name: (script, arguments of a full run, arguments of a quick run)
PARTS: dict[str, tuple[str, list[str], list[str]]] = {
    "appends": ("appenders.py", [], ["--beats", "50", "--rounds", "1"]),
    "commands": ("run.py", [], ["--quick"]),
    "checkouts": (
        "checkouts.py",
        [],
        ["--histories", "10,10000", "--samples", "3", "--racers", "8", "--rounds", "1"],
    ),
    "catch-up": ("read_models.py", ["20000"], ["2000"]),
    "lag": ("lag.py", [], ["--seconds", "3", "--rounds", "1"]),
    "start-up": ("startup.py", [], ["--runs", "3"]),
}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_part(name: str, quick: bool, scratch: Path) -> Any:
    """Run one part; its figures as it wrote them."""
    script, full, small = PARTS[name]
    out = scratch / f"{name}.json"
    argv = [PYTHON, str(HERE / script), *(small if quick else full), "--json", str(out)]
    if name == "catch-up":  # it measures an initialised, empty store of its own
        url = f"sqlite:///{scratch / 'catch-up.db'}"
        subprocess.run([PYTHON, "-m", "custody", "--store", url, "init"], check=True)
        argv.insert(2, url)
    say(f"== {name}: {' '.join(argv[1:])}")
    subprocess.run(argv, check=True)
    return json.loads(out.read_text())


# -- the targets --------------------------------------------------------------------------------


def _appends(figures: Any, processes: int) -> float:
    return float(next(f["ratio"] for f in figures["figures"] if f["processes"] == processes))


def _cycles(figures: Any) -> tuple[str, bool]:
    found = [f for f in figures["throughput"] if f["name"].startswith("checkout+release")]
    shown = ", ".join(f"{f['store']} {f['custody'] / f['raw']:.2f}" for f in found)
    return shown, all(f["custody"] >= f["raw"] for f in found)


def _cpu(figures: Any) -> str:
    return ", ".join(
        f"{c['store']} {c['heartbeat_us'] / c['plain_us']:.1f}x" for c in figures["cost"]
    )


def _flat(figures: Any) -> tuple[str, bool]:
    found, met = [], True
    for store in dict.fromkeys(h["store"] for h in figures["histories"]):
        rows = [h for h in figures["histories"] if h["store"] == store]
        first, last = rows[0], rows[-1]
        met = met and last["cold_ms"] <= 1.5 * first["cold_ms"]
        found.append(
            f"{store} {last['cold_ms'] / first['cold_ms']:.2f}x "
            f"({last['events']:,} events: {last['cold_ms']:.1f} ms, "
            f"{first['events']:,}: {first['cold_ms']:.1f} ms)"
        )
    return ", ".join(found), met


def _races(figures: Any) -> str:
    return ", ".join(
        f"{r['store']} {r['racers']} x {r['rounds']}, denial {r['denial_ms']:.0f} ms"
        for r in figures["races"]
    )


def _slowest_command(figures: Any) -> tuple[str, float]:
    rows = [r for r in figures["commands"] if r["command"] != "python -c pass"]
    rows = [r for r in rows if not r["command"].startswith("before:")]
    slowest = max(rows, key=lambda r: r["wall_ms"])
    return slowest["command"], float(slowest["wall_ms"])


# (part, what the issue asks, the figure as text, met)
Check = Callable[[Any], tuple[str, bool | None]]  # met: None where the issue sets no target
TARGETS: list[tuple[str, str, Check]] = [
    (
        "appends",
        "heartbeats, 4 writers: at least 0.5x raw INSERT",
        lambda f: (f"{_appends(f, 4):.2f}x", _appends(f, 4) >= 0.5),
    ),
    (
        "appends",
        "heartbeats, 1 writer: at least 0.6x raw INSERT",
        lambda f: (f"{_appends(f, 1):.2f}x", _appends(f, 1) >= 0.6),
    ),
    (
        "commands",
        "checkout+release: at least 1x its raw cycle (/dev/shm, fsync off)",
        _cycles,
    ),
    (
        "commands",
        "a heartbeat's client CPU: within about 3x a plain INSERT's (/dev/shm, fsync off)",
        lambda f: (_cpu(f), all(c["heartbeat_us"] <= 3 * c["plain_us"] for c in f["cost"])),
    ),
    (
        "checkouts",
        "cold checkout at the longest history: within 1.5x of one at 10 events",
        _flat,
    ),
    (
        "checkouts",
        "racing checkouts: exactly one winner, the rest denied (checked each round)",
        # checkouts.py stops with an error on any round that breaks it
        lambda f: (_races(f), True),
    ),
    (
        "catch-up",
        "read-model catch-up: at least 0.5x a bare read-and-decode (of the JSON, as they do)",
        lambda f: (f"{f['catch_up_ratio']:.2f}x", f["catch_up_ratio"] >= 0.5),
    ),
    (
        "lag",
        "append-to-read-model lag under load (no target; beside a bare follower's)",
        lambda f: (
            ", ".join(
                f"{x['store']} {x['side']} median {x['median_ms']:.1f} ms, p99 {x['p99_ms']:.1f}"
                for x in f["lags"]
            ),
            None,
        ),
    ),
    (
        "start-up",
        "read commands on SQLite: each under 150 ms",
        lambda f: (
            "slowest: {} {:.0f} ms".format(*_slowest_command(f)),
            _slowest_command(f)[1] < 150,
        ),
    ),
]


def target_table(parts: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    lines = ["| target (issue 16) | measured | met |", "|---|---|---|"]
    found = []
    for part, wanted, check in TARGETS:
        if part not in parts:
            continue
        figure, met = check(parts[part])
        shown = "-" if met is None else "yes" if met else "no"
        lines.append(f"| {wanted} | {figure} | {shown} |")
        found.append({"part": part, "target": wanted, "measured": figure, "met": met})
    return "\n".join(lines), found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="every part small: a smoke run")
    parser.add_argument("--only", help=f"comma-separated parts of: {', '.join(PARTS)}")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args(argv)
    names = list(PARTS) if not args.only else args.only.split(",")
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        parser.error(f"no such part: {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    started, loads = perf_counter(), [os.getloadavg()[0]]
    parts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="custody-suite-") as scratch:
        for name in names:
            parts[name] = run_part(name, args.quick, Path(scratch))
            loads.append(os.getloadavg()[0])
    table, targets = target_table(parts)
    print()
    print(table)
    print()
    took = perf_counter() - started
    print(
        f"{'quick' if args.quick else 'full'} run of {', '.join(names)}: {took:.0f} s; "
        f"{os.cpu_count()} cores, 1-min load average {min(loads):.1f} to {max(loads):.1f} "
        f"(median {statistics.median(loads):.1f}); every figure: {args.json}"
    )
    whole = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "seconds": round(took),
        "load": loads,
        "targets": targets,
        "parts": parts,
    }
    args.json.write_text(json.dumps(whole, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
