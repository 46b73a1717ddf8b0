"""How the inspector judges a lock and a process, on a fake host (no /proc, no Chromium): each
way a SingletonLock can be stale, a lock of another host, and the exact-directory rule. The
real Chromium cases are in tests/e2e/test_inspector_chromium.py."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import pytest

from ledger import BrowserStatus
from workers._inspector import Process, inspect

DIR = "/profiles/shop_17"
CHROMIUM = "/usr/lib/chromium/chromium"


@dataclass
class FakeHost:
    """A host whose lock and processes a test writes down."""

    hostname: str = "vm"
    lock: str | None = None
    unreadable: bool = False
    processes: dict[int, Process] = field(default_factory=dict)
    sent: list[tuple[int, signal.Signals, bool]] = field(default_factory=list)

    def name(self) -> str:
        return self.hostname

    def lock_target(self, user_data_dir: str) -> str | None:
        if self.unreadable:
            raise OSError(22, "Invalid argument")
        return self.lock

    def process(self, pid: int) -> Process | None:
        return self.processes.get(pid)

    def send(self, pid: int, sig: signal.Signals, *, group: bool) -> None:
        self.sent.append((pid, sig, group))


def _browser(
    pid: int = 4242,
    *,
    state: str = "S",
    exe: str | None = CHROMIUM,
    dir_arg: str = DIR,
    cwd: str | None = "/",
) -> Process:
    args = (CHROMIUM, "--headless", f"--user-data-dir={dir_arg}", "about:blank")
    return Process(pid=pid, state=state, pgid=pid, exe=exe, cmdline=args, cwd=cwd)


def _host(proc: Process | None = None, lock: str = "vm-4242") -> FakeHost:
    return FakeHost(lock=lock, processes={proc.pid: proc} if proc else {})


def test_a_chromium_on_exactly_this_directory_is_alive() -> None:
    """Lock on this host, pid running, exe Chromium, --user-data-dir this directory: alive."""
    check = inspect(DIR, _host(_browser()))
    assert check.status is BrowserStatus.ALIVE
    assert (check.pid, check.lock_host, check.host) == (4242, "vm", "vm")


def test_a_trailing_slash_names_the_same_directory() -> None:
    """``--user-data-dir=/p/a/`` is the directory /p/a."""
    assert inspect(DIR, _host(_browser(dir_arg=DIR + "/"))).alive


def test_a_relative_directory_is_resolved_against_the_browsers_cwd() -> None:
    """``--user-data-dir=shop_17`` started in /profiles, or ``.`` started in the directory, is
    the directory; the same words started elsewhere are another one; and started where this
    host cannot read (another user's process) they cannot be judged: unknown, not stale."""
    assert inspect(DIR, _host(_browser(dir_arg="shop_17", cwd="/profiles"))).alive
    assert inspect(DIR, _host(_browser(dir_arg=".", cwd=DIR))).alive
    elsewhere = inspect(DIR, _host(_browser(dir_arg=".", cwd="/home/op")))
    assert elsewhere.status is BrowserStatus.STALE_LOCK
    unreadable = inspect(DIR, _host(_browser(dir_arg=".", cwd=None)))
    assert unreadable.status is BrowserStatus.UNKNOWN
    assert "unreadable cwd" in unreadable.detail


@pytest.mark.parametrize(
    ("proc", "said"),
    [
        (None, "not running"),
        (_browser(state="Z"), "zombie"),
        (_browser(exe="/usr/bin/python3.11"), "not Chromium"),
        (_browser(dir_arg=DIR + "_old"), "another --user-data-dir"),  # a prefix is not a match
        (_browser(dir_arg="/profiles"), "another --user-data-dir"),
    ],
)
def test_a_lock_whose_browser_is_gone_is_stale(proc: Process | None, said: str) -> None:
    """Dead pid, zombie, pid reused by another program, or a Chromium on another directory:
    the lock is stale, never alive."""
    check = inspect(DIR, _host(proc))
    assert check.status is BrowserStatus.STALE_LOCK
    assert said in check.detail


def test_a_lock_naming_another_host_is_unknown() -> None:
    """This host cannot see another host's processes: unknown, saying so, even if a local
    process happens to have the lock's pid."""
    check = inspect(DIR, _host(_browser(), lock="other-box-4242"))
    assert check.status is BrowserStatus.UNKNOWN
    assert check.detail.startswith("another host (the lock names other-box, pid 4242")
    assert check.lock_host == "other-box"


def test_a_hostname_with_dashes_is_split_at_the_last_one() -> None:
    """``worker-host-7-123`` is host ``worker-host-7``, pid 123."""
    host = FakeHost(hostname="worker-host-7", lock="worker-host-7-123")
    host.processes[123] = _browser(123)
    check = inspect(DIR, host)
    assert (check.status, check.lock_host, check.pid) == (BrowserStatus.ALIVE, "worker-host-7", 123)


@pytest.mark.parametrize("lock", ["garbage", "vm-", "vm-0", "-12", "vm-12x"])
def test_a_malformed_lock_is_unknown(lock: str) -> None:
    """A lock that does not read host-pid is not guessed at."""
    assert inspect(DIR, _host(_browser(), lock=lock)).status is BrowserStatus.UNKNOWN


def test_no_lock_is_not_running_and_an_unreadable_one_is_unknown() -> None:
    """No SingletonLock: no browser has the directory; a lock that is not a link: unknown."""
    assert inspect(DIR, FakeHost()).status is BrowserStatus.NOT_RUNNING
    assert inspect(DIR, FakeHost(unreadable=True)).status is BrowserStatus.UNKNOWN


def test_an_unreadable_executable_is_unknown_not_stale() -> None:
    """A running pid whose exe cannot be read (another user's) may be the browser: unknown."""
    assert inspect(DIR, _host(_browser(exe=None))).status is BrowserStatus.UNKNOWN


@pytest.mark.parametrize(
    "host",
    [
        _host(_browser(), lock="other-box-4242"),  # another host's lock
        _host(_browser(), lock="garbage"),  # a lock that is not host-pid
        FakeHost(unreadable=True),  # a lock that is not a link
        _host(_browser(exe=None)),  # an executable that cannot be read
        _host(None),  # a dead pid
        _host(_browser(state="Z")),  # a zombie
        _host(_browser(exe="/usr/bin/python3.11")),  # a reused pid
        _host(_browser(dir_arg="/profiles")),  # a Chromium on another directory
    ],
)
def test_a_detail_does_not_repeat_its_status(host: FakeHost) -> None:
    """The status is shown before the detail ("unknown: another host (...)"), so the detail
    does not start with the status again ("unknown: unknown: another host")."""
    check = inspect(DIR, host)
    said = check.status.value.replace("_", " ")
    assert not check.detail.lower().startswith(said), check.detail
