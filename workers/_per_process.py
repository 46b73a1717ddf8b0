"""What a process keeps one of per store, on a thread with a ledger of its own: the renewal
hub (``workers._hub``) and the revocation watch (``workers._revocation``).

``PerProcess`` is the registry (made on first use, forgotten in a forked child, which runs none
of its parent's threads); ``OwnLedgerThread`` is the thread's shape (started at the first lease
joined, its ledger opened on it and closed when it ends, started again at the next join if it
died).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar


class Closes(Protocol):
    def close(self) -> None: ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
L = TypeVar("L", bound=Closes)


class PerProcess(Generic[K, V]):
    """One value per key in this process, made by the first ``get`` of the key. Thread-safe; a
    forked child starts empty."""

    def __init__(self) -> None:
        self._made: dict[K, V] = {}
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            value = self._made.get(key)
            if value is None:
                value = self._made[key] = make()
            return value

    def _forget(self) -> None:
        self._made.clear()
        self._lock = threading.Lock()  # a lock its parent's thread held stays held in the child


class OwnLedgerThread(Generic[L]):
    """A thread that serves the leases joined to it with a ledger it opens itself
    (``open_ledger``), until ``_serve`` returns. ``_changed`` guards the subclass's state;
    ``_start`` is called holding it."""

    def __init__(self, open_ledger: Callable[[], L], name: str) -> None:
        self._open_ledger = open_ledger
        self._name = name
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        """The thread, started if it is not running (the caller holds ``_changed``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _serve(self, ledger: L) -> None:
        """Serve the joined leases until none is left (sets ``_thread`` to None, holding
        ``_changed``, as it decides to end)."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            ledger = self._open_ledger()
            try:
                self._serve(ledger)
            finally:
                ledger.close()
        finally:  # a thread that died is started again at the next join
            with self._changed:
                if self._thread is threading.current_thread():
                    self._thread = None
