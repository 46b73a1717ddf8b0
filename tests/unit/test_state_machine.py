"""Random command sequences on one or two profiles never break the lease invariants.

The machine issues every command of the lease lifecycle with random arguments on a hand-driven
clock. Refusals (``CheckoutDenied``, ``LeaseLost``, ``NotAllowed``) are legitimate answers but must
leave nothing behind. After every step the invariants are checked on each profile's accumulated
event history, independently of the aggregate's own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from profile_scene import ACCOUNT, DONE_URL, PROXY, Clock, Scene

from ledger.domain import events as ev
from ledger.domain.errors import CheckoutDenied, LeaseLost, NotAllowed
from ledger.domain.model import (
    LeaseStatus,
    Outcome,
    ProfileState,
    ReviewDecision,
    Role,
    lease_id_for,
    parse_lease_id,
)
from ledger.domain.policies import RELEASE_POLICIES, ReleaseReport
from ledger.domain.profile import CheckoutRequest, replay
from ledger.domain.view import availability_of

REFUSALS = (CheckoutDenied, LeaseLost, NotAllowed)
PROFILE = st.integers(0, 1)
PICK = st.integers(0, 15)
TOKEN_SHIFT = st.sampled_from([0, 0, 0, 0, 1, -1])
STEP = st.sampled_from([None, "plain", "safe", "mutating"])
# Mostly short hops so leases live long enough to be renewed, sometimes past any deadline.
TTL = st.sampled_from([60, 300, 600]) | st.integers(1, 600)
SECONDS = st.sampled_from([0, 1, 30, 120, 300, 301, 900]) | st.integers(0, 900)
DECISION = st.sampled_from(
    [
        ReviewDecision.RETURN,
        ReviewDecision.RETURN,
        ReviewDecision.QUARANTINE,
        ReviewDecision.DISABLE,
    ]
)
# Half the releases are clean by construction; the others report anything at all.
REPORT = st.one_of(
    st.builds(
        ReleaseReport,
        outcome=st.sampled_from([Outcome.SUCCESS, Outcome.EXPECTED_FAILURE]),
        final_url=st.just(DONE_URL),
        screenshot=st.just("final.png"),
        observed_proxy=st.sampled_from([None, PROXY]),
        observed_account=st.sampled_from([None, ACCOUNT]),
    ),
    st.builds(
        ReleaseReport,
        outcome=st.sampled_from(Outcome),
        final_url=st.sampled_from([None, DONE_URL]),
        screenshot=st.sampled_from([None, "final.png"]),
        prompt_seen=st.booleans(),
        observed_proxy=st.sampled_from([None, PROXY, "proxy-other"]),
        observed_account=st.sampled_from([None, ACCOUNT, "acct-other"]),
    ),
)

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
    assert request.final_url is not None
    assert not request.prompt_seen
    assert request.observed_proxy in (None, PROXY)
    assert request.observed_account in (None, ACCOUNT)
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


class LeaseLifecycle(RuleBasedStateMachine):
    """Workers, the sweep, operators and reviewers acting at random on one or two profiles."""

    @initialize(
        count=st.integers(1, 2),
        policies=st.tuples(*[st.sampled_from(sorted(RELEASE_POLICIES))] * 2),
    )
    def register(self, count: int, policies: tuple[str, str]) -> None:
        self.clock = Clock()
        self.scenes = [
            Scene(f"profile_{i}", policy=policies[i], clock=self.clock) for i in range(count)
        ]

    def leased_before(self) -> bool:
        """Lease commands wait for a first lease; before it they could only be refused."""
        return any(s.profile.last_token > 0 for s in self.scenes)

    def scene(self, i: int) -> Scene:
        return self.scenes[i % len(self.scenes)]

    def attempt(self, scene: Scene, command: Callable[[], object], *, must_pass: bool) -> None:
        """Run a command; a refusal must leave no pending events and no new version."""
        version = scene.profile.version
        refusal: Exception | None = None
        try:
            command()
        except REFUSALS as refused:
            refusal = refused
        assert scene.profile.pending_events == []
        if refusal is not None:
            assert not must_pass, f"refused a command the rules allow: {refusal}"
            assert scene.profile.version == version

    def lease_ref(self, scene: Scene, pick: int, shift: int) -> tuple[str, int, bool]:
        """A live, old or never-issued lease id with a right or wrong token; and whether live."""
        ids = [e.lease.lease_id for e in scene.history if isinstance(e, ev.LeaseAcquired)]
        ids.append(lease_id_for(scene.profile.profile_id, 99))
        # Two picks in three aim at the newest lease, the rest at any (old or never issued).
        lease_id = ids[-2] if len(ids) > 1 and pick < 10 else ids[pick % len(ids)]
        token = parse_lease_id(lease_id)[1] + shift
        lease = scene.profile.lease
        live = (
            lease is not None
            and lease.lease_id == lease_id
            and shift == 0
            and lease.lease_status is LeaseStatus.ACTIVE
            and scene.now <= lease.expires_at
        )
        return lease_id, token, live

    @rule(
        i=PROFILE,
        worker=st.sampled_from(["worker-a", "worker-b", "worker-c"]),
        ttl=TTL,
        context=st.sampled_from(["none"] * 3 + ["match"] * 3 + ["proxy", "account"]),
    )
    def checkout(self, i: int, worker: str, ttl: int, context: str) -> None:
        s = self.scene(i)
        account = {"match": ACCOUNT, "account": "acct-other"}.get(context)
        proxy = {"match": PROXY, "proxy": "proxy-other"}.get(context)
        request = CheckoutRequest(worker, f"run-{s.profile.version}", "task", ttl, account, proxy)
        allowed = s.profile.state is ProfileState.AVAILABLE and context in ("none", "match")
        self.attempt(
            s, lambda: (s.profile.checkout(request, s.ctx(worker)), s.collect()), must_pass=allowed
        )

    @precondition(lambda self: self.leased_before())
    @rule(i=PROFILE, pick=PICK, shift=TOKEN_SHIFT, step=STEP)
    def heartbeat(self, i: int, pick: int, shift: int, step: str | None) -> None:
        s = self.scene(i)
        lease_id, token, live = self.lease_ref(s, pick, shift)
        flags = {"safe": step == "safe", "mutating": step == "mutating"}
        url = None if step is None else f"https://shop.example/{step}"

        def beat() -> None:
            s.profile.heartbeat(lease_id, token, s.ctx(), step=step, url=url, **flags)
            s.collect()

        self.attempt(s, beat, must_pass=live)

    @precondition(lambda self: self.leased_before())
    @rule(i=PROFILE, pick=PICK, shift=TOKEN_SHIFT, ttl=TTL)
    def extend(self, i: int, pick: int, shift: int, ttl: int) -> None:
        s = self.scene(i)
        lease_id, token, live = self.lease_ref(s, pick, shift)
        self.attempt(
            s,
            lambda: (s.profile.extend(lease_id, token, ttl, s.ctx()), s.collect()),
            must_pass=live,
        )

    @precondition(lambda self: self.leased_before())
    @rule(i=PROFILE, pick=PICK, shift=TOKEN_SHIFT, report=REPORT)
    def release(self, i: int, pick: int, shift: int, report: ReleaseReport) -> None:
        s = self.scene(i)
        lease_id, token, live = self.lease_ref(s, pick, shift)
        self.attempt(
            s,
            lambda: (s.profile.release(lease_id, token, report, s.ctx()), s.collect()),
            must_pass=live,
        )

    @rule(seconds=SECONDS)
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @rule(i=PROFILE)
    def sweep(self, i: int) -> None:
        s = self.scene(i)
        overdue = s.profile.is_overdue(s.now)
        s.sweep()
        assert not s.profile.is_overdue(s.now)
        assert s.profile.state is not ProfileState.STALE
        if overdue:
            assert s.profile.lease is None

    @rule(
        i=PROFILE,
        decision=DECISION,
        reviewer=st.sampled_from(["rita", "rolf", "worker-a"]),
    )
    def review(self, i: int, decision: ReviewDecision, reviewer: str) -> None:
        s = self.scene(i)
        last = s.profile.last_lease
        allowed = s.profile.state in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED) and (
            last is None or last.worker_id != reviewer
        )
        self.attempt(s, lambda: s.review(decision, reviewer), must_pass=allowed)

    # One rule for the four operator commands, so that together they weigh as much as one
    # worker command and leave leases time to run.
    @rule(i=PROFILE, command=st.sampled_from(["force_release", "quarantine", "disable", "enable"]))
    def operate(self, i: int, command: str) -> None:
        s = self.scene(i)
        state = s.profile.state
        allowed = {
            "force_release": s.profile.lease is not None,
            "quarantine": state not in (ProfileState.QUARANTINED, ProfileState.DISABLED),
            "disable": state is not ProfileState.DISABLED,
            "enable": state is ProfileState.DISABLED,
        }[command]
        self.attempt(s, getattr(s, command), must_pass=allowed)

    @invariant()
    def never_two_live_leases_and_tokens_step_by_one(self) -> None:
        for s in self.scenes:
            check_one_live_lease(s)

    @invariant()
    def available_only_after_an_explainable_ending(self) -> None:
        for s in self.scenes:
            check_available_only_after_explainable_ending(s)

    @invariant()
    def replay_gives_the_live_availability_row(self) -> None:
        for s in self.scenes:
            rebuilt = replay(None, s.history)
            assert rebuilt is not None
            assert availability_of(rebuilt) == availability_of(s.profile)
            assert rebuilt.version == s.profile.version == len(s.history)


# Hypothesis makes TestCase at run time, so mypy cannot see it as a class.
class TestLeaseLifecycle(LeaseLifecycle.TestCase):  # type: ignore[misc,valid-type]
    """Random lease commands keep one live lease, rising tokens and an explained pool."""

    settings = settings(max_examples=60, stateful_step_count=40, deadline=None, database=None)
