"""The review console behind HTTPS on a load balancer of another host.

Guarantee (docs/how-to/review-console.md, "Sign in and work the queue"): "Put the service
behind HTTPS when reviewers reach it over a network: the cookie is then marked Secure";
docs/how-to/serve-workers-over-http.md: "Several replicas behind a load balancer can share one
PostgreSQL". ``custody serve`` has no TLS of its own, so HTTPS is a proxy in front of it.

Found by a review: a TLS-terminating proxy that is not on the service's own host forwards the
reviewer's sign-in with ``Origin: https://console.example.com`` and ``X-Forwarded-Proto:
https``; uvicorn believes forwarded headers only from 127.0.0.1 and ``custody serve`` offered no
way to name the proxy, so the request was seen as ``http``, the origin check compared
``https://...`` with ``http://...``, and every form was refused 403. ``custody serve
--forwarded-allow-ips`` names the proxies whose forwarded headers are believed.
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


def _serve(tmp_path: Path, trusted: str) -> Iterator[tuple[str, str]]:
    """``custody serve --listen 0.0.0.0:0 --forwarded-allow-ips TRUSTED`` on a fresh SQLite
    store: its port and a reviewer's token."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        token = issue_token(ledger, "alice", Role.REVIEWER).token
    env = {**os.environ, "CUSTODY_STORE": url, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "custody",
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--forwarded-allow-ips",
            trusted,
        ],
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


_FORWARDED = {
    "host": "console.example.com",
    "origin": "https://console.example.com",
    "x-forwarded-proto": "https",
    "x-forwarded-for": "203.0.113.9",
    "content-type": "application/x-www-form-urlencoded",
}


@pytest.fixture
def trusting_every_proxy(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, "*")


@pytest.fixture
def trusting_another_proxy(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, "198.51.100.7")


def test_a_reviewer_signs_in_through_an_https_load_balancer_it_names(
    trusting_every_proxy: tuple[str, str],
) -> None:
    """Through the proxy the service believes (here any: ``*``), reached at the host's own
    address where there is one, as a load balancer on another host reaches it."""
    port, token = trusting_every_proxy
    address = _own_address() or "127.0.0.1"
    with httpx.Client(base_url=f"http://{address}:{port}", timeout=30) as balancer:
        signed = balancer.post("/console/sign-in", content=f"token={token}", headers=_FORWARDED)
    assert signed.status_code == 303, (signed.status_code, signed.text[-400:])
    cookie = signed.headers.get("set-cookie", "")
    assert "Secure" in cookie, cookie


def test_forwarded_headers_from_a_peer_not_named_are_not_believed(
    trusting_another_proxy: tuple[str, str],
) -> None:
    """Named proxies replace uvicorn's default (127.0.0.1): a peer not among them that claims
    https is taken at its word no more, so its form is refused as from another origin."""
    port, token = trusting_another_proxy
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as peer:
        signed = peer.post("/console/sign-in", content=f"token={token}", headers=_FORWARDED)
    assert signed.status_code == 403, (signed.status_code, signed.text[-400:])
    assert "set-cookie" not in signed.headers
