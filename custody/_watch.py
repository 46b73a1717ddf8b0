"""``custody sweep --watch``: the sweeper as a long-running process.

It logs each transition it makes, one line each (a JSON object a line with ``--json``) on
stdout, and says on stderr when it starts, when the store cannot be reached, when its SQLite
file was deleted or replaced (it goes on with the file now at the path) and when it stops.
SIGINT and SIGTERM stop it cleanly: the pass under way is finished, then it exits 0.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from types import FrameType
from typing import TextIO

from custody import _render as render
from custody._text import moment, one_line, printable
from ledger import Ledger, StoreUnavailable, SweepReport, SweepResult
from workers import inspect_here, watch

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def watch_sweeps(
    ledger: Ledger,
    *,
    interval: float,
    as_json: bool,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> None:
    """Sweep every ``interval`` seconds until SIGINT or SIGTERM (main thread only)."""
    out, err = out or sys.stdout, err or sys.stderr
    with stop_on_signals() as stop:
        err.write(
            f"custody: sweeping {ledger.settings.describe()} every {interval:g} s; "
            "stop with Ctrl-C or SIGTERM\n"
        )
        err.flush()

        printing = [True]

        def report(at: datetime, result: SweepReport) -> None:
            # Standard output closed or full: the transitions are no longer printed, and the
            # sweeper sweeps on (it died of an internal error on its first transition); the
            # events keep every one.
            if not printing[0]:
                return
            try:
                for line in _lines(ledger, at, result, as_json):
                    out.write(line + "\n")
                out.flush()
            except (OSError, ValueError, AttributeError) as e:
                printing[0] = False
                why = "standard output is closed" if out is None else one_line(str(e))
                with contextlib.suppress(OSError, ValueError):
                    err.write(
                        f"custody: transitions are no longer printed ({why}); "
                        "sweeping goes on, and the events keep every transition\n"
                    )
                    err.flush()

        def trouble(at: datetime, error: StoreUnavailable) -> None:
            err.write(f"custody: {one_line(str(error))}; next pass in {interval:g} s\n")
            err.flush()

        def reopened(line: str) -> None:
            err.write(f"custody: {one_line(line)}\n")
            err.flush()

        passes = watch(
            ledger, interval=interval, stop=stop, report=report, trouble=trouble,
            reopened=reopened,
        )  # fmt: skip
    # Lost version races are the sign of sweepers working side by side (each lost race was
    # decided again on the winner's events, so nothing was settled twice).
    err.write(
        f"custody: sweeper stopped after {passes} pass(es); "
        f"{ledger.conflicts} version race(s) lost to other writers\n"
    )


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event that SIGINT or SIGTERM sets, for the block (main thread only): a long-running
    command finishes what it is doing, then stops cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """For the block (main thread only), SIGTERM is Ctrl-C: a KeyboardInterrupt, which a
    command undoes what it began for (a rebuild drops its copy) and answers in one line, exit
    130 (rev37: a rebuild SIGTERMed died of it, no line, its copy left behind)."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _lines(ledger: Ledger, began: datetime, result: SweepReport, as_json: bool) -> list[str]:
    """One line a transition: each lease settled (with what its browser's directory shows on
    this host), at its events' time, as the timeline shows them (it was the time the pass
    began, before them: rev30); each profile that could not be, at the time the pass began
    (``began``: nothing was written)."""
    lines = []
    for settled in result.settled:
        browser = _browser(ledger, settled)
        at = settled.at or began
        if as_json:
            fields = {"at": at.isoformat(), "transition": "settled"}
            answer = settled.model_dump(mode="json", exclude={"at"})
            lines.append(json.dumps({**fields, **answer, "browser": browser}))
        else:
            seen = f"; browser {browser['status']}: {browser['detail']}" if browser else ""
            lines.append(printable(f"{moment(at)} {render.settled_line(settled)}{seen}"))
    for failed in result.failed:
        if as_json:
            fields = {"at": began.isoformat(), "transition": "failed"}
            lines.append(json.dumps({**fields, **failed.model_dump(mode="json")}))
        else:
            lines.append(printable(f"{moment(began)} {render.failed_line(failed)}"))
    return lines


def _browser(ledger: Ledger, settled: SweepResult) -> dict[str, object] | None:
    """A stale lease's browser may still run (a hung worker): look, if its directory is here."""
    try:
        directory = ledger.view(settled.profile_id).record.user_data_dir
    except StoreUnavailable:
        return None
    check = inspect_here(directory)
    return check.model_dump(mode="json") if check is not None else None
