"""Running ``worker_process.py`` as a real worker: start it, read its JSON lines, signal it."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ledger import Ledger, RegisterProfile

SCRIPT = Path(__file__).parent / "worker_process.py"
PROFILE = "profile_shop_17"


def store_with_profile(
    tmp_path: Path, profile_id: str = PROFILE, url: str | None = None
) -> tuple[str, Path]:
    """A store holding the profile, registered with a directory under tmp_path: a new SQLite
    file, or the (empty) store at ``url``, initialised here."""
    user_data_dir = tmp_path / "profiles" / profile_id
    url = url or f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        ledger.handle(
            RegisterProfile(
                profile_id=profile_id,
                account_id="acct",
                proxy_id="px",
                user_data_dir=str(user_data_dir),
            )
        )
    return url, user_data_dir


class Worker:
    """A worker subprocess; its stdout lines arrive as dicts in ``events``."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, event: str, timeout: float = 60) -> dict[str, Any]:
        """The next line naming ``event``; fails with the worker's stderr if it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.events.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if got.get("event") == event:
                return got
        self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        raise AssertionError(f"worker never said {event!r}; stderr:\n{err[-3000:]}")

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Wait for the worker to exit: its exit code and stderr."""
        _, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, err


def wait_until(condition: Any, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())
