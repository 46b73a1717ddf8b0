"""A real Chromium on a profile directory, launched the way Playwright does it: its own process
group (it leads it), headless, no background networking. Debian's /usr/bin/chromium, installed
by ``scripts/bootstrap.sh --with-chromium`` (which ``scripts/test.sh`` passes)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CUSTODY_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--remote-debugging-port=0",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def require_chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/bootstrap.sh --with-chromium")
    return CHROMIUM


def launch(
    user_data_dir: Path, log: Path, *, spelled: str | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start Chromium on ``user_data_dir`` (given to it ``spelled`` another way, from ``cwd``,
    if asked) and wait until it is ready: its SingletonLock is there and DevTools listens
    (before that, a SIGHUP kills it without a clean exit)."""
    argument = f"--user-data-dir={user_data_dir if spelled is None else spelled}"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [require_chromium(), *FLAGS, argument, "about:blank"],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while not ((user_data_dir / "SingletonLock").is_symlink() and b"DevTools" in log.read_bytes()):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(
                f"Chromium did not start (exit {proc.returncode}): {log.read_text()[-500:]}"
            )
        time.sleep(0.05)
    return proc


def still_running(proc: subprocess.Popen[bytes], seconds: float = 3.0) -> bool:
    """Whether the browser has not exited ``seconds`` later: a signal's clean shutdown takes
    a moment, so a look right after a command cannot tell a stopped browser from a live one."""
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Kill what is left of a test's browser and its group, and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def live_members(pgid: int) -> list[int]:
    """Processes of the group that are not zombies."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def wait_until(what: str, done: object, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
