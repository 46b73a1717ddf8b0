"""The browser's watchdog: a small process, started with each leased browser, that kills the
browser's process group when the lease's local deadline passes, whatever the worker is doing.

Why a process: a route handler in the worker decides every request only while the worker's
Python runs. Frozen (SIGSTOP, a suspended VM, a long GC pause), it decides nothing, yet the
Playwright driver and Chromium run on: a redirect chain the page started before the loss kept
reaching the site for seconds after the lease was marked stale, since Playwright calls a
route handler for the first URL of a chain only. The watchdog does not depend on the worker's
Python running: it is told each renewal's local deadline (``LeaseGuard.valid_until``, which
always falls before the ledger's) over a pipe, and at that deadline, or when the pipe closes
without a goodbye (the worker died), or when told the lease is gone, it sends SIGKILL to the
browser: every process of its group stops at once, so nothing more reaches any server.

The process runs this file as a script, with ``python -I -S`` and nothing but the standard
library (it imports neither the ledger nor Playwright), so it is up within tens of
milliseconds; it starts before the browser and is told the browser's pid once launched. A
browser it was not told of yet is found the way the inspector finds one: a process whose
command line holds exactly ``--user-data-dir=<the profile's directory>``. It lives in its own
session (a terminal's Ctrl-C is for the worker) and ignores SIGTERM and SIGINT: it ends on the
worker's word or when the worker is gone.

The pipe carries one command a line: ``deadline <seconds on CLOCK_MONOTONIC>``, ``browser
<pid>``, ``kill <why>`` (the lease is gone: kill now) and ``done`` (the worker closed the
browser itself: exit without killing).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time


def _browsers_on(user_data_dir: str) -> set[int]:
    """Pids whose command line holds exactly ``--user-data-dir=<user_data_dir>``."""
    wanted = f"--user-data-dir={user_data_dir}".encode()
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{name}/cmdline", "rb") as cmdline:
            if wanted in cmdline.read().split(b"\0"):
                found.add(int(name))
    return found


def _kill(pids: set[int], user_data_dir: str) -> list[int]:
    """SIGKILL each browser's process group (a process that leads no group, alone: never the
    group of whoever started it); the pids killed."""
    killed = []
    for pid in sorted(pids | _browsers_on(user_data_dir)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
    return killed


def _lines(fd: int, buffered: bytearray) -> list[str] | None:
    """The complete lines now readable on ``fd``; None at end of file."""
    chunk = os.read(fd, 4096)
    if not chunk:
        return None
    buffered += chunk
    *lines, rest = buffered.split(b"\n")
    buffered[:] = rest
    return [line.decode(errors="replace") for line in lines]


def watch(user_data_dir: str, deadline: float, label: str, fd: int = 0) -> str:
    """Run until the deadline passes, the pipe ends or a command says so; what ended it."""
    pids: set[int] = set()
    buffered = bytearray()
    while True:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return _stop(pids, user_data_dir, label, "the local deadline passed")
        lines = _lines(fd, buffered)
        if lines is None:
            return _stop(pids, user_data_dir, label, "the worker went away")
        for line in lines:
            command, _, argument = line.partition(" ")
            if command == "done":
                return "done"
            if command == "kill":
                return _stop(pids, user_data_dir, label, argument or "the lease is gone")
            if command == "deadline":
                deadline = float(argument)
            elif command == "browser":
                pids.add(int(argument))


def _stop(pids: set[int], user_data_dir: str, label: str, why: str) -> str:
    killed = _kill(pids, user_data_dir)
    if killed:
        print(f"custody watchdog: {label}: {why}: killed the browser {killed}", file=sys.stderr)
    return why


def main(argv: list[str]) -> int:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    user_data_dir, deadline, label = argv
    watch(user_data_dir, float(deadline), label)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
