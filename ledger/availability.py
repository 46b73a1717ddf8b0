"""The availability table's upkeep: recompute it from the event streams, verify, rebuild.

The ledger writes each row beside its events, so the rows never lag; these functions prove it
(``verify_availability``) and repair a table that was wiped or edited behind the ledger's back
(``rebuild_availability``). Both read the event log itself, never the table, to know what exists.
"""

from __future__ import annotations

from ledger.application import Ledger
from ledger.domain.view import Availability, availability_of


def recompute_availability(ledger: Ledger) -> list[Availability]:
    """Rows computed from the event streams alone, ordered by profile id."""
    return [availability_of(ledger.uow.load(pid)) for pid in ledger.profile_ids()]


def verify_availability(ledger: Ledger) -> list[str]:
    """The profile ids whose stored row differs from a recomputation (empty: they agree)."""
    stored = {r.profile_id: r for r in ledger.availability()}
    fresh = {r.profile_id: r for r in recompute_availability(ledger)}
    return sorted(pid for pid in stored.keys() | fresh.keys() if stored.get(pid) != fresh.get(pid))


def rebuild_availability(ledger: Ledger) -> int:
    """Rewrite every row from its recomputation and drop rows of no registered profile.

    Beside live writers an upsert never moves a row back to an older version, and a row is
    dropped only after the event log confirms its profile was never registered. Returns how
    many rows were written.
    """
    rows = recompute_availability(ledger)
    ledger.store.write_availability(rows)
    known = {r.profile_id for r in rows}
    for row in ledger.availability():
        if row.profile_id not in known and ledger.store.load(row.profile_id) is None:
            ledger.store.delete_availability(row.profile_id)
    return len(rows)
