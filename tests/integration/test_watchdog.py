"""The browser's watchdog process with real processes (no browser needed): a stand-in
"browser" is a process leading its own group whose command line holds the profile's
``--user-data-dir=``, with a child in the group, as Chromium's renderers are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workers._browser_watch import BrowserWatch
from workers._guard import LeaseGuard
from workers._timing import RenewalTiming

# The stand-in: sleeps, with a child of its own in its process group.
BROWSER = (
    "import subprocess, sys, time;"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']);"
    "time.sleep(60)"
)


class StandIn:
    """A 'browser' on ``user_data_dir``: its group leader and the group's members."""

    def __init__(self, user_data_dir: Path, *, own_group: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BROWSER, f"--user-data-dir={user_data_dir}"],
            start_new_session=own_group,
        )
        deadline = time.monotonic() + 10
        while len(self.members()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)

    def members(self) -> list[int]:
        """Live members of the stand-in's process group (zombies excluded)."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                fields = Path(f"/proc/{name}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == self.proc.pid and fields[0] not in ("Z", "X"):
                found.append(int(name))
        return found

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[StandIn]:
    stand_in = StandIn(tmp_path / "profile")
    yield stand_in
    stand_in.stop()


def guard(ttl: float) -> LeaseGuard:
    return LeaseGuard("lease-1@p1", RenewalTiming.from_ttl(ttl), time.monotonic())


def dead_within(stand_in: StandIn, seconds: float) -> float | None:
    """Seconds until the stand-in's whole group was gone, or None if it outlived ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not stand_in.alive() and not stand_in.members():
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def test_the_browser_group_is_killed_at_the_local_deadline_and_not_before(
    tmp_path: Path, browser: StandIn
) -> None:
    """Armed with the guard's deadline (2/3 of a 1.2 s TTL) and told of each renewal, the
    watchdog leaves the browser alone while renewals come, and once they stop kills its whole
    group (the child too) after the local deadline and before the ledger's (the TTL after the
    last renewal), without the worker saying a word."""
    ttl = 1.2
    lease_guard = guard(ttl)
    watch = BrowserWatch(tmp_path / "profile", lease_guard, time.monotonic)
    try:
        for _ in range(3):
            time.sleep(0.5)
            renewed = time.monotonic()
            lease_guard.renewed(renewed)
        assert browser.alive()
        assert dead_within(browser, 2.0) is not None
        dead_at = time.monotonic()
        assert renewed + 2 * ttl / 3 <= dead_at < renewed + ttl
    finally:
        watch.done()


def test_a_lost_lease_kills_at_once_and_a_goodbye_kills_nothing(
    tmp_path: Path, browser: StandIn
) -> None:
    """done(): the watchdog exits and the browser lives on. A second watchdog, told the lease
    is lost, kills the browser at once."""
    quiet = BrowserWatch(tmp_path / "profile", guard(30), time.monotonic)
    quiet.launched()
    quiet.done()
    time.sleep(0.3)
    assert browser.alive()
    lease_guard = guard(30)
    watch = BrowserWatch(tmp_path / "profile", lease_guard, time.monotonic)
    lease_guard.lose("revoked by an operator")
    gone = dead_within(browser, 2.0)
    watch.done()
    assert gone is not None
    assert gone < 0.5


def test_a_worker_that_dies_takes_its_browser_with_it(tmp_path: Path, browser: StandIn) -> None:
    """The pipe closes without a goodbye (the worker was SIGKILLed): the watchdog kills the
    browser long before the deadline."""
    watchdog = Path(__file__).parents[2] / "workers" / "_watchdog.py"
    deadline = repr(time.monotonic() + 60)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", str(watchdog), str(tmp_path / "profile"), deadline, "x"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    time.sleep(0.2)
    assert browser.alive()
    assert proc.stdin is not None
    proc.stdin.close()
    assert dead_within(browser, 2.0) is not None
    assert proc.wait(timeout=5) == 0
    assert proc.stderr is not None
    with proc.stderr:
        assert b"the worker went away: killed the browser" in proc.stderr.read()


def test_a_process_leading_no_group_is_killed_alone(tmp_path: Path) -> None:
    """A process naming the directory that leads no group (in ours, here) is killed by itself:
    the watchdog never signals the group of whoever started it."""
    stray = StandIn(tmp_path / "profile", own_group=False)
    lease_guard = guard(30)
    try:
        watch = BrowserWatch(tmp_path / "profile", lease_guard, time.monotonic)
        lease_guard.lose("gone")
        stray.proc.wait(timeout=5)
        watch.done()
    finally:
        stray.stop()
    assert stray.proc.returncode == -signal.SIGKILL


def test_it_starts_fast_and_imports_neither_the_ledger_nor_playwright(tmp_path: Path) -> None:
    """The watchdog's own imports are the standard library's: what the process loads never
    names ledger, workers, pydantic or playwright, and a start-to-goodbye takes well under a
    second (it is measured in tens of milliseconds; the bound leaves room for a loaded host)."""
    watchdog = Path(__file__).parents[2] / "workers" / "_watchdog.py"
    probe = (
        "import runpy, sys; sys.argv = ['w', '/none', '1e12', 'x'];"
        f"runpy.run_path({str(watchdog)!r}, run_name='not_main');"
        "print(sorted(sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    for name in ("ledger", "workers", "pydantic", "playwright", "eventsourcing"):
        assert f"'{name}" not in loaded, name
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-I", "-S", str(watchdog), "/none", repr(time.monotonic() + 60), "x"],
        input=b"done\n",
        check=True,
    )
    assert time.monotonic() - started < 1.0
