"""The Node worker SDK's ``browser()`` on the profile's directory and proxy, against a real
``custody serve`` and Debian's Chromium.

Guarantees (docs/how-to/node-worker.md, "The profile's directory, its marker and its proxy";
the Python SDK's ``lease.browser()``, workers/_profile_dir.py and workers/_settings.py): the
browser opens the profile's registered ``user_data_dir`` after the lease's marker is written
into it, and never when the marker holds a higher fencing token of the profile (opened under a
lease this store never granted: ``LaunchRefused``, no browser launched); it launches with the
lease's
``proxy_id`` resolved through the worker's ``proxies``, and releases that id as
``observed_proxy``.

Before the fix (a hostile review, severity High): the Node SDK launched on
``options.userDataDir ?? profileDir(id)``, wrote and checked no marker, and launched with no
proxy: with ``DIR/.custody-lease`` at fencing token 99, where the Python SDK refuses
("LeaseLost: DIR was already opened under fencing token 99; this lease holds 1"), the Node
worker launched the browser under token 1, and every page went out directly.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from node_probe import CLIENT, run_node, serving, worker_env
from serving import Served

from ledger import Ledger, RegisterProfile
from ledger._domain import events as ev
from workers import _profile_dir

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PROXIED_URL = "http://custody-proxied.test/page"  # resolvable only through the proxy
# The probe runs from a temporary directory: Playwright is imported from the client's packages.
PLAYWRIGHT = (CLIENT / "node_modules" / "playwright-core" / "index.mjs").as_uri()

TASK = """
import { chromium } from "PLAYWRIGHT_CORE";
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const proxies = { x1: { server: process.env.PROXY } };
// profileDir names the registered directory too: the Node SDK before the fix launched there.
const profileDir = () => process.env.PROFILE_DIR;
const evidenceDir = process.env.EVIDENCE;
const leases = new ProfileLeases({ client, evidenceDir, proxies, profileDir });
let opened = false;
let text = null;
try {
  const order = { run_id: "run_1", task_type: "t", ttl_seconds: 60 };
  await leases.checkout("p1", order, async (lease) => {
    await lease.browser(chromium, async (context) => {
      opened = true;
      const page = await context.newPage();
      await page.goto(process.env.PAGE);
      text = await page.textContent("h1");
    }, { executablePath: "/usr/bin/chromium" });
  });
  console.log(JSON.stringify({ thrown: null, opened, text }));
} catch (e) {
  console.log(JSON.stringify({ thrown: e.name, message: String(e.message), opened, text }));
}
""".replace("PLAYWRIGHT_CORE", PLAYWRIGHT)


class _Proxy(BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:  # a forward proxy is asked for the absolute URL
        self.seen.append(self.path)
        body = b"<h1>through the proxy</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Proxy", (_Proxy,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def profile_dir(tmp_path: Path) -> Path:
    return tmp_path / "profiles" / "p1"


@pytest.fixture
def service(tmp_path: Path, profile_dir: Path) -> Iterator[Served]:
    registered = RegisterProfile(
        profile_id="p1", account_id="a1", proxy_id="x1", user_data_dir=str(profile_dir)
    )
    with serving(tmp_path, registered) as running:
        yield running


def _env(proxy: str, profile_dir: Path) -> dict[str, str]:
    return {"PROXY": proxy, "PAGE": PROXIED_URL, "PROFILE_DIR": str(profile_dir)}


def _release(service: Served) -> ev.LeaseReleaseRequested:
    with Ledger.open(service.store_url) as ledger:
        history = list(ledger.history("p1"))
    (released,) = [e for e in history if isinstance(e, ev.LeaseReleaseRequested)]
    return released


def test_refuses_a_directory_a_later_lease_opened(
    service: Served, tmp_path: Path, profile_dir: Path, proxy: tuple[str, list[str]]
) -> None:
    """The review's repro: the marker holds fencing token 99 of this profile; the lease holds
    1. The Node worker throws ``LaunchRefused`` as the Python SDK does, launches no browser (no
    Chromium file appears in the directory), leaves the marker as it was, and the lease is
    released as a failure."""
    profile_dir.mkdir(parents=True)
    marker = {
        "fencing_token": 99,
        "lease_id": "lease-99@p1",
        "profile_id": "p1",
        "run_id": "r99",
        "worker_id": "w9",
        "written_at": "2026-12-01T00:00:00+00:00",
    }
    before = json.dumps(marker, sort_keys=True)
    (profile_dir / _profile_dir.MARKER).write_text(before)

    said = run_node(tmp_path, TASK, worker_env(service, tmp_path, **_env(proxy[0], profile_dir)))

    assert said["thrown"] == "LaunchRefused", said
    path = profile_dir / _profile_dir.MARKER
    assert said["message"].startswith(f"{path} holds fencing token 99, higher than lease "), said
    assert said["message"].endswith(f"remove {path}: the next launch writes its own"), said
    assert said["opened"] is False, said
    assert sorted(p.name for p in profile_dir.iterdir()) == [_profile_dir.MARKER]
    assert (profile_dir / _profile_dir.MARKER).read_text() == before
    assert proxy[1] == []
    released = _release(service)
    assert released.outcome == "failure"


def test_launches_on_the_registered_directory_with_the_resolved_proxy(
    service: Served, tmp_path: Path, profile_dir: Path, proxy: tuple[str, list[str]]
) -> None:
    """The profile's proxy id x1 resolves (``proxies``) to a proxy this test runs: the page,
    on a host only the proxy answers for, is fetched through it; the release reports x1 as
    ``observed_proxy``; the registered directory holds the lease's marker, which the Python
    SDK reads as its own."""
    said = run_node(tmp_path, TASK, worker_env(service, tmp_path, **_env(proxy[0], profile_dir)))

    assert said == {"thrown": None, "opened": True, "text": "through the proxy"}, said
    assert PROXIED_URL in proxy[1]
    released = _release(service)
    assert released.outcome == "success"
    assert released.observed_proxy == "x1"
    marker = _profile_dir.read(profile_dir)
    assert marker is not None
    assert (marker["profile_id"], marker["fencing_token"]) == ("p1", 1)
    mark = _profile_dir._mark_in((profile_dir / _profile_dir.MARKER).read_text())
    assert mark == (1, "p1", (marker["worker_id"], marker["run_id"]))
