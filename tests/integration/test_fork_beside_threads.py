"""A process forked while other threads use a shared ledger can use it (rev41 review: on SQLite
the child hung in ``sqlite3.connect``, or was told "database is locked" for ever, one time in
two: the fork copied SQLite's state mid-call, its allocator's mutex held and a transaction's
WAL-index locks recorded as held by a thread the child does not have)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from conftest import register

from ledger import Checkout, Ledger, LedgerError, Release, StoreUnavailable
from ledger._domain.events import LeaseAcquired
from ledger._stores import forks

ROUNDS = 8  # unfixed, a child failed about one time in two: 8 in a row passed 1 run in 250
CHILD_AT_MOST = 30.0  # a child that hangs fails the test, rather than hanging it


def _lease_and_release(ledger: Ledger, profile_id: str, run_id: str) -> None:
    lease = ledger.handle(
        Checkout(profile_id=profile_id, worker_id="w", run_id=run_id, task_type="t")
    )
    ledger.handle(
        Release(
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            outcome="success",
            final_url="https://x.example/",
        )
    )


@contextmanager
def _busy(ledger: Ledger, threads: int = 3) -> Iterator[None]:
    """``threads`` threads leasing and releasing p1 on ``ledger`` without pause, until the
    block ends."""
    stop = threading.Event()

    def lease_again() -> None:
        while not stop.is_set():
            with suppress(LedgerError):  # another thread holds it: taken in turns
                _lease_and_release(ledger, "p1", f"r{time.monotonic_ns()}")

    running = [threading.Thread(target=lease_again) for _ in range(threads)]
    for thread in running:
        thread.start()
    try:
        time.sleep(0.1)  # every thread is at work
        yield
    finally:
        stop.set()
        for thread in running:
            thread.join()


def _child(ledger: Ledger, run_id: str) -> None:
    _lease_and_release(ledger, "p2", run_id)


def _ended(child: multiprocessing.process.BaseProcess) -> int | None:
    """The child's exit code; None (and the child killed) if it is still running after
    ``CHILD_AT_MOST`` seconds."""
    child.join(timeout=CHILD_AT_MOST)
    if child.is_alive():
        child.kill()
        child.join()
        return None
    return child.exitcode


def test_a_child_forked_while_threads_use_the_ledger_uses_it(store_url: str) -> None:
    """Three threads lease and release one profile on a shared ledger; the process forks
    (multiprocessing's fork start method), its threads stop, and the child leases and
    releases another profile through the inherited ledger: ``ROUNDS`` times, every child
    ends with 0 within ``CHILD_AT_MOST`` seconds, and each child's lease is in the log."""
    fork = multiprocessing.get_context("fork")
    with Ledger.open(store_url) as ledger:
        register(ledger, "p1")
        register(ledger, "p2")
    for n in range(ROUNDS):
        with Ledger.open(store_url) as ledger:
            with _busy(ledger):
                child = fork.Process(target=_child, args=(ledger, f"child{n}"))
                child.start()
            assert _ended(child) == 0, f"round {n}: the child hung (None) or failed"
    with Ledger.open(store_url) as ledger:
        runs = [e.lease.run_id for e in ledger.history("p2") if isinstance(e, LeaseAcquired)]
    assert runs == [f"child{n}" for n in range(ROUNDS)]


def _refused(ledger: Ledger, said: multiprocessing.queues.SimpleQueue[str]) -> None:
    try:
        _lease_and_release(ledger, "p2", "child")
    except StoreUnavailable as e:
        said.put(str(e))
    else:
        said.put("granted")


def test_a_fork_that_waited_in_vain_leaves_sqlite_refused_in_its_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread uses SQLite for longer than a fork waits (``WAIT_AT_MOST``, shortened here):
    the fork goes on after that wait, and its child is told in one line why SQLite is refused
    it, rather than hanging; the parent's store serves on."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    monkeypatch.setattr(forks, "WAIT_AT_MOST", 0.5)
    fork = multiprocessing.get_context("fork")
    said = fork.SimpleQueue()
    with Ledger.init(url) as ledger:
        register(ledger, "p2")
        entered, leave = threading.Event(), threading.Event()

        def hold() -> None:
            with ledger.store._transaction(commit=True) as cursor:
                cursor.execute("SELECT 1")
                entered.set()
                leave.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        entered.wait(30)
        started = time.monotonic()
        child = fork.Process(target=_refused, args=(ledger, said))
        child.start()
        waited = time.monotonic() - started
        leave.set()
        holder.join()
        assert _ended(child) == 0
        assert said.get() == forks.refusal()
        assert waited >= 0.5
        _lease_and_release(ledger, "p2", "parent")
