"""Current availability as a person asks for it: filtered, and judged at a moment."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger import Availability, Ledger, ProfileState

if TYPE_CHECKING:
    from projections._runner import ReadModelStatus

AVAILABILITY = "availability"  # its name where the read models are listed and rebuilt


class StatusRow(Availability):
    """An availability row judged at a moment: ``overdue`` when a lease missed its deadline;
    ``damaged`` says what was wrong with a stored row that could not be read (the row shown is
    then the one the events give; ``custody rebuild`` repairs the table)."""

    overdue: bool
    damaged: str | None = None


def status(
    ledger: Ledger, *, account_id: str | None = None, state: ProfileState | None = None
) -> list[StatusRow]:
    """Every profile's availability, optionally for one account or one state;
    ``InvalidInput`` naming ``account`` for an account no profile was registered under."""
    now = ledger.now()
    rows: list[tuple[Availability, str | None]] = [(r, None) for r in ledger.availability()]
    damaged = ledger.damaged_availability()
    if damaged:  # rows of profiles never registered are junk: rebuild drops them
        registered = set(ledger.profile_ids())
        rows += [
            (ledger.availability_from_events(pid), problem)
            for pid, problem in damaged.items()
            if pid in registered
        ]
    if account_id is not None:
        rows = [(r, problem) for r, problem in rows if r.account_id == account_id]
        if not rows:  # no row says so, but a row may be missing: the events decide
            # Imported here: the timeline and its catch-up are what this rare case alone
            # reads, so a plain ``custody status`` brings no read model up to date.
            from projections._timeline import require_account

            require_account(ledger, account_id)
    return [
        StatusRow(**r.model_dump(), overdue=r.overdue_at(now), damaged=problem)
        for r, problem in sorted(rows, key=lambda pair: pair[0].profile_id)
        if state is None or r.state is state
    ]


def availability_status(ledger: Ledger) -> ReadModelStatus:
    """The availability table as ``custody projections status`` lists it beside the read
    models fed from the log: written with the events (no checkpoint, never behind), its rows
    checked against every profile's events (``ledger.availability_differences``): a row
    missing, unreadable, unlike its events or of no registered profile is one problem each,
    naming the repair. ``custody status`` and ``fleet`` read the rows as they stand."""
    from ledger import availability_differences
    from projections._runner import ReadModelStatus

    head = ledger.feed.head()
    readable, damaged = ledger.store.scan_availability()
    problems = [
        f"{AVAILABILITY}: profile {d.profile_id}: its row is {_worded(d.problem)}: "
        f"custody projections rebuild {AVAILABILITY}"
        for d in availability_differences(ledger)
    ]
    return ReadModelStatus(
        name=AVAILABILITY,
        position=head,
        head=head,
        lag=0,
        rows=len(readable) + len(damaged),
        rebuilding=False,
        problems=problems,
    )


def _worded(problem: str) -> str:
    """``ledger.availability_differences``' words after "its row is"."""
    if problem == "no such profile is registered":
        return "of no registered profile"
    return problem.replace("differs in ", "unlike its events in ", 1)
