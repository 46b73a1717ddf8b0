"""How a lease ended, in the one vocabulary every answer uses: clean, expected_failure, review,
quarantine, stale, forced, revoked, with the cause beside it where there is one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from profile_scene import Scene

from ledger._domain.errors import LeaseLost
from ledger._domain.model import Cause, Outcome, ProfileState, Role
from ledger._domain.results import release_result


def _clean(s: Scene) -> None:
    s.release(s.checkout())


def _expected_failure(s: Scene) -> None:
    s.release(s.checkout(), Outcome.EXPECTED_FAILURE, reason="sold out")


def _review(s: Scene) -> None:
    s.release(s.checkout(), Outcome.FAILURE)


def _quarantine(s: Scene) -> None:
    s.release(s.checkout(), observed_proxy="proxy-elsewhere")


def _stale(s: Scene) -> None:
    s.checkout(ttl=60)
    s.advance(61)
    s.sweep()


def _stale_after_a_mutation(s: Scene) -> None:
    s.heartbeat(s.checkout(ttl=60), step="pay", mutating=True)
    s.advance(61)
    s.sweep()


def _forced(s: Scene) -> None:
    s.checkout()
    s.force_release()


def _forced_after_a_mutation(s: Scene) -> None:
    s.heartbeat(s.checkout(), step="pay", mutating=True)
    s.force_release()


def _forced_while_stale(s: Scene) -> None:
    s.checkout(ttl=60)
    s.advance(61)
    s.profile.mark_stale(s.ctx("sweeper", Role.SCHEDULER))
    s.collect()
    s.force_release()


def _disabled_mid_lease(s: Scene) -> None:
    s.checkout()
    s.disable()


def _revoked(s: Scene) -> None:
    s.checkout()
    s.quarantine()


ENDINGS: dict[str, tuple[Callable[[Scene], None], str, Cause | None, ProfileState]] = {
    "clean": (_clean, "clean", None, ProfileState.AVAILABLE),
    "expected failure": (_expected_failure, "expected_failure", None, ProfileState.AVAILABLE),
    "failed run": (_review, "review", Cause.UNEXPECTED_FAILURE, ProfileState.REVIEW_REQUIRED),
    "proxy mismatch": (_quarantine, "quarantine", Cause.PROXY_MISMATCH, ProfileState.QUARANTINED),
    "stale": (_stale, "stale", Cause.LEASE_EXPIRED, ProfileState.REVIEW_REQUIRED),
    "stale after a mutation": (
        _stale_after_a_mutation,
        "stale",
        Cause.MUTATION_UNCONFIRMED,
        ProfileState.QUARANTINED,
    ),
    "force-released": (_forced, "forced", Cause.FORCE_RELEASE, ProfileState.REVIEW_REQUIRED),
    "force-released after a mutation": (
        _forced_after_a_mutation,
        "forced",
        Cause.FORCE_RELEASE,
        ProfileState.QUARANTINED,
    ),
    "force-released while stale": (
        _forced_while_stale,
        "forced",
        Cause.FORCE_RELEASE,
        ProfileState.REVIEW_REQUIRED,
    ),
    "disabled mid-lease": (
        _disabled_mid_lease,
        "forced",
        Cause.FORCE_RELEASE,
        ProfileState.DISABLED,
    ),
    "quarantined by an operator": (_revoked, "revoked", Cause.OPERATOR, ProfileState.QUARANTINED),
}


@pytest.mark.parametrize("how", list(ENDINGS))
def test_a_lease_ends_in_one_word_with_its_cause(how: str) -> None:
    """Each way a lease can end leaves the ended lease with its one-word ending and the cause
    beside it (none for an explainable ending), whatever state the profile went to."""
    end, ending, cause, state = ENDINGS[how]
    s = Scene()
    end(s)
    ended = s.profile.last_lease
    assert ended is not None
    assert (ended.ending, ended.ending_cause, s.profile.state) == (ending, cause, state)


@pytest.mark.parametrize("how", ["clean", "failed run", "proxy mismatch"])
def test_a_release_answers_with_the_same_word(how: str) -> None:
    """The release's answer names the ending in the same word the ended lease keeps."""
    end, ending, _, _ = ENDINGS[how]
    s = Scene()
    end(s)
    assert release_result(s.profile).ending == ending


_RELEASED = ["clean", "expected failure", "failed run", "proxy mismatch"]
_FORCED = ["force-released", "force-released after a mutation", "force-released while stale"]


@pytest.mark.parametrize("how", _RELEASED + _FORCED)
def test_a_release_answers_with_the_lease_s_ending_and_cause(how: str) -> None:
    """rev39: a force-release after a mutating step answered the quarantine's cause
    (``mutation_unconfirmed``) beside the ending ``forced``, where who, why and replay say
    ``forced (force_release)``. A release's answer gives the ended lease's word and cause."""
    end, ending, cause, _ = ENDINGS[how]
    s = Scene()
    end(s)
    assert (release_result(s.profile).ending, release_result(s.profile).cause) == (ending, cause)


def test_a_force_release_s_message_says_its_ending_as_who_does() -> None:
    """rev39: "lease-1@p ended (mutation_unconfirmed)"; it says the ending as who says it, the
    quarantine's own cause beside the state; a worker's release reads as before."""
    forced, mutated, failed = Scene(), Scene(), Scene()
    _forced(forced)
    _forced_after_a_mutation(mutated)
    _review(failed)
    pid = forced.profile.profile_id
    assert release_result(forced.profile).message == (
        f"lease-1@{pid} ended forced (force_release); {pid} is review_required"
    )
    assert release_result(mutated.profile).message == (
        f"lease-1@{pid} ended forced (force_release); {pid} is quarantined (mutation_unconfirmed)"
    )
    assert release_result(failed.profile).message == (
        f"lease-1@{pid} ended (unexpected_failure); {pid} is review_required"
    )


def test_a_stale_lease_says_so_when_it_is_lost() -> None:
    """A worker presenting a lease that ended stale is told the ending in the same words."""
    s = Scene()
    lease = s.checkout(ttl=60)
    s.advance(61)
    s.sweep()
    with pytest.raises(LeaseLost, match=r"lease ended stale \(lease_expired\) at "):
        s.heartbeat(lease)


def test_a_release_s_message_says_an_expected_failure_is_not_a_clean_run() -> None:
    """rev26: a release as an expected failure said "released cleanly", though the ending
    recorded is expected_failure; both are back in the pool."""
    clean, failed = Scene(), Scene()
    _clean(clean)
    _expected_failure(failed)
    pid = clean.profile.profile_id
    assert release_result(clean.profile).message == (
        f"lease-1@{pid} released cleanly; {pid} is back in the pool"
    )
    assert release_result(failed.profile).message == (
        f"lease-1@{pid} released as an expected failure; {pid} is back in the pool"
    )
