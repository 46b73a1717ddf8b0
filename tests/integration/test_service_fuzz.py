"""The service fuzzed against its own OpenAPI document (schemathesis): whatever a caller sends,
the answer is never a 500, and an answer that refuses (4xx) wrote nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from serving import Served, serve

from ledger import Ledger, RegisterProfile, Role

pytestmark = pytest.mark.slow

# Who calls each resource: the role that may, so that a case reaches the ledger's own checks
# rather than stopping at 403.
_ROLE_OF = {
    "/v1/profiles/{profile_id}/checkout": Role.WORKER,
    "/v1/leases/{lease_id}/heartbeat": Role.WORKER,
    "/v1/leases/{lease_id}/extend": Role.WORKER,
    "/v1/leases/{lease_id}/release": Role.WORKER,
    "/v1/leases/{lease_id}": Role.WORKER,
    "/v1/profiles/{profile_id}/review": Role.REVIEWER,
    "/v1/sweep": Role.SCHEDULER,
}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'custody.db'}"
    with Ledger.init(url) as ledger:
        for n in range(3):
            ledger.handle(RegisterProfile(profile_id=f"p{n}", account_id="a", proxy_id="x"))
    running = serve(url)
    try:
        yield running
    finally:
        assert running.stop() == 0


def _events(service: Served) -> int:
    with Ledger.open(service.store_url) as ledger:
        return int(ledger.store.event_count())


def _operations(service: Served) -> list[Any]:
    api = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    return [found.ok() for found in api.get_all_operations()]


def test_no_input_is_a_500_and_a_refusal_writes_nothing(service: Served) -> None:
    operations = _operations(service)
    assert len(operations) >= 20  # every resource, not an empty document
    for operation in operations:
        _fuzz(service, operation)


def _fuzz(service: Served, operation: Any) -> None:
    role = _ROLE_OF.get(operation.path, Role.OPERATOR)
    headers = {"Authorization": f"Bearer {service.tokens[role]}"}

    @settings(
        max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    @given(case=operation.as_strategy())
    def one(case: Any) -> None:
        if case.query and "wait" in case.query:
            case.query["wait"] = 0  # a long poll would hold each case for up to a minute
        before = _events(service)
        response = case.call(base_url=service.url, headers=headers)
        said = f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
        assert response.status_code < 500, said
        assert "Traceback" not in response.text, said
        if 400 <= response.status_code < 500:
            body = response.json()
            assert body["error"], said
            assert body["message"], said
            assert _events(service) == before, f"refused but wrote: {said}"

    one()
