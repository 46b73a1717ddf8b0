"""Heartbeats from 1, 4 and 16 writer processes on PostgreSQL with fsync on, beside an autocommit
INSERT from as many processes, in the same run.

    .venv/bin/python bench/appenders.py [--beats N] [--rounds R] [--json FILE]

Starts its own throwaway PostgreSQL (``tests/pg_cluster.py``) in a directory on the disk (not
``/dev/shm``) and turns ``fsync``, ``synchronous_commit`` and ``full_page_writes`` back on, so
every commit waits for its flush, as a production server's does. Each writer process holds its
own profile, lease and connection and sends ``--beats`` heartbeats per round (default 200); the
raw side sends as many single-row autocommit INSERTs of a heartbeat-sized row per process. The
two sides take turns within each round; each figure is the median of ``--rounds`` (default 3)
of total operations over the span from the first start to the last finish. It prints a table of
heartbeats/s, INSERTs/s and their ratio, the 1-minute load average, and with ``--json`` writes
the figures to a file.

This is where the append path's lock shows: with it, every append committed (and flushed) in
turn; without it, commits of different profiles share the server's flushes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import pg_cluster  # noqa: E402
import psycopg  # noqa: E402
import raw as rawio  # noqa: E402
from parallel import Writers  # noqa: E402
from pg_cluster import PostgresCluster, create_database  # noqa: E402

from ledger import Ledger  # noqa: E402

PROCESSES = (1, 4, 16)
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


def durable_cluster() -> PostgresCluster:
    """A throwaway server on the disk, its commits flushed (the test cluster's settings with
    durability back on)."""
    pg_cluster._SERVER_SETTINGS.update(DURABLE)
    base = Path(tempfile.mkdtemp(prefix="custody-bench-pg-", dir="/var/tmp"))
    base.rmdir()  # the cluster makes it, and owns it
    cluster = PostgresCluster.start(base_dir=base)
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone() for name in DURABLE}
    if any(row is None or row[0] != "on" for row in shown.values()):
        cluster.stop()
        raise SystemExit(f"the server did not take the durable settings: {shown}")
    return cluster


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cluster = durable_cluster()
    try:
        url = create_database(cluster.admin_url, "bench_custody")
        raw_url = create_database(cluster.admin_url, "bench_raw")
        Ledger.init(url).close()
        rawio.create_raw("postgresql", raw_url)
        figures = []
        for count in PROCESSES:
            writers = Writers(count)
            try:
                custody, insert = [], []
                for _ in range(args.rounds):
                    custody.append(writers.ops_per_second("custody", "postgresql", url, args.beats))
                    insert.append(
                        writers.ops_per_second("insert", "postgresql", raw_url, args.beats)
                    )
            finally:
                writers.close()
            mine, raw = statistics.median(custody), statistics.median(insert)
            figures.append(
                {
                    "processes": count,
                    "heartbeats_per_s": round(mine),
                    "inserts_per_s": round(raw),
                    "ratio": round(mine / raw, 2),
                }
            )
            print(
                f"{count:>3} processes: {mine:8,.0f} heartbeats/s  {raw:8,.0f} INSERTs/s  "
                f"ratio {mine / raw:.2f}",
                flush=True,
            )
    finally:
        cluster.stop()
    load = os.getloadavg()[0]
    print(
        f"1-minute load average {load:.1f}; fsync on; {args.beats} per process per round, "
        f"median of {args.rounds} rounds"
    )
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "load": load}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
