"""A verdict names the version its reviewer judged (``expected_version``): refused once the
profile has moved on, so a verdict on one run never lands on a later run nobody reviewed."""

from __future__ import annotations

import pytest
from profile_scene import Scene

from ledger import Review
from ledger._domain.errors import InvalidInput, NotAllowed
from ledger._domain.model import Outcome, ProfileState, ReviewDecision, Role


def _in_review(s: Scene) -> int:
    s.release(s.checkout(), Outcome.FAILURE)
    assert s.profile.state is ProfileState.REVIEW_REQUIRED
    return s.profile.version


def test_a_verdict_on_a_version_the_profile_moved_past_is_refused_and_writes_nothing() -> None:
    """rev20: rita drew run 1's page; bob returned the profile, run 2 failed and sent it to
    review again; rita's verdict, naming the version she saw, is refused naming both
    versions, nothing appended. Given the version it is at now, the verdict is taken."""
    s = Scene()
    seen = _in_review(s)
    s.review(reviewer="bob")
    now = _in_review(s)
    assert now > seen
    ctx = s.ctx("rita", Role.REVIEWER)
    with pytest.raises(NotAllowed, match=f"changed since the version {seen} .*at {now}"):
        s.profile.review(ReviewDecision.RETURN, "run 1 was fine", ctx, expected_version=seen)
    assert s.profile.pending_events == []
    assert s.profile.state is ProfileState.REVIEW_REQUIRED
    s.profile.review(ReviewDecision.RETURN, "run 2 was fine", ctx, expected_version=now)
    assert s.types(s.collect()) == ["profile_reviewed", "profile_returned_to_pool"]


def test_a_verdict_without_a_version_judges_the_profile_as_it_stands() -> None:
    """``expected_version`` is optional: a caller that names none is judged as before."""
    s = Scene()
    _in_review(s)
    s.profile.review(ReviewDecision.QUARANTINE, "odd", s.ctx("rita", Role.REVIEWER))
    assert s.profile.state is ProfileState.QUARANTINED


@pytest.mark.parametrize("version", [0, -1, 2**63, "7", 7.0, True])
def test_an_expected_version_that_is_no_version_is_bad_input(version: object) -> None:
    with pytest.raises(InvalidInput, match="expected_version"):
        Review(profile_id="p", reviewer="r", decision="return", note="n", expected_version=version)


@pytest.mark.parametrize("ahead", [1, 97])
def test_a_version_the_profile_never_reached_is_bad_input_and_writes_nothing(ahead: int) -> None:
    """rev45: ``--expected-version 99`` on a profile at version 2 was refused as "changed since
    the version 99 you judged" (NotAllowed, exit 1): no one judged a version the profile never
    reached, so it is bad input naming expected_version and the profile's version (exit 2),
    nothing appended, whatever state the profile is in."""
    s = Scene()
    now = _in_review(s)
    ctx = s.ctx("rita", Role.REVIEWER)
    past = f"{now + ahead} is past profile profile_shop_17's version {now}: "
    message = f"^invalid expected_version: {past}"
    with pytest.raises(InvalidInput, match=message):
        s.profile.review(ReviewDecision.RETURN, "ok", ctx, expected_version=now + ahead)
    assert s.profile.pending_events == []
    assert s.profile.state is ProfileState.REVIEW_REQUIRED


@pytest.mark.parametrize("verdict", [ReviewDecision.RETURN, ReviewDecision.DISABLE])
def test_a_verdict_overtaken_by_another_is_told_the_profile_changed(
    verdict: ReviewDecision,
) -> None:
    """Two reviewers judge version N; bob's verdict lands first and takes the profile out of
    review (returned to the pool, or disabled). rita's, naming N, is told the profile changed
    since the version she judged, not that there is nothing to review (rev48: her judgement
    that it should stay out read as if nothing needed doing)."""
    s = Scene()
    seen = _in_review(s)
    s.review(verdict, reviewer="bob")
    ctx = s.ctx("rita", Role.REVIEWER)
    with pytest.raises(NotAllowed, match=f"changed since the version {seen} "):
        s.profile.review(ReviewDecision.QUARANTINE, "keep it out", ctx, expected_version=seen)
    assert s.profile.pending_events == []


def test_a_review_of_a_profile_in_no_review_says_what_would_bring_it_to_one() -> None:
    """A review of a profile whose lease is past its deadline says the scheduler sweeps it
    first, and of one disabled from review that an operator enables it first (rev48: "is
    leased: nothing to review" where ``why`` said it waits for the sweep and a review, no way
    on); of one available, leased and live, or disabled from the pool, only that there is
    nothing to review, for no review follows (fixrev 294: "yet" promised one, and the sweep was
    named with no word of who may run it)."""
    s = Scene()
    ctx = s.ctx("rita", Role.REVIEWER)
    plain = r"is {}: nothing to review$"
    with pytest.raises(NotAllowed, match=plain.format("available")):
        s.profile.review(ReviewDecision.RETURN, "ok", ctx)
    s.disable()
    with pytest.raises(NotAllowed, match=plain.format("disabled")):
        s.profile.review(ReviewDecision.RETURN, "ok", s.ctx("rita", Role.REVIEWER))
    s.enable()
    s.checkout(ttl=30)
    with pytest.raises(NotAllowed, match=plain.format("leased")):
        s.profile.review(ReviewDecision.RETURN, "ok", s.ctx("rita", Role.REVIEWER))
    s.advance(31)
    overdue = (
        r"is leased past its deadline: nothing to review yet \(to unblock: the scheduler runs: "
        r"custody sweep; then a reviewer reviews the profile\)$"
    )
    with pytest.raises(NotAllowed, match=overdue):
        s.profile.review(ReviewDecision.RETURN, "ok", s.ctx("rita", Role.REVIEWER))
    s.sweep()
    assert s.profile.state is ProfileState.REVIEW_REQUIRED
    s.disable()
    from_review = (
        r"is disabled: nothing to review yet \(to unblock: an operator runs: custody enable"
    )
    with pytest.raises(NotAllowed, match=from_review):
        s.profile.review(ReviewDecision.RETURN, "ok", s.ctx("rita", Role.REVIEWER))
    assert s.profile.pending_events == []
