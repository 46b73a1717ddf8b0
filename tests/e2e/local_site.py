"""What the browser tests talk to, on 127.0.0.1 only: a small site that logs every request it
receives (with the time), and a forward proxy that counts what passes through it.

Pages: ``/login`` sets a cookie with an expiry (it survives a browser restart), ``/whoami``
shows the cookies sent, ``/poll`` fetches ``/tick`` every 100 ms for as long as it is open,
and sends "tick" on a WebSocket to ``/ws`` as often (each message received is logged as a hit on
``/ws:message``, the time each socket ends in ``sockets_ended``), ``/verify/challenge`` is a
verification prompt, ``/form`` holds a form that POSTs to ``/submit``, which answers 303 to
``/hop/1``: each ``/hop/N`` waits ``HOP_SECONDS`` and redirects to ``/hop/N+1``, a chain
Chromium follows for 20 hops (the driver follows them without asking the worker's route
handler); ``/font/stalled`` never answers (until the site closes: a web font that never
arrives); any other path is a plain page.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

POLL_PAGE = b"""<html><body><h1>polling</h1><script>
setInterval(() => fetch('/tick').catch(() => {}), 100);
const socket = new WebSocket(`ws://${location.host}/ws`);
setInterval(() => socket.readyState === 1 && socket.send('tick'), 100);
</script></body></html>"""
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
FORM_PAGE = b"""<html><body><form id=f method=post action=/submit>
<input name=order value=42><button id=go>order</button></form></body></html>"""
HOP_SECONDS = 0.5


@dataclass(frozen=True)
class Hit:
    at: float  # time.time() when the request arrived
    path: str
    cookie: str
    via_proxy: bool


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a browser closed or aborted the request: expected here
        super().handle_error(request, client_address)


class LocalSite:
    """The site; ``url`` is its base, ``hits`` every request received so far."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.sockets_ended: list[float] = []  # when each WebSocket ended (closed or cut)
        self._closing = threading.Event()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # a WebSocket upgrade needs it

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                cookie = self.headers.get("Cookie", "")
                site.hits.append(
                    Hit(time.time(), path, cookie, "counting-proxy" in str(self.headers.get("Via")))
                )
                if path == "/ws":
                    self.socket()
                    return
                if path == "/font/stalled":
                    site._closing.wait(60)
                    self.close_connection = True
                    return
                if path.startswith("/hop/"):
                    time.sleep(HOP_SECONDS)
                    self.redirect(302, f"/hop/{int(path.removeprefix('/hop/')) + 1}")
                    return
                headers, body = site.page(path, cookie)
                self.send_response(200)
                for name, value in [("Content-Type", "text/html"), *headers]:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                """``/submit``: the form's POST, answered 303 See Other to the first hop."""
                path = urlsplit(self.path).path
                site.hits.append(Hit(time.time(), path, self.headers.get("Cookie", ""), False))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.redirect(303, "/hop/1")

            def redirect(self, status: int, location: str) -> None:
                self.send_response(status)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def socket(self) -> None:
                """Accept the WebSocket, then log each message the browser sends."""
                key = self.headers["Sec-WebSocket-Key"] + WEBSOCKET_GUID
                accept = base64.b64encode(hashlib.sha1(key.encode()).digest()).decode()  # noqa: S324
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                self.close_connection = True
                while _read_frame(self.rfile) not in (None, 8):
                    site.hits.append(Hit(time.time(), "/ws:message", "", False))
                site.sockets_ended.append(time.time())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @staticmethod
    def page(path: str, cookie: str) -> tuple[list[tuple[str, str]], bytes]:
        if path == "/login":
            return [("Set-Cookie", "session=s3cret; Max-Age=3600; Path=/")], b"<h1>logged in</h1>"
        if path == "/poll":
            return [], POLL_PAGE
        if path == "/form":
            return [], FORM_PAGE
        if path == "/whoami":
            return [], f"<h1>cookies</h1><p id=cookies>{cookie}</p>".encode()
        return [], f"<h1>{path}</h1>".encode()

    def hits_after(self, moment: float) -> list[Hit]:
        return [h for h in list(self.hits) if h.at > moment]

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


class CountingProxy:
    """An HTTP forward proxy requiring Basic credentials; ``requests`` counts what it passed."""

    def __init__(self, username: str, password: str) -> None:
        self.requests: list[str] = []
        self.refused = 0
        expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Proxy-Authorization") != expected:
                    proxy.refused += 1
                    self.send_response(407)
                    self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = urlsplit(self.path)
                proxy.requests.append(self.path)
                upstream = http.client.HTTPConnection(target.netloc, timeout=10)
                upstream.request(
                    "GET",
                    target.path or "/",
                    headers={"Via": "1.1 counting-proxy", "Cookie": self.headers.get("Cookie", "")},
                )
                answer = upstream.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                upstream.close()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.server = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _read_frame(stream: Any) -> int | None:
    """Read one client frame (masked, as browsers send them); its opcode, None at the end."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    length = head[1] & 0x7F
    if length >= 126:
        length = int.from_bytes(stream.read(2 if length == 126 else 8), "big")
    stream.read((4 if head[1] & 0x80 else 0) + length)
    return int(head[0] & 0x0F)


def browsers_on(user_data_dir: str) -> list[int]:
    """Pids of live Chromium processes whose command line names exactly this profile."""
    wanted = f"--user-data-dir={user_data_dir}".encode()
    found = []
    for entry in _proc_pids():
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if wanted in args and state != "Z" and b"chrom" in args[0]:
            found.append(entry)
    return found


def _proc_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]
