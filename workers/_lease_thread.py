"""A thread beside a held lease, with a ledger of its own: both flavours' revocation watch
(``workers._revocation.RevocationWatch``). Heartbeats are the process's renewal hub's
(``workers._hub``), one thread for every lease on a store.

A ledger is never shared across threads, so the thread opens its own when it starts and closes
it when it ends; ``stop`` asks it to end and waits for it.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Closes(Protocol):
    def close(self) -> None: ...


L = TypeVar("L", bound=Closes)


class LeaseThread(ABC, Generic[L]):
    """``start`` runs ``_watch(ledger)`` on a daemon thread named ``name``, on a ledger
    ``open_ledger`` makes there; ``_stop`` is set once the thread should end."""

    def __init__(self, name: str, open_ledger: Callable[[], L]) -> None:
        self._open_ledger = open_ledger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to end and wait for it; True when it has ended."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        ledger = self._open_ledger()
        try:
            self._watch(ledger)
        finally:
            ledger.close()

    @abstractmethod
    def _watch(self, ledger: L) -> None:
        """The thread's work, until the lease is lost or ``_stop`` is set."""
