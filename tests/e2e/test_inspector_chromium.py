"""The inspector against a real Chromium: alive, stale lock, another host's lock; and
``custody inspect --stop-orphan``, refused while a lease holds the profile, carried out and
recorded once none does. ``why`` and ``review`` see the browser too."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_process import launch, live_members, stop, wait_until
from cli_process import Run, custody, error_line, event_types, ok

from ledger import BrowserStatus, RegisterProfile
from workers import inspect

pytestmark = pytest.mark.slow

PROFILE = "profile_shop_17"


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "profiles" / PROFILE
    directory.mkdir(parents=True)
    return directory


@pytest.fixture
def browser(profile_dir: Path, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A Chromium running on the profile's directory; killed and reaped after the test."""
    proc = launch(profile_dir, tmp_path / "chromium.log")
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture
def store(tmp_path: Path, profile_dir: Path) -> str:
    """A SQLite store with the profile registered on ``profile_dir``."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(_cli(url, tmp_path, "register", PROFILE, "--account", "a", "--proxy", "x",
            "--user-data-dir", str(profile_dir)))  # fmt: skip
    return url


def _cli(store: str, cwd: Path, *args: str) -> Run:
    return custody("--store", store, *args, cwd=cwd)


def _checkout(store: str, cwd: Path, ttl: int = 300) -> None:
    ok(_cli(store, cwd, "checkout", PROFILE, "--worker", "w1", "--run", "run_1", "--task", "t",
            "--ttl", str(ttl)))  # fmt: skip


def test_a_running_chromium_is_alive(
    browser: subprocess.Popen[bytes], profile_dir: Path, store: str, tmp_path: Path
) -> None:
    """The lock names this host and the browser's pid, /proc shows Chromium with exactly
    this --user-data-dir: alive, and ``custody inspect`` says so."""
    check = inspect(str(profile_dir))
    assert check.status is BrowserStatus.ALIVE, check.detail
    assert (check.pid, check.lock_host) == (browser.pid, socket.gethostname())
    shown = ok(_cli(store, tmp_path, "--json", "inspect", PROFILE)).json()
    assert shown["browser"]["status"] == "alive"
    assert shown["browser"]["pid"] == browser.pid


def test_a_killed_chromium_leaves_a_stale_lock_that_is_not_alive(
    browser: subprocess.Popen[bytes], profile_dir: Path
) -> None:
    """SIGKILL leaves SingletonLock behind: while the pid is a zombie, and once it is reaped,
    the inspector calls the lock stale, never alive."""
    os.killpg(browser.pid, signal.SIGKILL)
    wait_until("the browser to die", lambda: not live_members(browser.pid))
    assert (profile_dir / "SingletonLock").is_symlink()  # Chromium had no chance to remove it
    zombie = inspect(str(profile_dir))
    assert (zombie.status, zombie.pid) == (BrowserStatus.STALE_LOCK, browser.pid)
    assert "zombie" in zombie.detail
    browser.wait(timeout=10)
    reaped = inspect(str(profile_dir))
    assert reaped.status is BrowserStatus.STALE_LOCK
    assert "not running" in reaped.detail


def test_a_lock_naming_another_host_is_unknown(
    browser: subprocess.Popen[bytes], profile_dir: Path, store: str, tmp_path: Path
) -> None:
    """A lock naming another host cannot be judged here, even when its pid is a live
    Chromium on this host: "unknown: another host", in ``inspect`` and in ``why``."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "SingletonLock").symlink_to(f"other-box-{browser.pid}")
    check = inspect(str(elsewhere))
    assert check.status is BrowserStatus.UNKNOWN
    assert check.detail.startswith("another host")
    # The registered directory is the real one; point a second profile at the other.
    ok(_cli(store, tmp_path, "register", "p2", "--account", "a", "--proxy", "x",
            "--user-data-dir", str(elsewhere)))  # fmt: skip
    why = ok(_cli(store, tmp_path, "why", "p2")).out
    assert "browser: unknown: another host (the lock names other-box" in why


def test_stop_orphan_is_refused_while_a_lease_holds_the_profile(
    browser: subprocess.Popen[bytes], profile_dir: Path, store: str, tmp_path: Path
) -> None:
    """With a live lease, ``inspect --stop-orphan`` exits 1 naming the holder, the browser
    keeps running and nothing is recorded. (With the holder check removed from stop_orphan,
    the browser is killed and this test fails.)"""
    _checkout(store, tmp_path)
    run = _cli(store, tmp_path, "inspect", PROFILE, "--stop-orphan", "--actor", "ops")
    assert run.code == 1, run.err
    assert "held by worker w1" in error_line(run)
    assert browser.poll() is None
    assert inspect(str(profile_dir)).alive
    timeline = ok(_cli(store, tmp_path, "--json", "timeline", PROFILE)).json()
    assert "browser_stopped" not in event_types(timeline)


def test_an_orphan_blocks_review_until_stopped_then_the_stop_is_recorded(
    browser: subprocess.Popen[bytes], profile_dir: Path, store: str, tmp_path: Path
) -> None:
    """The worker's lease expires while its browser runs on: after the sweep, ``why`` shows
    the live browser keeping the profile blocked and a review may not return it. With no
    holder, ``--stop-orphan`` stops it with SIGHUP (clean exit, lock removed, no process of
    its group left), browser_stopped is in the timeline with pid, host and signal, and the
    review now returns the profile."""
    _checkout(store, tmp_path, ttl=1)
    wait_until("the deadline", lambda: "review_required" in ok(_cli(store, tmp_path, "sweep")).out)
    why = ok(_cli(store, tmp_path, "why", PROFILE)).out
    assert f"browser: alive: Chromium pid {browser.pid}" in why
    assert "stays blocked until it stops" in why
    review = ["review", PROFILE, "--reviewer", "rita", "--decision", "return", "--note", "ok"]
    refused = _cli(store, tmp_path, *review)
    assert refused.code == 1
    assert "still runs" in error_line(refused)

    stopped = ok(_cli(store, tmp_path, "--json", "inspect", PROFILE, "--stop-orphan",
                      "--actor", "ops"))  # fmt: skip
    assert stopped.json()["stopped"] == "SIGHUP"
    assert browser.wait(timeout=10) == 0  # Chromium's own clean exit
    wait_until("its group to be gone", lambda: not live_members(browser.pid))
    assert not (profile_dir / "SingletonLock").is_symlink()
    last = ok(_cli(store, tmp_path, "--json", "timeline", PROFILE)).json()[-1]
    assert last["event_type"] == "browser_stopped"
    assert (last["actor_id"], last["actor_role"]) == ("ops", "operator")
    for part in (f"pid={browser.pid}", f"host={socket.gethostname()}", "signal=SIGHUP"):
        assert part in last["detail"]
    assert "now available" in ok(_cli(store, tmp_path, *review)).out


def test_a_hung_orphan_is_killed_with_its_group_after_the_grace(
    browser: subprocess.Popen[bytes], profile_dir: Path, store: str, tmp_path: Path
) -> None:
    """A browser that cannot act on SIGHUP (stopped with SIGSTOP, as a hung one) is killed
    with SIGKILL of its process group after the grace; the stop is recorded as SIGKILL."""
    os.kill(browser.pid, signal.SIGSTOP)
    stopped = ok(_cli(store, tmp_path, "--json", "inspect", PROFILE, "--stop-orphan",
                      "--actor", "ops", "--grace", "1"))  # fmt: skip
    assert stopped.json()["stopped"] == "SIGKILL"
    assert browser.wait(timeout=10) == -signal.SIGKILL
    wait_until("its group to be gone", lambda: not live_members(browser.pid))
    last = ok(_cli(store, tmp_path, "--json", "timeline", PROFILE)).json()[-1]
    assert last["event_type"] == "browser_stopped"
    assert "signal=SIGKILL" in last["detail"]


@pytest.mark.parametrize("spelling", ["symlink", "relative"])
def test_a_browser_on_another_spelling_of_the_directory_is_alive_and_stoppable(
    spelling: str, profile_dir: Path, store: str, tmp_path: Path
) -> None:
    """rev38: a Chromium given the profile's directory through a symlink to it, or as ``.``
    from inside it, has the profile open. The inspector compared the spelled paths only, so it
    called the browser's lock stale: ``--stop-orphan`` stopped nothing and said nothing, and a
    review returned the profile to the pool under the running browser. Now it is alive, the
    review is refused, and ``--stop-orphan`` stops and records it."""
    alias = tmp_path / "alias"
    alias.symlink_to(profile_dir)
    spelled, cwd = (str(alias), None) if spelling == "symlink" else (".", profile_dir)
    _checkout(store, tmp_path)
    ok(_cli(store, tmp_path, "force-release", PROFILE, "--actor", "ops", "--reason", "gone"))
    browser = launch(profile_dir, tmp_path / "chromium.log", spelled=spelled, cwd=cwd)
    try:
        check = inspect(str(profile_dir))
        assert (check.status, check.pid) == (BrowserStatus.ALIVE, browser.pid), check.detail
        review = ["review", PROFILE, "--reviewer", "rita", "--decision", "return", "--note", "ok"]
        refused = _cli(store, tmp_path, *review)
        assert refused.code == 1, refused.out
        assert "still runs" in error_line(refused)
        stopped = ok(_cli(store, tmp_path, "--json", "inspect", PROFILE, "--stop-orphan",
                          "--actor", "ops", "--grace", "1"))  # fmt: skip
        assert stopped.json()["stopped"] in ("SIGHUP", "SIGKILL")
        browser.wait(timeout=10)
        last = ok(_cli(store, tmp_path, "--json", "timeline", PROFILE)).json()[-1]
        assert last["event_type"] == "browser_stopped"
        assert "now available" in ok(_cli(store, tmp_path, *review)).out
    finally:
        stop(browser)


@pytest.fixture
def shared_store(tmp_path: Path, profile_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store an older custody wrote, in which profile A (``PROFILE``) and profile B were
    registered on the same directory, migrated by ``custody init``."""
    import ledger._stores.store as store_module
    from ledger import Ledger

    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(store_module, "claimed_directories", lambda profile: [])
        with Ledger.open(url) as ledger:
            for profile in (PROFILE, "profile_b"):
                ledger.handle(
                    RegisterProfile(
                        profile_id=profile,
                        account_id=f"a_{profile}",
                        proxy_id="x",
                        user_data_dir=str(profile_dir),
                    )
                )
            ledger.store.execute("DROP TABLE custody_directories")  # type: ignore[attr-defined]
            ledger.store.execute("UPDATE custody_schema SET version = 4")  # type: ignore[attr-defined]
    ok(_cli(url, tmp_path, "init"))
    return url


def test_a_browser_of_another_profile_on_a_shared_directory_is_never_stopped(
    browser: subprocess.Popen[bytes], profile_dir: Path, shared_store: str, tmp_path: Path
) -> None:
    """The issue's story: A and B share a directory (a legacy store), A is leased and its
    browser runs. ``inspect B`` does not call it B's orphan, names A's lease and suggests no
    stop; ``--stop-orphan`` on B exits 1 naming A and the browser lives on; ``why B`` suggests
    no stop either. Once A's lease has ended, the marker A's launch left names A: B still may
    not stop it, and A may (recorded on A's stream, not B's)."""
    from workers import _profile_dir as marker

    _checkout(shared_store, tmp_path)
    lease = ok(_cli(shared_store, tmp_path, "--json", "who", PROFILE)).json()["lease"]
    shown = ok(_cli(shared_store, tmp_path, "--json", "inspect", "profile_b")).json()
    assert shown["browser"]["status"] == "alive"
    assert shown["orphan"] is False
    assert f"profile {PROFILE}" in shown["shared"]
    assert lease["lease_id"] in shown["shared"]
    text = ok(_cli(shared_store, tmp_path, "inspect", "profile_b")).out
    assert "--stop-orphan" not in text
    assert f"shared: {profile_dir} overlaps the directory of profile {PROFILE}" in text
    refused = _cli(shared_store, tmp_path, "inspect", "profile_b", "--stop-orphan",
                   "--actor", "ops")  # fmt: skip
    assert refused.code == 1
    assert lease["lease_id"] in error_line(refused)
    assert browser.poll() is None
    assert "--stop-orphan" not in ok(_cli(shared_store, tmp_path, "why", "profile_b")).out

    from ledger import Lease

    marker.claim(profile_dir, Lease.model_validate(lease))  # what A's launch wrote
    ok(_cli(shared_store, tmp_path, "force-release", PROFILE, "--actor", "ops", "--reason", "x"))
    shown = ok(_cli(shared_store, tmp_path, "--json", "inspect", "profile_b")).json()
    assert shown["orphan"] is False
    assert f"marker of profile {PROFILE}" in shown["shared"]
    refused = _cli(shared_store, tmp_path, "inspect", "profile_b", "--stop-orphan",
                   "--actor", "ops")  # fmt: skip
    assert refused.code == 1
    assert f"marker of profile {PROFILE}" in error_line(refused)
    assert browser.poll() is None
    stopped = ok(_cli(shared_store, tmp_path, "--json", "inspect", PROFILE, "--stop-orphan",
                      "--actor", "ops"))  # fmt: skip
    assert stopped.json()["stopped"] == "SIGHUP"
    for profile, expected in ((PROFILE, True), ("profile_b", False)):
        timeline = ok(_cli(shared_store, tmp_path, "--json", "timeline", profile)).json()
        assert ("browser_stopped" in event_types(timeline)) is expected, profile


def test_a_profile_released_with_its_browser_open_is_said_to_be_granted(
    browser: subprocess.Popen[bytes], profile_dir: Path, store: str, tmp_path: Path
) -> None:
    """rev22: a worker released cleanly with its Chromium still open: ``why`` said both
    "a checkout will be granted" and "the profile stays blocked until it stops", and the
    checkout was granted. It says what happens: granted, but its browser cannot start there
    until this one stops."""
    _checkout(store, tmp_path)
    release = ["release", f"lease-1@{PROFILE}", "--token", "1", "--outcome", "success",
               "--final-url", "https://x.example/"]  # fmt: skip
    ok(_cli(store, tmp_path, *release))
    why = ok(_cli(store, tmp_path, "why", PROFILE)).out
    assert "a checkout is granted, but its browser cannot start there until this one stops" in why
    assert "stays blocked" not in why
