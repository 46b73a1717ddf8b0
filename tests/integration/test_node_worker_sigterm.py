"""SIGTERM to a Node worker (clients/typescript, ``ProfileLeases``) against a real ``custody
serve``, as the Python SDK answers it (docs/operations/workers.md, "SIGTERM ends the lease
truthfully"): the lease is released as a failure naming the signal and the step reached, and
the process exits 143; never killed with its lease left live to go stale, which is what Node's
default did before (the Node SDK did not listen for SIGTERM at all).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import CLIENT, built, serving, worker_env
from serving import Served

from ledger import Ledger, ProfileState, RegisterProfile
from ledger._domain import events as ev

pytestmark = pytest.mark.slow
PLAYWRIGHT = (CLIENT / "node_modules" / "playwright-core" / "index.mjs").as_uri()

# {PART} chooses what the worker does; it prints "working" once its task is under way.
WORKER = """
import { chromium } from "PLAYWRIGHT_CORE";
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE,
  proxies: { x1: "direct" } });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const part = process.env.PART;
let stop = false;
if (part === "own-listener") process.on("SIGTERM", () => { stop = true; });
// A browser of the application's own, launched with Playwright's defaults (its SIGTERM listener).
const own = part === "own-playwright"
  ? await chromium.launch({ executablePath: "/usr/bin/chromium" }) : null;
if (part === "while-decided") {
  const real = client.checkout.bind(client);
  client.checkout = async (...args) => {
    try {
      return await real(...args);
    } finally {
      process.kill(process.pid, "SIGTERM");
      await sleep(100); // the listener has run by now, the answer still on its way
    }
  };
}
try {
  await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async (lease) => {
      console.log("the task ran");
      if (part === "browser") {
        await lease.browser(chromium, async (context) => {
          const page = await context.newPage();
          await page.goto(process.env.PAGE);
          await lease.step("page_open", { safe: true });
          console.log("working");
          await sleep(600_000);
        }, { executablePath: "/usr/bin/chromium" });
        return;
      }
      await lease.step("dashboard_loaded", { safe: true });
      console.log("working");
      if (part === "own-listener") {
        while (!stop) await sleep(20);
        throw new Error("shutting down");
      }
      await sleep(600_000); // the task, until SIGTERM comes
    });
  console.log(JSON.stringify({ thrown: null }));
} catch (e) {
  console.log(JSON.stringify({ thrown: e.name }));
}
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    profile = RegisterProfile(
        profile_id="p1", account_id="a1", proxy_id="x1", user_data_dir=str(tmp_path / "profile")
    )
    with serving(tmp_path, profile) as running:
        yield running


@pytest.fixture
def page(tmp_path: Path) -> Iterator[str]:
    """A page on 127.0.0.1."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<title>shop</title><h1>dashboard</h1>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=tmp_path / "site")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()


def run_worker(service: Served, tmp_path: Path, part: str, page: str = "") -> tuple[int, str]:
    """Start the worker; once it says "working", SIGTERM it (unless it signals itself); its
    exit status and everything it printed."""
    script = tmp_path / "worker.mjs"
    script.write_text(
        WORKER.replace("CLIENT_INDEX", built().as_uri()).replace("PLAYWRIGHT_CORE", PLAYWRIGHT)
    )
    env = {**os.environ, **worker_env(service, tmp_path, PART=part, PAGE=page)}
    with subprocess.Popen(
        ["node", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as worker:
        try:
            assert worker.stdout is not None
            said: list[str] = []
            if part != "while-decided":
                for line in worker.stdout:
                    said.append(line)
                    if line.strip() == "working":
                        break
                assert said, worker.stderr
                assert said[-1].strip() == "working", said
                worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
        finally:
            worker.kill()
    return worker.returncode, "".join(said) + out + err


def release_of(service: Served) -> ev.LeaseReleaseRequested:
    with Ledger.open(service.store_url) as ledger:
        (release,) = [e for e in ledger.history("p1") if isinstance(e, ev.LeaseReleaseRequested)]
    return release


def state_of(service: Served) -> ProfileState:
    with Ledger.open(service.store_url) as ledger:
        return ledger.view("p1").state


def test_sigterm_releases_naming_the_step_then_exits_143(service: Served, tmp_path: Path) -> None:
    status, said = run_worker(service, tmp_path, "sleeping")
    assert status == 143, said
    release = release_of(service)
    assert release.outcome == "failure"
    assert release.envelope.reason == "terminated by SIGTERM at step 'dashboard_loaded'"
    assert state_of(service) is ProfileState.REVIEW_REQUIRED


def test_playwrights_own_listener_is_not_the_applications(service: Served, tmp_path: Path) -> None:
    """A browser the application launched itself with Playwright's defaults adds Playwright's
    SIGTERM listener, which closes that browser and exits nothing: the SDK still ends the lease
    and exits 143 (rev27's second read: the worker ran on, its lease renewed, never released)."""
    status, said = run_worker(service, tmp_path, "own-playwright")
    assert status == 143, said
    assert release_of(service).envelope.reason == "terminated by SIGTERM at step 'dashboard_loaded'"


def test_sigterm_with_the_browser_open_takes_the_screenshot_and_closes_it(
    service: Served, tmp_path: Path, page: str
) -> None:
    """The final screenshot and URL are the evidence, as when a task ends; the browser is
    closed before the process exits."""
    status, said = run_worker(service, tmp_path, "browser", page)
    assert status == 143, said
    release = release_of(service)
    assert release.envelope.reason == "terminated by SIGTERM at step 'page_open'"
    assert release.final_url == page
    assert release.screenshot is not None
    assert Path(release.screenshot).is_file()
    assert release.screenshot_sha256 is not None
    assert not (tmp_path / "profile" / "SingletonLock").exists()  # Chromium has let go


def test_sigterm_while_the_checkout_is_decided_releases_before_the_task(
    service: Served, tmp_path: Path
) -> None:
    status, said = run_worker(service, tmp_path, "while-decided")
    assert status == 143, said
    assert "the task ran" not in said
    assert release_of(service).envelope.reason == "terminated by SIGTERM before its first step"
    assert state_of(service) is ProfileState.REVIEW_REQUIRED


def test_the_applications_own_listener_decides_and_the_release_says_sigterm_came(
    service: Served, tmp_path: Path
) -> None:
    status, said = run_worker(service, tmp_path, "own-listener")
    assert status == 0, said
    assert json.loads(said.strip().splitlines()[-1]) == {"thrown": "Error"}
    assert release_of(service).envelope.reason == (
        "terminated by SIGTERM at step 'dashboard_loaded' (Error: shutting down)"
    )


REPR = """
import { pythonRepr } from "CLIENT_TEXT";
const texts = JSON.parse(process.env.TEXTS);
console.log(JSON.stringify(texts.map((text) => pythonRepr(text))));
"""
# Steps as the ledger takes them, each quoted in the release's reason as Python's repr quotes it.
STEPS = [
    "dashboard_loaded",
    "it's done",
    'say "hi" it\'s',
    'a "quoted" step',
    "back\\slash",
    "tab\there",
    "zero\u200bwidth",
    "nbsp\u00a0and\u2028line",
    "emoji 😀 ok",
    "private \ue000 use",
    "ünïcödé",
    "bidi \u202e mark",
]


def test_the_node_sdk_quotes_a_step_as_the_python_sdk_does(tmp_path: Path) -> None:
    """The reason's step, quoted as Python's ``repr`` (the Python SDK's reason): quotes,
    backslashes and unprintable characters alike, so both SDKs' releases read the same."""
    script = tmp_path / "repr.mjs"
    text_js = built().parent / "text.js"
    script.write_text(REPR.replace("CLIENT_TEXT", text_js.as_uri()))
    done = subprocess.run(
        ["node", str(script)],
        env={**os.environ, "TEXTS": json.dumps(STEPS)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == [repr(step) for step in STEPS]
