"""The Node worker SDK keeps a page's URL storable, as the Python SDK does.

Guarantee (docs/how-to/node-worker.md, "The worker": text the SDK makes for the ledger, a
page's URL among it, is made storable by the ledger's own rule, so no heartbeat or release is
refused for it; the Python SDK's ``workers._guard.Progress``: "Page URLs are kept storable
[...] so no heartbeat or release is ever refused for one").

Before the fix (suspected by review7, confirmed here): ``lease.visited(url)`` with a NUL or a
lone surrogate in the URL (``Progress.navigated`` kept it as it was) made every heartbeat carry
it: the service refused each 422, so ``lease.step`` threw that ``CustodyError`` into the task,
and background renewals failed until the lease was lost at its deadline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import run_node, serving, worker_env
from serving import Served

from ledger import Ledger, ProfileState

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as running:
        yield running


VISITED = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
const url = process.env.KIND === "nul"
  ? "https://shop.example/search?q=a\\u0000b"
  : "https://shop.example/search?q=" + "x".repeat(4059) + "\\u{1F600}".repeat(20);
let said = {};
try {
  const lease = await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async (lease) => {
      lease.visited(url);
      await lease.step("searched", { safe: true });
      said.stepped = true;
    });
  said.final_url = lease.evidence?.final_url ?? null;
  said.evidence_problem = lease.evidence?.evidence_problem ?? null;
} catch (e) {
  said.thrown = `${e.name}: ${e.message}`.slice(0, 300);
}
console.log(JSON.stringify(said));
"""


@pytest.mark.parametrize("kind", ["nul", "emoji-at-the-cut"])
def test_a_page_url_nobody_could_store_is_escaped_not_refused(
    service: Served, tmp_path: Path, kind: str
) -> None:
    said = run_node(
        tmp_path,
        VISITED,
        worker_env(service, tmp_path, KIND=kind),
    )
    with Ledger.open(service.store_url) as ledger:
        state = ledger.view("p1").state
        urls = [
            getattr(e, "url", None)
            for e in ledger.history("p1")
            if e.event_type == "lease_heartbeat"
        ]
    assert "thrown" not in said, said
    assert said["stepped"] is True, said
    assert said["evidence_problem"] is None, said  # the final URL was not refused either
    assert said["final_url"] in urls, (said, urls)
    if kind == "nul":
        assert said["final_url"] == "https://shop.example/search?q=a\\x00b", said
    else:
        assert len(said["final_url"]) == 4096, said
        # 4,089 characters before the emoji: a cut in UTF-16 units would keep fewer code
        # points; the last is the mark that says the URL was cut (review 275: no mark)
        assert said["final_url"].endswith("x" + "\U0001f600" * 6 + "\u2026"), said
    assert state is not ProfileState.LEASED, (state, said)


PASSWORD = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
let said = {};
try {
  const lease = await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async (lease) => {
      lease.visited(process.env.VISITED);
      await lease.step("searched", { safe: true });
      said.stepped = true;
    });
  said.final_url = lease.evidence?.final_url ?? null;
  said.evidence_problem = lease.evidence?.evidence_problem ?? null;
} catch (e) {
  said.thrown = `${e.name}: ${e.message}`.slice(0, 300);
}
console.log(JSON.stringify(said));
"""


@pytest.mark.parametrize(
    ("visited", "recorded"),
    [
        ("https:user:pw-s3cret@shop.example/a", "https:shop.example/a"),
        (" https://user:pw-s3cret@shop.example/a", "https://shop.example/a"),
        ("https:\\\\user:pw-s3cret@shop.example/a", "https:\\\\shop.example/a"),
        ("ftp:/user:pw-s3cret@shop.example/a", "ftp:/shop.example/a"),
        ("\x1chttps://user:pw-s3cret@shop.example/a", "https://shop.example/a"),
        # rev30: what a browser takes out before it reads a URL (the ledger's rule now too)
        ("http:/\n/user:pw-s3cret@shop.example/a", "http://shop.example/a"),
        ("\x01https://us\ter:pw-s3cret@shop.example/a\x02", "https://shop.example/a"),
        ("https://shop.example/a b\t", "https://shop.example/a b\t"),  # no userinfo: as it is
        # rev43: a URL nested in the page's (a login's return address), encoded or not
        (
            "https://shop.example/login?next=http://user:pw-s3cret@intranet/#access_token=T",
            "https://shop.example/login?next=http://intranet/#access_token=T",
        ),
        (
            "https://shop.example/login?next=http%3A%2F%2Fuser%3Apw-s3cret%40intranet%2F",
            "https://shop.example/login?next=http%3A%2F%2Fintranet%2F",
        ),
    ],
)
def test_a_url_the_ledger_reads_a_password_in_is_recorded_without_it(
    service: Served, tmp_path: Path, visited: str, recorded: str
) -> None:
    """The Node SDK drops the userinfo the ledger reads (``ledger.rules.without_userinfo``:
    no slashes, backslashes, Python's spaces before the scheme), so the heartbeat is taken.
    rev27: only ``scheme://user:pw@`` at the start was dropped, so these made the step throw
    the service's 422 "must not carry a password" and the lease was lost at its deadline."""
    said = run_node(tmp_path, PASSWORD, worker_env(service, tmp_path, VISITED=visited))
    with Ledger.open(service.store_url) as ledger:
        history = ledger.history("p1")
        state = ledger.view("p1").state
    assert "thrown" not in said, said
    assert said["final_url"] == recorded, said
    assert "pw-s3cret" not in repr(history)
    assert state is not ProfileState.LEASED, (state, said)


ERROR_PAGE = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
const lease = await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
  async (lease) => {
    lease.visited("https://shop.example/dashboard");
    lease.visited("chrome-error://chromewebdata/");  // what a goto that failed navigates to
    await lease.step("submit_failed", { safe: true });
  });
console.log(JSON.stringify({ final_url: lease.evidence?.final_url ?? null }));
"""


def test_chromium_s_error_page_is_not_the_final_url(service: Served, tmp_path: Path) -> None:
    """Chromium's page for a navigation that failed (``chrome-error://chromewebdata/``) names
    no page of the run: the final URL stays the last page committed, as in the Python SDK.
    rev27: it was the final URL."""
    said = run_node(tmp_path, ERROR_PAGE, worker_env(service, tmp_path))
    assert said["final_url"] == "https://shop.example/dashboard", said
