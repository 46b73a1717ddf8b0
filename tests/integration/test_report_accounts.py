"""Reports that take an account refuse one no profile was ever registered under, on every
store, instead of reading it as a clean, empty fleet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import register

import reports
from ledger import InvalidInput, Ledger
from projections import status
from reports._page import report_html

ASKS: dict[str, Callable[[Ledger, str], Any]] = {
    "usage": lambda ledger, a: reports.usage(a, ledger=ledger),
    "timeline": lambda ledger, a: reports.timeline(account=a, ledger=ledger),
    "fleet": lambda ledger, a: reports.fleet(account=a, ledger=ledger),
    "health": lambda ledger, a: reports.health(account=a, ledger=ledger),
    "checklist": lambda ledger, a: reports.checklist(account=a, ledger=ledger),
    "report": lambda ledger, a: report_html(account=a, ledger=ledger),
    "status": lambda ledger, a: status(ledger, account_id=a),
    "review_waits": lambda ledger, a: reports.review_waits(account=a, ledger=ledger),
    "ended_unknown": lambda ledger, a: reports.ended_unknown(account=a, ledger=ledger),
}


@pytest.mark.parametrize("report", list(ASKS))
def test_an_account_nobody_registered_is_invalid_input(ledger: Ledger, report: str) -> None:
    """Every report taking an account raises InvalidInput naming ``account`` for one no
    profile was registered under, and answers for one that was."""
    register(ledger, account_id="acct_real")
    with pytest.raises(InvalidInput, match="no profile was ever registered under") as refused:
        ASKS[report](ledger, "acct_typo")
    assert refused.value.field == "account"
    ASKS[report](ledger, "acct_real")


def test_an_account_is_known_by_its_events_not_its_rows(ledger: Ledger) -> None:
    """With the availability row of its only profile gone, the account is still one a profile
    was registered under: its status shows the profile from its events, marked as a row
    missing (rev36; it was empty before), not refused, and the fleet reads answer the profile
    from its events (rev33: they counted none)."""
    pid = register(ledger, account_id="acct_real")
    ledger.store.delete_availability(pid)
    (row,) = status(ledger, account_id="acct_real")
    assert (row.profile_id, row.row_missing) == (pid, True)
    assert reports.fleet(account="acct_real", ledger=ledger).profiles == 1
