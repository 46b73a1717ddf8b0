"""Current availability: filtered reads of the rows the ledger keeps, and their rebuild.

The rows are written beside the events; ``rebuild_availability`` recomputes every row from the
event streams alone and ``verify_availability`` proves the two agree.
"""

from __future__ import annotations

from datetime import datetime

from ledger import Availability, Ledger, ProfileState
from ledger.domain.view import availability_of
from ledger.stores.recorders import (
    AVAILABILITY_TABLE,
    availability_params,
    upsert_availability_sql,
)


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
    return [StatusRow(**r.model_dump(), overdue=_overdue(r, now)) for r in rows]


def _overdue(row: Availability, now: datetime) -> bool:
    return row.state is ProfileState.LEASED and row.until is not None and row.until < now


def profile_ids(ledger: Ledger) -> list[str]:
    """Every registered profile, read from the event log (not from any read model)."""
    ids: list[str] = []
    start = 1
    while True:
        batch = ledger.store.app.recorder.select_notifications(
            start, 1000, topics=["profile_registered"]
        )
        if not batch:
            return ids
        ids.extend(ledger.store.app.mapper.to_domain_event(n).profile_id for n in batch)  # type: ignore[attr-defined]
        start = batch[-1].id + 1


def recompute(ledger: Ledger) -> list[Availability]:
    """Availability rows computed from the event streams alone, ordered by profile id."""
    return [availability_of(ledger.profile(pid)) for pid in sorted(profile_ids(ledger))]


def verify_availability(ledger: Ledger) -> list[str]:
    """The profile ids whose stored row differs from a recomputation (empty: they agree)."""
    stored = {r.profile_id: r for r in ledger.availability()}
    fresh = {r.profile_id: r for r in recompute(ledger)}
    return sorted(pid for pid in stored.keys() | fresh.keys() if stored.get(pid) != fresh.get(pid))


def rebuild_availability(ledger: Ledger) -> int:
    """Rewrite every row from its recomputation and drop rows of no registered profile.

    Safe beside live writers: an upsert never replaces a row with an older version.
    Returns how many rows were written.
    """
    rows = recompute(ledger)
    keep = {r.profile_id for r in rows}
    orphans = [(r.profile_id,) for r in ledger.availability() if r.profile_id not in keep]
    if orphans:
        ledger.store.executemany(f"DELETE FROM {AVAILABILITY_TABLE} WHERE profile_id = ?", orphans)
    if rows:
        ledger.store.executemany(
            upsert_availability_sql("?"), [availability_params(r) for r in rows]
        )
    return len(rows)
