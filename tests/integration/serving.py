"""A real ``custody serve`` process for the service's tests: started on a free port, its URL
read from the line it prints, stopped with SIGTERM (as a deploy stops it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ledger import Ledger, Role
from ledger.access import issue_token

_SERVING = re.compile(r"on (http://\S+)")
START_SECONDS = 30


@dataclass
class Served:
    """A running service: ``url``, a token per role (actor ``<role>-1``), the process."""

    store_url: str
    url: str
    process: subprocess.Popen[str]
    tokens: dict[Role, str] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)  # what it wrote to standard error
    _drain: threading.Thread | None = None

    def client(self, role: Role | None = None, token: str | None = None) -> httpx.Client:
        said = token if token is not None else (self.tokens[role] if role else None)
        headers = {"Authorization": f"Bearer {said}"} if said else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def token(self, actor: str, role: Role) -> str:
        with Ledger.open(self.store_url) as ledger:
            return issue_token(ledger, actor, role).token

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            if self._drain is not None:
                self._drain.join(10)
            if self.process.stderr is not None:
                self.process.stderr.close()


def serve(
    store_url: str,
    *,
    tokens: bool = True,
    log: Path | None = None,
    env: dict[str, str] | None = None,
) -> Served:
    """Start ``custody serve --listen 127.0.0.1:0`` on ``store_url`` and wait until it answers
    (``env``: variables to add to the process's environment)."""
    env = {**os.environ, **(env or {}), "CUSTODY_STORE": store_url, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "custody", "serve", "--listen", "127.0.0.1:0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    line = process.stderr.readline()
    found = _SERVING.search(line)
    if found is None:
        process.kill()
        rest = process.stderr.read()
        raise AssertionError(f"custody serve did not start: {line}{rest}")
    served = Served(store_url, found.group(1), process)
    # Read what it says from now on, so that a full pipe never blocks the service.
    stderr = process.stderr
    served._drain = threading.Thread(target=lambda: served.said.extend(stderr), daemon=True)
    served._drain.start()
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            if httpx.get(f"{served.url}/healthz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            served.stop()
            raise AssertionError("custody serve did not answer /healthz")
        time.sleep(0.05)
    if tokens:
        with Ledger.open(store_url) as ledger:
            for role in Role:
                served.tokens[role] = issue_token(ledger, f"{role.value}-1", role).token
    return served


def peak_kb(pid: int) -> int:
    """The process's peak resident memory so far (``VmHWM``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")
