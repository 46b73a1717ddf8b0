"""The Node client gives up on a checkout whose answer timed out, orphaning the lease it was
granted, instead of resending it under the same Idempotency-Key.

Guarantee (quality bar: a resent command id answers the first answer and writes nothing;
clients/typescript/src/worker.ts ``ProfileLeases.checkout``: "resent under the same id: a grant
whose answer was lost returns"; the Python SDK resends a checkout whose answer was lost,
``workers._renewal.checkout``; clients/typescript/src/client.ts ``ClientOptions.timeoutSeconds``
"Seconds a request may take").

Before the fix (found by review7):
when the service grants the checkout but its answer does not arrive within the
client's ``timeoutSeconds`` (a slow network on the way back), ``fetch`` rejects with a
``DOMException`` ``TimeoutError``, which ``transient()`` does not count (only
``StoreUnavailable`` and ``TypeError``): ``ProfileLeases.checkout`` throws at once, never resends
the key it made for exactly this case, and the lease it was granted is left live with nobody
holding it (the profile leased until its TTL runs out and the sweep sends it to review). The
same holds for a heartbeat's resend in ``renew``.
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


# The first answer to a checkout is held on the way back past the client's timeout: the
# request reached the service (and was written), only its answer was slow.
SLOW_ANSWER = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
let slowed = false;
async function slowNetwork(url, init) {
  const answer = await fetch(url, { ...init, signal: undefined });
  if (!slowed && String(url).endsWith("/checkout")) {
    slowed = true;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, 3000);
      init.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(init.signal.reason);
      });
    });
  }
  return answer;
}
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN,
  timeoutSeconds: 1, fetch: slowNetwork });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
let said = { ran: false };
try {
  const lease = await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async (lease) => { said.ran = true; said.lease_id = lease.leaseId; });
  said.released = lease.result?.profile_state ?? null;
} catch (e) {
  said.thrown = `${e.name}: ${e.message}`.slice(0, 200);
}
console.log(JSON.stringify(said));
"""


def test_a_checkout_whose_answer_timed_out_is_resent_under_its_key(
    service: Served, tmp_path: Path
) -> None:
    said = run_node(
        tmp_path,
        SLOW_ANSWER,
        worker_env(service, tmp_path),
    )
    with Ledger.open(service.store_url) as ledger:
        state = ledger.view("p1").state
        leases = [e for e in ledger.history("p1") if e.event_type == "lease_acquired"]
    assert len(leases) == 1, said
    # The lease granted is the one the task ran under and released; none is left orphaned.
    assert said.get("ran") is True, (said, state)
    assert state is not ProfileState.LEASED, (said, state)
