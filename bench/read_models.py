"""Read-model figures beside their baselines, measured in the same run.

    .venv/bin/python bench/read_models.py STORE_URL [EVENTS] [--json FILE]

On an initialised, empty store: appends EVENTS heartbeats (default 5,000) across 10 profiles,
then measures (median of 3):
- catch-up of timeline and leases from position 0, together as ``custody projections run``
  keeps them (``catch_up_all``: one read of the log for both), against a bare read-and-decode
  of the same notifications (``Ledger.feed.read`` in pages of 500, nothing written) decoded as
  the read models decode them: each event's stored JSON (``LoggedEvent.data()``), which is
  what the timeline and leases fold heartbeats from. The ratio is taken against that read;
  a read that decodes every event into its pydantic model (``LoggedEvent.event``, more work
  than the read models do) is printed beside it, not compared with;
- ``reports.timeline()`` (catch-up check, read, dtypes), against a bare read of the same rows
  into pandas by the same path (``Ledger.feed.read_frame`` of ``SELECT *``);
- ``reports.replay`` of one profile and a full rebuild of the timeline.

With ``--json FILE`` it writes the figures there too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ledger import Checkout, Heartbeat, Ledger, RegisterProfile
from projections import LEASES_READ_MODEL, TIMELINE_READ_MODEL, catch_up_all, install, rebuild
from reports import replay, timeline


def _median(run: Callable[[], object], setup: Callable[[], object] = lambda: None) -> float:
    times = []
    for _ in range(3):
        setup()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _reset(ledger: Ledger) -> None:
    with ledger.feed.transaction() as tx:
        for model in (TIMELINE_READ_MODEL, LEASES_READ_MODEL):
            tx.execute(f"DELETE FROM {model.table.name}")
            tx.reset_checkpoint(model.name, 0)


def _bare_read(ledger: Ledger) -> int:
    """The baseline: every event read and its stored JSON decoded (``LoggedEvent.data()``), as
    the read models fold them; Feed.read decodes only when asked."""
    count, position = 0, 0
    while batch := ledger.feed.read(position, 500):
        count += len([n.data() for n in batch])
        position = batch[-1].position
    return count


def _bare_read_models(ledger: Ledger) -> int:
    """Every event read and decoded into its pydantic model (``LoggedEvent.event``): more than
    the read models decode, so shown beside the baseline, never the baseline."""
    count, position = 0, 0
    while batch := ledger.feed.read(position, 500):
        count += len([n.event for n in batch])
        position = batch[-1].position
    return count


def measure(url: str, events: int) -> dict[str, float]:
    with Ledger.open(url) as ledger:
        leases = []
        for n in range(10):
            ledger.handle(
                RegisterProfile(profile_id=f"bench_{n}", account_id="acct", proxy_id="px")
            )
            leases.append(
                ledger.handle(
                    Checkout(
                        profile_id=f"bench_{n}",
                        worker_id="w",
                        run_id=f"r{n}",
                        task_type="t",
                        ttl_seconds=86400,
                    )
                )
            )
        for i in range(events):
            lease = leases[i % 10]
            ledger.handle(
                Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{i}")
            )
        total = ledger.feed.head()
        for model in (TIMELINE_READ_MODEL, LEASES_READ_MODEL):
            install(ledger, model)
        bare = _median(lambda: _bare_read(ledger))
        bare_models = _median(lambda: _bare_read_models(ledger))
        both = (TIMELINE_READ_MODEL, LEASES_READ_MODEL)
        caught = _median(lambda: catch_up_all(ledger, both), lambda: _reset(ledger))
        raw_frame = _median(lambda: ledger.feed.read_frame("SELECT * FROM custody_timeline"))
        report = _median(lambda: timeline(ledger=ledger))
        at = ledger.now()
        replayed = _median(lambda: replay("bench_0", at=at, ledger=ledger))
        rebuilt = _median(lambda: rebuild(ledger, TIMELINE_READ_MODEL))
    found = {
        "events": total,
        "bare_read_json_per_s": round(total / bare),
        "bare_read_models_per_s": round(total / bare_models),
        "catch_up_per_s": round(total / caught),
        "catch_up_ratio": round(bare / caught, 2),
        "bare_frame_ms": round(raw_frame * 1000, 1),
        "timeline_report_ms": round(report * 1000, 1),
        "replay_ms": round(replayed * 1000, 1),
        "rebuild_ms": round(rebuilt * 1000, 1),
    }
    print(f"store {url.split(':')[0]}, {total} events")
    print(f"bare read+JSON        {total / bare:10,.0f} events/s  (the baseline)")
    print(f"bare read+models      {total / bare_models:10,.0f} events/s  (pydantic, beside it)")
    print(f"catch-up (2 models)   {total / caught:10,.0f} events/s  ratio {bare / caught:.2f}")
    print(f"bare frame read       {raw_frame * 1000:10.1f} ms")
    print(f"reports.timeline()    {report * 1000:10.1f} ms  ratio {raw_frame / report:.2f}")
    print(f"replay one profile    {replayed * 1000:10.1f} ms")
    print(f"rebuild timeline      {rebuilt * 1000:10.1f} ms")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", metavar="STORE_URL", help="an initialised, empty store")
    parser.add_argument("events", metavar="EVENTS", type=int, nargs="?", default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    found = measure(args.url, args.events)
    if args.json:
        args.json.write_text(json.dumps(found, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
