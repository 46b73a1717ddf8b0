"""custody at fleet scale on PostgreSQL: each figure beside its bare baseline, in one run.

    .venv/bin/python bench/scale.py [--profiles 10000] [--events 1000000] [--admin-url URL]

Writes ``--events`` real domain events over ``--profiles`` profiles (one stream of up to
100,000 events, one of 100, the rest shared; ``bench/scale_data.py``) into a fresh database on a
throwaway cluster (``tests/pg_cluster.py``, stopped and deleted at the end) or on the server of
``--admin-url`` (a database made and dropped there), then measures:

1. catch-up of the timeline and leases read models over the whole log, against a bare
   read-and-decode of the same notifications (``Ledger.feed.read`` in pages, nothing written);
2. ``why`` and ``who`` in a warm process (median over sampled profiles, each loaded cold from
   its latest snapshot), against a bare psycopg primary-key select of the availability row;
3. one profile's timeline (``projections.timeline``) for a typical profile and the long one,
   and the long one's last 100 events (``--last``), against a bare psycopg select of the same
   rows;
4. the whole timeline into pandas (``reports.timeline``), against a bare ``pandas.read_sql``
   of the same rows on an ADBC connection;
5. ``replay --at`` (``reports.replay``) on the long stream and on the 100-event one.

Medians of ``--repeat`` runs unless the figure says one run. The load average is printed.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pandas as pd
import psycopg
from scale_data import Layout, generate

from ledger import Ledger
from projections import LEASES_READ_MODEL, TIMELINE_READ_MODEL, catch_up, explain, timeline, who
from projections._timeline import select
from reports import replay, timeline as timeline_frame

ROOT = Path(__file__).resolve().parent.parent


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _once_ms(run: Callable[[], object]) -> float:
    return _median_ms(run, 1)


@contextmanager
def _database(admin_url: str | None) -> Iterator[str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from pg_cluster import PostgresCluster, create_database, drop_database

    cluster = PostgresCluster.attach(admin_url) if admin_url else PostgresCluster.start()
    try:
        url = create_database(cluster.admin_url, "bench_scale")
        try:
            yield url
        finally:
            drop_database(cluster.admin_url, "bench_scale")
    finally:
        cluster.stop()


def _bare_read(ledger: Ledger) -> int:
    count, position = 0, 0
    while batch := ledger.feed.read(position, 1000):
        # decoded as the read models decode them: each event's stored JSON (Feed.read
        # decodes only when asked; a pydantic model of every event is more than they do)
        count += len([n.data() for n in batch])
        position = batch[-1].position
    return count


def _row(line: list[str], name: str, custody: float, bare: float, unit: str = "ms") -> None:
    ratio = bare / custody if custody else float("nan")
    line.append(f"| {name} | {custody:,.2f} {unit} | {bare:,.2f} {unit} | {ratio:.2f} |")


def _catch_up(ledger: Ledger, lines: list[str], total: int) -> None:
    for model in (TIMELINE_READ_MODEL, LEASES_READ_MODEL):
        bare = _once_ms(lambda: _bare_read(ledger))
        caught = _once_ms(lambda p=model: catch_up(ledger, p))  # type: ignore[misc]
        lines.append(
            f"| catch-up of {model.name}, {total:,} events (one run) | "
            f"{total / caught * 1000:,.0f} events/s | {total / bare * 1000:,.0f} events/s | "
            f"{bare / caught:.2f} |"
        )


def _answers(ledger: Ledger, url: str, lines: list[str], sample: list[str]) -> None:
    """Each profile asked cold (its aggregate loaded from the latest snapshot and the events
    after it), then again with the aggregate in the process's cache."""
    cache = ledger.store.app.repository.cache
    assert cache is not None
    times: dict[str, list[float]] = {"why": [], "who": [], "why cached": [], "who cached": []}
    for pid in sample:
        for name, ask in (("why", explain), ("who", who)):
            cache.cache.clear()  # type: ignore[attr-defined]  # LRUCache.clear() keeps the dict
            cache.clear()
            times[name].append(_once_ms(lambda a=ask, p=pid: a(ledger, p)))  # type: ignore[misc]
            times[f"{name} cached"].append(_once_ms(lambda a=ask, p=pid: a(ledger, p)))  # type: ignore[misc]
    with psycopg.connect(url) as conn:
        sql = "SELECT * FROM custody_availability WHERE profile_id = %s"
        bare = [_once_ms(lambda p=pid: conn.execute(sql, (p,)).fetchall()) for pid in sample]  # type: ignore[misc]
    base = statistics.median(bare)
    for name, found in times.items():
        how = "aggregate cached in the process" if "cached" in name else "loaded cold"
        _row(
            lines,
            f"{name.split()[0]}, median of {len(sample)} profiles, {how}",
            statistics.median(found),
            base,
        )
    lines.append(f"| why, slowest of the sample, loaded cold | {max(times['why']):,.2f} ms | | |")


def _timelines(
    ledger: Ledger, url: str, lines: list[str], profiles: dict[str, str], repeat: int
) -> None:
    with psycopg.connect(url) as conn:
        for label, pid in profiles.items():
            sql, params = select(profile_id=pid)
            custody = _median_ms(lambda p=pid: timeline(ledger, p), repeat)  # type: ignore[misc]
            bare = _median_ms(
                lambda s=sql, q=params: conn.execute(s.replace("?", "%s"), q).fetchall(), repeat
            )  # type: ignore[misc]
            n = len(ledger.history(pid))
            _row(lines, f"timeline of {label} ({n:,} events), rows as models", custody, bare)
        pid = profiles["the long profile"]
        sql, params = select(profile_id=pid, last=100)
        custody = _median_ms(lambda: timeline(ledger, pid, last=100), repeat)
        bare = _median_ms(lambda: conn.execute(sql.replace("?", "%s"), params).fetchall(), repeat)
        _row(lines, "timeline of the long profile, its last 100 events (--last)", custody, bare)


def _whole_frame(ledger: Ledger, url: str, lines: list[str], repeat: int) -> None:
    import adbc_driver_postgresql.dbapi as adbc

    sql, _ = select()
    custody = _median_ms(lambda: timeline_frame(ledger=ledger), repeat)
    with adbc.connect(url) as conn:
        bare = _median_ms(lambda: pd.read_sql(sql, conn), repeat)  # type: ignore[call-overload]
        rows = len(pd.read_sql(f"SELECT position FROM ({sql}) t", conn))  # type: ignore[call-overload]
    _row(lines, f"whole timeline into pandas ({rows:,} rows)", custody, bare)


def _replays(ledger: Ledger, lines: list[str], layout: Layout, repeat: int) -> None:
    figures = {}
    for pid in (layout.small, layout.big):
        events = ledger.history(pid)
        middle = events[len(events) // 2].envelope.at + timedelta(microseconds=1)
        replay(pid, at=middle, ledger=ledger)  # warm
        figures[pid] = (
            len(events),
            _median_ms(lambda p=pid, m=middle: replay(p, at=m, ledger=ledger), repeat),
        )
    (n_small, small), (n_big, big) = figures[layout.small], figures[layout.big]
    lines.append(
        f"| replay --at mid-stream: {n_big:,} events vs {n_small:,} | {big:,.2f} ms | "
        f"{small:,.2f} ms | {small / big:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--long", type=int, help="events of the long stream (default: events/10, at most 100,000)"
    )
    parser.add_argument("--sample", type=int, default=200, help="profiles asked why/who")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--admin-url", help="a running PostgreSQL server (superuser URL)")
    args = parser.parse_args()
    layout = Layout(args.profiles, args.events, args.long)
    started = time.perf_counter()
    with _database(args.admin_url) as url:
        Ledger.init(url).close()
        with Ledger.open(url) as ledger:
            t = time.perf_counter()
            total = generate(ledger, layout)
            made = time.perf_counter() - t
            print(f"generated {total:,} events over {layout.profiles:,} profiles in {made:.0f} s")
            lines = [
                "| figure | custody | bare baseline | ratio (bare / custody) |",
                "|---|---:|---:|---:|",
            ]
            _catch_up(ledger, lines, total)
            ids = sorted({pid for pid, _ in layout.streams()})
            sample = random.Random(8).sample(ids, min(args.sample, len(ids)))  # noqa: S311 (a fixed sample, not a secret)
            _answers(ledger, url, lines, sample)
            typical = "scale_00000"
            _timelines(
                ledger,
                url,
                lines,
                {"a typical profile": typical, "the long profile": layout.big},
                args.repeat,
            )
            _whole_frame(ledger, url, lines, args.repeat)
            _replays(ledger, lines, layout, args.repeat)
            with psycopg.connect(url) as conn:
                size = conn.execute("SELECT pg_total_relation_size('custody_snapshots')").fetchone()
    print("\n".join(lines))
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"snapshots table: {size[0] / 1e6 if size else 0:,.0f} MB; load average {load}; "
        f"{os.cpu_count()} cores; whole run {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
