"""The Node worker SDK ignores a lease's hard limit: it keeps the lease (and its browser) past it.

Guarantee (docs/explanation/ttl-as-a-deadline.md, "Hard limits": "from then on heartbeats and
the release are *lease lost* [...] The worker SDK loses the lease at the limit on its own clock
and stops its browser"; docs/operations/workers.md, "Hard limits"; docs/how-to/node-worker.md:
the lease is lost on "its own deadline passing", and clients/typescript/src/guard.ts claims its
local deadline is "as the Python SDK's" -- whose ``workers._guard.LeaseGuard.valid_until`` is
never past the hard limit).

Before the fix (found by review7):
a lease checked out through ``ProfileLeases`` with ``ttl_seconds`` 60 and a hard
limit of 2 s (the checkout's ``max_duration_seconds``, or the profile's ``--max-lease``) is
still ``lost === false`` 4 s after the checkout, though the ledger already refuses it (its
``expires_at`` is the hard limit): the guard (``guard.ts`` ``LeaseGuard``) reads only
``lease.ttl_seconds`` and never ``hard_limit_at``, so the task and its browser run on until the
next heartbeat, a third of the TTL later, is refused 410.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import P1, run_node, serving, worker_env
from serving import Served

from ledger import RegisterProfile

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    limited = RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1", max_lease_seconds=2)
    with serving(tmp_path, P1, limited) as running:
        yield running


PAST_THE_LIMIT = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
const order = { run_id: "run_1", task_type: "t", ttl_seconds: 60 };
if (process.env.PROFILE === "p1") order.max_duration_seconds = 2;
let seen = null;
try {
  await leases.checkout(process.env.PROFILE, order, async (lease) => {
    const limit = lease.lease.hard_limit_at;
    await new Promise((r) => setTimeout(r, 4000));
    seen = { lost: lease.lost, why: lease.whyLost, hard_limit_at: limit };
  });
} catch (e) {}
console.log(JSON.stringify(seen));
"""


@pytest.mark.parametrize(
    "profile", ["p1", "p2"], ids=["checkout-max-duration", "profile-max-lease"]
)
def test_the_node_worker_loses_its_lease_at_the_hard_limit(
    service: Served, tmp_path: Path, profile: str
) -> None:
    said = run_node(
        tmp_path,
        PAST_THE_LIMIT,
        worker_env(service, tmp_path, PROFILE=profile),
    )
    assert said["hard_limit_at"] is not None, said
    assert said["lost"] is True, said
