"""Random command sequences on one or two profiles follow the lease rules in both directions.

The machine issues every command of the lease lifecycle, with random and often wrong arguments
(a stale fencing token, an ended lease, a deadline just passed, a foreign account or proxy, the
reviewer whose own run is under review, the wrong role), on a hand-driven clock. The reference
model in ``lease_model.py`` says for each command whether it must be refused, with which error
and reason, or what it must leave behind; the machine fails either way it disagrees. After
every step the invariants are also checked on each profile's accumulated event history,
independently of both the aggregate's bookkeeping and the model.
"""

from __future__ import annotations

from collections.abc import Callable

from history_checks import check_available_only_after_explainable_ending, check_one_live_lease
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from lease_model import POLICIES, QUARANTINE, REVIEW, ModelProfile, Refusal, standing_of
from profile_scene import ACCOUNT, DONE_URL, PROXY, Clock, Scene

from ledger._domain.errors import CheckoutDenied, LeaseLost, LedgerError, NotAllowed
from ledger._domain.model import (
    Outcome,
    ProfileState,
    ReviewDecision,
    Role,
)
from ledger._domain.policies import RELEASE_POLICIES, ReleaseReport
from ledger._domain.profile import CheckoutRequest, replay
from ledger._domain.view import availability_of

REFUSALS = (CheckoutDenied, LeaseLost, NotAllowed)
# What each step of the machine does, weighted: worker commands most, so that leases live, get
# renewed and end in every way; the clock, the sweep, operators and reviewers often enough to
# interfere. One rule draws them all because Hypothesis's swarm testing switches a random
# subset of a machine's rules off for a whole run, which starves the sequences the guards need
# (a mutating step, then a failed release; two unclean endings with a review between them).
ACTIONS = st.sampled_from(
    [
        *["checkout"] * 4,
        *["heartbeat"] * 12,
        *["extend"] * 3,
        *["release"] * 5,
        *["time_passes"] * 5,
        *["sweep"] * 2,
        *["mark_stale"] * 2,
        "settle_stale",
        "force_release",
        "quarantine",
        "disable",
        *["enable"] * 3,
        *["review"] * 7,
    ]
)
# The profiles an action is worth taking on; an action missing here suits any profile.
SUITS: dict[str, Callable[[ModelProfile], bool]] = {
    "checkout": lambda m: m.state in (ProfileState.AVAILABLE, ProfileState.LEASED),
    **dict.fromkeys(
        ["heartbeat", "extend", "release", "time_passes", "sweep", "mark_stale", "force_release"],
        lambda m: m.lease is not None,
    ),
    "settle_stale": lambda m: m.state is ProfileState.STALE,
    "quarantine": lambda m: m.state not in (QUARANTINE, ProfileState.DISABLED),
    "disable": lambda m: m.lease is not None,
    "enable": lambda m: m.state is ProfileState.DISABLED,
    "review": lambda m: m.state in (REVIEW, QUARANTINE),
}
# Each step draws this many candidate actions and takes the first that suits a profile.
CANDIDATES = st.tuples(ACTIONS, ACTIONS, ACTIONS)
PROFILE = st.integers(0, 1)
WORKER = st.sampled_from(["worker-a", "worker-b", "worker-c"])
# A quarter of the checkouts name a foreign account or proxy (or both: the account is named).
CONTEXT = st.sampled_from(["none"] * 4 + ["match"] * 4 + ["account", "proxy", "both"])
# Most lease commands aim at the newest lease (live or ended); some at the one before it or
# the next, never issued; some present a token one off.
AIM = st.sampled_from(["newest"] * 6 + ["previous", "next"])
TOKEN_SHIFT = st.sampled_from([0] * 5 + [1, -1])
# The step a heartbeat reports: none, a plain one, one confirming the account is in a known
# state, or one that mutates it (most often, so that releases and stale leases find one).
WORKER_STEP = st.sampled_from([None, "plain", "safe", "mutating", "mutating", "mutating"])
# Mostly short hops so leases live long enough to be renewed; sometimes past any deadline,
# or past the window (120 or 600 s) in which unclean endings count. Or to a lease's deadline exactly
# (still in time) or one second past it.
TTL = st.sampled_from([60, 300, 600, 600]) | st.integers(1, 600)
# Hard limits: most leases have none; some profiles cap every lease, some checkouts their own.
MAX_LEASE = st.sampled_from([None, None, 90, 600])
MAX_DURATION = st.sampled_from([None, None, None, 30, 300])
TIME = st.sampled_from(["hop", "hop", "to_deadline", "past_deadline"])
SECONDS = st.sampled_from([0, 1, 5, 30, 60, 120, 240, 601, 3600])
# A fifth of the sweep's and operator's commands come from a worker, who may issue none.
AS_WORKER = st.sampled_from([False] * 4 + [True])
# Returns weigh most: a profile back in the pool can lease, end unclean, and count again.
DECISION = st.sampled_from([ReviewDecision.RETURN] * 4 + [*ReviewDecision])
# "holder" is the worker whose run is under review, who must never review it.
SHOT = "0" * 64  # the digest of a screenshot that holds something
REVIEWER = st.sampled_from(["rita", "rolf", "rhea", "holder"])
REVIEWER_ROLE = st.sampled_from([Role.REVIEWER] * 5 + [Role.OPERATOR])
# A third of the releases are clean by construction, a third fail with full evidence (so the
# failure alone decides), the others report anything at all.
REPORT = st.one_of(
    st.builds(
        ReleaseReport,
        outcome=st.sampled_from([Outcome.SUCCESS, Outcome.EXPECTED_FAILURE]),
        final_url=st.just(DONE_URL),
        screenshot=st.just("final.png"),
        screenshot_sha256=st.just(SHOT),
        observed_proxy=st.sampled_from([None, PROXY]),
        observed_account=st.sampled_from([None, ACCOUNT]),
    ),
    st.builds(
        ReleaseReport,
        outcome=st.just(Outcome.FAILURE),
        final_url=st.just(DONE_URL),
        screenshot=st.just("final.png"),
        screenshot_sha256=st.just(SHOT),
    ),
    st.builds(
        ReleaseReport,
        outcome=st.sampled_from(Outcome),
        final_url=st.sampled_from([None, DONE_URL]),
        screenshot=st.sampled_from([None, "final.png"]),
        # A screenshot without the digest of its bytes vouches for nothing (rev28).
        screenshot_sha256=st.sampled_from([None, SHOT]),
        prompt_seen=st.booleans(),
        observed_proxy=st.sampled_from([None, PROXY, "proxy-other"]),
        observed_account=st.sampled_from([None, ACCOUNT, "acct-other"]),
        evidence_problem=st.sampled_from([None, None, "screenshot failed: Timeout"]),
    ),
)


class LeaseLifecycle(RuleBasedStateMachine):
    """Workers, the sweep, operators and reviewers acting at random on one or two profiles,
    each command checked against the reference model in both directions."""

    @initialize(
        count=st.integers(1, 2),
        policies=st.tuples(*[st.sampled_from(sorted(POLICIES))] * 2),
        limit=st.sampled_from([1, 2, 2, 3]),
        window=st.sampled_from([120, 600, 24 * 3600]),
        ttl=TTL,
        max_lease=MAX_LEASE,
    )
    def register_and_lease(
        self,
        count: int,
        policies: tuple[str, str],
        limit: int,
        window: int,
        ttl: int,
        max_lease: int | None,
    ) -> None:
        """Every run starts with each profile leased, so that lease commands have a lease to
        aim at (or miss) from the first step."""
        self.clock = Clock()
        self.scenes = [
            Scene(
                f"profile_{i}",
                policy=policies[i],
                limit=limit,
                window=window,
                max_lease=max_lease,
                clock=self.clock,
            )
            for i in range(count)
        ]
        self.models = [
            ModelProfile(
                s.profile.profile_id, ACCOUNT, PROXY, policies[i], limit, window, max_lease
            )
            for i, s in enumerate(self.scenes)
        ]
        for i in range(count):
            self.lease_out(i, "worker-a", ttl, "match", None)

    @rule(i=PROFILE, data=st.data())
    def act(self, i: int, data: st.DataObject) -> None:
        """Take the first candidate action that suits a profile, on profile ``i`` or, if only
        the other suits it, on the other one (a checkout suits a profile in the pool or leased,
        a review a blocked one, lease commands and deadlines a live lease). When no candidate
        suits either profile the last is taken even so, to be refused."""
        candidates = data.draw(CANDIDATES, "candidate actions")
        suiting = (a for a in candidates if any(self.suits(a, m) for m in self.models))
        action = next(suiting, candidates[-1])
        k = i % len(self.scenes)
        if not self.suits(action, self.models[k]):
            k = next((j for j, m in enumerate(self.models) if self.suits(action, m)), k)
        getattr(self, action)(k, data)

    @staticmethod
    def suits(action: str, m: ModelProfile) -> bool:
        suits = SUITS.get(action)
        return suits is None or suits(m)

    def attempt(
        self, name: str, k: int, command: Callable[[], object], expected: Refusal | None
    ) -> None:
        """Run a command the model has judged: a refusal must be the expected one, for the
        expected reason, and leave nothing behind; anything else must go through."""
        event(f"{name}: {expected.says if expected else 'allowed'}")
        s = self.scenes[k]
        version = s.profile.version
        refused: LedgerError | None = None
        try:
            command()
        except REFUSALS as error:
            refused = error
        if refused is None:
            assert expected is None, f"{name}: went through, but the rules refuse it: {expected}"
            s.collect()
            return
        assert expected is not None, f"{name}: refused a command the rules allow: {refused}"
        expected.check(refused)
        assert s.profile.pending_events == []
        assert s.profile.version == version

    # -- the worker ----------------------------------------------------------------------------

    def lease_out(
        self, k: int, worker: str, ttl: int, context: str, max_duration: int | None
    ) -> None:
        s, m = self.scenes[k], self.models[k]
        account = {"match": ACCOUNT, "account": "acct-other", "both": "acct-other"}.get(context)
        proxy = {"match": PROXY, "proxy": "proxy-other", "both": "proxy-other"}.get(context)
        run = f"run-{s.profile.version}"
        request = CheckoutRequest(worker, run, "task", ttl, account, proxy, max_duration)
        expected = m.checkout(worker, ttl, account, proxy, s.now, max_duration)
        self.attempt("checkout", k, lambda: s.profile.checkout(request, s.ctx(worker)), expected)

    def checkout(self, k: int, data: st.DataObject) -> None:
        drawn = data.draw(
            st.tuples(WORKER, TTL, CONTEXT, MAX_DURATION), "worker, ttl, context, max"
        )
        self.lease_out(k, *drawn)

    def lease_ref(self, k: int, aim: str, shift: int) -> tuple[str, int]:
        """The newest lease's id (live or ended), the one before it, or the next one (never
        issued); with its own token, or one off."""
        m = self.models[k]
        newest = max(m.last_token, 1)
        token = {"newest": newest, "previous": max(newest - 1, 1), "next": m.last_token + 1}[aim]
        return f"lease-{token}@{m.profile_id}", token + shift

    def heartbeat(self, k: int, data: st.DataObject) -> None:
        s, m = self.scenes[k], self.models[k]
        aim, shift, step = data.draw(st.tuples(AIM, TOKEN_SHIFT, WORKER_STEP), "aim, shift, step")
        lease_id, token = self.lease_ref(k, aim, shift)
        flags = {"safe": step == "safe", "mutating": step == "mutating"}
        url = None if step is None else f"https://shop.example/{step}"
        expected = m.heartbeat(lease_id, token, now=s.now, **flags)
        self.attempt(
            "heartbeat",
            k,
            lambda: s.profile.heartbeat(lease_id, token, s.ctx(), step=step, url=url, **flags),
            expected,
        )

    def extend(self, k: int, data: st.DataObject) -> None:
        s, m = self.scenes[k], self.models[k]
        aim, shift, ttl = data.draw(st.tuples(AIM, TOKEN_SHIFT, TTL), "aim, shift, ttl")
        lease_id, token = self.lease_ref(k, aim, shift)
        expected = m.extend(lease_id, token, ttl, s.now)
        self.attempt("extend", k, lambda: s.profile.extend(lease_id, token, ttl, s.ctx()), expected)

    def release(self, k: int, data: st.DataObject) -> None:
        s, m = self.scenes[k], self.models[k]
        aim, shift, report = data.draw(st.tuples(AIM, TOKEN_SHIFT, REPORT), "aim, shift, report")
        lease_id, token = self.lease_ref(k, aim, shift)
        expected = m.release(lease_id, token, report, s.now)
        self.attempt(
            "release", k, lambda: s.profile.release(lease_id, token, report, s.ctx()), expected
        )

    # -- the clock, the sweep, operators and reviewers -------------------------------------------

    def time_passes(self, k: int, data: st.DataObject) -> None:
        how, seconds = data.draw(st.tuples(TIME, SECONDS), "time, seconds")
        m = self.models[k]
        if how == "hop":
            self.clock.advance(seconds)
        elif m.lease is not None and self.clock.now <= m.lease.expires_at:
            past = 1 if how == "past_deadline" else 0
            self.clock.advance((m.lease.expires_at - self.clock.now).total_seconds() + past)

    def sweep(self, k: int, data: st.DataObject) -> None:
        """What the store's sweep does: mark an overdue lease stale and settle it at once."""
        s, m = self.scenes[k], self.models[k]
        m.sweep(s.now)
        s.sweep()
        assert not s.profile.is_overdue(s.now)

    def mark_stale(self, k: int, data: st.DataObject) -> None:
        s, m = self.scenes[k], self.models[k]
        role = Role.WORKER if data.draw(AS_WORKER, "as worker") else Role.SCHEDULER
        expected = m.mark_stale(role, s.now)
        ctx = s.ctx("sweeper", role)
        self.attempt("mark_stale", k, lambda: s.profile.mark_stale(ctx), expected)

    def settle_stale(self, k: int, data: st.DataObject) -> None:
        s, m = self.scenes[k], self.models[k]
        expected = m.settle_stale(s.now)
        ctx = s.ctx("sweeper", Role.SCHEDULER)
        self.attempt("settle_stale", k, lambda: s.profile.settle_stale(ctx), expected)

    def force_release(self, k: int, data: st.DataObject) -> None:
        self.operate(k, data, "force_release")

    def quarantine(self, k: int, data: st.DataObject) -> None:
        self.operate(k, data, "quarantine")

    def disable(self, k: int, data: st.DataObject) -> None:
        self.operate(k, data, "disable")

    def enable(self, k: int, data: st.DataObject) -> None:
        self.operate(k, data, "enable")

    def operate(self, k: int, data: st.DataObject, command: str) -> None:
        s, m = self.scenes[k], self.models[k]
        role = Role.WORKER if data.draw(AS_WORKER, "as worker") else Role.OPERATOR
        expected = {
            "force_release": lambda: m.force_release(role, s.now),
            "quarantine": lambda: m.quarantine(role, s.now),
            "disable": lambda: m.disable(role, s.now),
            "enable": lambda: m.enable(role),
        }[command]()
        ctx = s.ctx("ops-olga", role)
        self.attempt(command, k, lambda: getattr(s.profile, command)(ctx), expected)

    def review(self, k: int, data: st.DataObject) -> None:
        s, m = self.scenes[k], self.models[k]
        decision, who, role = data.draw(
            st.tuples(DECISION, REVIEWER, REVIEWER_ROLE), "decision, reviewer, role"
        )
        reviewer = m.last_worker if who == "holder" and m.last_worker else who
        expected = m.review(reviewer, role, decision, s.now)
        ctx = s.ctx(reviewer, role)
        self.attempt("review", k, lambda: s.profile.review(decision, "looked", ctx), expected)

    @invariant()
    def agrees_with_the_model(self) -> None:
        for s, m in zip(self.scenes, self.models, strict=True):
            assert standing_of(s.profile) == m.standing()

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

    settings = settings(max_examples=40, stateful_step_count=80, deadline=None, database=None)


def test_the_model_knows_every_release_policy() -> None:
    """The reference model judges releases under exactly the policies the domain offers."""
    assert set(POLICIES) == set(RELEASE_POLICIES)
