"""The sweeper's watch: sweep again and again until told to stop.

Several sweepers, on several hosts, may watch one store at once: each transition is a
conditional append on the profile version it was decided from, so a lease is settled by exactly
one of them and the others find nothing left to do.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from ledger import Ledger, StoreUnavailable, Sweep, SweepReport

Report = Callable[[datetime, SweepReport], None]
Trouble = Callable[[datetime, StoreUnavailable], None]


def watch(
    ledger: Ledger,
    *,
    interval: float,
    stop: threading.Event,
    report: Report,
    trouble: Trouble,
    actor: str = "sweeper",
    reopened: Callable[[str], None] | None = None,
) -> int:
    """Sweep every ``interval`` seconds until ``stop`` is set; return how many passes ran.

    Each pass's report (what it settled, each at its events' time, and what it could not) goes
    to ``report`` with the time the pass began, on the ledger's clock; a store that cannot be
    reached goes to ``trouble`` and the next pass tries again, so a sweeper outlives a database
    restart. A SQLite file deleted or replaced (a restored backup) under its path since the
    ledger opened it is opened again at the pass's start (``Ledger.reopen_if_replaced``), and
    ``reopened`` told so. ``stop`` is checked between passes and during the wait: a pass under
    way is finished, never cut short. Any other error propagates.
    """
    passes = 0
    while not stop.is_set():
        said = ledger.reopen_if_replaced()
        if said is not None and reopened is not None:
            reopened(said)
        try:
            began = ledger.now()
            result = ledger.handle(Sweep(actor=actor))
        except StoreUnavailable as e:
            trouble(datetime.now().astimezone(), e)
        else:
            report(began, result)
        passes += 1
        stop.wait(interval)
    return passes
