"""Four writer processes appending heartbeats at once, each on its own profile and connection.

The processes are started once (``spawn``) and reused for every figure. A task sets up its own
connection and lease, waits on a barrier shared by all workers, then times its loop; the figure
is all operations over the span from the first start to the last finish (``perf_counter`` is
system-wide monotonic, so the workers' stamps compare).
"""

from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable
from multiprocessing.pool import Pool
from multiprocessing.synchronize import Barrier
from time import perf_counter

import leases
import raw as rawio

from ledger import Ledger

_BARRIER_TIMEOUT_S = 300
_barrier: Barrier | None = None

# (side, store kind, custody URL or raw target, operations per worker)
Task = tuple[str, str, str, int]


def _install(barrier: Barrier) -> None:
    # The pool initializer is the only way to hand each worker the shared barrier.
    global _barrier
    _barrier = barrier


def _timed(loop: Callable[[], None], n: int) -> tuple[float, float, int]:
    assert _barrier is not None
    _barrier.wait(_BARRIER_TIMEOUT_S)
    start = perf_counter()
    loop()
    return start, perf_counter(), n


def run_task(task: Task) -> tuple[float, float, int]:
    """One worker's share: ``n`` heartbeats (custody or raw) or ``n`` plain INSERTs."""
    side, kind, target, n = task
    try:
        if side == "ready":
            return _timed(lambda: None, n)
        if side == "custody":
            with Ledger.open(target) as ledger:
                lease = leases.fresh_lease(ledger, "bench-par")
                return _timed(lambda: leases.heartbeats(ledger, lease, n), n)
        store = rawio.open_raw(kind, target)
        try:
            if side == "raw":
                stream, pid = rawio.fresh_stream(store, leases.unique("bench-par"))
                return _timed(lambda: rawio.heartbeats(store, stream, pid, n), n)
            rows = rawio.plain_rows(n)  # built before the clock: the floor is the INSERT alone
            return _timed(lambda: rawio.plain_inserts(store, uuid.uuid4(), rows), n)
        finally:
            store.close()
    except BaseException:
        # Release the others from the barrier instead of leaving them to time out.
        if _barrier is not None:
            _barrier.abort()
        raise


class Writers:
    """A pool of writer processes; ``ops_per_second`` runs one task on each of them at once."""

    def __init__(self, count: int) -> None:
        rawio.custody_sizes()  # measured once, here, for the workers to inherit
        context = multiprocessing.get_context("spawn")
        self.count = count
        self._pool: Pool = context.Pool(
            count, initializer=_install, initargs=(context.Barrier(count),)
        )
        # Wait until every worker has started and imported the ledger, so that no figure
        # shares the two cores with four interpreters starting up.
        self._pool.map(run_task, [("ready", "", "", 0)] * count, chunksize=1)

    def ops_per_second(self, side: str, kind: str, target: str, n: int) -> float:
        # chunksize 1 and a barrier all of them must reach: each worker takes exactly one task.
        stamps = self._pool.map(run_task, [(side, kind, target, n)] * self.count, chunksize=1)
        span = max(end for _, end, _ in stamps) - min(start for start, _, _ in stamps)
        return sum(ops for _, _, ops in stamps) / span

    def close(self) -> None:
        self._pool.close()
        self._pool.join()

    def terminate(self) -> None:
        self._pool.terminate()
        self._pool.join()
