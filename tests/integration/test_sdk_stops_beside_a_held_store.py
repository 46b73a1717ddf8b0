"""A worker stopped while its store does not answer (another session holds the lock every read
and write needs) stops within seconds, not at its lease's deadline: after SIGTERM or SIGINT the
release is tried for ``STOP_WAIT_SECONDS``, then the lease is left live to go stale, saying so
on stderr, unless the release's answer was lost (resent once more then); a block the
application cancels itself is no stop (its release waits for the store); and a lease lost at its
deadline leaves its block at once, not when its revocation watch's store call ends (rev38)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tcp_proxy import Link, TcpProxy

from ledger import LeaseLost, Ledger, RegisterProfile
from workers import DIRECT, BrowserSettings, ProfileLeases
from workers._termination import STOP_WAIT_SECONDS

# Takes the lock that every write of the store waits for (on SQLite the file's write lock, on
# PostgreSQL the events' table), and on PostgreSQL, with "reads", the one its reads of a
# profile's availability wait for too (a SQLite reader in WAL mode waits for no writer).
_HOLDER = r"""
import sys, time
url, reads = sys.argv[1], sys.argv[2] == "reads"
if url.startswith("sqlite"):
    import sqlite3
    conn = sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
else:
    import psycopg
    conn = psycopg.connect(url.split("?")[0])
    tables = "custody_events, custody_availability" if reads else "custody_events"
    conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
print("locked", flush=True)
time.sleep(600)
"""

# A worker holding p1 (TTL 60: its local deadline 40 s after the last renewal), at work: asleep,
# or ("steps") sending a step after another, so the signal finds it retrying a step; or
# ("aio-cancel") the application cancelling the block's task itself on a line from stdin, then
# going on.
_WORKER = r"""
import asyncio, sys, time
from workers import DIRECT, BrowserSettings, ProfileLeases, aio
url, flavour, evidence = sys.argv[1:]
settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=evidence)
if flavour.startswith("sync"):
    leases = ProfileLeases.open(url, worker_id="w", settings=settings)
    lease = None
    try:
        with leases.checkout("p1", run_id="r", task_type="t", ttl_seconds=60) as lease:
            lease.step("dashboard", safe=True)
            print("working", flush=True)
            while flavour.endswith("steps"):
                lease.step("next_page")
            time.sleep(600)
    finally:
        result = getattr(lease, "result", None)
        print("released" if result else "not released", getattr(result, "resent", False))
else:
    async def work():
        leases = aio.ProfileLeases.open(url, worker_id="w", settings=settings)
        checkout = leases.checkout("p1", run_id="r", task_type="t", ttl_seconds=60)
        async with leases, checkout as lease:
            await lease.step("dashboard", safe=True)
            print("working", flush=True)
            while flavour.endswith("steps"):
                await lease.step("next_page")
            await asyncio.sleep(600)
    async def main():
        if not flavour.endswith("cancel"):
            return await work()
        task = asyncio.create_task(work())
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            print("cancelled", flush=True)
    asyncio.run(main())
"""


@pytest.fixture
def store(sql_store_url: str) -> str:
    """The store, each call waiting at most 2 s for a lock, with p1 registered."""
    url = f"{sql_store_url}?timeout=2"
    with Ledger.open(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="px"))
    return url


class Holder:
    """A process holding the store's lock until ``end``."""

    def __init__(self, url: str, *, reads: bool = False) -> None:
        held = "reads" if reads else "writes"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, url, held], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def end(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=30)


@pytest.fixture
def holding(store: str) -> Iterator[list[Holder]]:
    held: list[Holder] = []
    yield held
    for holder in held:
        holder.end()


def _events(store: str) -> list[str]:
    with Ledger.open(store, create=False) as ledger:
        return [e.event_type for e in ledger.history("p1")]


@pytest.mark.parametrize(
    ("flavour", "sig", "status"),
    [
        ("sync", signal.SIGTERM, 143),
        ("sync", signal.SIGINT, -signal.SIGINT),
        ("aio", signal.SIGTERM, 143),
        ("aio", signal.SIGINT, -signal.SIGINT),
        ("sync-steps", signal.SIGTERM, 143),
        ("aio-steps", signal.SIGTERM, 143),
    ],
)
def test_a_stopped_worker_leaves_its_lease_to_go_stale_within_seconds(
    store: str,
    holding: list[Holder],
    tmp_path: Path,
    flavour: str,
    sig: signal.Signals,
    status: int,
) -> None:
    """With the store held, SIGTERM (or SIGINT: Ctrl-C, asyncio's cancellation), while the task
    sleeps or retries a step, ends the worker about ``STOP_WAIT_SECONDS`` plus one store call
    later (it waited for the step and the release until the lease's local deadline: 41 s at TTL
    60, about 200 s at the default), with its usual exit status; stderr says the lease was left
    live to go stale, and the ledger, once it answers, shows no release: the lease is still the
    worker's, to go stale at its deadline."""
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, store, flavour, str(tmp_path / "evidence")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "working"
        holding.append(Holder(store))
        time.sleep(1)  # a step is waiting for the store now, or will be retried
        sent = time.monotonic()
        worker.send_signal(sig)
        _, err = worker.communicate(timeout=120)
        took = time.monotonic() - sent
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert worker.returncode == status, err
    assert took < STOP_WAIT_SECONDS + 6, f"stopping took {took:.1f} s"
    assert "lease-1@p1 is left live, to go stale at its deadline" in err
    holding.pop().end()
    events = _events(store)
    assert "lease_release_requested" not in events
    assert events[-1] == "lease_heartbeat"  # the first step, or the last that landed


def test_a_block_the_application_cancels_is_released_once_the_store_answers(
    store: str, holding: list[Holder], tmp_path: Path
) -> None:
    """With the store held, the application cancels its own checkout block (no signal: what
    ``asyncio.wait_for``'s timeout does) and goes on: that is no stop, so the release is resent
    past ``STOP_WAIT_SECONDS`` until the store answers, and the ledger shows it. It was given up
    after 5 s, saying "left live", and the profile went stale to review (rev38)."""
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, store, "aio-cancel", str(tmp_path / "evidence")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdin is not None
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "working"
        holding.append(Holder(store))
        worker.stdin.write("cancel\n")
        worker.stdin.flush()
        time.sleep(STOP_WAIT_SECONDS + 3)  # past the stop wait and one store call (2 s)
        holding.pop().end()
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
        worker.wait(timeout=30)
    assert worker.returncode == 0, err
    assert out.strip() == "cancelled"
    assert "left live" not in err
    assert "lease_release_requested" in _events(store)


def test_a_lease_lost_at_its_deadline_leaves_its_block_at_once(pg_url: str, tmp_path: Path) -> None:
    """The store held, reads too (each call waits up to 20 s): the lease is lost at its local
    deadline while its heartbeat and its revocation watch wait in store calls. Leaving the
    block raises ``LeaseLost`` at once; it waited for the watch's call (and the heartbeat's)
    to end, up to ``STOP_TIMEOUT`` (30 s on a frozen PostgreSQL). PostgreSQL only: a SQLite
    reader (WAL) waits for no lock, so no watch is held there."""
    url = f"{pg_url}?timeout=20"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="px"))
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    holder: Holder | None = None
    leases = ProfileLeases.open(url, worker_id="w", settings=settings)
    try:
        with (  # noqa: PT012
            pytest.raises(LeaseLost),
            leases.checkout("p1", run_id="r", task_type="t", ttl_seconds=3) as lease,
        ):
            lease.step("dashboard", safe=True)
            holder = Holder(url, reads=True)
            assert lease.lost.wait(10), "the lease was not lost at its deadline"
            time.sleep(0.6)  # the watch is in a store call now, whatever its poll's phase
            left = time.monotonic()
        took = time.monotonic() - left
        assert took < 2, f"leaving the block took {took:.1f} s"
        assert "not renewed within 2s" in lease.why_lost
    finally:
        if holder is not None:
            holder.end()
        leases.close()
    deadline = time.monotonic() + 30  # the watch's call ends once the lock is gone
    while lease._revocations.alive:
        assert time.monotonic() < deadline, "the revocation watch did not end"
        time.sleep(0.05)
    assert "lease_release_requested" not in _events(url)


_COMMIT_ANSWERED = b"C\x00\x00\x00\x0bCOMMIT\x00"  # the server's CommandComplete for a COMMIT


class AnswerLosing:
    """A proxy's hooks (``tcp_proxy``) that, once ``armed``, let a release through to the
    server and, when the server answers its COMMIT, hold that answer back for ``hold`` seconds,
    then close both ends: the release committed, its answer lost. Every other connection and
    every byte before that is forwarded as it comes."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.armed = threading.Event()
        self.tripped = threading.Event()

    def up(self, link: Link, data: bytes) -> None:
        if self.armed.is_set() and b"lease_release_requested" in data:
            link.marked.set()

    def down(self, link: Link, data: bytes) -> None:
        if link.marked.is_set() and _COMMIT_ANSWERED in data and not self.tripped.is_set():
            self.tripped.set()
            time.sleep(self.hold)
            raise OSError("the answer is lost")


def test_a_stopped_workers_release_whose_answer_was_lost_is_resent_once_more(
    pg_url: str, tmp_path: Path
) -> None:
    """SIGTERM, and the release commits on PostgreSQL but its answer is lost (held back past
    ``STOP_WAIT_SECONDS``, then the connection closed): the release is resent once more under
    its command id, answered as recorded, and the worker reports it released. It said "left
    live, to go stale" and lost the result while the ledger showed the lease released
    (rev38)."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="px"))
    parts = urlsplit(pg_url)
    assert parts.port is not None
    losing = AnswerLosing(hold=STOP_WAIT_SECONDS + 1)
    proxy = TcpProxy(parts.port, upward=losing.up, downward=losing.down)
    proxied = proxy.url_to(pg_url)
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, proxied, "sync", str(tmp_path / "evidence")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "working"
        losing.armed.set()
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    finally:
        worker.kill()
        worker.wait(timeout=30)
        proxy.close()
    assert losing.tripped.is_set(), "the release's COMMIT was not answered through the proxy"
    assert worker.returncode == 143, err
    assert out.strip() == "released True", err
    assert "left live" not in err
    assert "lease_release_requested" in _events(pg_url)
