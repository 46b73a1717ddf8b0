"""What ``projections status`` costs now that it checks the read models, on a large store.

    .venv/bin/python bench/status.py [--events N] [--profiles P] [--store sqlite|postgresql|both]

Writes N events (default 100,000) over P profiles (default 1,000) with ``bench/scale_data.py``
into a fresh store (a throwaway PostgreSQL from ``tests/pg_cluster.py``, a SQLite file in a temp
directory), catches both read models up, then times (median of 3):

- ``projections status`` as it is now: positions and lag, plus each read model's rows checked
  against the log at one moment (``projections._verify``: an SQL aggregate of the events, one
  scan of the rows with their digests);
- the positions alone, as status answered before (positions, head, lag, a row count): the
  baseline;
- the availability table's rows checked against every profile's events, which ``custody
  projections status`` lists first (``projections.availability_status``);
- the catch-up of both read models from position 0, which now also writes each row's digest
  (one run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scale_data import Layout, generate

from ledger import Ledger
from projections import READ_MODELS, availability_status, catch_up, read_model_status

ROOT = Path(__file__).resolve().parent.parent


def _median_s(run: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _positions_only(ledger: Ledger) -> None:
    """What status read before it checked anything."""
    feed = ledger.feed
    positions = feed.checkpoints()
    for model in READ_MODELS.values():
        feed.lag(positions.get(model.name, 0))
        feed.query(f"SELECT count(*) AS n FROM {model.table.name}")


@contextmanager
def _store(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
            yield f"sqlite:///{scratch}/bench.db"
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_cluster import PostgresCluster

    cluster = PostgresCluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def measure(kind: str, layout: Layout) -> str:
    with _store(kind) as url:
        Ledger.init(url).close()
        with Ledger.open(url) as ledger:
            events = generate(ledger, layout)
            started = time.perf_counter()
            for model in READ_MODELS.values():
                catch_up(ledger, model)
            caught = time.perf_counter() - started
            statuses = read_model_status(ledger, READ_MODELS.values())
            assert [s.problems for s in statuses] == [[], []], statuses
            rows = {s.name: s.rows for s in statuses}
            checked = _median_s(lambda: read_model_status(ledger, READ_MODELS.values()))
            bare = _median_s(lambda: _positions_only(ledger))
            assert availability_status(ledger).problems == []
            availability = _median_s(lambda: availability_status(ledger))
    return (
        f"| {kind} | {events:,} | {rows['timeline']:,} / {rows['leases']:,} | "
        f"{checked * 1000:,.0f} ms | {availability * 1000:,.0f} ms | {bare * 1000:,.1f} ms | "
        f"{caught:,.1f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--profiles", type=int, default=1_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    layout = Layout(profiles=args.profiles, events=args.events)
    print("| store | events | rows (timeline / leases) | status, checked "
          "| availability rows checked | positions only | catch-up of both |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind in ("sqlite", "postgresql") if args.store == "both" else (args.store,):
        print(measure(kind, layout), flush=True)


if __name__ == "__main__":
    main()
