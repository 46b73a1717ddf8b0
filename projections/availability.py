"""Current availability as a person asks for it: filtered, and judged at a moment."""

from __future__ import annotations

from ledger import Availability, Ledger, ProfileState


class StatusRow(Availability):
    """An availability row judged at a moment: ``overdue`` when a lease missed its deadline."""

    overdue: bool


def status(
    ledger: Ledger, *, account_id: str | None = None, state: ProfileState | None = None
) -> list[StatusRow]:
    """Every profile's availability, optionally for one account or one state."""
    now = ledger.now()
    rows = [
        r
        for r in ledger.availability()
        if (account_id is None or r.account_id == account_id)
        and (state is None or r.state is state)
    ]
    return [StatusRow(**r.model_dump(), overdue=r.overdue_at(now)) for r in rows]
