"""The review console behind HTTPS on a load balancer of another host refuses every form.

Guarantee (docs/how-to/review-console.md, "Sign in and work the queue"): "Put the service
behind HTTPS when reviewers reach it over a network: the cookie is then marked Secure";
docs/how-to/serve-workers-over-http.md: "Several replicas behind a load balancer can share one
PostgreSQL". ``custody serve`` has no TLS of its own, so HTTPS is a proxy in front of it.

Observed: a TLS-terminating proxy that is not on the service's own host (a load balancer)
forwards the reviewer's sign-in with ``Origin: https://console.example.com``,
``Host: console.example.com`` and ``X-Forwarded-Proto: https``; uvicorn trusts forwarded
headers only from 127.0.0.1 (``custody serve`` offers no way to name the proxy), so the request
is seen as ``http``, ``service._console.same_origin`` compares ``https://console.example.com``
with ``http://console.example.com``, and the sign-in (and every verdict form) is refused 403 "a
form is accepted only from the console's own pages". The same request through a proxy on
127.0.0.1 signs in with a Secure cookie.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ledger import Ledger, Role
from ledger.access import issue_token


def _own_address() -> str | None:
    """An address of this host that is not a loopback one (where another host reaches it)."""
    try:
        found = {
            info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        }
    except OSError:
        found = set()
    try:
        said = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False)
        found |= {a for a in said.stdout.split() if "." in a}
    except OSError:
        pass
    others = sorted(a for a in found if not a.startswith("127."))
    return others[0] if others else None


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``custody serve --listen 0.0.0.0:0`` on a fresh SQLite store: its port and a reviewer's
    token."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        token = issue_token(ledger, "alice", Role.REVIEWER).token
    env = {**os.environ, "CUSTODY_STORE": url, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "custody", "serve", "--listen", "0.0.0.0:0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        found = re.search(r":(\d+)$", process.stderr.readline().strip())
        assert found, "custody serve did not say where it listens"
        port = found.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "custody serve did not answer"
            time.sleep(0.05)
        yield port, token
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=40)
        if process.stderr is not None:
            process.stderr.close()


def test_a_reviewer_signs_in_through_an_https_load_balancer_on_another_host(
    service: tuple[str, str],
) -> None:
    port, token = service
    address = _own_address()
    if address is None:
        pytest.skip("this host has no address but loopback: no other host can reach it")
    forwarded = {
        "host": "console.example.com",
        "origin": "https://console.example.com",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "203.0.113.9",
        "content-type": "application/x-www-form-urlencoded",
    }
    # The load balancer reaches the service at the host's own address, not at 127.0.0.1.
    with httpx.Client(base_url=f"http://{address}:{port}", timeout=30) as balancer:
        signed = balancer.post("/console/sign-in", content=f"token={token}", headers=forwarded)
    assert signed.status_code == 303, (signed.status_code, signed.text[-400:])
    cookie = signed.headers.get("set-cookie", "")
    assert "Secure" in cookie, cookie
