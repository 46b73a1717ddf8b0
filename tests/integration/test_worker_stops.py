"""How a held lease stops without its task's help, against a real ledger (in memory): at its
hard limit on the worker's own clock, within a poll of a revocation while the task is busy,
and, on asyncio, released even when cancelled again and again on the way out."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from worker_scene import FakeClock, history, leases_on, sdk_settings, sdk_store

from ledger import ForceRelease, Ledger, Quarantine
from ledger._domain import events as ev
from workers import BrowserSettings, LeaseLost, _renewal as renewal, aio


@pytest.fixture
def store(tmp_path: Path) -> str:
    return sdk_store(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> BrowserSettings:
    return sdk_settings(tmp_path)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_hard_limit_stops_the_worker_on_its_own_clock(
    store: str, settings: BrowserSettings, flavour: str
) -> None:
    """A checkout with max_duration_seconds=60 (TTL 300): the lease carries its hard limit;
    on the worker's clock, a step just before it is renewed, and from the limit on the lease
    is lost saying so, without asking the ledger, and nothing is released."""
    clock = FakeClock()

    def body(lease: Any) -> None:
        assert lease.lease.hard_limit_at is not None
        clock.now += 59
        yield lease.step("nearly_done")
        assert not lease.lost.is_set()
        clock.now += 1
        yield lease.step("too_late")

    def run_sync() -> Any:
        with leases_on(store, settings, clock=clock).checkout(
            "p1", run_id="r", task_type="t", max_duration_seconds=60
        ) as lease:
            for _ in body(lease):
                pass
        return lease

    async def run_async() -> Any:
        leases = aio.ProfileLeases.open(store, worker_id="w", settings=settings, clock=clock)
        async with (
            leases,
            leases.checkout("p1", run_id="r", task_type="t", max_duration_seconds=60) as lease,
        ):
            for step in body(lease):
                await step
        return lease

    with pytest.raises(LeaseLost, match="hard limit of 60s reached"):
        run_sync() if flavour == "sync" else asyncio.run(run_async())
    beats = [e for e in history(store) if isinstance(e, ev.LeaseHeartbeat)]
    assert [b.step for b in beats] == ["nearly_done"]
    assert not [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]


def blocked_until_lost(lease: Any, seconds: float) -> float | None:
    """Block the calling thread (no SDK call, no await) until the lease is lost; how long it
    took, or None."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if lease.lost.is_set():
            return time.monotonic() - started
        time.sleep(0.01)
    return None


@pytest.mark.parametrize("action", [ForceRelease, Quarantine], ids=["force_release", "quarantine"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_revocation_reaches_a_busy_worker_within_a_poll(
    store: str, settings: BrowserSettings, flavour: str, action: type[ForceRelease | Quarantine]
) -> None:
    """The task is busy and never calls the SDK (sync: its thread blocked; asyncio: its event
    loop blocked); an operator force-releases or quarantines its lease (TTL 300: no renewal
    is due for 100 s). Within 2 s lease.lost is set with a reason that says revoked, and
    leaving the block raises LeaseLost, releasing nothing."""

    def revoke() -> None:
        time.sleep(0.2)
        with Ledger.open(store, create=False) as ops:
            ops.handle(action(profile_id="p1", actor="ops", reason="stuck"))

    took: list[float | None] = []

    def run_sync() -> None:
        with leases_on(store, settings).checkout("p1", run_id="r", task_type="t") as lease:
            threading.Thread(target=revoke).start()
            took.append(blocked_until_lost(lease, 5))

    async def run_async() -> None:
        leases = aio.ProfileLeases.open(store, worker_id="w", settings=settings)
        async with leases, leases.checkout("p1", run_id="r", task_type="t") as lease:
            threading.Thread(target=revoke).start()
            took.append(blocked_until_lost(lease, 5))

    with pytest.raises(LeaseLost, match="revoked") as raised:
        asyncio.run(run_async()) if flavour == "async" else run_sync()
    (seconds,) = took
    assert seconds is not None
    assert seconds < 0.2 + 2
    assert str(raised.value).count("lease lost") == 1
    assert not [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert [e for e in history(store) if isinstance(e, ev.LeaseRevoked)]


def test_an_asyncio_release_survives_repeated_cancellation(
    store: str, settings: BrowserSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The task is cancelled, then cancelled three times more 5 ms apart while the lease is
    being released (a release that takes 100 ms): the release still completes, once, the
    heartbeat task and the revocation watch have ended, and the cancellation reaches the
    caller."""
    real = renewal.release

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.1)
        return real(*args, **kwargs)

    monkeypatch.setattr(renewal, "release", slow)
    held: list[aio.WorkerLease] = []

    async def work(leases: aio.ProfileLeases) -> None:
        async with leases.checkout("p1", run_id="r", task_type="t") as lease:
            held.append(lease)
            await asyncio.sleep(60)

    async def run() -> None:
        async with aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases:
            task = asyncio.create_task(work(leases))
            await asyncio.sleep(0.3)
            for _ in range(4):
                task.cancel()
                await asyncio.sleep(0.005)
            with pytest.raises(asyncio.CancelledError):
                await task

    asyncio.run(run())
    (lease,) = held
    assert lease.result is not None
    assert not lease.heartbeat_task_running
    assert not lease._revocations.alive
    releases = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert len(releases) == 1
    assert releases[0].outcome == "failure"
    beats_after = [
        e
        for e in history(store)[history(store).index(releases[0]) :]
        if isinstance(e, ev.LeaseHeartbeat)
    ]
    assert beats_after == []


def test_a_release_held_up_past_the_local_deadline_leaves_the_lease_not_lost(
    tmp_path: Path,
) -> None:
    """The block ends, its heartbeats stop, and the release waits on another process's write
    lock past the lease's local deadline, then succeeds: the lease is released, and not also
    reported lost (rev33 review: the guard's deadline timer, still armed, set ``lost`` behind
    the release, against "a lost lease is never released by the worker")."""
    import subprocess
    import sys

    from ledger import RegisterProfile
    from workers import ProfileLeases

    path = tmp_path / "custody.db"
    url = f"sqlite:///{path}"
    with Ledger.open(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="px"))
    hold = (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(3); "
        "c.execute('COMMIT')"
    )
    # A 4 s lease: its local deadline 2.7 s after the last renewal, the ledger's 4 s; the
    # lock is held 3 s, between the two (with 3 s the release got the lock at the ledger's
    # deadline itself, taken only while a save had 0.1 s of grace past it: rev35).
    holder: subprocess.Popen[str] | None = None
    try:
        with (
            ProfileLeases.open(url, worker_id="w1") as leases,
            leases.checkout("p1", run_id="r1", task_type="t", ttl_seconds=4) as lease,
        ):
            lease.step("work")
            holder = subprocess.Popen(
                [sys.executable, "-c", hold, str(path)], stdout=subprocess.PIPE, text=True
            )
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "locked"
            left = time.monotonic()
    finally:  # its pipe closed whatever happened (rev35: left open, it failed a later test)
        if holder is not None:
            holder.kill()
            holder.wait(timeout=30)
            if holder.stdout is not None:
                holder.stdout.close()
    assert time.monotonic() - left > 2.7, "the release did not wait past the local deadline"
    assert lease.result is not None
    assert not lease.lost.is_set(), lease.why_lost
