"""bench/raw.py's baselines do the I/O custody does and no more: each raw row is the size of
custody's own event of its type (rev48: heartbeats 534 bytes against custody's 768, from stale
constants), and the plain INSERT floor is the INSERT alone, its row built before the clock
(rev48: a uuid, the time and two json.dumps counted as the INSERT's CPU and calls)."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import uuid
from functools import partial
from pathlib import Path
from types import ModuleType

from ledger import Ledger

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import leases
import raw as rawio

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _bench_run() -> ModuleType:
    """bench/run.py under a name of its own: imported as ``run`` it would stand, in the whole
    suite's one process, for tests/mutation/run.py, whose test then fails to import."""
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


_run = _bench_run()
SIZE_TOLERANCE, calls_per_op = _run.SIZE_TOLERANCE, _run.calls_per_op


def test_raw_rows_are_the_size_of_custodys_events(tmp_path: Path) -> None:
    """The commands the benchmark times, on custody and on the raw store: the mean stored size
    of each event type differs by no more than the run's check allows."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        lease = leases.fresh_lease(ledger, "bench-hb")
        leases.heartbeats(ledger, lease, 20)
        leases.release(ledger, lease)
        custody = leases.event_sizes(ledger)
    path = str(tmp_path / "raw.db")
    rawio.create_raw("sqlite", path)
    store = rawio.open_raw("sqlite", path)
    try:
        stream, profile_id = rawio.fresh_stream(store, leases.unique("bench-hb"))
        rawio.heartbeats(store, stream, profile_id, 20)
        rawio.cycles(store, stream, profile_id, 1)
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        sql = "SELECT topic, avg(length(state)) FROM stored_events GROUP BY topic"
        raw = dict(conn.execute(sql).fetchall())
    assert set(raw) == set(custody)
    off = {t: (custody[t], raw[t]) for t in custody if abs(custody[t] - raw[t]) > SIZE_TOLERANCE}
    assert not off, off


def test_the_plain_insert_floor_is_the_insert_alone(tmp_path: Path) -> None:
    """With its rows built beforehand, a plain INSERT is a few Python calls: the driver's
    execute and the loop's (31 when each row was built in the loop)."""
    path = str(tmp_path / "raw.db")
    rawio.create_raw("sqlite", path)
    store = rawio.open_raw("sqlite", path)
    try:
        rows = rawio.plain_rows(200)
        calls = calls_per_op(200, partial(rawio.plain_inserts, store, uuid.uuid4(), rows))
    finally:
        store.close()
    assert calls <= 5, calls
