"""Browser facts through the Ledger on every store: a review told of a live browser refuses
to return the profile, a resent review is recognised whatever it observes this time, and a
recorded stop is on the stream and in the timeline."""

from __future__ import annotations

import pytest
from conftest import event_count, register

from ledger import (
    BrowserCheck,
    BrowserStatus,
    Checkout,
    InvalidInput,
    Ledger,
    NotAllowed,
    ProfileState,
    RecordBrowserStop,
    Release,
    Review,
)
from projections import timeline

DIR = "/profiles/profile_shop_17"


def _check(status: BrowserStatus) -> BrowserCheck:
    return BrowserCheck(
        user_data_dir=DIR, status=status, host="vm", lock_host="vm", pid=77, detail=status.value
    )


def _in_review(ledger: Ledger) -> str:
    pid = register(ledger, user_data_dir=DIR)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="failure")
    )
    return pid


def test_review_told_of_a_live_browser_refuses_to_return_and_writes_nothing(
    ledger: Ledger,
) -> None:
    """Ledger.review(browser=alive, decision=return) is NotAllowed and appends nothing; told
    the browser is gone, the same review returns the profile."""
    pid = _in_review(ledger)
    before = event_count(ledger)
    with pytest.raises(NotAllowed, match="still runs"):
        ledger.handle(
            Review(
                profile_id=pid,
                reviewer="rita",
                decision="return",
                note="ok",
                browser=_check(BrowserStatus.ALIVE),
            )
        )
    assert event_count(ledger) == before
    row = ledger.handle(
        Review(
            profile_id=pid,
            reviewer="rita",
            decision="return",
            note="ok",
            browser=_check(BrowserStatus.NOT_RUNNING),
        )
    )
    assert row.state is ProfileState.AVAILABLE


def test_a_resent_review_is_recognised_whatever_it_observes_now(ledger: Ledger) -> None:
    """The browser fact is an observation, not part of what was asked: resending a review
    with its command id replays it even though the inspection's words changed."""
    pid = _in_review(ledger)
    first = ledger.handle(
        Review(
            profile_id=pid,
            reviewer="rita",
            decision="quarantine",
            note="check later",
            browser=_check(BrowserStatus.ALIVE),
            command_id="review-1",
        )
    )
    count = event_count(ledger)
    again = ledger.handle(
        Review(
            profile_id=pid,
            reviewer="rita",
            decision="quarantine",
            note="check later",
            browser=_check(BrowserStatus.NOT_RUNNING),
            command_id="review-1",
        )
    )
    assert (again.state, again.version) == (first.state, first.version)
    assert event_count(ledger) == count
    with pytest.raises(InvalidInput, match="command_id"):
        ledger.handle(
            Review(
                profile_id=pid, reviewer="rita", decision="disable", note="x", command_id="review-1"
            )
        )


def test_a_recorded_stop_is_in_the_history_and_the_timeline(ledger: Ledger) -> None:
    """record_browser_stop appends browser_stopped (state unchanged); the timeline shows the
    host, pid, directory and signal; another directory is refused."""
    pid = _in_review(ledger)
    row = ledger.handle(
        RecordBrowserStop(
            profile_id=pid, actor="ops", host="vm", pid=77, user_data_dir=DIR, signal="SIGHUP"
        )
    )
    assert row.state is ProfileState.REVIEW_REQUIRED
    last = timeline(ledger, pid)[-1]
    assert (last.event_type, last.actor_id, last.actor_role) == (
        "browser_stopped",
        "ops",
        "operator",
    )
    for part in ("host=vm", "pid=77", f"user_data_dir={DIR}", "signal=SIGHUP"):
        assert part in last.detail
    with pytest.raises(NotAllowed, match="registered directory"):
        ledger.handle(
            RecordBrowserStop(
                profile_id=pid,
                actor="ops",
                host="vm",
                pid=77,
                user_data_dir="/elsewhere",
                signal="SIGHUP",
            )
        )
    with pytest.raises(InvalidInput, match="signal"):
        ledger.handle(
            RecordBrowserStop(
                profile_id=pid, actor="ops", host="vm", pid=77, user_data_dir=DIR, signal="SIGTERM"
            )
        )
