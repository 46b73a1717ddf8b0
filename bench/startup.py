"""How long the commands a person types take to answer, beside a bare Python start.

    .venv/bin/python bench/startup.py [--runs N] [--before DIR] [--json FILE]

Makes a small SQLite store in a temporary directory with the command line itself (three
profiles on one account, a lease heartbeated and released, a lease held, a force-release), then
runs each read command (``status``, ``why``, ``who``, ``timeline P``, ``usage --account A
--since D``) and ``python -c pass`` in turn, ``--runs`` times each (default 21) after one
warm-up round, every one a fresh process with its output to a pipe, as a program reading it
would. It prints, per command, the median wall time and CPU time (user + system, the operating
system's account of the finished child) and the wall ratio to ``python -c pass`` in the same
round, median over the rounds; then the 1-minute load average, since other work on the machine
moves every figure. The issue's target is 150 ms, about 5x a bare start. ``--before DIR``
runs each command also on another revision's packages (``PYTHONPATH=DIR``), beside this
tree's run in every round, so that a change is measured against what it changed under the
same load.

The children run without ``PYTHONDONTWRITEBYTECODE``, so the warm-up round leaves custody's
bytecode cached, as an installed package has it (pip compiles it at install): with that
variable set, every start compiles custody's modules from source again, a cost no user of an
installed custody pays.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CUSTODY = str(BIN / "custody")
BARE = [sys.executable, "-c", "pass"]
# As a user's shell has it, but with bytecode written (see the module's docstring).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
COMMANDS = {
    "status": ["status"],
    "why P": ["why", "p2"],
    "who P": ["who", "p1"],
    "timeline P": ["timeline", "p1"],
    "usage --account A --since D": ["usage", "--account", "acct", "--since", "2000-01-01"],
}
STORE = [
    ["init"],
    *(["register", p, "--account", "acct", "--proxy", f"x{p}"] for p in ("p1", "p2", "p3")),
    ["checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t"],
    ["heartbeat", "lease-1@p1", "--token", "1", "--step", "s", "--safe"],
    ["release", "lease-1@p1", "--token", "1", "--outcome", "success", "--final-url", "https://x"],
    ["checkout", "p2", "--worker", "w2", "--run", "r2", "--task", "t", "--ttl", "86400"],
    ["checkout", "p3", "--worker", "w3", "--run", "r3", "--task", "t", "--ttl", "86400"],
    ["force-release", "p3", "--actor", "ops", "--reason", "stuck"],
]


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """One run's wall and CPU seconds (the child's user + system time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.decode()[-300:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def runs(before: Path | None) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each measured row's command line and environment: the bare start, each command, and
    with ``before`` each command again on that tree (``before: status``)."""
    found = {"python -c pass": (BARE, ENV)}
    for name, args in COMMANDS.items():
        found[name] = ([CUSTODY, *args], ENV)
        if before is not None:
            found[f"before: {name}"] = ([CUSTODY, *args], ENV | {"PYTHONPATH": str(before)})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="rounds counted (default 21)")
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="custody's packages of another revision (git archive REV | tar -x -C DIR): each "
        "command runs on them too, right beside this tree's run, under the same load",
    )
    parser.add_argument("--json", type=Path, help="write every row's medians to this file too")
    args = parser.parse_args()
    before = args.before.resolve() if args.before else None
    with tempfile.TemporaryDirectory() as scratch:
        cwd = Path(scratch)
        for step in STORE:
            subprocess.run([CUSTODY, *step], cwd=cwd, check=True, capture_output=True, env=ENV)
        measuring = runs(before)
        walls: dict[str, list[float]] = {k: [] for k in measuring}
        cpus: dict[str, list[float]] = {k: [] for k in measuring}
        ratios: dict[str, list[float]] = {k: [] for k in measuring}
        for round_ in range(args.runs + 1):  # the first round warms the caches, uncounted
            order = list(measuring.items())
            if round_ % 2:  # a pair's second run is the other tree's every other round
                order.reverse()
            measured = {name: timed(argv, cwd, env) for name, (argv, env) in order}
            if round_ == 0:
                continue
            for name, (wall, cpu) in measured.items():
                walls[name].append(wall)
                cpus[name].append(cpu)
                ratios[name].append(wall / measured["python -c pass"][0])
    print(f"{'command':38} {'wall ms':>8} {'cpu ms':>8} {'x bare':>7}   (medians of {args.runs})")
    rows = []
    for name in measuring:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        ratio = statistics.median(ratios[name])
        print(f"{name:38} {wall * 1000:8.0f} {cpu * 1000:8.0f} {ratio:7.1f}")
        rows.append({"command": name, "wall_ms": round(wall * 1000, 1),
                     "cpu_ms": round(cpu * 1000, 1), "x_bare": round(ratio, 2)})  # fmt: skip
    load = os.getloadavg()[0]
    print(f"load average (1 min): {load:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"commands": rows, "load": load}, indent=2) + "\n")


if __name__ == "__main__":
    main()
