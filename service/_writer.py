"""Group commit: one thread owns the process's writing ledger; requests queue their commands
and the thread writes whatever has queued since its last transaction in one
(``Ledger.handle_together``). Nothing waits on purpose: a lone command is written at once,
and under load the queue fills while the previous transaction commits."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ledger import Command, Ledger, LedgerError, StoreUnavailable

# The most commands one transaction carries: a bound on a transaction's length and on how
# long one slow batch delays the requests queued behind it.
MAX_BATCH = 200


@dataclass
class WriterStats:
    """What the writer did, for /metrics: commands written and the transactions they took."""

    commands: int = 0
    batches: int = 0
    sizes: list[int] = field(default_factory=list)  # the sizes not yet observed by /metrics

    def record(self, size: int) -> None:
        self.commands += size
        self.batches += 1
        self.sizes.append(size)

    def drain(self) -> list[int]:
        sizes, self.sizes = self.sizes, []
        return sizes


class Writer:
    """The writing thread; ``submit`` queues a command and returns its future answer."""

    def __init__(self, open_ledger: Callable[[], Ledger], *, max_batch: int = MAX_BATCH) -> None:
        self._open = open_ledger
        self._max = max_batch
        self._queue: queue.SimpleQueue[tuple[Command[Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="custody-writer", daemon=True)
        self.stats = WriterStats()

    def start(self) -> None:
        self._thread.start()

    def submit(self, command: Command[Any]) -> Future[Any]:
        done: Future[Any] = Future()
        self._queue.put((command, done))
        return done

    def stop(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        ledger = self._open()
        try:
            stopping = False
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self._max:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stopping = True
                        break
                    batch.append(item)
                self._write(ledger, batch)
        finally:
            ledger.close()

    def _write(self, ledger: Ledger, batch: list[tuple[Command[Any], Future[Any]]]) -> None:
        commands = [command for command, _ in batch]
        try:
            if len(commands) == 1:
                answers = [_alone(ledger, commands[0])]
            else:
                answers = ledger.handle_together(commands)
        except BaseException as e:  # the store failed the whole batch: each request hears it
            for _, done in batch:
                done.set_exception(e)
            if not isinstance(e, Exception):
                raise
            return
        self.stats.record(len(commands))
        for (_, done), answer in zip(batch, answers, strict=True):
            if isinstance(answer, LedgerError):
                done.set_exception(answer)
            else:
                done.set_result(answer)


def _alone(ledger: Ledger, command: Command[Any]) -> Any:
    try:
        return ledger.handle(command)
    except StoreUnavailable:
        raise
    except LedgerError as e:
        return e
