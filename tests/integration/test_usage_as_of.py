"""Usage and the runs that ended unknown as of a moment, on every store: what the events said
then, never an ending, heartbeat or lease recorded after it (rev30 incident review: the
compliance notebook's AS_OF listed a lease live then as "ended stale" by a later sweep)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from conftest import StepClock, register

import reports
from ledger import Checkout, Heartbeat, InvalidInput, Ledger, Release, Sweep

ACCOUNT = "account_shop_17"


def test_a_lease_live_at_the_moment_reads_as_it_did_then(ledger: Ledger, clock: StepClock) -> None:
    """As of a moment a lease was live, usage gives its row exactly as the read model gave
    it at that moment (no end, ending or cause; its heartbeats and steps by then), though a
    later heartbeat, a mutating step and the sweep's settlement have changed it since; a lease
    ended by then is as it is; one begun later is absent; and ended_unknown lists nothing."""
    done, live = register(ledger, "profile_a"), register(ledger, "profile_b")
    first = ledger.handle(Checkout(profile_id=done, worker_id="w1", run_id="r1", task_type="t"))
    clock.advance(5)
    clean = {"outcome": "success", "final_url": "https://shop.example/done"}
    ledger.handle(Release(lease_id=first.lease_id, fencing_token=1, **clean))
    lease = ledger.handle(
        Checkout(profile_id=live, worker_id="w2", run_id="r2", task_type="t", ttl_seconds=60)
    )
    clock.advance(10)
    beat = {"lease_id": lease.lease_id, "fencing_token": lease.fencing_token}
    ledger.handle(Heartbeat(**beat, step="search", url="https://shop.example/a", safe=True))
    clock.advance(5)
    as_of = clock.now
    then = reports.usage(ACCOUNT, ledger=ledger)
    assert list(then["ending"].isna()) == [False, True]  # profile_b's lease is live then

    clock.advance(20)
    ledger.handle(Heartbeat(**beat, step="pay", url="https://shop.example/b", mutating=True))
    clock.advance(120)
    ledger.handle(Sweep())  # settles profile_b's lease: stale, after as_of
    register(ledger, "profile_c")
    ledger.handle(Checkout(profile_id="profile_c", worker_id="w3", run_id="r3", task_type="t"))

    now = reports.usage(ACCOUNT, ledger=ledger)
    assert list(now["ending"]) == ["clean", "stale", pd.NA]
    pd.testing.assert_frame_equal(reports.usage(ACCOUNT, at=as_of, ledger=ledger), then)
    assert reports.ended_unknown(at=as_of, ledger=ledger).empty
    assert list(reports.ended_unknown(ledger=ledger)["run_id"]) == ["r2"]
    # A window that ends after the moment still holds only what was known then.
    later = clock.now + timedelta(days=1)
    asked = reports.usage(ACCOUNT, until=later, at=as_of, ledger=ledger)
    pd.testing.assert_frame_equal(asked, then)


@pytest.mark.parametrize(
    ("ask", "field", "said"),
    [
        ({"at": "2999-01-01"}, "at", "after the store's time"),
        ({"since": "2001-01-01", "at": "2000-01-01"}, "since", "after the moment judged at"),
    ],
)
def test_a_moment_after_the_store_or_before_the_window_is_refused(
    ledger: Ledger, ask: dict[str, str], field: str, said: str
) -> None:
    """A moment after the store's time, or a window starting after the moment, is bad input
    naming the field and saying so: the events cannot tell what was still to come."""
    register(ledger)
    with pytest.raises(InvalidInput, match=said) as refused:
        reports.usage(ACCOUNT, ledger=ledger, **ask)  # type: ignore[arg-type]
    assert refused.value.field == field
