"""The worker's side of a leased browser's watchdog process (``workers._watchdog``).

``BrowserWatch`` starts the process before the browser launches, armed with the lease guard's
local deadline, and feeds it from the guard: each renewal's new deadline, and when the lease
is lost, the word to kill the browser at once. ``done`` once the worker has closed the browser
itself. It is thread-safe (the heartbeat thread moves the deadline, any thread may lose the
lease). A watchdog that cannot be reached is logged once; the in-process guard still refuses
every routed request.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ledger import BrowserStatus
from workers import _watchdog as watchdog
from workers._guard import Clock, LeaseGuard
from workers._inspector import inspect

log = logging.getLogger("custody.workers")
DONE_WAIT_SECONDS = 5.0


class BrowserWatch:
    """One browser's watchdog, for one lease."""

    def __init__(self, user_data_dir: Path, guard: LeaseGuard, clock: Clock) -> None:
        # The watchdog reads CLOCK_MONOTONIC; a guard on another clock (a test's) is shifted.
        offset = 0.0 if clock is time.monotonic else time.monotonic() - clock()
        self._user_data_dir = user_data_dir
        self._lock = threading.Lock()
        self._gone = False
        self._pid = os.getpid()  # the worker's: a child forked from it tells the watchdog nothing
        self.browser: int | None = None  # the launched browser's pid, once known
        armed = repr(guard.valid_until + offset)
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                watchdog.__file__,
                str(user_data_dir),
                armed,
                guard.lease_id,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a terminal's Ctrl-C is for the worker
            text=True,
        )
        self._unwatch = guard.watch(
            lambda until: self._send(f"deadline {until + offset!r}"), self.kill
        )

    @property
    def pid(self) -> int:
        """The watchdog process's pid."""
        return self._proc.pid

    def launched(self) -> None:
        """The browser is up: tell the watchdog its pid (the lock's, checked by the inspector),
        so it need not look for it."""
        check = inspect(str(self._user_data_dir))
        if check.status is BrowserStatus.ALIVE and check.pid is not None:
            self.browser = check.pid
            self._send(f"browser {check.pid}")

    def kill(self, why: str) -> None:
        """The lease is gone: the watchdog kills the browser now, then exits."""
        self._send(f"kill {' '.join(why.split())}")
        with self._lock:
            self._gone = True

    def done(self) -> None:
        """The worker closed (or killed) the browser: the watchdog exits killing nothing."""
        if os.getpid() != self._pid:  # a forked child's copy: the watchdog is the parent's
            return
        self._unwatch()
        self._send("done")
        with self._lock:
            self._gone = True
            if self._proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self._proc.stdin.close()
        try:
            self._proc.wait(DONE_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _send(self, line: str) -> None:
        """Tell the watchdog ``line``; nothing from a process forked from the worker, whose
        lease it loses on its own clock, with no renewals (its copy of the pipe is the
        parent's: a ``kill`` would end the parent's browser)."""
        with self._lock:
            if self._gone or self._proc.stdin is None or os.getpid() != self._pid:
                return
            try:
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()
            except (OSError, ValueError) as e:
                self._gone = True
                if self._proc.poll() != 0:  # 0: it acted (the deadline passed) and ended
                    log.warning("the browser's watchdog (pid %s) is gone: %s", self._proc.pid, e)
