"""Group commit: one thread owns the process's writing ledger; requests queue their commands
and the thread writes whatever has queued since its last transaction in one
(``Ledger.handle_together``). Nothing waits on purpose: a lone command is written at once,
and under load the queue fills while the previous transaction commits."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ledger import Command, Ledger, LedgerError, StoreUnavailable

log = logging.getLogger("custody.service")

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
        """Queue ``command``; its future answer. ``StoreUnavailable`` at once when the writer
        is not running (stopped, or failed), rather than a request waiting for nobody."""
        done: Future[Any] = Future()
        if not self._thread.is_alive():
            done.set_exception(StoreUnavailable("the service's writer is not running"))
            return done
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
        answers: list[Any]
        try:
            if len(commands) == 1:
                answers = [_alone(ledger, commands[0])]
            else:
                answers = ledger.handle_together(commands)
        except StoreUnavailable as e:  # the store failed the whole batch: each request hears it
            answers = [e] * len(commands)
        except Exception:  # one command's unforeseen failure: each runs alone, so it fails alone
            log.exception("a batch failed; its commands run one at a time")
            answers = [_alone(ledger, command) for command in commands]
        self.stats.record(len(commands))
        for (_, done), answer in zip(batch, answers, strict=True):
            _settle(done, answer)


def _settle(done: Future[Any], answer: Any) -> None:
    """Answer a request, unless it was cancelled meanwhile (a client gone, a shutdown past its
    grace): its command was written all the same."""
    if not done.set_running_or_notify_cancel():
        return
    if isinstance(answer, BaseException):
        done.set_exception(answer)
    else:
        done.set_result(answer)


def _alone(ledger: Ledger, command: Command[Any]) -> Any:
    """One command's answer, or the error it raised (whatever it is)."""
    try:
        return ledger.handle(command)
    except Exception as e:
        if not isinstance(e, LedgerError):
            log.exception("a command failed unforeseen")
        return e
