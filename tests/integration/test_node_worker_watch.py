"""The Node worker SDK's revocation watch (clients/typescript, ``ProfileLeases``) with the
``watchSeconds`` its option allows.

Guarantee (docs/how-to/node-worker.md, "The worker"): the lease is "watched with the service's
long poll" and "when it is lost (an operator's force-release, ...), every request of the
context is aborted at once"; ``ProfileLeasesOptions.watchSeconds`` is documented "How long
each long poll of the revocation watch holds (seconds, at most 60)".

Before the fix (found by review7):
with ``watchSeconds`` 30 or 60, every long poll is refused 422 (the service's
``GET /v1/leases/{id}?wait=`` takes at most 25, ``service._app.MAX_WAIT_SECONDS``); the watch
swallows the refusal and asks again every 500 ms, so a force-release is not heard until the
next heartbeat, a third of the TTL later (20 s here): the browser runs on under a revoked
lease. (``worker.ts`` ``watch``: a non-LeaseLost error is retried; nothing caps or checks the
option.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import run_node, serving, worker_env
from serving import Served

from ledger import Role

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as running:
        yield running


REVOKED = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const operator = new CustodyClient({ baseUrl: process.env.URL, token: process.env.OPERATOR });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE,
  watchSeconds: Number(process.env.WATCH) });
let seen = null;
try {
  await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async (lease) => {
      await new Promise((r) => setTimeout(r, 500));
      await operator.forceRelease("p1", { reason: "revoked by hand" });
      const t0 = performance.now();
      while (!lease.lost && performance.now() - t0 < 5000) {
        await new Promise((r) => setTimeout(r, 50));
      }
      seen = { lost: lease.lost, after_ms: Math.round(performance.now() - t0), why: lease.whyLost };
    });
} catch (e) {}
console.log(JSON.stringify(seen));
"""


@pytest.mark.parametrize("watch", [10, 30, 60])
def test_a_force_release_is_heard_within_two_seconds_with_any_documented_watch(
    service: Served, tmp_path: Path, watch: int
) -> None:
    said = run_node(
        tmp_path,
        REVOKED,
        worker_env(service, tmp_path, OPERATOR=service.tokens[Role.OPERATOR], WATCH=str(watch)),
    )
    assert said["lost"] is True, said
    assert said["after_ms"] < 2000, said
    # Lost for the revocation the watch heard, not for a watch the service refused.
    assert said["why"].startswith("revoked"), said
