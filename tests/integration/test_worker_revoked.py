"""A lease the ledger takes back reads as revoked to its worker, on every store: after a
force-release, an operator's quarantine or disable, or the sweep's stale mark, ``why_lost``
starts with ``revoked:`` whichever of the worker's calls meets the ending first (a step, the
renewal hub's heartbeat, the revocation watch); a loss of the worker's own (the ledger's
deadline passed) does not (docs/operations/workers.md, "Revocation in seconds").

rev39: only the revocation watch said "revoked: "; a heartbeat that met the ending first lost
the lease with the ledger's reason alone ("lease ended forced (force_release) at ..."), and the
guard keeps the first reason. To make a heartbeat meet it first, the watch polls once an hour.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ledger import Disable, ForceRelease, Ledger, Quarantine, RegisterProfile, Sweep
from workers import DIRECT, BrowserSettings, LeaseLost, ProfileLeases, _held, aio
from workers._guard import BLOCK_LEFT
from workers._revocation import RevocationWatch


def _operator(command: type[ForceRelease | Quarantine | Disable]) -> Callable[[str], object]:
    def act(store: str) -> object:
        with Ledger.open(store, create=False) as ops:
            return ops.handle(command(profile_id="p1", actor="ops", reason="stuck"))

    return act


def _sweep(store: str) -> object:
    """The sweep, on a clock past the lease's deadline (TTL 300): it marks the lease stale
    and settles it. The worker's own clock has not moved: its lease is held on its side."""
    later = datetime.now(UTC) + timedelta(seconds=301)
    with Ledger.open(store, create=False, clock=lambda: later) as sweeper:
        return sweeper.handle(Sweep())


# How another ledger takes the lease back, and what the ledger then answers a heartbeat.
ENDINGS: dict[str, tuple[Callable[[str], object], str]] = {
    "force_release": (_operator(ForceRelease), "lease ended forced (force_release) at "),
    "quarantine": (_operator(Quarantine), "lease ended revoked (operator) at "),
    "disable": (_operator(Disable), "lease ended forced (force_release) at "),
    "sweep": (_sweep, "lease ended stale (lease_expired) at "),
}


class FrozenClock:
    """The worker's monotonic clock, stopped: its local deadline never passes."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> str:
    with Ledger.open(store_url, create=False) as ledger:
        ledger.handle(
            RegisterProfile(
                profile_id="p1", account_id="a", proxy_id="px", user_data_dir=str(tmp_path / "p1")
            )
        )
    return store_url


@pytest.fixture
def settings(tmp_path: Path) -> BrowserSettings:
    return BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")


@pytest.fixture
def slow_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each lease's revocation watch polls once an hour: a heartbeat meets the ending first."""
    monkeypatch.setattr(_held, "RevocationWatch", partial(RevocationWatch, poll=3600))


@pytest.mark.usefixtures("slow_watch")
@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_a_step_that_meets_the_ending_first_says_revoked(
    store: str, settings: BrowserSettings, flavour: str, ending: str
) -> None:
    """The ledger ended the lease (another ledger: a force-release, a quarantine, a disable,
    the sweep) and the task's step is the first to hear it: ``why_lost`` is "revoked: " and
    the ledger's reason, and the LeaseLost raised says so, "lease lost" once."""
    end, said = ENDINGS[ending]
    clock = FrozenClock()
    leases: Any = (
        aio.ProfileLeases.open(store, worker_id="w", settings=settings, clock=clock)
        if flavour == "async"
        else ProfileLeases.open(store, worker_id="w", settings=settings, clock=clock)
    )
    held: list[Any] = []

    def run_sync() -> None:
        with leases, leases.checkout("p1", run_id="r", task_type="t") as lease:
            held.append(lease)
            end(store)
            lease.step("after_the_end")

    async def run_async() -> None:
        async with leases, leases.checkout("p1", run_id="r", task_type="t") as lease:
            held.append(lease)
            end(store)
            await lease.step("after_the_end")

    with pytest.raises(LeaseLost) as raised:
        asyncio.run(run_async()) if flavour == "async" else run_sync()
    (lease,) = held
    assert lease.lost.is_set()
    assert lease.why_lost.startswith(f"revoked: {said}"), lease.why_lost
    assert str(raised.value) == f"lease lost: {lease.lease_id}: {lease.why_lost}"
    assert raised.value.ended
    assert lease.result is None


def _custody(store: str, *args: str) -> None:
    """A ``custody`` command in a process of its own; it must succeed."""
    argv = [sys.executable, "-m", "custody", "--store", store, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


HUB_ENDINGS = {
    "force-release": "lease ended forced (force_release) at ",
    "quarantine": "lease ended revoked (operator) at ",
    "disable": "lease ended forced (force_release) at ",
}


@pytest.mark.usefixtures("slow_watch")
@pytest.mark.parametrize("command", list(HUB_ENDINGS))
def test_a_background_heartbeat_that_meets_the_ending_first_says_revoked(
    store: str, settings: BrowserSettings, command: str
) -> None:
    """The task is busy (no SDK call) with a lease of TTL 6, renewed by the process's renewal
    hub every 2 s; an operator's ``custody`` command in another process ends it: the hub's
    next heartbeat hears it first, and ``why_lost`` is "revoked: " and the ledger's reason
    (rev39: "lease ended forced (force_release) at ..." alone)."""
    leases = ProfileLeases.open(store, worker_id="w", settings=settings)
    with (  # noqa: PT012
        pytest.raises(LeaseLost) as raised,
        leases,
        leases.checkout("p1", run_id="r", task_type="t", ttl_seconds=6) as lease,
    ):
        _custody(store, command, "p1", "--actor", "ops", "--reason", "stuck")
        assert lease.lost.wait(6)
    assert lease.why_lost.startswith(f"revoked: {HUB_ENDINGS[command]}"), lease.why_lost
    assert (str(raised.value), raised.value.ended) == (
        f"lease lost: {lease.lease_id}: {lease.why_lost}",
        True,
    )


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_the_watch_that_meets_the_ending_first_says_revoked(
    store: str, settings: BrowserSettings, ending: str
) -> None:
    """The task is busy and no renewal is due for 100 s (TTL 300): the revocation watch
    (every 0.5 s) hears the ending first, and ``why_lost`` is "revoked: " and its reason."""
    end, _ = ENDINGS[ending]
    leases = ProfileLeases.open(store, worker_id="w", settings=settings, clock=FrozenClock())
    with (  # noqa: PT012
        pytest.raises(LeaseLost),
        leases,
        leases.checkout("p1", run_id="r", task_type="t") as lease,
    ):
        end(store)
        assert lease.lost.wait(5)
    assert lease.why_lost.startswith("revoked: the ledger ended lease-1@p1 ("), lease.why_lost


@pytest.mark.usefixtures("slow_watch")
def test_a_deadline_the_ledger_says_passed_is_not_a_revocation(
    store: str, settings: BrowserSettings
) -> None:
    """The worker's clock is stopped (its local deadline never passes) and the ledger's
    deadline for a TTL of 1 s passes: the step hears the ledger's "renewal deadline ...
    passed", the worker's own loss, and ``why_lost`` is that, not "revoked: "."""
    leases = ProfileLeases.open(store, worker_id="w", settings=settings, clock=FrozenClock())
    with (  # noqa: PT012
        pytest.raises(LeaseLost),
        leases,
        leases.checkout("p1", run_id="r", task_type="t", ttl_seconds=1) as lease,
    ):
        time.sleep(1.2)
        lease.step("too_late")
    assert lease.why_lost.startswith("renewal deadline "), lease.why_lost
    assert lease.why_lost.endswith(" passed"), lease.why_lost


def _leases(flavour: str, store: str, settings: BrowserSettings, clock: FrozenClock) -> Any:
    if flavour == "async":
        return aio.ProfileLeases.open(store, worker_id="w", settings=settings, clock=clock)
    return ProfileLeases.open(store, worker_id="w", settings=settings, clock=clock)


# Which of the worker's calls hears of the ending first, and what the task does then.
FIRST = ["the watch, then a step", "the watch, then the block's end", "the release"]


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("first", FIRST)
@pytest.mark.parametrize("ending", ["force_release", "sweep"])
def test_the_lease_lost_the_task_gets_says_revoked_and_ended_whoever_heard_first(
    store: str,
    settings: BrowserSettings,
    monkeypatch: pytest.MonkeyPatch,
    flavour: str,
    first: str,
    ending: str,
) -> None:
    """Another ledger ends the lease; the revocation watch hears it first and the task steps or
    leaves its block, or the watch is slowed and the release hears it first: the LeaseLost the
    task gets says ``why_lost`` ("revoked: ..."), and ``ended`` is True, whichever heard first
    (rev39: raised anew with ``ended`` False after the watch; the ledger's own error, without
    "revoked: ", when the release heard first)."""
    end, said = ENDINGS[ending]
    if first == "the release":
        monkeypatch.setattr(_held, "RevocationWatch", partial(RevocationWatch, poll=3600))
    leases = _leases(flavour, store, settings, FrozenClock())
    held: list[Any] = []

    def run_sync() -> None:
        with leases, leases.checkout("p1", run_id="r", task_type="t") as lease:
            held.append(lease)
            end(store)
            if first != "the release":
                assert lease.lost.wait(5)
            if first == "the watch, then a step":
                lease.step("after_the_end")

    async def run_async() -> None:
        async with leases, leases.checkout("p1", run_id="r", task_type="t") as lease:
            held.append(lease)
            end(store)
            if first != "the release":
                assert await asyncio.to_thread(lease.lost.wait, 5)
            if first == "the watch, then a step":
                await lease.step("after_the_end")

    with pytest.raises(LeaseLost) as raised:
        asyncio.run(run_async()) if flavour == "async" else run_sync()
    (lease,) = held
    expected = f"revoked: {said}" if first == "the release" else "revoked: the ledger ended "
    assert lease.why_lost.startswith(expected), lease.why_lost
    assert (str(raised.value), raised.value.why, raised.value.ended) == (
        f"lease lost: {lease.lease_id}: {lease.why_lost}",
        lease.why_lost,
        True,
    )
    assert lease.result is None


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_step_after_the_worker_released_the_lease_is_not_a_revocation(
    store: str, settings: BrowserSettings, flavour: str
) -> None:
    """A step after the checkout block released the lease (even past the local deadline) sends
    nothing and raises LeaseLost saying this worker released it, ``ended`` False: the ledger
    did not take it back. ``lost`` stays unset and ``why_lost`` empty (rev39: the step's
    heartbeat met the release's ending, "revoked: lease ended review (...)", and the lease read
    as revoked)."""
    clock = FrozenClock()
    leases = _leases(flavour, store, settings, clock)

    def run_sync() -> Any:
        with leases:
            with leases.checkout("p1", run_id="r", task_type="t") as lease:
                pass
            clock.now += 3600
            with pytest.raises(LeaseLost) as raised:
                lease.step("late")
        return lease, raised.value

    async def run_async() -> Any:
        async with leases:
            async with leases.checkout("p1", run_id="r", task_type="t") as lease:
                pass
            clock.now += 3600
            with pytest.raises(LeaseLost) as raised:
                await lease.step("late")
        return lease, raised.value

    lease, refused = asyncio.run(run_async()) if flavour == "async" else run_sync()
    assert lease.result is not None
    assert lease.result.message.startswith(f"{lease.lease_id} ended ")
    assert (str(refused), refused.ended) == (f"lease lost: {lease.lease_id}: {BLOCK_LEFT}", False)
    assert (lease.lost.is_set(), lease.why_lost) == (False, "")


@pytest.mark.parametrize("flavour", ["sync", "async"])
@pytest.mark.parametrize("report", ["visited", "expected_failure"])
def test_a_report_after_the_worker_released_the_lease_is_refused_as_a_step_is(
    store: str, settings: BrowserSettings, flavour: str, report: str
) -> None:
    """``visited(url)`` and ``expected_failure(reason)`` after the checkout block raise the
    LeaseLost a step raises then (the worker released it, ``ended`` False): what they report
    would be recorded nowhere (rev39: both were accepted in silence). The release stands as
    it was: a success, with no expected failure and the URL it had."""
    leases = _leases(flavour, store, settings, FrozenClock())
    argument = "https://shop.example/late" if report == "visited" else "out of stock"

    def run_sync() -> Any:
        with leases:
            with leases.checkout("p1", run_id="r", task_type="t") as lease:
                pass
            with pytest.raises(LeaseLost) as raised:
                getattr(lease, report)(argument)
        return lease, raised.value

    async def run_async() -> Any:
        async with leases:
            async with leases.checkout("p1", run_id="r", task_type="t") as lease:
                pass
            with pytest.raises(LeaseLost) as raised:
                getattr(lease, report)(argument)
        return lease, raised.value

    lease, refused = asyncio.run(run_async()) if flavour == "async" else run_sync()
    assert (str(refused), refused.ended) == (f"lease lost: {lease.lease_id}: {BLOCK_LEFT}", False)
    assert (lease.lost.is_set(), lease.why_lost) == (False, "")
    assert lease.evidence is not None
    assert (lease.evidence.outcome, lease.evidence.final_url) == ("success", None)
