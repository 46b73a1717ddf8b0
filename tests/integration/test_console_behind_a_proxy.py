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

A second review found the option's first default (``127.0.0.1``, always passed) had dropped
what uvicorn believes when it is not given: the ``FORWARDED_ALLOW_IPS`` environment variable,
else ``127.0.0.1,::1`` (a same-host proxy over IPv6). Not given, it is left to uvicorn.
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

_FORWARDED = {
    "host": "console.example.com",
    "origin": "https://console.example.com",
    "x-forwarded-proto": "https",
    "x-forwarded-for": "203.0.113.9",
    "content-type": "application/x-www-form-urlencoded",
}


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


def _serve(
    tmp_path: Path, listen: str, *options: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """``custody serve --listen LISTEN OPTIONS`` on a fresh SQLite store: its URL and a
    reviewer's token."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        token = issue_token(ledger, "alice", Role.REVIEWER).token
    env = {**os.environ, "CUSTODY_STORE": url, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "custody", "serve", "--listen", listen, *options],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline().strip()
        found = re.search(r"on (http://\S+)$", line)
        assert found, f"custody serve did not say where it listens: {line}"
        base = found.group(1)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "custody serve did not answer"
            time.sleep(0.05)
        yield base, token
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=40)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def trusting_every_proxy(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, "0.0.0.0:0", "--forwarded-allow-ips", "*")


@pytest.fixture
def trusting_another_proxy(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, "127.0.0.1:0", "--forwarded-allow-ips", "198.51.100.7")


@pytest.fixture
def proxy_named_in_the_environment(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, "127.0.0.1:0", env={"FORWARDED_ALLOW_IPS": "127.0.0.2"})


@pytest.fixture
def served_on_ipv6_loopback(tmp_path: Path) -> Iterator[tuple[str, str]]:
    assert "FORWARDED_ALLOW_IPS" not in os.environ, "run without FORWARDED_ALLOW_IPS set"
    yield from _serve(tmp_path, "[::1]:0")


def _signed_in(client: httpx.Client, token: str) -> httpx.Response:
    return client.post("/console/sign-in", content=f"token={token}", headers=_FORWARDED)


def test_a_reviewer_signs_in_through_an_https_load_balancer_it_names(
    trusting_every_proxy: tuple[str, str],
) -> None:
    """Through the proxy the service believes (here any: ``*``), reached at the host's own
    address where there is one, as a load balancer on another host reaches it."""
    base, token = trusting_every_proxy
    port = base.rsplit(":", 1)[1]
    address = _own_address() or "127.0.0.1"
    with httpx.Client(base_url=f"http://{address}:{port}", timeout=30) as balancer:
        signed = _signed_in(balancer, token)
    assert signed.status_code == 303, (signed.status_code, signed.text[-400:])
    cookie = signed.headers.get("set-cookie", "")
    assert "Secure" in cookie, cookie


def test_forwarded_headers_from_a_peer_not_named_are_not_believed(
    trusting_another_proxy: tuple[str, str],
) -> None:
    """Named proxies replace uvicorn's default: a peer not among them that claims https is
    taken at its word no more, so its form is refused as from another origin."""
    base, token = trusting_another_proxy
    with httpx.Client(base_url=base, timeout=30) as peer:
        signed = _signed_in(peer, token)
    assert signed.status_code == 403, (signed.status_code, signed.text[-400:])
    assert "set-cookie" not in signed.headers


def test_the_proxy_named_in_forwarded_allow_ips_env_is_still_believed(
    proxy_named_in_the_environment: tuple[str, str],
) -> None:
    """The proxy at 127.0.0.2, named by FORWARDED_ALLOW_IPS as uvicorn documents, signs a
    reviewer in over HTTPS (with the option's first default: 403, the variable ignored)."""
    base, token = proxy_named_in_the_environment
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=base, timeout=30, transport=transport) as proxy:
        signed = _signed_in(proxy, token)
    assert signed.status_code == 303, (signed.status_code, signed.text[-300:])
    assert "Secure" in signed.headers.get("set-cookie", "")


def test_a_proxy_on_the_ipv6_loopback_is_still_believed(
    served_on_ipv6_loopback: tuple[str, str],
) -> None:
    """A same-host proxy over ::1, believed by uvicorn's default, signs a reviewer in over
    HTTPS (with the option's first default: 403)."""
    base, token = served_on_ipv6_loopback
    with httpx.Client(base_url=base, timeout=30) as proxy:
        signed = _signed_in(proxy, token)
    assert signed.status_code == 303, (signed.status_code, signed.text[-300:])
    assert "Secure" in signed.headers.get("set-cookie", "")
