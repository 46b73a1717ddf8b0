"""What a caller the service does not know costs it: nothing it keeps.

The first two tests were found by a review: the service read and parsed any body before it
asked who is calling.

Guarantee (docs/how-to/serve-workers-over-http.md, "Errors": 401 ``unauthorised`` for "no
token, or one unknown or revoked"; "Every request carries ``Authorization: Bearer TOKEN``"):
a caller without a token is refused as such, and the service does no work for it.

Observed: FastAPI reads and decodes a route's JSON body (``service._bodies.read_json``) before
the ``Caller`` dependency runs, and the service sets no limit on a body's size. A request with
no token and an unreadable body is answered 422 ``invalid_input`` naming the body (the service
parsed it for a stranger), and a 40 MB body with no token is read whole and decoded before
the 401: the service process's peak memory grows by well over the body's size (about 3x here)
for a caller it does not know -- a few concurrent strangers exhaust the host's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving import Served, peak_kb, serve

from ledger import Ledger, RegisterProfile, Role
from ledger.access import issue_token
from service._auth import Tokens, Unauthorised
from service._readers import Readers


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
    running = serve(url, tokens=False)
    try:
        yield running
    finally:
        running.stop()


def test_a_request_without_a_token_is_401_whatever_its_body(service: Served) -> None:
    with httpx.Client(base_url=service.url, timeout=60) as stranger:
        got = stranger.post(
            "/v1/profiles/p1/checkout",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert got.status_code == 401, (got.status_code, got.text)


def test_a_large_body_without_a_token_costs_the_service_no_memory(service: Served) -> None:
    size = 40 * 1024 * 1024
    body = b'{"run_id": "' + b"x" * size + b'", "task_type": "t"}'
    before = peak_kb(service.process.pid)
    with httpx.Client(base_url=service.url, timeout=120) as stranger:
        got = stranger.post(
            "/v1/profiles/p1/checkout", content=body, headers={"content-type": "application/json"}
        )
    grown_mb = (peak_kb(service.process.pid) - before) / 1024
    assert got.status_code in (401, 413), (got.status_code, got.text[:200])
    assert grown_mb < 40, f"the service's peak memory grew by {grown_mb:.0f} MB for a stranger"


def test_methods_without_a_resource_are_one_latency_label(service: Served) -> None:
    """A request's method is a label of the latency histogram, kept by the process for ever.
    uvicorn's HTTP parser (httptools) takes only the few dozen methods it knows, but h11, its
    other parser, takes any token: a method the service has no resource for is counted as
    "other". (WebDAV's methods, which httptools passes on, stand in for made-up ones.)"""
    with httpx.Client(base_url=service.url, timeout=30) as stranger:
        for method in ("PROPFIND", "MKCOL", "LOCK"):
            stranger.request(method, "/v1/profiles")
        metrics = stranger.get("/metrics").text
    assert "PROPFIND" not in metrics
    assert 'method="other"' in metrics


def test_a_token_longer_than_any_issued_is_neither_looked_up_nor_remembered() -> None:
    """The token cache is bounded in entries; a made-up token of 16 KB each would have made
    that bound about 800 MB. A token longer than any issued is refused at once."""
    asked: list[str] = []

    async def read(look: Callable[[Ledger], Any]) -> None:
        asked.append("store")

    tokens = Tokens(read)
    with pytest.raises(Unauthorised):
        asyncio.run(tokens.caller("Bearer " + "x" * 16_384))
    assert asked == []
    assert tokens._known == {}
    with pytest.raises(Unauthorised):
        asyncio.run(tokens.caller("Bearer cst_" + "y" * 43))  # a token's length: looked up
    assert asked == ["store"]


def test_a_flood_of_made_up_tokens_keeps_the_token_cache_bounded_and_real_tokens_working(
    store_url: str,
) -> None:
    """Each made-up token is looked up in the store and its absence remembered: a stranger
    sending ever new ones would grow the process without end. The cache stays within its
    bound (a small one here, read from the real store); a real token the flood made it forget
    is read again when next sent, and still works."""
    with Ledger.open(store_url) as ledger:
        real = issue_token(ledger, "worker-1", Role.WORKER).token
    readers = Readers(lambda: Ledger.open(store_url, create=False))
    tokens = Tokens(readers.run, size=64)

    async def flood() -> tuple[int, bool, list[str]]:
        actors = [(await tokens.caller(f"Bearer {real}")).actor]
        largest = 0
        for n in range(10 * 64):
            with pytest.raises(Unauthorised):
                await tokens.caller(f"Bearer cst_{n:043d}")
            largest = max(largest, len(tokens._known))
        forgotten = real not in tokens._known
        actors.append((await tokens.caller(f"Bearer {real}")).actor)
        return largest, forgotten, actors

    try:
        largest, forgotten, actors = asyncio.run(flood())
    finally:
        readers.close()
    assert largest <= 64, f"the token cache grew to {largest} entries past its bound of 64"
    assert forgotten
    assert actors == ["worker-1", "worker-1"]


def test_tokens_take_a_real_token_under_the_bearer_scheme_only(store_url: str) -> None:
    """``Tokens.caller`` reads an Authorization header's value: a real token under another
    scheme (``Basic TOKEN``, ``Foo TOKEN``) is ``Unauthorised``, as no token is. FastAPI's
    ``HTTPBearer`` drops such a header before the API's routes ask (``test_service.py``
    checks that over HTTP), but ``Tokens`` is the guard every caller of it shares."""
    with Ledger.open(store_url) as ledger:
        real = issue_token(ledger, "worker-1", Role.WORKER).token
    readers = Readers(lambda: Ledger.open(store_url, create=False))
    tokens = Tokens(readers.run)
    try:
        for scheme in ("Basic", "Token", "Foo", "Bearer:"):
            with pytest.raises(Unauthorised):
                asyncio.run(tokens.caller(f"{scheme} {real}"))
        assert asyncio.run(tokens.caller(f"bEaReR {real}")).actor == "worker-1"
    finally:
        readers.close()


def test_a_405_names_every_method_its_path_takes(service: Served) -> None:
    """``/v1/profiles`` is two routes, GET (the list) and POST (a registration): Starlette
    answered a method neither takes with the first route's methods alone (rev25)."""
    with httpx.Client(base_url=service.url, timeout=30) as stranger:
        for method in ("PUT", "DELETE", "OPTIONS"):
            got = stranger.request(method, "/v1/profiles")
            assert (got.status_code, got.headers["allow"]) == (405, "GET, POST"), method
            assert got.json()["error"] == "http_405"
        got = stranger.put("/v1/profiles/p1/checkout")
        assert (got.status_code, got.headers["allow"]) == (405, "POST")
        got = stranger.post("/console/queue")  # a route of the router the console includes
        assert (got.status_code, got.headers["allow"]) == (405, "GET")
