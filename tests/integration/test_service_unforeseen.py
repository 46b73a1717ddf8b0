"""An unforeseen failure in the lease service, as a client on a kept-alive connection meets
it: a 500 whose body says to read the log and whose headers say the connection closes (the
server closes it: Starlette raises the error again once it is answered), so that the client's
next request opens a new connection instead of failing on the closed one."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from ledger import Ledger
from service import create_app


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    """The service on a fresh store under uvicorn in this process, with one more route that
    fails as nothing foreseen does."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    app = create_app(url)

    @app.get("/unforeseen")
    def unforeseen() -> None:
        raise RuntimeError("a failure nobody foresaw")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started:
                break
            thread.join(0.05)
        assert server.started, "uvicorn did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def test_an_unforeseen_failure_is_a_500_that_closes_its_connection(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/unforeseen")
        failed = connection.getresponse()
        body = json.loads(failed.read())
        assert failed.status == 500
        assert body == {"error": "internal", "message": "the service failed; its log says why"}
        assert failed.getheader("connection") == "close", failed.getheaders()
        # http.client reopens a connection its server said it closes; on one it believed kept
        # alive, this request failed (ConnectionResetError).
        connection.request("GET", "/healthz")
        assert connection.getresponse().status == 200
    finally:
        connection.close()
