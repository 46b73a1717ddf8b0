"""The Node worker SDK launches Chromium without shared workers, as the Python SDK does
(``workers._settings.GUARD_SWITCHES``), with a real Chromium.

Found by review 43 in the Python SDK, and so in the Node SDK (the same promise in
``clients/typescript/src/browser.ts``): Playwright does not attach to a shared worker, so its
requests pass no ``context.route``; once the lease was lost a page kept reaching the site
through one. A page has no ``SharedWorker`` to start, in its own frame or an iframe's, and an
``ignoreDefaultArgs`` list naming the switch is refused before the browser is launched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import CLIENT, run_node, serving, worker_env
from serving import Served

from ledger import Ledger, RegisterProfile

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PLAYWRIGHT = (CLIENT / "node_modules" / "playwright-core" / "index.mjs").as_uri()
SHARED = """
import { chromium } from "PLAYWRIGHT";
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({
  client, evidenceDir: process.env.EVIDENCE, proxies: { x1: null },
});
const said = {};
const options = { executablePath: "/usr/bin/chromium", args: ["--disable-blink-features=X"] };
if (process.env.DROP) options.ignoreDefaultArgs = ["--disable-blink-features=SharedWorker"];
try {
  await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    (lease) => lease.browser(chromium, async (context) => {
      const page = await context.newPage();
      await page.setContent("<iframe srcdoc='<p>x</p>'></iframe>");
      said.page = await page.evaluate(() => typeof SharedWorker);
      said.frame = await page.frames()[1].evaluate(() => typeof SharedWorker);
      said.dedicated = await page.evaluate(() => typeof Worker);
    }, options));
} catch (e) {
  said.thrown = `${e.name}: ${e.message}`.slice(0, 300);
}
console.log(JSON.stringify(said));
"""


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    profile = RegisterProfile(
        profile_id="p1", account_id="a1", proxy_id="x1", user_data_dir=str(tmp_path / "p1")
    )
    with serving(tmp_path, profile) as running:
        yield running


def test_a_page_has_no_shared_worker_and_no_option_gives_one_back(
    service: Served, tmp_path: Path
) -> None:
    """A caller's own --disable-blink-features beside the SDK's: no SharedWorker in the page or
    its iframe (a dedicated worker, which the route does see, is still there)."""
    script = SHARED.replace("PLAYWRIGHT", PLAYWRIGHT)
    said = run_node(tmp_path, script, worker_env(service, tmp_path))
    assert said == {"page": "undefined", "frame": "undefined", "dedicated": "function"}, said


def test_an_ignore_default_args_list_naming_the_switch_is_refused_before_launch(
    service: Served, tmp_path: Path
) -> None:
    script = SHARED.replace("PLAYWRIGHT", PLAYWRIGHT)
    said = run_node(tmp_path, script, worker_env(service, tmp_path, DROP="1"))
    assert said["thrown"].startswith("LaunchRefused: "), said
    assert "keeps every request of the browser passing the lease's guard" in said["thrown"]
    with Ledger.open(service.store_url) as ledger:
        steps = [e.step for e in ledger.history("p1") if e.event_type == "lease_heartbeat"]
    assert "browser_launch" not in steps
