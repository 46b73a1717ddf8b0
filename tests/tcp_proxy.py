"""A TCP proxy on 127.0.0.1 in front of a local server (a real PostgreSQL), for tests that hold
or lose what crosses a link: a congested or partitioned network, an answer that never comes.

Each chunk a client sends passes the proxy's ``upward`` hook, and each chunk the server sends
its ``downward`` hook, before it is forwarded. A hook may sleep (the chunk held on its way, the
rest of the link as fast as before) or raise ``OSError`` (the connection cut: both of its ends
closed). A hook is given the connection's ``Link``, whose ``marked`` one hook may set for the
other (a release seen going up, its COMMIT's answer then lost coming down)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit


class Link:
    """One client's connection through the proxy."""

    def __init__(self) -> None:
        self.marked = threading.Event()


Hook = Callable[[Link, bytes], None]


def _passed(link: Link, data: bytes) -> None:
    """The default hook: every chunk forwarded as it comes."""


class TcpProxy:
    """Listens on a free port of 127.0.0.1 (``port``) and forwards each connection to
    ``target``'s port there, through ``upward`` and ``downward`` (see the module)."""

    def __init__(self, target: int, *, upward: Hook = _passed, downward: Hook = _passed) -> None:
        self.target = target
        self.upward = upward
        self.downward = downward
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept)]
        self._threads[0].start()

    def url_to(self, url: str) -> str:
        """``url`` (the server's) through the proxy: its port replaced by the proxy's."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def close(self) -> None:
        """Every connection cut and closed, every thread of the proxy ended."""
        for each in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it
        for thread in self._threads:
            thread.join(timeout=10)
        for each in [self._listener, *self._sockets]:
            each.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += (client, server)
            link = Link()
            for ends in ((client, server, link, True), (server, client, link, False)):
                self._threads.append(threading.Thread(target=self._pipe, args=ends))
                self._threads[-1].start()

    def _pipe(self, source: socket.socket, sink: socket.socket, link: Link, up: bool) -> None:
        try:
            while data := source.recv(65536):
                (self.upward if up else self.downward)(link, data)
                sink.sendall(data)
        except OSError:  # cut by a hook, or by either end: both ends closed
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)  # the end passed on
