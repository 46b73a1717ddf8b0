"""SIGTERM while a lease is held, in this process (the worker SDK on the main thread, no
browser): the lease is released as a failure naming the signal and the step reached, then
``Terminated`` (exit status 143) leaves the block; a handler the application installed is
kept and run; what was there before comes back."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import Checkout, Heartbeat, Ledger, RegisterProfile
from ledger._domain import events as ev
from workers import DIRECT, BrowserSettings, ProfileLeases, Terminated, aio


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="px"))
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a", proxy_id="px"))
    return url


@pytest.fixture
def settings(tmp_path: Path) -> BrowserSettings:
    return BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")


@pytest.fixture(autouse=True)
def default_sigterm() -> Iterator[None]:
    """Each test starts from Python's default disposition and leaves it so."""
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, before)


def release_of(store: str, profile_id: str = "p1") -> ev.LeaseReleaseRequested:
    with Ledger.open(store, create=False) as ledger:
        history = ledger.history(profile_id)
    (release,) = [e for e in history if isinstance(e, ev.LeaseReleaseRequested)]
    return release


def state_of(store: str) -> str:
    with Ledger.open(store, create=False) as ledger:
        return ledger.view("p1").state.value


def sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_releases_naming_the_step_then_exits_143(
    store: str, settings: BrowserSettings
) -> None:
    """SIGTERM after a mutating step: the task is interrupted at once, the release is a
    failure saying "terminated by SIGTERM at step 'submit_order'", the unconfirmed mutation
    quarantines the profile, Terminated (a SystemExit of 143) leaves the block, and SIGTERM's
    default disposition is back."""
    leases = ProfileLeases.open(store, worker_id="w", settings=settings)
    with (  # noqa: PT012
        pytest.raises(Terminated) as stopped,
        leases.checkout("p1", run_id="r", task_type="t") as lease,
    ):
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        lease.step("submit_order", mutating=True)
        sigterm()
        time.sleep(10)
        pytest.fail("the task went on after SIGTERM")
    assert isinstance(stopped.value, SystemExit)
    assert stopped.value.code == 143
    release = release_of(store)
    assert (release.outcome, release.envelope.reason) == (
        "failure",
        "terminated by SIGTERM at step 'submit_order'",
    )
    assert state_of(store) == "quarantined"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_sigterm_during_a_ledger_call_waits_for_its_end(
    store: str, settings: BrowserSettings
) -> None:
    """SIGTERM arriving while the SDK is inside a heartbeat is not raised there: the heartbeat
    completes (it is recorded), then the step raises Terminated, and the release names the
    step; the profile, with no mutation, goes to review."""
    leases = ProfileLeases.open(store, worker_id="w", settings=settings)
    real = leases.ledger.handle

    def signalled_midway(command: Any) -> Any:
        if isinstance(command, Heartbeat):
            sigterm()
            time.sleep(0.05)  # the handler has run by now, inside this call
        return real(command)

    with (  # noqa: PT012
        pytest.raises(Terminated),
        leases.checkout("p1", run_id="r", task_type="t") as lease,
    ):
        leases.ledger.handle = signalled_midway  # type: ignore[method-assign]
        lease.step("checked_cart", safe=True)
    with Ledger.open(store, create=False) as ledger:
        beats = [e for e in ledger.history("p1") if isinstance(e, ev.LeaseHeartbeat)]
    assert [b.step for b in beats] == ["checked_cart"]
    assert release_of(store).envelope.reason == "terminated by SIGTERM at step 'checked_cart'"
    assert state_of(store) == "review_required"


def test_nested_leases_are_both_released_and_terminated_once(
    store: str, settings: BrowserSettings
) -> None:
    """Two leases held one inside the other: SIGTERM interrupts the inner block once, both
    leases are released naming the signal and their own last step, Terminated leaves both
    blocks, and the default disposition is back."""
    leases = ProfileLeases.open(store, worker_id="w", settings=settings)
    with (  # noqa: PT012
        pytest.raises(Terminated),
        leases.checkout("p1", run_id="r1", task_type="t") as outer,
        leases.checkout("p2", run_id="r2", task_type="t") as inner,
    ):
        outer.step("outer_step", safe=True)
        inner.step("inner_step", safe=True)
        sigterm()
        time.sleep(10)
    assert release_of(store, "p1").envelope.reason == "terminated by SIGTERM at step 'outer_step'"
    assert release_of(store, "p2").envelope.reason == "terminated by SIGTERM at step 'inner_step'"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


class AppStop(BaseException):
    """What the application's own SIGTERM handler raises."""


def test_the_applications_own_handler_is_kept_run_and_restored(
    store: str, settings: BrowserSettings
) -> None:
    """An application that installed its own SIGTERM handler keeps it: it runs (the SDK does
    not raise), its exception leaves the block, the release says SIGTERM came and what the
    handler raised, and afterwards the very same handler is installed."""
    calls: list[int] = []

    def app_handler(signum: int, frame: Any) -> None:
        calls.append(signum)
        raise AppStop("shutting down")

    signal.signal(signal.SIGTERM, app_handler)
    leases = ProfileLeases.open(store, worker_id="w", settings=settings)
    with (  # noqa: PT012
        pytest.raises(AppStop),
        leases.checkout("p1", run_id="r", task_type="t") as lease,
    ):
        lease.step("reading", safe=True)
        sigterm()
        time.sleep(10)
    assert calls == [signal.SIGTERM]
    assert release_of(store).envelope.reason == (
        "terminated by SIGTERM at step 'reading' (AppStop: shutting down)"
    )
    assert signal.getsignal(signal.SIGTERM) is app_handler


def test_an_ignored_sigterm_stays_ignored(store: str, settings: BrowserSettings) -> None:
    """SIG_IGN: the SDK installs nothing; the lease ends as the task says."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    leases = ProfileLeases.open(store, worker_id="w", settings=settings)
    with leases.checkout("p1", run_id="r", task_type="t") as lease:
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        sigterm()
        lease.expected_failure("nothing to do")
    assert release_of(store).outcome == "expected_failure"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


def test_sigterm_stops_an_asyncio_lease_the_same_way(store: str, settings: BrowserSettings) -> None:
    """On asyncio the block's task is cancelled: the release names SIGTERM and the step,
    Terminated leaves asyncio.run, and the default disposition is back."""

    async def run() -> None:
        async with (
            aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases,
            leases.checkout("p1", run_id="r", task_type="t") as lease,
        ):
            await lease.step("polling", safe=True)
            asyncio.get_running_loop().call_later(0.1, sigterm)
            await asyncio.sleep(10)

    with pytest.raises(Terminated) as stopped:
        asyncio.run(run())
    assert stopped.value.code == 143
    assert release_of(store).envelope.reason == "terminated by SIGTERM at step 'polling'"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


TWO_LEASES_THEN_SIGTERM = """
import asyncio, os, signal, sys, time
from workers import DIRECT, BrowserSettings, aio

store, evidence = sys.argv[1], sys.argv[2]
fsync_seconds, cleanup_seconds = float(sys.argv[3]), float(sys.argv[4])
settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=evidence)
fsync = os.fsync

def slow_fsync(fd):  # a slow disk, when fsync_seconds says so
    time.sleep(fsync_seconds)
    fsync(fd)

os.fsync = slow_fsync

async def run():
    async with aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases:
        held = asyncio.Event()

        async def first():
            async with leases.checkout("p1", run_id="r1", task_type="t") as lease:
                try:
                    await lease.step("one", safe=True)
                    held.set()
                    await asyncio.sleep(10)
                finally:  # the block's own cleanup (a page closed, a file flushed)
                    await asyncio.sleep(cleanup_seconds)

        async def second():
            await held.wait()
            async with leases.checkout("p2", run_id="r2", task_type="t") as lease:
                await lease.step("two", safe=True)
                os.kill(os.getpid(), signal.SIGTERM)
                await asyncio.sleep(10)

        await asyncio.gather(first(), second())

asyncio.run(run())
"""


@pytest.mark.parametrize(
    ("fsync_seconds", "cleanup_seconds"),
    [(0.0, 0.0), (1.0, 0.0), (0.0, 0.5)],
    ids=["disk", "slow_disk", "slow_cleanup"],
)
def test_two_asyncio_leases_stopped_together_leave_nothing_behind(
    store: str, tmp_path: Path, fsync_seconds: float, cleanup_seconds: float
) -> None:
    """Two leases held side by side on one loop, then SIGTERM: both are released naming their
    steps, the process exits 143, and leaving them raises nothing more, whichever of a lease's
    two blocks asyncio finalises first (rev27's second read: ``ValueError: list.remove(x)``
    when the process ended). On a slow disk too: the first lease's evidence is still being
    synced off the loop when the second's ``Terminated`` reaches ``asyncio.run``'s main task,
    whose leaving of ``ProfileLeases`` waits for that release before the door closes and the
    loop stops (85e43b2: the door closed under it, and the release never came). So too when
    the first lease's block is still in its own cleanup then (review 268: it was left live,
    unsaid)."""
    import subprocess

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            TWO_LEASES_THEN_SIGTERM,
            store,
            str(tmp_path / "ev"),
            str(fsync_seconds),
            str(cleanup_seconds),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 143, done.stderr
    assert "ValueError" not in done.stderr, done.stderr
    assert release_of(store, "p1").envelope.reason == "terminated by SIGTERM at step 'one'"
    assert release_of(store, "p2").envelope.reason == "terminated by SIGTERM at step 'two'"


# A worker process whose SIGTERM comes just after the ledger answered its checkout, before the
# block runs: in the SDK's hands from the checkout on, never Python's default (which killed the
# process and left a granted lease to go stale). {flavour} is sync or aio.
ANSWERED_THEN_SIGTERM = """
import asyncio, os, signal, sys, time
from ledger import Checkout
from workers import DIRECT, BrowserSettings, ProfileLeases, aio

store, evidence, flavour = sys.argv[1:4]
settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=evidence)

def sigterm():
    os.kill(os.getpid(), signal.SIGTERM)

if flavour == "sync":
    leases = ProfileLeases.open(store, worker_id="w", settings=settings)
    real = leases.ledger.handle

    def handle(command):
        try:
            return real(command)
        finally:
            if isinstance(command, Checkout):
                sigterm()
                time.sleep(0.05)  # the handler has run by now, the answer still on its way

    leases.ledger.handle = handle
    with leases.checkout("p1", run_id="r", task_type="t") as lease:
        print("the block ran", flush=True)
else:
    async def run():
        async with aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases:
            real = leases.call

            async def call(use):
                try:
                    return await real(use)
                finally:
                    sigterm()
                    await asyncio.sleep(0.05)

            leases.call = call
            async with leases.checkout("p1", run_id="r", task_type="t") as lease:
                print("the block ran", flush=True)

    asyncio.run(run())
"""


def worker_answered_then_sigterm(store: str, tmp_path: Path, flavour: str) -> Any:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", ANSWERED_THEN_SIGTERM, store, str(tmp_path / "ev"), flavour],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_sigterm_just_after_a_granted_checkout_releases_it_before_the_block(
    store: str, tmp_path: Path, flavour: str
) -> None:
    """SIGTERM between the ledger granting the checkout and the block: the process is not
    killed with the lease left to go stale; the block never runs, the lease is released as a
    failure "before its first step" (so the profile goes to review), and the process exits
    143."""
    done = worker_answered_then_sigterm(store, tmp_path, flavour)
    assert done.returncode == 143, done.stderr
    assert "the block ran" not in done.stdout
    assert release_of(store).envelope.reason == "terminated by SIGTERM before its first step"
    assert state_of(store) == "review_required"


def test_sigterm_just_after_a_denied_checkout_exits_143_writing_nothing(
    store: str, tmp_path: Path
) -> None:
    """The same SIGTERM after a denial: Terminated (143) instead of the denial, nothing
    written, the other worker's lease untouched."""
    with Ledger.open(store, create=False) as ledger:
        ledger.handle(Checkout(profile_id="p1", worker_id="other", run_id="r0", task_type="t"))
        before = len(ledger.history("p1"))
    done = worker_answered_then_sigterm(store, tmp_path, "sync")
    assert done.returncode == 143, done.stderr
    with Ledger.open(store, create=False) as ledger:
        assert len(ledger.history("p1")) == before
    assert state_of(store) == "leased"
