"""SIGTERM (how Kubernetes and systemd stop a process) while a lease is held: the lease is ended
truthfully, its browser stopped, and then the process stops.

By default SIGTERM kills a Python process on the spot: no release, and the profile waits out its
TTL to be marked stale as "deadline missed". While a lease is held on the main thread (the sync
SDK's block, or the asyncio SDK's on an event loop of the main thread), from the moment its
checkout is sent, the SDK handles it instead (one that comes while the ledger decides the
checkout waits for the answer: a lease granted is released before the block runs, a denial
gives way to ``Terminated``):

- sync: the handler raises ``Terminated`` in the task at once (Playwright's sync API is made to
  survive an exception a signal handler raises while it waits), or, if the task is inside one
  of the SDK's own ledger calls, as soon as that call returns;
- asyncio: the handler cancels the task running the checkout block;

the block unwinds (the browser block takes the final screenshot and closes the browser), the
lease is released as a failure saying "terminated by SIGTERM at step '...'", so the rules send
the profile to review (or quarantine after an unconfirmed mutating step), and ``Terminated``
(a ``SystemExit`` with status 143, as for a process killed by the signal) leaves the block.

A handler the application installed itself is never replaced: it stays, and runs, the SDK only
noting the signal so that a release that follows says it (the application decides how to stop).
SIG_IGN is left alone. When the last lease is left, whatever was there before is put back.
Leases held on other threads are not covered: Python runs signal handlers on the main thread.

A stopped process does not wait on its store for long: from the signal (or from a block left by
SIGINT: the sync block by ``KeyboardInterrupt``, the asyncio one by the cancellation that
``asyncio.run`` sends its main task on SIGINT), leaving the lease waits at most
``STOP_WAIT_SECONDS`` for the store (a heartbeat on its way, the revocation watch, the release's
retries; one release is always tried). A store that has not taken the release by then (down,
locked, hung) leaves the lease live in the ledger, to go stale at its deadline as "deadline
missed" (a release whose answer was lost, so that it may have committed, is resent once more
past the wait: ``workers._renewal.release``); the SDK says so on its logger
(``custody.workers``, stderr when logging is not configured), and the process goes on stopping
(rev38: 41 s on a locked SQLite at a 60 s TTL, 45 s on a stopped PostgreSQL, about 200 s at the
default TTL).

Only a stop is such a stop. A block left by the application's own cancellation
(``asyncio.wait_for``'s timeout, ``task.cancel()``), by ``sys.exit`` or by any other
``SystemExit`` than ``Terminated`` is not: the process goes on, so its release is resent until
the store takes it, as for any other error (rev38: a timeout gave the release up after 5 s and
left the profile blocked to its deadline, then in review). A cancellation counts as SIGINT's
only when the SIGINT handler is ``asyncio.Runner``'s and it has counted an interrupt; a handler
of any other shape makes it the application's (the safe default: the release is resent).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Protocol

from workers._reasons import capped, reason_of, storable

Handler = Callable[[int, FrameType | None], Any] | int | None
# After a stop, how long leaving a lease waits for a store that does not answer: a few seconds,
# well inside Kubernetes' 30 s grace period, and longer than one try of a store that is up.
STOP_WAIT_SECONDS = 5.0


class Terminated(SystemExit):
    """The worker was stopped by ``signal`` while it held a lease; the lease was released as
    a failure saying so. Exits the process with 128 + the signal's number (143 for SIGTERM)
    unless caught; ``except Exception`` does not catch it."""

    def __init__(self, signum: int) -> None:
        self.signal = signal.Signals(signum)
        super().__init__(128 + self.signal)

    def __str__(self) -> str:
        return f"terminated by {self.signal.name}"


class Terminable(Protocol):
    """A held lease, as the handler sees it."""

    def note(self, signum: int) -> None:
        """The signal came and the application's own handler decides: remember it only."""

    def stop(self, signum: int) -> None:
        """The signal came and the SDK stops the run, which a lease held inside this one's
        block interrupts: remember that it must stop."""

    def terminate(self, signum: int) -> bool:
        """The signal came and the SDK stops the run (for asyncio, by cancelling the block's
        task); True when the handler should raise ``Terminated`` at once (a sync lease outside
        the SDK's own ledger calls)."""


class Signalled:
    """What SIGTERM did to one held lease: the signal noted, whether the SDK stops the run,
    and the SDK's own ledger calls, which a raise must not cut in two (a connection left
    mid-transaction): ``Terminated`` then waits for the end of the call."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.must_stop = False
        self.stopped_at: float | None = None  # time.monotonic() when the process was stopped
        self._depth = 0
        self._pending = False

    def note(self, signum: int) -> None:
        self.signal = signal.Signals(signum)

    def stop(self, signum: int) -> None:
        self.note(signum)
        self.must_stop = True
        self._stopped()

    def left_by(self, error: BaseException | None) -> None:
        """The block is left with ``error``: ``KeyboardInterrupt`` (the sync SIGINT), or a
        cancellation that ``asyncio.run`` sent on SIGINT, stops the process as SIGTERM does. Any
        other cancellation or ``SystemExit`` is the application's own (``Terminated`` has
        stopped it already): the release is resent as after any error."""
        if isinstance(error, KeyboardInterrupt) or (
            isinstance(error, asyncio.CancelledError) and _runner_interrupted()
        ):
            self._stopped()

    def _stopped(self) -> None:
        if self.stopped_at is None:
            self.stopped_at = time.monotonic()

    def store_wait(self, seconds: float) -> float:
        """``seconds``, cut to what is left of ``STOP_WAIT_SECONDS`` once the process was
        stopped (0 past it)."""
        if self.stopped_at is None:
            return seconds
        left = self.stopped_at + STOP_WAIT_SECONDS - time.monotonic()
        return max(0.0, min(seconds, left))

    def waited_enough(self) -> bool:
        """True once the process was stopped ``STOP_WAIT_SECONDS`` ago or more: leaving the
        lease waits for the store no more."""
        return self.stopped_at is not None and self.store_wait(STOP_WAIT_SECONDS) <= 0

    def terminate(self, signum: int) -> bool:
        """The SDK stops the run; True when it may be interrupted now."""
        self.stop(signum)
        if self._depth:
            self._pending = True
        return not self._depth

    @contextmanager
    def sdk_call(self, *, then_raise: bool = True) -> Iterator[None]:
        """One of the SDK's ledger calls: a SIGTERM meanwhile raises ``Terminated`` at its end
        (unless ``then_raise`` is False: the caller checks ``must_stop`` itself)."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
        if then_raise and self._pending and not self._depth and self.signal is not None:
            self._pending = False
            raise Terminated(self.signal)

    def reason(self, step: str | None, error: BaseException) -> str | None:
        """The release's reason after the signal: None if no signal came."""
        if self.signal is None:
            return None
        said = f"terminated by {self.signal.name} "
        said += f"at step {step!r}" if step else "before its first step"
        if not isinstance(error, Terminated | asyncio.CancelledError):
            said += f" ({reason_of(error)})"  # the application's own handler's doing
        return capped(storable(said))


def _runner_interrupted() -> bool:
    """True when SIGINT's handler is ``asyncio.Runner``'s (``asyncio.run`` installs
    ``functools.partial(runner._on_sigint, main_task=...)``) and it has counted a SIGINT;
    False for a handler of any other shape."""
    handler = signal.getsignal(signal.SIGINT)
    runner = getattr(getattr(handler, "func", None), "__self__", None)
    count = getattr(runner, "_interrupt_count", 0)
    return isinstance(count, int) and count > 0


_lock = threading.Lock()
_held: list[Terminable] = []
_stand_ins: dict[int, Terminable] = {}  # who answers for a lease held (``handed_over``)
_previous: Handler = None


@contextmanager
def handling(lease: Terminable) -> Iterator[None]:
    """SIGTERM ends ``lease`` truthfully while the block runs (on the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _enter(lease)
    try:
        yield
    finally:
        _leave(lease)


@contextmanager
def handed_over(before: Terminable, after: Terminable) -> Iterator[None]:
    """``after`` answers SIGTERM in ``before``'s place while the block runs (a lease checked out
    under ``before``'s handling: no moment between the two without the SDK's handler).
    ``before`` keeps its place among the leases held, whichever block ends first (asyncio may
    finalise the two at shutdown in either order)."""
    with _lock:
        _stand_ins[id(before)] = after
    try:
        yield
    finally:
        with _lock:
            _stand_ins.pop(id(before), None)


def _enter(lease: Terminable) -> None:
    global _previous
    with _lock:
        if not _held:
            _previous = signal.getsignal(signal.SIGTERM)
            if _previous is not signal.SIG_IGN:
                signal.signal(signal.SIGTERM, _on_sigterm)
        _held.append(lease)


def _leave(lease: Terminable) -> None:
    with _lock:
        _held.remove(lease)
        if not _held and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, _previous if _previous is not None else signal.SIG_DFL)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Runs on the main thread, between two bytecodes of whatever it was doing."""
    previous, held = _previous, [_stand_ins.get(id(lease), lease) for lease in _held]
    if callable(previous):  # the application's own handler decides; the leases note it
        for lease in held:
            lease.note(signum)
        previous(signum, frame)
        return
    if not held:
        return
    *outer, innermost = held  # a lease held inside another's block: it interrupts the run
    for lease in outer:
        lease.stop(signum)
    if innermost.terminate(signum):
        raise Terminated(signum)
