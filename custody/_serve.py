"""``custody serve``: the lease service (``service``) under uvicorn."""

from __future__ import annotations

import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

import click

from custody._commands import cli
from custody._wiring import options

DEFAULT_LISTEN = "127.0.0.1:8420"


# What a request HTTP itself cannot parse is answered (a header holding a control character, a
# request line that is no HTTP): the service's error object, as every other error is, before
# custody's code reads anything of it.
UNPARSED = (
    b'{"error":"http_400","message":"the request is not HTTP the service can read (a header '
    b'holding a control character, a malformed request line): it was not carried out"}'
)


def _protocol() -> type[Any]:
    """uvicorn's HTTP protocol, answering a request it cannot parse with ``UNPARSED`` (JSON),
    not its plain text "Invalid HTTP request received." (review 267: an Idempotency-Key
    holding a control character got that, where the API promises one JSON object for every
    error). The connection is closed after it, as uvicorn closes it."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class Protocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
        def send_400_response(self, msg: str) -> None:
            self.transport.write(
                b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(UNPARSED), UNPARSED)
            )
            self.transport.close()

    return Protocol


@cli.command()
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, metavar="HOST:PORT",
    help="where to take requests (port 0: any free port, printed)",
)  # fmt: skip
@click.option(
    "--access-log/--no-access-log", default=False, show_default=True,
    help="a line per request on standard error",
)  # fmt: skip
@click.option(
    "--forwarded-allow-ips", "forwarded", default=None, metavar="IPS",
    help="the proxies (comma-separated addresses, or *) whose X-Forwarded-Proto and "
    "X-Forwarded-For are believed: a load balancer that terminates HTTPS (default: "
    "$FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1)",
)  # fmt: skip
def serve(listen: str, access_log: bool, forwarded: str | None) -> None:
    """serve the ledger over HTTP to workers in any language, and the review console to people
    (tokens: custody access token); stops cleanly on SIGTERM or Ctrl-C"""
    import uvicorn

    from ledger import Ledger
    from service import create_app

    host, port = _address(listen)
    _proxies(forwarded)
    url = options().store
    with Ledger.open(url, create=False) as ledger:
        where = ledger.settings.describe()
        ledger.store.schema_version()  # refuse a missing or uninitialised store now
    sock = _bound(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"custody serving {where} on http://{shown_host}:{sock.getsockname()[1]}", err=True)
    sys.stderr.flush()
    app = create_app(url)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=access_log,
        timeout_graceful_shutdown=30,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=forwarded,
        http=_protocol(),
    )
    # uvicorn stops taking requests on SIGTERM or SIGINT, answers those in flight, drains the
    # writer, then raises the signal again under the handlers it found: these make that a
    # clean exit (0), not a death by signal.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    stopping = app.state.service.stopping

    class Server(uvicorn.Server):
        """Tells the service when its graceful stop begins: the long polls in flight answer
        then, so that the stop waits for none of them."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            stopping.set()
            super().handle_exit(sig, frame)

    Server(config).run(sockets=[sock])


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _address(listen: str) -> tuple[str, int]:
    from ledger import InvalidInput

    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    # ASCII digits only: str.isdigit() takes "²" and other digits int() refuses.
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise InvalidInput("listen", f"give HOST:PORT, e.g. {DEFAULT_LISTEN} (got {listen!r})")
    return host, int(port)


def _proxies(forwarded: str | None) -> None:
    """``InvalidInput`` unless the proxies named (``--forwarded-allow-ips``, else
    ``$FORWARDED_ALLOW_IPS``) are ``*`` or addresses and networks, each as uvicorn reads it:
    it takes any other entry for a Unix socket's name, which a service on TCP never sees, so a
    mistyped proxy address was started with, and its headers silently not believed."""
    import ipaddress

    from ledger import InvalidInput

    named = forwarded if forwarded is not None else os.environ.get("FORWARDED_ALLOW_IPS")
    if named is None or named.strip() == "*":
        return
    source = "forwarded_allow_ips" if forwarded is not None else "FORWARDED_ALLOW_IPS"
    for entry in (item.strip() for item in named.split(",")):
        try:
            (ipaddress.ip_network if "/" in entry else ipaddress.ip_address)(entry)
        except ValueError:
            said = f"{entry[:100]!r} is not an IP address or network (give addresses, or *)"
            raise InvalidInput(source, said) from None


def _bound(host: str, port: int) -> socket.socket:
    from ledger import InvalidInput

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        raise InvalidInput("listen", f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    except UnicodeError:  # a host no name can be (an empty label, one over 63 characters)
        raise InvalidInput("listen", f"cannot listen on {host[:100]!r}: not a host name") from None
    sock.listen(2048)
    return sock
