"""The watch loop on a fake ledger (no store): it reports every pass, outlives a store that
cannot be reached, and stops between passes when told."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from ledger import StoreUnavailable, Sweep, SweepReport
from workers import watch


class FlakyLedger:
    """A ledger whose second sweep finds the store unreachable."""

    def __init__(self) -> None:
        self.sweeps = 0

    def now(self) -> datetime:
        return datetime(2024, 5, 1, tzinfo=UTC)

    def reopen_if_replaced(self) -> str | None:
        """Its file replaced before the third pass (rev41)."""
        return "its file was deleted or replaced" if self.sweeps == 2 else None

    def handle(self, command: Sweep) -> SweepReport:
        self.sweeps += 1
        if self.sweeps == 2:
            raise StoreUnavailable("store sqlite:///x.db unavailable: disk I/O error")
        return SweepReport(settled=[], failed=[])


def test_watch_reports_each_pass_survives_an_outage_and_stops_when_told() -> None:
    """Pass 1 is reported, pass 2's outage goes to trouble, pass 3 is reported again, told
    first that the store's file was opened again; the stop set during pass 3 ends the loop
    after it: three passes, no exception."""
    ledger = FlakyLedger()
    stop = threading.Event()
    reported: list[int] = []
    troubles: list[str] = []
    reopened: list[tuple[int, str]] = []

    def report(at: datetime, result: SweepReport) -> None:
        reported.append(ledger.sweeps)
        if ledger.sweeps == 3:
            stop.set()

    passes = watch(
        ledger,  # type: ignore[arg-type]
        interval=0.01,
        stop=stop,
        report=report,
        trouble=lambda at, e: troubles.append(str(e)),
        reopened=lambda line: reopened.append((ledger.sweeps, line)),
    )
    assert passes == 3
    assert reported == [1, 3]
    assert troubles == ["store sqlite:///x.db unavailable: disk I/O error"]
    assert reopened == [(2, "its file was deleted or replaced")]  # before pass 3 began
