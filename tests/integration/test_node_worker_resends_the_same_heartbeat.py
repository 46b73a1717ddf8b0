"""The Node worker resends a heartbeat under the same Idempotency-Key with a different body.

Guarantee (quality bar: a resent command id answers the first answer and writes nothing; an id
used for a different command is refused; clients/typescript/src/worker.ts ``renew``: "One
heartbeat, resent under its own Idempotency-Key while the service is unavailable"; the Python
SDK builds the heartbeat once and resends that same command, ``workers._renewal.renew``).

Before the fix (found by review7):
``WorkerLease.renew`` rebuilds the body on every attempt from the page's URL *now*
(``{fencing_token, url: this.progress.url, ...fields}`` inside the retry loop). When a
heartbeat lands but its answer is lost (the connection drops: a ``TypeError``, which the SDK
resends), and the page navigates meanwhile (as it does right after a mutating click), the
resend carries the same key with another URL: the service refuses it 422 "Idempotency-Key ...
was already used ... send a new key", and ``lease.step("submit_order", {mutating: true})``
throws that ``CustodyError`` into the task -- though the step was recorded -- so the run fails
and is released as a failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import run_node, serving, worker_env
from serving import Served

from ledger import Ledger

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as running:
        yield running


# The mutating step's heartbeat reaches the service; its answer is lost (the connection drops),
# and while the worker waits to resend, the page navigates to the order's confirmation.
LOST_ANSWER = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
let current = null;
let dropped = false;
async function flakyNetwork(url, init) {
  const answer = await fetch(url, init);
  const mutating = String(init.body).includes("submit_order");
  if (!dropped && String(url).endsWith("/heartbeat") && mutating) {
    dropped = true;
    current?.visited("https://shop.example/order/thanks");
    throw new TypeError("fetch failed");
  }
  return answer;
}
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN,
  fetch: flakyNetwork });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
let said = {};
try {
  const lease = await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 3 },
    async (lease) => {
      current = lease;
      lease.visited("https://shop.example/pay");
      await lease.step("submit_order", { mutating: true });
      said.stepped = true;
    });
  said.outcome = lease.evidence?.outcome ?? null;
} catch (e) {
  said.thrown = `${e.name}: ${e.message}`.slice(0, 300);
}
console.log(JSON.stringify(said));
"""


def test_a_resent_heartbeat_carries_the_body_it_was_first_sent_with(
    service: Served, tmp_path: Path
) -> None:
    said = run_node(
        tmp_path,
        LOST_ANSWER,
        worker_env(service, tmp_path),
    )
    with Ledger.open(service.store_url) as ledger:
        steps = [
            getattr(e, "step", None)
            for e in ledger.history("p1")
            if e.event_type == "lease_heartbeat"
        ]
    assert steps.count("submit_order") == 1, (steps, said)
    assert "thrown" not in said, said
    assert said.get("stepped") is True, said
    assert said["outcome"] == "success", said
