"""Bad input in a read's query string is bad input on both stores.

Guarantee (quality bar; docs/how-to/serve-workers-over-http.md, "Errors"): bad input gets one
clear refusal naming what is wrong, 422 ``invalid_input`` with the field; 503
``store_unavailable`` (with ``Retry-After``) means only that the store cannot be reached.

Observed on PostgreSQL: ``GET /v1/profiles?account=%00`` and ``GET /v1/fleet?account=%00`` answer
503 ``store_unavailable`` "PostgreSQL text fields cannot contain NUL (0x00) bytes" with
``Retry-After: 2`` (a client, the TypeScript one included, retries it for ever as a passing
outage), where SQLite answers 422 ``invalid_input`` naming ``account``. The account filter
reaches the SQL query unchecked (``projections.status`` / ``reports.fleet`` ``account_id``).
"""

from __future__ import annotations

import pytest
from serving import Served

from ledger import Ledger, RegisterProfile, Role


@pytest.mark.parametrize("path", ["/v1/profiles", "/v1/fleet"])
def test_an_account_filter_holding_nul_is_422_naming_account_on_both_stores(
    served: Served, path: str
) -> None:
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
    with served.client(Role.WORKER) as client:
        got = client.get(path, params={"account": "a\x001"})
    assert got.status_code == 422, (got.status_code, got.headers.get("retry-after"), got.text)
    assert got.json()["error"] == "invalid_input"
    assert got.json()["field"] == "account"
    assert "retry-after" not in got.headers
