"""The reads' threads: a few threads, each with a ledger of its own (a ledger is one
thread's), so that reads never queue behind writes and the store sees a bounded number of
connections whatever the number of requests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ledger import Ledger

T = TypeVar("T")

READERS = 4


class Readers:
    def __init__(self, open_ledger: Callable[[], Ledger], *, threads: int = READERS) -> None:
        self._open = open_ledger
        self._local = threading.local()
        self._opened: list[Ledger] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="custody-reader")

    def _ledger(self) -> Ledger:
        ledger: Ledger | None = getattr(self._local, "ledger", None)
        if ledger is None:
            ledger = self._local.ledger = self._open()
            with self._lock:
                self._opened.append(ledger)
        return ledger

    async def run(self, read: Callable[[Ledger], T]) -> T:
        """``read`` on a reader thread's ledger, awaited."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: read(self._ledger()))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for ledger in self._opened:
                ledger.close()
            self._opened.clear()
