"""A command's CPU in the writing process, this tree beside another revision's, taking turns.

    .venv/bin/python bench/before_after.py --before DIR [--runs N] [--what heartbeat|cycle]
        [--store sqlite|postgresql|both]

``DIR`` holds another revision's packages (``git archive REV | tar -x -C DIR``). Each run is a
process of its own on a store of its own (SQLite on /dev/shm when it can, or a throwaway
PostgreSQL from ``tests/pg_cluster.py``, fsync off), importing custody from ``DIR`` or from
this tree: it sends 300 heartbeats on one lease (or 100 checkout+release cycles on one
profile) to warm up, then three loops of 3,000 heartbeats (600 cycles), the loop
``bench/leases.py`` drives, and reports the middle loop's CPU time (``time.process_time``,
user + system) per heartbeat or cycle. The two trees take turns, in the order before-after
and after-before by round, ``--runs`` rounds (default 4), and the medians and their ratio
are printed. A change of a few per cent shows here where ``bench/run.py``'s rounds on fresh
leases cannot tell it from the noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOOPS, WARM, HEARTBEATS, CYCLES = 3, 300, 3000, 600

CHILD = """
import json, sys, time
sys.path.insert(1, {bench!r})
import leases, ledger
from ledger import Ledger
url, what = sys.argv[1], sys.argv[2]
with Ledger.open(url) as led:
    if what == "heartbeat":
        lease = leases.fresh_lease(led, "ba")
        leases.heartbeats(led, lease, {warm})
        loop, n = (lambda: leases.heartbeats(led, lease, {heartbeats})), {heartbeats}
    else:
        profile = leases.register(led, leases.unique("ba"))
        leases.cycles(led, profile, {warm} // 3)
        loop, n = (lambda: leases.cycles(led, profile, {cycles})), {cycles}
    spent = []
    for _ in range({loops}):
        started = time.process_time()
        loop()
        spent.append((time.process_time() - started) / n * 1e6)
print(json.dumps({{"from": ledger.__file__, "us": sorted(spent)[len(spent) // 2]}}))
"""


def child(tree: Path, url: str, what: str) -> float:
    code = CHILD.format(
        bench=str(HERE), warm=WARM, heartbeats=HEARTBEATS, cycles=CYCLES, loops=LOOPS
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(  # not from the repository's root, whose ledger/ comes first
        [sys.executable, "-c", code, url, what],
        env=env,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    if done.returncode != 0:
        sys.exit(f"the run on {tree} failed: {done.stderr[-500:]}")
    found = json.loads(done.stdout)
    if not found["from"].startswith(str(tree)):  # the tree asked for, not the installed one
        sys.exit(f"the run on {tree} imported custody from {found['from']}")
    return float(found["us"])


def init(tree: Path, url: str) -> None:
    code = f"from ledger import Ledger; Ledger.init({url!r}).close()"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        capture_output=True,
        cwd=tempfile.gettempdir(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, metavar="DIR")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--what", choices=("heartbeat", "cycle"), default="heartbeat")
    parser.add_argument("--store", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    stores = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    cluster = None
    if "postgresql" in stores:
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_cluster import PostgresCluster, create_database

        cluster = PostgresCluster.start()
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # noqa: S108
    spent: dict[tuple[str, str], list[float]] = {(s, t): [] for s in stores for t in trees}
    loads = [os.getloadavg()[0]]
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="custody-ba-", dir=shm) as scratch:
            urls = {}
            for store in stores:
                for name, tree in trees.items():
                    if store == "sqlite":
                        urls[store, name] = f"sqlite:///{scratch}/{name}.db"
                    else:
                        assert cluster is not None
                        urls[store, name] = create_database(cluster.admin_url, f"ba_{name}")
                    init(tree, urls[store, name])
            for round_ in range(args.runs):
                order = list(trees.items())
                if round_ % 2:
                    order.reverse()
                for store in stores:
                    for name, tree in order:
                        spent[store, name].append(child(tree, urls[store, name], args.what))
                loads.append(os.getloadavg()[0])
    finally:
        if cluster is not None:
            cluster.stop()
    unit = "heartbeat" if args.what == "heartbeat" else "checkout+release cycle"
    print(f"| store | before: CPU µs per {unit} | after | after / before |")
    print("|---|---:|---:|---:|")
    for store in stores:
        before, after = (statistics.median(spent[store, n]) for n in ("before", "after"))
        runs = {n: ", ".join(f"{v:.0f}" for v in spent[store, n]) for n in trees}
        print(
            f"| {store} | {before:.1f} ({runs['before']}) | {after:.1f} ({runs['after']}) "
            f"| {after / before:.3f} |"
        )
    print(
        f"\n{args.runs} runs each, taking turns; {time.perf_counter() - started:.0f} s; "
        f"1-min load average {min(loads):.1f} to {max(loads):.1f}"
    )


if __name__ == "__main__":
    main()
