"""A worker's write decided before its lease's deadline but kept waiting past it (rev34).

Found by a review: a clean release decided 0.5 s before the deadline waited 2.5 s behind
another writer's lock (a SQLite write transaction; a PostgreSQL table lock), and committed
after the deadline. Meanwhile ``status`` said the lease was stale and a second worker's
checkout was denied as stale; then the release put the profile back in the pool, and the
second worker's next checkout was granted. Guarantee: a worker's write that holds the store's
locks only after its lease's deadline (``COMMIT_GRACE_S`` past it) keeps nothing, and the
command decides again, as the lease then stands: lost.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import pytest
from conftest import register
from tcp_proxy import Link, TcpProxy

from ledger import (
    Checkout,
    CheckoutDenied,
    Extend,
    Heartbeat,
    Lease,
    LeaseLost,
    Ledger,
    Release,
)
from ledger._stores import postgres
from ledger._stores.clock import OffsetClock


@contextmanager
def _locked(url: str) -> Iterator[None]:
    """The store's write lock held by another connection for the block: a SQLite write
    transaction, or a PostgreSQL lock on the availability table every write upserts."""
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)) as c:
            c.execute("BEGIN IMMEDIATE")
            yield
            c.execute("ROLLBACK")
        return
    with psycopg.connect(url) as conn:
        conn.execute("LOCK TABLE custody_availability IN EXCLUSIVE MODE")
        yield
        conn.rollback()


def _until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def _held_up(
    url: str, lease: Lease, write: Callable[[], object], past: float = 0.8
) -> BaseException | None:
    """``write`` sent 0.4 s before the lease's deadline while another connection holds the
    lock until ``past`` seconds after it; what it raised (None: it was kept)."""
    outcome: list[BaseException | None] = []

    def writing() -> None:
        try:
            write()
        except Exception as e:  # what the worker is told
            outcome.append(e)
        else:
            outcome.append(None)

    _until(lease.expires_at - timedelta(seconds=0.4))
    with _locked(url):
        writer = threading.Thread(target=writing)
        writer.start()
        _until(lease.expires_at + timedelta(seconds=past))
    writer.join(timeout=30)
    assert outcome, "the write did not return"
    return outcome[0]


@pytest.mark.parametrize("command", ["release", "heartbeat"])
def test_a_write_held_up_past_the_deadline_keeps_nothing(sql_store_url: str, command: str) -> None:
    with Ledger.open(sql_store_url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=2)
        )
        sent: Release | Heartbeat = (
            Release(
                lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="https://x/"
            )
            if command == "release"
            else Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart")
        )
        told = _held_up(sql_store_url, lease, lambda: ledger.handle(sent))
        assert isinstance(told, LeaseLost), told  # decided again, as the lease now stands
        kinds = [e.event_type for e in ledger.history(pid)]
        assert kinds == ["profile_registered", "lease_acquired"], kinds
        with pytest.raises(CheckoutDenied, match="stale"):
            ledger.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))


def test_a_write_held_up_just_past_the_deadline_keeps_nothing(sql_store_url: str) -> None:
    """rev35 service review: the lease read said "not live: a heartbeat is refused" 20 ms
    past the deadline, then a heartbeat that got the lock 60 ms past it was kept and renewed
    the lease (the save was allowed 0.1 s past the deadline). Read and save judge on one
    clock: once the read says lost, no save of a decision before it is kept."""
    with Ledger.open(sql_store_url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=2)
        )
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart")
        told = _held_up(sql_store_url, lease, lambda: ledger.handle(beat), past=0.06)
        assert isinstance(told, LeaseLost), told
        assert [e.event_type for e in ledger.history(pid)][-1] == "lease_acquired"
        assert not ledger.check_lease(lease.lease_id).live


def test_a_write_held_up_within_its_deadline_is_kept(sql_store_url: str) -> None:
    """The same wait, ending well before the deadline: the heartbeat is kept (no refusal for
    a wait alone)."""
    with Ledger.open(sql_store_url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=60)
        )
        told: list[BaseException | None] = []
        with _locked(sql_store_url):
            beat = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart")
            writer = threading.Thread(target=lambda: told.append(_kept(ledger, beat)))
            writer.start()
            time.sleep(1.2)
        writer.join(timeout=30)
        assert told == [None]
        assert ledger.history(pid)[-1].event_type == "lease_heartbeat"


def _kept(ledger: Ledger, beat: Heartbeat) -> BaseException | None:
    try:
        ledger.handle(beat)
    except Exception as e:
        return e
    return None


def test_a_write_held_up_past_the_deadline_through_psycopg_s_path_keeps_nothing(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same on PostgreSQL where an append goes psycopg's pipelined way (a connection whose
    encoding is not UTF-8, a text with NUL, more shapes than a connection keeps prepared)."""
    monkeypatch.setattr(postgres, "_direct", lambda *_: None)
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=2)
        )
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart")
        told = _held_up(pg_url, lease, lambda: ledger.handle(beat))
        assert isinstance(told, LeaseLost), told
        assert [e.event_type for e in ledger.history(pid)][-1] == "lease_acquired"


class _Frozen:
    """A clock given to the ledger that stands still until a test sets it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("before_ms", [0, 1])
@pytest.mark.parametrize("command", ["release", "heartbeat", "extend"])
def test_a_worker_s_write_on_a_frozen_clock_at_its_deadline_is_kept(
    sql_store_url: str, command: str, before_ms: int
) -> None:
    """rev37: on a clock given to the ledger and frozen at the lease's deadline (or 1 ms
    before it), where the lease is still live to every read, a worker's release, heartbeat or
    extend is kept: its first save, judged on the monotonic clock, is late, and decided again
    on the clock that has not moved it is not held to that window (it was refused as late 30
    times in a row, about 2.5 s, and answered "busy: 30 conflicting writes", exit 6)."""
    clock = _Frozen(datetime(2026, 12, 6, 12, 0, tzinfo=UTC))
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=5)
        )
        clock.now = lease.expires_at - timedelta(milliseconds=before_ms)
        sent = {
            "release": Release(
                lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="https://x/"
            ),
            "heartbeat": Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart"),
            "extend": Extend(lease_id=lease.lease_id, fencing_token=1, ttl_seconds=5),
        }[command]
        started = time.monotonic()
        ledger.handle(sent)
        assert time.monotonic() - started < 1.0
        assert ledger.conflicts <= 1  # at most the one late save
        last = ledger.history(pid)[-1]
        assert last.at == clock.now, last
        assert ledger.view(pid).state.value == ("available" if command == "release" else "leased")


class _Holding:
    """What a proxy in front of PostgreSQL holds back: once given ``hold`` seconds and a
    ``marker``, the next chunk a client sends holding the marker, for that long: one segment
    delayed on its way, as a congested or briefly partitioned link delays it, the rest of the
    path as fast as before."""

    def __init__(self) -> None:
        self.hold = 0.0
        self.marker = b""
        self.held = 0

    def __call__(self, link: Link, data: bytes) -> None:
        if self.hold and self.marker in data:
            hold, self.hold = self.hold, 0.0
            self.held += 1
            time.sleep(hold)


@contextmanager
def _through_a_proxy(pg_url: str) -> Iterator[tuple[_Holding, str]]:
    holding = _Holding()
    proxy = TcpProxy(urlsplit(pg_url).port or 5432, upward=holding)
    try:
        yield holding, proxy.url_to(pg_url)
    finally:
        proxy.close()


@pytest.mark.parametrize("direct", [True, False], ids=["one_round_trip", "psycopg_s_path"])
def test_a_release_held_on_its_way_to_postgres_past_the_deadline_keeps_nothing(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    """rev46 review: a clean release decided before its lease's deadline reached PostgreSQL
    1.5 s after it (its BEGIN held back on the way) and was kept: the in-time check counted
    from its transaction's BEGIN, which the delay had put off too. Checked on the server's
    clock against the deadline as well, it keeps nothing, and the release decided again is
    told the lease is lost; the profile stays stale. The one-round-trip path sends its
    transaction in one segment, named by the check's prepared statement; psycopg's sends its
    BEGIN in a segment of its own, which is the one held (review 273: holding a later one, the
    count from BEGIN caught it alone)."""
    if not direct:
        monkeypatch.setattr(postgres, "_direct", lambda *_: None)
    Ledger.init(pg_url).close()
    with _through_a_proxy(pg_url) as (proxy, proxied), Ledger.open(proxied) as worker:
        pid = register(worker)
        lease = worker.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=2)
        )
        _until(lease.expires_at - timedelta(seconds=0.5))
        proxy.marker = postgres._IN_TIME if direct else b"BEGIN"
        proxy.hold = 1.5
        with pytest.raises(LeaseLost):
            worker.handle(
                Release(
                    lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="h:/"
                )
            )
        assert proxy.held == 1
        assert [e.event_type for e in worker.history(pid)] == [
            "profile_registered",
            "lease_acquired",
        ]
        with pytest.raises(CheckoutDenied, match="stale"):
            worker.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))


def test_a_heartbeat_held_on_its_way_to_postgres_within_its_deadline_is_kept_at_once(
    pg_url: str,
) -> None:
    """The same delay well within the deadline: kept on its first save, not refused as late
    and decided again (the check on the server's clock is not early)."""
    Ledger.init(pg_url).close()
    with _through_a_proxy(pg_url) as (proxy, proxied), Ledger.open(proxied) as worker:
        pid = register(worker)
        lease = worker.handle(
            Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=60)
        )
        proxy.marker = postgres._IN_TIME
        proxy.hold = 1.5
        worker.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart"))
        assert proxy.held == 1
        assert worker.conflicts == 0
        assert worker.history(pid)[-1].event_type == "lease_heartbeat"


def _leased_before_a_step(worker: Ledger, *, offset_measured_again: bool) -> tuple[str, Lease]:
    """A lease of 4 s taken while the store's clock read the server's 3 s behind, then read as
    it is (the server's clock set forward by as much since it was measured), the offset
    measured again or not; slept until 2 s before the lease's deadline on the store's clock."""
    store = worker.store
    behind = [timedelta(seconds=3)]
    store.clock = OffsetClock(lambda: store.server_time() - behind[0])
    pid = register(worker)
    lease = worker.handle(
        Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=4)
    )
    behind[0] = timedelta(0)
    if offset_measured_again:
        store.clock.measure()  # the offset of now, the bound of before kept
    time.sleep(max(0.0, (lease.expires_at - store.now()).total_seconds() - 2.0))
    return pid, lease


def test_a_write_decided_on_an_offset_from_before_the_server_s_clock_stepped_is_refused(
    pg_url: str,
) -> None:
    """The server's clock set forward 3 s since it was measured (simulated: the samples read
    it 3 s behind, then as it is): a heartbeat decided 2 s before its lease's deadline by the
    offset of before is 1 s past it on the server's clock. The server refuses it as late, and
    the heartbeat decided again on the clock measured again is told its lease is lost (review
    280: the bound alone measured again, the heartbeat decided again on the old offset passed
    the check by the whole step, and was kept)."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as worker:
        pid, lease = _leased_before_a_step(worker, offset_measured_again=False)
        with pytest.raises(LeaseLost):
            worker.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart"))
        assert worker.history(pid)[-1].event_type == "lease_acquired"


def test_a_save_refused_by_a_bound_from_before_the_server_s_clock_stepped_is_kept_next(
    pg_url: str,
) -> None:
    """The offset measured again since the step but the bound of before kept (it reads lower,
    so tighter): a heartbeat 2 s before its deadline on the server's clock is refused by the
    early bound, once; the refusal measures the clock again, and the heartbeat decided again
    is kept (not refused until its lease is lost)."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as worker:
        pid, lease = _leased_before_a_step(worker, offset_measured_again=True)
        worker.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart"))
        assert worker.conflicts == 1  # the one save refused by the early bound
        assert worker.history(pid)[-1].event_type == "lease_heartbeat"
