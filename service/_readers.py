"""The reads' threads: a few threads, each with a ledger of its own (a ledger is one
thread's), so that reads never queue behind writes and the store sees a bounded number of
connections whatever the number of requests.

A read that leaves out events its login may not fold (``ledger.feed.ReadModelBehind``: a
service started with a worker's PostgreSQL login while nobody runs ``custody projections
run``) says so to its caller, as the command line says it to a person: each such note is a
``Custody-Note`` header of the answer (rev32: a worker-only service answered a timeline of one
event of five, and a fleet of no profiles, 200, with the note only in the service's own log)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from typing import TypeVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger import Ledger
from ledger.feed import ReadModelBehind

log = logging.getLogger("custody.service")

T = TypeVar("T")

READERS = 4
NOTE_HEADER = b"custody-note"

# The notes heard by the request being answered (None: outside a request).
_heard: ContextVar[list[ReadModelBehind] | None] = ContextVar("custody_heard", default=None)


class Readers:
    def __init__(self, open_ledger: Callable[[], Ledger], *, threads: int = READERS) -> None:
        self._open = open_ledger
        self._local = threading.local()
        self._opened: list[Ledger] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="custody-reader")

    def _ledger(self) -> Ledger:
        """This thread's ledger, opened again on the file now at the store's path where a
        SQLite file was deleted or replaced (a restored backup) since (one ``os.stat`` a read):
        each thread says so once, in the service's log."""
        ledger: Ledger | None = getattr(self._local, "ledger", None)
        if ledger is None:
            ledger = self._local.ledger = self._open()
            with self._lock:
                self._opened.append(ledger)
        elif (said := ledger.reopen_if_replaced()) is not None:
            log.warning("%s", said)
        return ledger

    def _noted(self, read: Callable[[Ledger], T]) -> tuple[T, list[ReadModelBehind]]:
        from projections import hearing_notes

        with hearing_notes() as notes:
            return read(self._ledger()), notes

    async def run_noted(self, read: Callable[[Ledger], T]) -> tuple[T, list[ReadModelBehind]]:
        """``read`` on a reader thread's ledger, awaited, with the notes it warned."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._noted, read)

    async def run(self, read: Callable[[Ledger], T]) -> T:
        """``read`` on a reader thread's ledger, awaited; its notes go to the answer."""
        result, notes = await self.run_noted(read)
        heard = _heard.get()
        if heard is not None:
            heard.extend(note for note in notes if str(note) not in map(str, heard))
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for ledger in self._opened:
                ledger.close()
            self._opened.clear()


class Noted:
    """Each note the reads of a request heard, as a ``Custody-Note`` header of its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        heard: list[ReadModelBehind] = []
        token = _heard.set(heard)

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start" and heard:
                said = [(NOTE_HEADER, _header_text(str(note))) for note in heard]
                message = {**message, "headers": [*message.get("headers", []), *said]}
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            _heard.reset(token)


def _header_text(note: str) -> bytes:
    """A note as a header's value: one line of visible ASCII (a read model's name and counts;
    anything else replaced)."""
    return " ".join(note.split()).encode("ascii", "replace")
