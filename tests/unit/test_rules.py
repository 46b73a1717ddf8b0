"""The lease rules of issue 2, one test per row, on the pure Profile aggregate (no I/O).

Fencing, lost leases, disable/enable and the audit envelope are in ``test_fencing_and_audit.py``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import pytest
from profile_scene import DONE_URL, PROXY, Scene

from ledger._domain import events as ev
from ledger._domain.authority import ROLE_EVENTS
from ledger._domain.errors import CheckoutDenied, InvalidInput, LeaseLost, NotAllowed
from ledger._domain.model import (
    Cause,
    DenialReason,
    LeaseStatus,
    Outcome,
    ProfileState,
    ReviewDecision,
    Role,
)
from ledger._domain.policies import Ending
from ledger._domain.profile import CheckoutRequest, same_identity


def _request(worker: str = "worker-b", **context: str) -> CheckoutRequest:
    return CheckoutRequest(worker, f"run-{worker}", "place_order", 300, **context)


def _unclean_review(s: Scene) -> None:
    s.release(s.checkout(), Outcome.FAILURE)


# -- checkout -----------------------------------------------------------------------------------


def test_checkout_of_available_profile_acquires_lease() -> None:
    """Checkout of an available profile whose context matches appends lease_acquired: leased."""
    s = Scene()
    lease = s.checkout("worker-a", 120, account_id="acct-shop-17", proxy_id=PROXY)
    assert s.types()[-1] == "lease_acquired"
    assert s.profile.state is ProfileState.LEASED
    assert s.profile.lease == lease
    assert (lease.worker_id, lease.account_id, lease.proxy_id) == (
        "worker-a",
        "acct-shop-17",
        PROXY,
    )
    assert lease.lease_status is LeaseStatus.ACTIVE
    assert lease.lease_started_at == lease.heartbeat_at == s.now
    assert (lease.expires_at - s.now).total_seconds() == 120
    assert lease.release_policy == "manual_review_on_unknown_state"


def _leased(s: Scene) -> None:
    s.checkout("worker-a")


def _overdue(s: Scene) -> None:
    s.checkout("worker-a")
    s.advance(301)


def _expired_and_swept(s: Scene) -> None:
    _overdue(s)
    s.sweep()


def _prompted(s: Scene) -> None:
    s.release(s.checkout("worker-a"), prompt_seen=True)


def _proxy_mismatched(s: Scene) -> None:
    s.release(s.checkout("worker-a"), observed_proxy="proxy-x")


def _disabled(s: Scene) -> None:
    s.checkout("worker-a")
    s.disable()


_BLOCKERS: dict[str, tuple[Callable[[Scene], None], DenialReason]] = {
    "leased": (_leased, DenialReason.ALREADY_LEASED),
    "overdue": (_overdue, DenialReason.STALE),
    "expired": (_expired_and_swept, DenialReason.PREVIOUS_RUN_UNKNOWN),
    "prompt": (_prompted, DenialReason.REVIEW_REQUIRED),
    "quarantined": (_proxy_mismatched, DenialReason.QUARANTINED),
    "disabled": (_disabled, DenialReason.DISABLED),
}


@pytest.mark.parametrize("blocker", list(_BLOCKERS))
def test_checkout_of_unavailable_profile_is_denied_and_appends_nothing(blocker: str) -> None:
    """A checkout of a non-available profile raises CheckoutDenied naming reason and holder."""
    s = Scene()
    block, reason = _BLOCKERS[blocker]
    block(s)
    version, state = s.profile.version, s.profile.state
    with pytest.raises(CheckoutDenied) as denied:
        s.profile.checkout(_request(), s.ctx("worker-b"))
    assert denied.value.reason is reason
    assert denied.value.holder is not None
    assert denied.value.holder.worker_id == "worker-a"
    assert denied.value.remediation
    assert s.profile.pending_events == []
    assert (s.profile.version, s.profile.state) == (version, state)


@pytest.mark.parametrize(
    ("context", "reason"),
    [
        ({"proxy_id": "proxy-us-9"}, DenialReason.PROXY_MISMATCH),
        ({"account_id": "acct-other"}, DenialReason.ACCOUNT_MISMATCH),
    ],
)
def test_checkout_with_mismatched_context_is_denied(
    context: dict[str, str], reason: DenialReason
) -> None:
    """A checkout naming another proxy or account is denied proxy_/account_mismatch."""
    s = Scene()
    with pytest.raises(CheckoutDenied) as denied:
        s.profile.checkout(_request(**context), s.ctx("worker-b"))
    assert denied.value.reason is reason
    assert s.profile.pending_events == []
    assert s.profile.state is ProfileState.AVAILABLE


def test_a_proxy_given_with_its_password_is_not_repeated_in_the_denial() -> None:
    """rev23: a checkout's --proxy filter written with its password was quoted back in the
    denial ("expects proxy 'px', not 'http://u:pw@proxy:1'"), to a terminal, a log or an HTTP
    answer; nothing is stored, and the denial says only that it held a password."""
    s = Scene()
    for given in ("http://u:s3cret@proxy:1", "u:s3cret@proxy:1"):
        with pytest.raises(CheckoutDenied) as denied:
            s.profile.checkout(_request(proxy_id=given), s.ctx("worker-b"))
        assert denied.value.reason is DenialReason.PROXY_MISMATCH
        assert "s3cret" not in str(denied.value)
        assert "not one with a password in it" in denied.value.denial.message
    assert s.profile.pending_events == []


# -- heartbeat, extend, the sweep ---------------------------------------------------------------


def test_heartbeat_before_deadline_extends_it_and_records_step_and_url() -> None:
    """A heartbeat renews the deadline by the TTL from now and records step and URL."""
    s = Scene()
    lease = s.checkout(ttl=60)
    s.advance(45)
    renewed = s.heartbeat(lease, step="login", url="https://shop.example/login", safe=True)
    assert s.types()[-1] == "lease_heartbeat"
    assert renewed.expires_at == s.now + (lease.expires_at - lease.lease_started_at)
    assert (renewed.heartbeat_at, renewed.last_step) == (s.now, "login")
    assert (renewed.last_url, renewed.last_safe_step) == ("https://shop.example/login", "login")
    assert s.profile.state is ProfileState.LEASED


def test_extend_sets_new_ttl_and_deadline_from_now() -> None:
    """Extend gives a live lease a new TTL counted from the command's time."""
    s = Scene()
    lease = s.checkout(ttl=60)
    s.advance(30)
    extended = s.profile.extend(lease.lease_id, lease.fencing_token, 900, s.ctx())
    assert (extended.ttl_seconds, (extended.expires_at - s.now).total_seconds()) == (900, 900)


def test_overdue_lease_is_marked_stale_with_last_step_url_and_heartbeat() -> None:
    """A sweep past the deadline records lease_marked_stale carrying step, URL and heartbeat."""
    s = Scene()
    lease = s.checkout(ttl=60)
    s.advance(30)
    s.heartbeat(lease, step="open_cart", url="https://shop.example/cart")
    beat = s.now
    s.advance(61)
    assert s.profile.is_overdue(s.now)
    s.profile.mark_stale(s.ctx("sweeper", Role.SCHEDULER))
    stale = s.profile.pending_events[-1]
    assert isinstance(stale, ev.LeaseMarkedStale)
    assert (stale.last_step, stale.last_url) == ("open_cart", "https://shop.example/cart")
    assert (stale.last_heartbeat_at, stale.lease_id) == (beat, lease.lease_id)
    assert s.profile.state is ProfileState.STALE


def test_only_the_scheduler_marks_a_lease_stale() -> None:
    """roles.md gives the sweep (marking stale, settling) to the scheduler alone: an
    operator's mark is refused, and no role but the scheduler's may record the event, so
    PostgreSQL's insert trigger (written from ``ROLE_EVENTS``) refuses it to an operator's
    login too (rev28: the operator's was let, though ``custody sweep`` refused its login)."""
    s = Scene()
    s.checkout(ttl=60)
    s.advance(61)
    with pytest.raises(NotAllowed, match="needs the scheduler role"):
        s.profile.mark_stale(s.ctx("ops-olga", Role.OPERATOR))
    assert s.profile.pending_events == []
    stale = ev.LeaseMarkedStale.event_type
    assert [r for r, types in ROLE_EVENTS.items() if stale in types] == [Role.SCHEDULER]


@pytest.mark.parametrize("role", [Role.WORKER, Role.REVIEWER, Role.OPERATOR])
def test_only_the_scheduler_settles_a_stale_lease(role: Role) -> None:
    """Settling a stale lease (review or quarantine) is the sweeper's call: a worker, a
    reviewer or an operator asking for it is refused and nothing is recorded (rev28: an
    operator was let, though no command of an operator's login could; it force-releases)."""
    s = Scene()
    s.checkout(ttl=60)
    s.advance(61)
    s.profile.mark_stale(s.ctx("sweeper", Role.SCHEDULER))
    s.collect()
    with pytest.raises(NotAllowed, match="needs the scheduler role"):
        s.profile.settle_stale(s.ctx("someone", role))
    assert s.profile.pending_events == []
    assert s.profile.state is ProfileState.STALE


def test_stale_after_unconfirmed_mutating_step_quarantines() -> None:
    """Stale with an account-mutating step since the last safe step: quarantined."""
    s = Scene()
    lease = s.checkout(ttl=60)
    s.heartbeat(lease, step="logged_in", safe=True)
    s.heartbeat(lease, step="submit_order", mutating=True)
    s.advance(61)
    verdict = s.sweep()
    assert verdict is not None
    assert (verdict.ending, verdict.cause) == (Ending.QUARANTINE, Cause.MUTATION_UNCONFIRMED)
    assert s.types()[-2:] == ["lease_marked_stale", "profile_quarantined"]
    assert s.profile.state is ProfileState.QUARANTINED


@pytest.mark.parametrize("steps", [[], [("submit_order", True), ("order_confirmed", False)]])
def test_stale_without_unconfirmed_mutation_requests_review(steps: list[tuple[str, bool]]) -> None:
    """Stale with no mutation, or one confirmed by a later safe step: review requested."""
    s = Scene()
    lease = s.checkout(ttl=60)
    for step, mutating in steps:
        s.heartbeat(lease, step=step, mutating=mutating, safe=not mutating)
    s.advance(61)
    s.sweep()
    assert s.types()[-2:] == ["lease_marked_stale", "review_requested"]
    assert s.profile.state is ProfileState.REVIEW_REQUIRED
    assert s.profile.block is not None
    assert s.profile.block.cause is Cause.LEASE_EXPIRED


# -- the hard limit -----------------------------------------------------------------------------


def test_renewals_never_move_the_deadline_past_the_hard_limit() -> None:
    """A lease checked out for at most 100 s: each renewal's deadline is capped at the hard
    limit; at the limit itself the lease is live, as at a deadline (rev33: lost to its holder
    there, live to the sweep and a checkout); past it a heartbeat, an extend or a release is
    refused as lease lost naming it, and the sweep settles the lease, saying the hard limit
    ended it."""
    s = Scene()
    lease = s.checkout(ttl=60, max_duration=100)
    limit = s.now + timedelta(seconds=100)
    assert (lease.hard_limit_at, lease.expires_at) == (limit, s.now + timedelta(seconds=60))
    s.advance(50)
    assert s.heartbeat(lease, step="still_working").expires_at == limit
    s.advance(49.5)
    assert s.profile.extend(lease.lease_id, 1, 600, s.ctx()).expires_at == limit
    s.collect()
    s.advance(0.5)  # at the limit itself: live, as at any deadline, and never moved past it
    assert s.heartbeat(lease, step="at_the_limit").expires_at == limit
    assert s.sweep() is None
    s.collect()
    s.advance(0.000001)
    with pytest.raises(LeaseLost, match=r"hard limit .* reached"):
        s.heartbeat(lease, step="still_working")
    with pytest.raises(LeaseLost, match="hard limit"):
        s.profile.extend(lease.lease_id, 1, 60, s.ctx())
    with pytest.raises(LeaseLost, match="hard limit"):
        s.release(lease)
    assert s.profile.pending_events == []
    assert s.profile.state is ProfileState.LEASED
    verdict = s.sweep()
    assert verdict is not None
    assert verdict.cause is Cause.HARD_LIMIT_REACHED  # rev30: not a worker gone silent
    assert s.types()[-2:] == ["lease_marked_stale", "review_requested"]


@pytest.mark.parametrize(
    ("policy", "asked", "limit"), [(90, None, 90), (90, 120, 90), (90, 30, 30), (None, 30, 30)]
)
def test_the_hard_limit_is_the_tighter_of_the_profiles_and_the_checkouts(
    policy: int | None, asked: int | None, limit: int
) -> None:
    """The profile's max_lease_seconds (its policy) bounds every lease; a checkout may ask for
    less, never more. A lease's first deadline is within the limit too."""
    s = Scene(max_lease=policy)
    lease = s.checkout(ttl=300, max_duration=asked)
    assert lease.hard_limit_at == s.now + timedelta(seconds=limit)
    assert lease.expires_at == lease.hard_limit_at


def test_without_a_hard_limit_renewals_go_on() -> None:
    """Neither the profile nor the checkout sets a limit: a lease renewed in time lives on."""
    s = Scene()
    lease = s.checkout(ttl=60)
    assert lease.hard_limit_at is None
    for _ in range(100):
        s.advance(59)
        renewed = s.heartbeat(lease)
    assert renewed.expires_at == s.now + timedelta(seconds=60)


# -- release ------------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", [Outcome.SUCCESS, Outcome.EXPECTED_FAILURE])
def test_clean_release_returns_profile_to_pool(outcome: Outcome) -> None:
    """Success, or an expected failure with its reason, ends lease_released_cleanly: available."""
    s = Scene()
    lease = s.checkout()
    verdict = s.release(lease, outcome, reason="out of stock")
    assert verdict.ending is Ending.CLEAN
    assert s.types()[-2:] == ["lease_release_requested", "lease_released_cleanly"]
    assert s.profile.state is ProfileState.AVAILABLE
    assert s.profile.lease is None
    assert s.profile.last_lease is not None
    assert s.profile.last_lease.lease_status is LeaseStatus.RELEASED


def test_release_reporting_verification_prompt_requires_review() -> None:
    """A release reporting a login/verification prompt: review requested, review_required."""
    s = Scene()
    s.release(s.checkout(), prompt_seen=True)
    assert s.types()[-1] == "review_requested"
    assert s.profile.state is ProfileState.REVIEW_REQUIRED


@pytest.mark.parametrize(
    ("proxy", "account", "cause"),
    [
        ("proxy-us-9", None, Cause.PROXY_MISMATCH),
        (None, "acct-other", Cause.ACCOUNT_MISMATCH),
    ],
)
def test_release_reporting_mismatch_quarantines(
    proxy: str | None, account: str | None, cause: Cause
) -> None:
    """A release that observed another proxy or account quarantines the profile."""
    s = Scene()
    verdict = s.release(s.checkout(), observed_proxy=proxy, observed_account=account)
    assert (verdict.ending, verdict.cause) == (Ending.QUARANTINE, cause)
    assert s.types()[-1] == "profile_quarantined"
    assert s.profile.state is ProfileState.QUARANTINED


_ON_UNKNOWN = {
    "manual_review_on_unknown_state": ProfileState.REVIEW_REQUIRED,
    "quarantine_on_unknown_state": ProfileState.QUARANTINED,
    "evidence_required": ProfileState.REVIEW_REQUIRED,
    "strict_evidence": ProfileState.QUARANTINED,
}


@pytest.mark.parametrize("policy", list(_ON_UNKNOWN))
def test_release_with_unknown_final_url_follows_policy(policy: str) -> None:
    """A release without a final URL goes to review or quarantine as the policy says."""
    s = Scene(policy=policy)
    verdict = s.release(s.checkout(), final_url=None, screenshot="final.png")
    assert verdict.cause is Cause.UNKNOWN_FINAL_URL
    assert s.profile.state is _ON_UNKNOWN[policy]


@pytest.mark.parametrize("policy", list(_ON_UNKNOWN))
def test_release_without_screenshot_follows_policy(policy: str) -> None:
    """A missing screenshot is unclean only where the policy asks for one."""
    s = Scene(policy=policy)
    verdict = s.release(s.checkout(), final_url=DONE_URL, screenshot=None)
    if "evidence" in policy:
        assert verdict.cause is Cause.MISSING_SCREENSHOT
        assert s.profile.state is _ON_UNKNOWN[policy]
    else:
        assert s.profile.state is ProfileState.AVAILABLE


@pytest.mark.parametrize("policy", list(_ON_UNKNOWN))
def test_a_blank_final_url_or_an_empty_screenshot_proves_nothing(policy: str) -> None:
    """A final URL of spaces names no page, and a screenshot file of no bytes (or one named
    without the digest of its bytes) shows nothing: each is evidence missing, as the policy
    says (a success went straight back to the pool)."""
    # rev20: the invisible ones too (rev21: Hangul fillers, a grapheme joiner)
    for blank in (" \t", "\u200b", "\xa0\u2060", "\u202e ", "\u3164", "\uffa0\u034f", "\u2800"):
        s = Scene(policy=policy)
        verdict = s.release(s.checkout(), final_url=blank, screenshot="final.png")
        assert verdict.cause is Cause.UNKNOWN_FINAL_URL, repr(blank)
        assert s.profile.state is _ON_UNKNOWN[policy]
    s = Scene(policy=policy)
    empty = hashlib.sha256(b"").hexdigest()
    verdict = s.release(s.checkout(), screenshot="final.png", screenshot_sha256=empty)
    if "evidence" in policy:
        assert verdict.cause is Cause.MISSING_SCREENSHOT
        assert s.profile.state is _ON_UNKNOWN[policy]
    else:
        assert s.profile.state is ProfileState.AVAILABLE
    s = Scene(policy=policy)  # rev28: a path with no digest vouches for no bytes at all
    verdict = s.release(s.checkout(), screenshot="/does/not/exist.png", screenshot_sha256=None)
    if "evidence" in policy:
        assert verdict.cause is Cause.MISSING_SCREENSHOT
        assert s.profile.state is _ON_UNKNOWN[policy]
    else:
        assert s.profile.state is ProfileState.AVAILABLE
    s = Scene(policy=policy)  # a screenshot that holds something
    s.release(s.checkout(), screenshot="final.png", screenshot_sha256="0" * 64)
    assert s.types()[-1] == "lease_released_cleanly"


@pytest.mark.parametrize("policy", list(_ON_UNKNOWN))
def test_an_expected_failure_is_explained_by_its_reason_alone(policy: str) -> None:
    """An expected failure needs neither a final URL nor a screenshot, under every policy (a
    task that found the shop closed may have had no browser at all): back to the pool. A
    success without them still goes where the policy says."""
    s = Scene(policy=policy)
    verdict = s.release(s.checkout(), Outcome.EXPECTED_FAILURE, final_url=None, reason="closed")
    assert verdict.ending is Ending.CLEAN
    assert s.types()[-1] == "lease_released_cleanly"
    assert s.profile.state is ProfileState.AVAILABLE
    s.release(s.checkout(), Outcome.SUCCESS, final_url=None)
    assert s.profile.state is _ON_UNKNOWN[policy]


def test_an_expected_failure_that_met_a_prompt_or_another_proxy_is_still_unclean() -> None:
    """Its reason explains the failure, not a prompt seen or a proxy that was not the lease's."""
    s = Scene()
    s.release(s.checkout(), Outcome.EXPECTED_FAILURE, final_url=None, prompt_seen=True)
    assert s.profile.state is ProfileState.REVIEW_REQUIRED
    s.review(ReviewDecision.RETURN)
    s.release(s.checkout(), Outcome.EXPECTED_FAILURE, final_url=None, observed_proxy="proxy-x")
    assert s.profile.state is ProfileState.QUARANTINED


@pytest.mark.parametrize("policy", list(_ON_UNKNOWN))
@pytest.mark.parametrize("outcome", [Outcome.SUCCESS, Outcome.EXPECTED_FAILURE])
def test_a_release_whose_evidence_failed_is_not_clean(policy: str, outcome: Outcome) -> None:
    """A release saying its evidence could not be collected (a browser that did not answer
    the screenshot, a driver that died) never returns the profile to the pool, even with a
    final URL and a screenshot from before: evidence_failed, review or quarantine as the
    policy says for an unproven ending. The event keeps what went wrong."""
    s = Scene(policy=policy)
    problem = "screenshot failed: Timeout 5000ms exceeded"
    verdict = s.release(
        s.checkout(), outcome, screenshot="final.png", evidence_problem=problem, reason="x"
    )
    assert verdict.cause is Cause.EVIDENCE_FAILED
    assert s.profile.state is _ON_UNKNOWN[policy]
    request = next(e for e in s.history if isinstance(e, ev.LeaseReleaseRequested))
    assert request.evidence_problem == problem
    assert s.profile.block is not None
    if s.profile.state is ProfileState.REVIEW_REQUIRED:  # nobody knows how the run ended
        with pytest.raises(CheckoutDenied) as denied:
            s.profile.checkout(_request(), s.ctx("worker-b"))
        assert denied.value.reason is DenialReason.PREVIOUS_RUN_UNKNOWN


def test_force_release_requests_review_with_actor_recorded() -> None:
    """Force release: lease revoked, review requested by the operator, never straight to pool."""
    s = Scene()
    lease = s.checkout()
    s.force_release(actor="ops-olga")
    assert s.types()[-2:] == ["lease_revoked", "review_requested"]
    assert all(e.envelope.actor_id == "ops-olga" for e in s.history[-2:])
    assert all(e.envelope.actor_role is Role.OPERATOR for e in s.history[-2:])
    assert s.profile.state is ProfileState.REVIEW_REQUIRED
    assert s.profile.last_lease is not None
    assert s.profile.last_lease.lease_id == lease.lease_id
    assert s.profile.last_lease.lease_status is LeaseStatus.REVOKED


def test_three_unclean_endings_within_window_quarantine_listing_them() -> None:
    """The third unclean ending within 24 h quarantines, listing those three leases."""
    s = Scene()
    ids = []
    for _ in range(3):
        ids.append(s.checkout().lease_id)
        s.release(s.live, Outcome.FAILURE)
        if len(ids) < 3:
            assert s.profile.state is ProfileState.REVIEW_REQUIRED
            s.review(ReviewDecision.RETURN)
            s.advance(8 * 3600)
    last = s.history[-1]
    assert isinstance(last, ev.ProfileQuarantined)
    assert last.cause is Cause.REPEATED_UNCLEAN_ENDINGS
    assert last.trigger is Cause.UNEXPECTED_FAILURE  # the ending that made the count
    assert last.unclean_leases == ids
    assert s.profile.state is ProfileState.QUARANTINED
    assert s.profile.block is not None
    assert s.profile.block.trigger is Cause.UNEXPECTED_FAILURE


def test_unclean_endings_spread_over_more_than_window_do_not_quarantine() -> None:
    """Three unclean endings spread over more than 24 h each only request review."""
    s = Scene()
    for _ in range(3):
        _unclean_review(s)
        assert s.profile.state is ProfileState.REVIEW_REQUIRED
        s.review(ReviewDecision.RETURN)
        s.advance(13 * 3600)
    assert "profile_quarantined" not in s.types()


# -- review ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decision", "state", "types"),
    [
        (ReviewDecision.RETURN, ProfileState.AVAILABLE, ["profile_returned_to_pool"]),
        (ReviewDecision.QUARANTINE, ProfileState.QUARANTINED, ["profile_quarantined"]),
        (ReviewDecision.DISABLE, ProfileState.DISABLED, ["profile_disabled"]),
    ],
)
def test_review_by_reviewer_decides_where_profile_goes(
    decision: ReviewDecision, state: ProfileState, types: list[str]
) -> None:
    """A reviewer's decision appends profile_reviewed and moves the profile accordingly."""
    s = Scene()
    _unclean_review(s)
    events = s.review(decision)
    assert s.types(events) == ["profile_reviewed", *types]
    assert s.profile.state is state


@pytest.mark.parametrize("role", [Role.WORKER, Role.SCHEDULER, Role.OPERATOR])
def test_review_by_other_role_is_not_allowed(role: Role) -> None:
    """Only the reviewer role may review."""
    s = Scene()
    _unclean_review(s)
    with pytest.raises(NotAllowed, match="needs the reviewer role"):
        s.review(reviewer="ops-olga", role=role)
    assert s.profile.pending_events == []


@pytest.mark.parametrize(
    "spelling",
    [
        "worker-a",
        "WORKER-A",
        "Worker-A",
        "\uff57orker-a",
        "work\u200ber-a",  # a zero-width space
        "worker\u00ad-a",  # a soft hyphen
        "\u034fworker-a",  # a combining grapheme joiner
        "worker-a\ufe0f",  # a variation selector
        "\u2066worker-a\u2069",  # bidi isolates
        "worker-\U000e0061a",  # a tag character
    ],
)
def test_review_by_worker_of_lease_under_review_is_not_allowed(spelling: str) -> None:
    """The worker who ran the profile's last lease cannot review it, even as a reviewer, and
    not under another spelling of its name (case, full-width letters, characters that show
    nothing)."""
    s = Scene()
    _unclean_review(s)
    with pytest.raises(
        NotAllowed, match=r"ran the profile's last lease .*: a worker may not review"
    ):
        s.review(reviewer=spelling)
    assert s.profile.pending_events == []


def test_no_worker_whose_run_a_quarantine_lists_reviews_it() -> None:
    """rev28: a quarantine for repeated unclean endings lists every run it counts, and the
    worker of any of them may not clear it (only the last lease's worker was refused: the
    first one, a reviewer too, returned the profile to the pool)."""
    s = Scene()
    for worker in ("worker-a", "worker-b", "worker-c"):
        s.checkout(worker)
        s.release(s.live, Outcome.FAILURE)
        if worker != "worker-c":
            s.review(reviewer="rita")
    assert s.profile.state is ProfileState.QUARANTINED
    assert s.profile.block is not None
    assert len(s.profile.block.unclean_leases) == 3
    for worker, lease in (("worker-a", "lease-1"), ("WORKER-B", "lease-2")):
        with pytest.raises(
            NotAllowed, match=rf"ran one of the runs this quarantine lists \({lease}@"
        ):
            s.review(reviewer=worker)
        assert s.profile.pending_events == []
    s.review(reviewer="rolf")
    assert s.profile.state is ProfileState.AVAILABLE


def test_a_reviewer_s_quarantine_keeps_the_runs_the_quarantine_lists() -> None:
    """rev37: a reviewer's verdict ``quarantine`` on a quarantine for repeated unclean endings
    keeps the runs it lists, in its event: none of their workers may clear the quarantine
    after it, nor after a disable and an enable (its event listed none, and worker-a, a
    reviewer too, returned the profile to the pool)."""
    s = Scene()
    for worker in ("worker-a", "worker-b", "worker-c"):
        s.checkout(worker)
        s.release(s.live, Outcome.FAILURE)
        if worker != "worker-c":
            s.review(reviewer="rita")
    assert s.profile.block is not None
    listed = s.profile.block.unclean_leases
    (_, quarantined) = s.review(ReviewDecision.QUARANTINE, reviewer="rita")
    assert isinstance(quarantined, ev.ProfileQuarantined)
    assert (quarantined.cause, quarantined.unclean_leases) == (Cause.REVIEWER, list(listed))
    assert s.profile.block is not None
    assert s.profile.block.unclean_leases == listed
    s.review(ReviewDecision.DISABLE, reviewer="rita")
    s.enable()
    assert s.profile.state is ProfileState.QUARANTINED
    with pytest.raises(NotAllowed, match=r"ran one of the runs this quarantine lists \(lease-1@"):
        s.review(reviewer="worker-a")
    assert s.profile.pending_events == []


@pytest.mark.parametrize(
    "spelling", ["rene\u0301", "rene\u034f\u0301", "rene\u200b\u0301", "RENE\u2060\u0301"]
)
def test_an_accent_past_a_character_that_shows_nothing_is_the_same_letter(spelling: str) -> None:
    """review15: the characters that show nothing were dropped after normalising, so an
    accent they had kept from its letter stayed apart: "rene" + U+034F + U+0301 is rené on
    screen, yet was another reviewer than the worker rené. Folded again after dropping them;
    an accent is still a letter of its own."""
    assert same_identity("ren\u00e9", spelling)
    assert not same_identity("ren\u00e9", "rene")


def test_unconfirmed_mutation_outranks_a_prompt_on_release() -> None:
    """A failed run that mutated the account and then met a prompt is quarantined: the most
    severe finding wins, whatever order the report lists them in."""
    s = Scene()
    lease = s.checkout()
    s.heartbeat(lease, step="submit_order", mutating=True)
    verdict = s.release(s.live, Outcome.FAILURE, prompt_seen=True)
    assert (verdict.ending, verdict.cause) == (Ending.QUARANTINE, Cause.MUTATION_UNCONFIRMED)
    assert s.profile.state is ProfileState.QUARANTINED


def test_an_expected_failure_after_an_unconfirmed_mutation_quarantines() -> None:
    """rev20: a run that submitted an order (a mutating step no safe step confirmed) and then
    released an expected failure ("out of stock") went back to the pool: its reason explains
    the failure, not what the submission did to the account. Quarantined, as a failure, the
    sweep and a force-release are; after a safe step it is explained by its reason."""
    s = Scene()
    lease = s.checkout()
    s.heartbeat(lease, step="submit_order", mutating=True)
    verdict = s.release(s.live, Outcome.EXPECTED_FAILURE, final_url=None, reason="out of stock")
    assert (verdict.ending, verdict.cause) == (Ending.QUARANTINE, Cause.MUTATION_UNCONFIRMED)
    assert s.profile.state is ProfileState.QUARANTINED
    s.review(ReviewDecision.RETURN)
    lease = s.checkout()
    s.heartbeat(lease, step="submit_order", mutating=True)
    s.heartbeat(s.live, step="order_page_checked", safe=True)
    verdict = s.release(s.live, Outcome.EXPECTED_FAILURE, final_url=None, reason="out of stock")
    assert verdict.ending is Ending.CLEAN
    assert s.profile.state is ProfileState.AVAILABLE


def test_force_release_after_unconfirmed_mutation_quarantines() -> None:
    """Ending a run by hand does not make an unconfirmed mutation safe: it is quarantined
    as the sweep would, not merely sent to review."""
    s = Scene()
    lease = s.checkout()
    s.heartbeat(lease, step="submit_order", mutating=True)
    verdict = s.force_release()
    assert (verdict.ending, verdict.cause) == (Ending.QUARANTINE, Cause.MUTATION_UNCONFIRMED)
    assert s.types()[-2:] == ["lease_revoked", "profile_quarantined"]


def test_a_step_cannot_be_both_safe_and_mutating() -> None:
    """A heartbeat marking one step both safe and mutating is refused and writes nothing."""
    s = Scene()
    lease = s.checkout()
    with pytest.raises(InvalidInput, match="safe"):
        s.heartbeat(lease, step="submit_order", safe=True, mutating=True)
    assert s.profile.pending_events == []
