"""What ``checklist --strict`` counts as answers left incomplete: read models this login may not
fold, once each, and not those a transaction still open held back for a moment (rev32: a
reread found the owner's strict checklist exit 5, saying its login 'may not fold' them)."""

from __future__ import annotations

from ledger.feed import ReadModelBehind
from reports._checklist import may_not_fold


def test_only_read_models_this_login_may_not_fold_count_once_each() -> None:
    notes = [
        ReadModelBehind("timeline", 3),
        ReadModelBehind("leases", 2, held_at=40),  # an open transaction's gap: not counted
        ReadModelBehind("timeline", 5),  # the same read model again: counted once
        ReadModelBehind("leases", 1),
    ]
    said = may_not_fold(notes)
    assert [line.split()[1] for line in said] == ["leases", "timeline"]
    assert "has 3 event(s)" in said[1]  # the first note of it
    assert may_not_fold([ReadModelBehind("leases", 2, held_at=40)]) == []
