"""Current availability as a person asks for it: filtered, and judged at a moment."""

from __future__ import annotations

from ledger import Availability, Ledger, ProfileState


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
