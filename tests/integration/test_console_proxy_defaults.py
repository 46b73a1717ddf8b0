"""review8: ``custody serve --forwarded-allow-ips`` (dc2cbb8) replaced what uvicorn believed
before it, silently.

Guarantee (docs/how-to/review-console.md: "Put the service behind HTTPS when reviewers reach
it over a network: the cookie is then marked Secure"; dc2cbb8 only *adds* a way to name a proxy
on another host): a TLS-terminating proxy the service believed before the option keeps being
believed, so its reviewers' forms are not refused.

Before dc2cbb8, ``custody serve`` left ``forwarded_allow_ips`` to uvicorn (0.55), which takes
the ``FORWARDED_ALLOW_IPS`` environment variable (uvicorn's documented knob, the only one
``custody serve`` had), else ``127.0.0.1,::1``. Now the option's default ``127.0.0.1`` is always
passed, so

* a deployment that named its proxy in ``FORWARDED_ALLOW_IPS`` has it ignored: the proxy's
  ``X-Forwarded-Proto: https`` is not believed, the console compares ``https://host`` with
  ``http://host`` and refuses every form 403 (observed: 403 on sign-in; expected 303);
* a proxy on the same host reaching the service over IPv6 loopback (``--listen [::1]:8420``,
  nginx's ``proxy_pass http://[::1]:8420``) is no longer believed: again 403 on every form.
"""

from __future__ import annotations

import os
import re
import signal
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


def _serve(tmp_path: Path, listen: str, extra_env: dict[str, str]) -> Iterator[tuple[str, str]]:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        token = issue_token(ledger, "alice", Role.REVIEWER).token
    env = {**os.environ, "CUSTODY_STORE": url, "PYTHONUNBUFFERED": "1", **extra_env}
    process = subprocess.Popen(
        [sys.executable, "-m", "custody", "serve", "--listen", listen],
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
def proxy_named_in_the_environment(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield from _serve(tmp_path, "127.0.0.1:0", {"FORWARDED_ALLOW_IPS": "127.0.0.2"})


@pytest.fixture
def served_on_ipv6_loopback(tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if k == "FORWARDED_ALLOW_IPS"}
    assert not env, "run without FORWARDED_ALLOW_IPS set"
    yield from _serve(tmp_path, "[::1]:0", {})


def test_the_proxy_named_in_forwarded_allow_ips_env_is_still_believed(
    proxy_named_in_the_environment: tuple[str, str],
) -> None:
    """The proxy at 127.0.0.2 (named by FORWARDED_ALLOW_IPS, as uvicorn documents) signs a
    reviewer in over HTTPS: 303 and a Secure cookie. On main: 403, the env var ignored."""
    base, token = proxy_named_in_the_environment
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=base, timeout=30, transport=transport) as proxy:
        signed = proxy.post("/console/sign-in", content=f"token={token}", headers=_FORWARDED)
    assert signed.status_code == 303, (signed.status_code, signed.text[-300:])
    assert "Secure" in signed.headers.get("set-cookie", "")


def test_a_proxy_on_the_ipv6_loopback_is_still_believed(
    served_on_ipv6_loopback: tuple[str, str],
) -> None:
    """A same-host proxy over ::1 (believed by uvicorn's default before dc2cbb8) signs a
    reviewer in over HTTPS: 303 and a Secure cookie. On main: 403."""
    base, token = served_on_ipv6_loopback
    with httpx.Client(base_url=base, timeout=30) as proxy:
        signed = proxy.post("/console/sign-in", content=f"token={token}", headers=_FORWARDED)
    assert signed.status_code == 303, (signed.status_code, signed.text[-300:])
    assert "Secure" in signed.headers.get("set-cookie", "")
