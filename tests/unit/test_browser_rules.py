"""The ledger's rules about a profile's browser, on the pure aggregate (no I/O): the liveness
fact is passed in, never read; a live browser forbids returning the profile to the pool; a stop
is allowed only without a holder and is recorded as ``browser_stopped``."""

from __future__ import annotations

import pytest
from profile_scene import Scene

from ledger._domain.browser import (
    BrowserCheck,
    BrowserStatus,
    StopSignal,
    blocking_note,
    stop_refusal,
)
from ledger._domain.errors import NotAllowed
from ledger._domain.model import Outcome, ProfileState, ReviewDecision, Role
from ledger._domain.profile import replay

DIR = "/profiles/profile_shop_17"


def _check(status: BrowserStatus, pid: int | None = 4242) -> BrowserCheck:
    return BrowserCheck(
        user_data_dir=DIR, status=status, host="vm", lock_host="vm", pid=pid, detail="seen"
    )


def _in_review() -> Scene:
    s = Scene()
    s.release(s.checkout(), Outcome.FAILURE)
    assert s.profile.state is ProfileState.REVIEW_REQUIRED
    return s


def test_review_return_is_refused_while_the_browser_is_alive() -> None:
    """A reviewer cannot return a profile to the pool while a browser still runs on its
    directory: NotAllowed naming the stop command, nothing appended, still in review."""
    s = _in_review()
    ctx = s.ctx("rita", Role.REVIEWER)
    with pytest.raises(NotAllowed, match="--stop-orphan"):
        s.profile.review(ReviewDecision.RETURN, "looks fine", ctx, _check(BrowserStatus.ALIVE))
    assert s.profile.pending_events == []
    assert s.profile.state is ProfileState.REVIEW_REQUIRED


@pytest.mark.parametrize(
    "status", [BrowserStatus.NOT_RUNNING, BrowserStatus.STALE_LOCK, BrowserStatus.UNKNOWN]
)
def test_review_return_is_allowed_when_no_browser_is_known_alive(status: BrowserStatus) -> None:
    """Only a browser known alive blocks the return: no lock, a stale lock or a lock of
    another host (which this host cannot judge) let the reviewer decide."""
    s = _in_review()
    s.profile.review(ReviewDecision.RETURN, "ok", s.ctx("rita", Role.REVIEWER), _check(status))
    assert s.types(s.collect()) == ["profile_reviewed", "profile_returned_to_pool"]
    assert s.profile.state is ProfileState.AVAILABLE


@pytest.mark.parametrize("decision", [ReviewDecision.QUARANTINE, ReviewDecision.DISABLE])
def test_keeping_a_profile_out_of_the_pool_is_allowed_with_a_live_browser(
    decision: ReviewDecision,
) -> None:
    """Quarantining or disabling keeps the profile out of the pool, so a live browser does
    not stand in the way."""
    s = _in_review()
    s.profile.review(decision, "no", s.ctx("rita", Role.REVIEWER), _check(BrowserStatus.ALIVE))
    assert s.profile.state is not ProfileState.AVAILABLE


def test_a_stop_is_refused_while_a_lease_holds_the_profile_live_or_stale() -> None:
    """The stop rule: a live lease, and a stale one not yet settled, both refuse; with no
    lease (in review) the stop is allowed."""
    s = Scene()
    lease = s.checkout(ttl=10)
    assert stop_refusal("p", s.profile.lease) is not None
    assert lease.lease_id in (stop_refusal("p", s.profile.lease) or "")
    # rev29: a live lease was told "custody sweep", which settles only an overdue one, and
    # one past its deadline was called active.
    live = stop_refusal("p", s.profile.lease, s.now) or ""
    assert "(active)" in live
    assert "custody sweep" not in live
    assert "its worker ends it" in live
    s.advance(11)
    overdue = stop_refusal("p", s.profile.lease, s.now) or ""
    assert "(overdue)" in overdue
    assert "custody sweep settles it" in overdue
    s.profile.mark_stale(s.ctx("sweeper", Role.SCHEDULER))
    s.collect()
    assert s.profile.state is ProfileState.STALE
    assert stop_refusal("p", s.profile.lease) is not None
    s.profile.settle_stale(s.ctx("sweeper", Role.SCHEDULER))
    s.collect()
    assert stop_refusal("p", s.profile.lease) is None


def test_a_recorded_stop_is_an_event_that_changes_no_state_and_replays() -> None:
    """browser_stopped carries host, pid, directory and signal; the profile stays in review
    (a stop is no verdict) and the stream replays to the same state."""
    s = _in_review()
    before = (s.profile.state, s.profile.block, s.profile.last_lease)
    (event,) = s.stop_browser(StopSignal.SIGHUP)
    assert event.event_type == "browser_stopped"
    assert (event.host, event.pid, event.user_data_dir, event.signal) == (  # type: ignore[attr-defined]
        "vm",
        4242,
        DIR,
        StopSignal.SIGHUP,
    )
    assert (s.profile.state, s.profile.block, s.profile.last_lease) == before
    replayed = replay(None, s.history)
    assert replayed is not None
    assert (replayed.state, replayed.version) == (s.profile.state, s.profile.version)


def test_a_stop_of_another_directory_or_by_a_worker_is_refused() -> None:
    """Only the registered directory's browser is recorded, and only by an operator."""
    s = _in_review()
    with pytest.raises(NotAllowed, match="not the registered directory"):
        s.profile.record_browser_stop(
            "vm", 1, "/profiles/other", StopSignal.SIGHUP, s.ctx("ops", Role.OPERATOR)
        )
    with pytest.raises(NotAllowed, match="operator"):
        s.profile.record_browser_stop("vm", 1, DIR, StopSignal.SIGHUP, s.ctx("w", Role.WORKER))
    assert s.profile.pending_events == []


def test_why_notes_a_live_browser_only_when_no_lease_holds_the_profile() -> None:
    """A held profile's browser is its holder's; otherwise a live browser keeps it blocked."""
    alive = _check(BrowserStatus.ALIVE)
    assert blocking_note("p", alive, held=True) is None
    assert blocking_note("p", _check(BrowserStatus.STALE_LOCK), held=False) is None
    note = blocking_note("p", alive, held=False)
    assert note is not None
    assert "custody inspect p --stop-orphan" in note
    assert "stays blocked until it stops" in note
    # rev22: released with its browser still open, the profile is available: a checkout is
    # granted (why said both that and "stays blocked").
    free = blocking_note("p", alive, held=False, available=True)
    assert free is not None
    assert "a checkout is granted, but its browser cannot start there" in free
    assert "blocked" not in free
