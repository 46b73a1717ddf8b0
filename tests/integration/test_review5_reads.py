"""review5: reproducers of reads that answer a person with something other than a clear
sentence."""

from __future__ import annotations

from conftest import register

from ledger import Ledger


def test_watching_a_lease_of_a_never_leased_profile_says_so_not_none(ledger: Ledger) -> None:
    """``GET /v1/leases/lease-1@p1`` (``Ledger.check_lease``) on a profile never leased
    answers ``why = "p1's latest lease is None"`` (``ledger._domain.row.lease_check``)."""
    register(ledger, "p1")
    check = ledger.check_lease("lease-1@p1")
    assert not check.live
    assert check.why is not None
    assert "None" not in check.why, check.why
