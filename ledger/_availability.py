"""The availability table's upkeep: compare it with the event streams, and repair it.

The ledger writes each row beside its events, so an honest row never lags; these functions
prove it (``availability_differences``) and repair a table that was wiped or edited behind the
ledger's back (``rebuild_availability``). They learn what exists from the event log itself, and
they compare like with like: a row with the stream as of the row's own version, so writers
running meanwhile cause no false alarm.
"""

from __future__ import annotations

from ledger._application import Ledger
from ledger._domain.errors import UnreadableEvent
from ledger._domain.model import Frozen


class RowDifference(Frozen):
    """One row that does not say what its profile's events say."""

    profile_id: str
    problem: str
    # False where the profile's events cannot be folded (put there outside custody: verify
    # names them): no row can be rebuilt from them, and the rebuild leaves its row as it is.
    repairable: bool = True


class RebuildReport(Frozen):
    """What a rebuild found, before it repaired it, and how many rows it rewrote."""

    differences: list[RowDifference]
    rows_written: int
    rows_deleted: int

    @property
    def unrepaired(self) -> list[RowDifference]:
        return [d for d in self.differences if not d.repairable]


def availability_differences(ledger: Ledger) -> list[RowDifference]:
    """Every row that is missing, unreadable, of no registered profile, or unlike its events."""
    registered = set(ledger.profile_ids())
    readable, damaged = ledger.store.scan_availability()
    stored = {r.profile_id for r in readable} | set(damaged)
    found = []
    for pid in sorted(registered | stored):
        try:
            problem = (
                ledger.row_problem(pid) if pid in registered else "no such profile is registered"
            )
        except UnreadableEvent as e:  # one profile's damage never hides every other's
            said = f"{e.event} cannot be read ({e.problem}): custody verify names it"
            found.append(RowDifference(profile_id=pid, problem=said, repairable=False))
            continue
        if problem is not None:
            found.append(RowDifference(profile_id=pid, problem=problem))
    return found


def verify_availability(ledger: Ledger) -> list[str]:
    """The profile ids whose row differs from the events (empty: they agree)."""
    return [d.profile_id for d in availability_differences(ledger)]


def rebuild_availability(ledger: Ledger, found: list[RowDifference] | None = None) -> RebuildReport:
    """Report every difference (``found``: those ``availability_differences`` gave the caller
    just now; looked for again when None), then repair it whatever the row held: rewrite the
    row from the events (only if the stream has not moved on meanwhile: then its writer wrote
    the row) and drop rows of profiles never registered. A profile whose events cannot be
    folded is reported and left as it is (``RebuildReport.unrepaired``); every other is
    repaired. ``Forbidden`` before any write if the store's login may write nothing (a SQLite
    file this user may only read: ``Feed.refuse_read_only``)."""
    from ledger._domain.view import availability_of  # the state machine: not for the report

    differences = availability_differences(ledger) if found is None else found
    ledger.feed.refuse_read_only("the availability table")
    registered = set(ledger.profile_ids())
    written = deleted = 0
    for difference in differences:
        pid = difference.profile_id
        if not difference.repairable:
            continue
        if pid not in registered:
            ledger.store.delete_availability(pid)
            deleted += 1
        elif ledger.store.replace_availability(availability_of(ledger.uow.load(pid))):
            written += 1
    return RebuildReport(differences=differences, rows_written=written, rows_deleted=deleted)
