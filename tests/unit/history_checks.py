"""Invariants read off a profile's event history alone, independently of the aggregate's
bookkeeping and of the reference model: the state machine checks them after every step."""

from __future__ import annotations

from profile_scene import ACCOUNT, PROXY, Scene

from ledger._domain import events as ev
from ledger._domain.model import Outcome, ProfileState, ReviewDecision, Role, lease_id_for
from ledger._domain.policies import RELEASE_POLICIES

# The state each event puts its profile in; events missing here leave the state alone.
ENTERS: dict[type[ev.ProfileEvent], ProfileState] = {
    ev.ProfileRegistered: ProfileState.AVAILABLE,
    ev.LeaseAcquired: ProfileState.LEASED,
    ev.LeaseReleasedCleanly: ProfileState.AVAILABLE,
    ev.LeaseMarkedStale: ProfileState.STALE,
    ev.ReviewRequested: ProfileState.REVIEW_REQUIRED,
    ev.ProfileQuarantined: ProfileState.QUARANTINED,
    ev.ProfileReturnedToPool: ProfileState.AVAILABLE,
    ev.ProfileDisabled: ProfileState.DISABLED,
}
LEASE_ENDINGS = (
    ev.LeaseReleasedCleanly,
    ev.LeaseRevoked,
    ev.ReviewRequested,
    ev.ProfileQuarantined,
)
ON_LIVE_LEASE = (ev.LeaseHeartbeat, ev.LeaseExtended, ev.LeaseReleaseRequested, ev.LeaseMarkedStale)


def check_one_live_lease(scene: Scene) -> None:
    """A lease is acquired only when the previous one ended; tokens grow by exactly one."""
    live: str | None = None
    token = 0
    for e in scene.history:
        if isinstance(e, ev.LeaseAcquired):
            assert live is None, f"{e.lease.lease_id} acquired while {live} was live"
            assert e.lease.fencing_token == token + 1
            assert e.lease.lease_id == lease_id_for(scene.profile.profile_id, token + 1)
            token, live = e.lease.fencing_token, e.lease.lease_id
        elif isinstance(e, ON_LIVE_LEASE):
            assert e.lease_id == live, f"{e.event_type} on {e.lease_id} while {live} is live"
        elif isinstance(e, LEASE_ENDINGS) and e.lease_id == live:
            live = None
    lease = scene.profile.lease
    assert (lease.lease_id if lease else None) == live
    assert scene.profile.last_token == token


def _explain_clean_release(scene: Scene, k: int) -> None:
    e, request = scene.history[k], scene.history[k - 1]
    assert isinstance(e, ev.LeaseReleasedCleanly)
    assert isinstance(request, ev.LeaseReleaseRequested)
    assert request.lease_id == e.lease_id
    assert request.outcome in (Outcome.SUCCESS, Outcome.EXPECTED_FAILURE)
    assert not request.prompt_seen
    assert request.evidence_problem is None
    assert request.observed_proxy in (None, PROXY)
    assert request.observed_account in (None, ACCOUNT)
    if request.outcome is Outcome.EXPECTED_FAILURE:
        return  # explained by its reason: it needs no final URL or screenshot
    assert request.final_url is not None
    policy = RELEASE_POLICIES[scene.profile.release_policy]
    assert request.screenshot is not None or not policy.requires_screenshot


def _explain_return(scene: Scene, k: int) -> None:
    reviewed = scene.history[k - 1]
    assert isinstance(reviewed, ev.ProfileReviewed)
    assert reviewed.decision is ReviewDecision.RETURN
    assert reviewed.envelope.actor_role is Role.REVIEWER
    ended = [e.lease for e in scene.history[:k] if isinstance(e, ev.LeaseAcquired)]
    assert not ended or ended[-1].worker_id != reviewed.envelope.actor_id


def check_available_only_after_explainable_ending(scene: Scene) -> None:
    """Track the state from the events alone; every way into the pool must be explained."""
    state: ProfileState | None = None
    disabled_from: ProfileState | None = None
    for k, e in enumerate(scene.history):
        if isinstance(e, ev.LeaseAcquired):
            assert state is ProfileState.AVAILABLE, f"lease acquired while {state}"
        if isinstance(e, ev.ProfileDisabled):
            assert e.previous_state is state
            disabled_from = state
        entered = e.state if isinstance(e, ev.ProfileEnabled) else ENTERS.get(type(e))
        if entered is ProfileState.AVAILABLE and state is not None:
            if isinstance(e, ev.LeaseReleasedCleanly):
                assert state is ProfileState.LEASED
                _explain_clean_release(scene, k)
            elif isinstance(e, ev.ProfileReturnedToPool):
                assert state in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED)
                _explain_return(scene, k)
            else:
                assert isinstance(e, ev.ProfileEnabled), f"{e.event_type} made it available"
                assert (state, disabled_from) == (ProfileState.DISABLED, ProfileState.AVAILABLE)
        state = entered or state
    assert state is scene.profile.state
