"""One process of the follower test (``test_followers.py``), by its first argument:

- ``write URL PROFILE BEATS``: check out PROFILE and heartbeat it BEATS times, then release.
- ``abandon URL ROUNDS``: ROUNDS appends of the events table's owner that draw a position and
  roll back, each after a random pause inside its transaction: gaps that stay forever.
- ``follow URL STOP OUT``: read the log from the start with ``Ledger.feed.read`` until the file
  STOP exists and a last read finds nothing more; write every position read to OUT (JSON).
- ``fold URL STOP``: keep the timeline read model current (``projections.catch_up``) until the
  file STOP exists, then once more.
"""

from __future__ import annotations

import json
import random
import sys
import time
import uuid
from pathlib import Path

import psycopg

from ledger import Checkout, Heartbeat, Ledger, Release
from projections import TIMELINE_READ_MODEL, catch_up


def write(url: str, profile: str, beats: int) -> None:
    with Ledger.open(url) as ledger:
        lease = ledger.handle(
            Checkout(
                profile_id=profile,
                worker_id=f"w-{profile}",
                run_id=f"r-{profile}",
                task_type="t",
                ttl_seconds=3600,
            )
        )
        for n in range(beats):
            ledger.handle(
                Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{n}")
            )
        ledger.handle(
            Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success")
        )


def abandon(url: str, rounds: int) -> None:
    with psycopg.connect(url) as conn:
        for _ in range(rounds):
            with conn.transaction(force_rollback=True):
                conn.execute(
                    "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                    "VALUES (%s, 1, 'abandoned', '{}')",
                    (uuid.uuid4(),),
                )
                conn.execute("SELECT pg_sleep(%s)", (random.uniform(0, 0.03),))
            time.sleep(random.uniform(0, 0.01))


def follow(url: str, stop: Path, out: Path) -> None:
    seen: list[int] = []
    with Ledger.open(url) as ledger:
        while True:
            finishing = stop.exists()  # asked before the read: a last read sees every commit
            found = ledger.feed.read(seen[-1] if seen else 0, 50)
            seen += [event.position for event in found]
            if finishing and not found:
                break
            if not found:
                time.sleep(random.uniform(0, 0.005))
    out.write_text(json.dumps(seen))


def fold(url: str, stop: Path) -> None:
    with Ledger.open(url) as ledger:
        while not stop.exists():
            catch_up(ledger, TIMELINE_READ_MODEL, batch=20)
            time.sleep(random.uniform(0, 0.005))
        catch_up(ledger, TIMELINE_READ_MODEL, batch=20)


if __name__ == "__main__":
    what, url, *rest = sys.argv[1:]
    if what == "write":
        write(url, rest[0], int(rest[1]))
    elif what == "abandon":
        abandon(url, int(rest[0]))
    elif what == "follow":
        follow(url, Path(rest[0]), Path(rest[1]))
    else:
        fold(url, Path(rest[0]))
