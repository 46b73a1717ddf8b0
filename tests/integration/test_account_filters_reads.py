"""review8: an account filter holding NUL still fails on PostgreSQL as a store outage when it
reaches the timeline's or the usage's query (``custody timeline --account``, ``custody usage
--account``, ``projections.timeline`` / ``projections.usage``).

Guarantee (069c41a, "A read's account filter holding NUL or a lone surrogate is bad input
naming account on both stores"; quality bar: bad input gets one clear refusal naming what is
wrong, never a ``StoreUnavailable``, which callers retry as an outage).

Observed: the fix put the check in ``projections._timeline.require_account``, but
``read_timeline``, ``read_usage`` (projections/_leases.py) and ``reports.review_waits`` (its
``read_events``) run their SQL query with the account *first* and call ``require_account`` only
when it found nothing. On SQLite the query finds nothing and the refusal follows (InvalidInput
naming account); on PostgreSQL the query itself fails on the NUL: ``StoreUnavailable: store
postgresql://... unavailable: PostgreSQL text fields cannot contain NUL (0x00) bytes`` (the
CLI's exit 6, "store unavailable"). 069c41a's test covers only ``/v1/profiles`` and
``/v1/fleet``, whose filter is applied in Python before ``require_account``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import register

from ledger import InvalidInput, Ledger
from projections import timeline, usage
from reports import review_waits

READS: dict[str, Callable[[Ledger, str], Any]] = {
    "timeline": lambda ledger, account: timeline(ledger, account_id=account),
    "usage": lambda ledger, account: usage(ledger, account_id=account),
    "review_waits": lambda ledger, account: review_waits(account=account, ledger=ledger),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_an_account_filter_holding_nul_is_invalid_input_naming_account(
    ledger: Ledger, read: str
) -> None:
    register(ledger, "p1", account_id="a1")
    with pytest.raises(InvalidInput) as refused:
        READS[read](ledger, "a\x001")
    assert refused.value.field == "account"
