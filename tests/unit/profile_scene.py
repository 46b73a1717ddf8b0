"""A profile driven by hand on a clock that moves only when a test says so. No I/O.

Every command gets a fresh ``Context`` (its own command, correlation and causation ids, the
scene's time); events are collected after each command that succeeds and kept in ``history``.
A refused command raises before anything is collected, so its pending events stay visible.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count

from ledger._domain.browser import StopSignal
from ledger._domain.events import ProfileEvent
from ledger._domain.model import Lease, Outcome, ProfileRecord, ReviewDecision, Role
from ledger._domain.policies import (
    DEFAULT_RELEASE_POLICY,
    DEFAULT_UNCLEAN_LIMIT,
    DEFAULT_UNCLEAN_WINDOW_SECONDS,
    ReleaseReport,
    Verdict,
)
from ledger._domain.profile import CheckoutRequest, Context, Profile

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
ACCOUNT = "acct-shop-17"
PROXY = "proxy-de-3"
DONE_URL = "https://shop.example/orders/done"


class Clock:
    """Fixed, timezone-aware UTC time that only ``advance`` moves."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def record(
    profile_id: str = "profile_shop_17",
    *,
    policy: str = DEFAULT_RELEASE_POLICY,
    limit: int = DEFAULT_UNCLEAN_LIMIT,
    window: int = DEFAULT_UNCLEAN_WINDOW_SECONDS,
    max_lease: int | None = None,
) -> ProfileRecord:
    return ProfileRecord(
        profile_id=profile_id,
        account_id=ACCOUNT,
        proxy_id=PROXY,
        region="eu-central",
        user_data_dir=f"/profiles/{profile_id}",
        release_policy=policy,
        unclean_limit=limit,
        unclean_window_seconds=window,
        max_lease_seconds=max_lease,
    )


class Scene:
    """One registered profile, its clock and every event it has produced so far."""

    def __init__(
        self,
        profile_id: str = "profile_shop_17",
        *,
        policy: str = DEFAULT_RELEASE_POLICY,
        limit: int = DEFAULT_UNCLEAN_LIMIT,
        window: int = DEFAULT_UNCLEAN_WINDOW_SECONDS,
        max_lease: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self._ids: Iterator[int] = count(1)
        self.history: list[ProfileEvent] = []
        rec = record(profile_id, policy=policy, limit=limit, window=window, max_lease=max_lease)
        self.profile = Profile.register(rec, self.ctx("ops-olga", Role.OPERATOR))
        self.collect()

    @property
    def now(self) -> datetime:
        return self.clock.now

    def advance(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    @property
    def live(self) -> Lease:
        """The profile's live lease (the test knows there is one)."""
        assert self.profile.lease is not None
        return self.profile.lease

    def ctx(self, actor: str = "worker-a", role: Role = Role.WORKER, reason: str = "") -> Context:
        n = next(self._ids)
        return Context(
            actor_id=actor,
            role=role,
            now=self.clock.now,
            command_id=f"cmd-{n}",
            correlation_id=f"corr-{n}",
            causation_id=f"cause-{n}",
            reason=reason,
        )

    def collect(self) -> list[ProfileEvent]:
        events = list(self.profile.collect_events())
        self.history.extend(events)
        return events

    def types(self, events: list[ProfileEvent] | None = None) -> list[str]:
        return [e.event_type for e in (self.history if events is None else events)]

    # -- commands, each collecting what it produced ----------------------------------------------

    def checkout(
        self,
        worker: str = "worker-a",
        ttl: int = 300,
        *,
        account_id: str | None = None,
        proxy_id: str | None = None,
        max_duration: int | None = None,
    ) -> Lease:
        request = CheckoutRequest(
            worker_id=worker,
            run_id=f"run-{worker}-{self.profile.last_token + 1}",
            task_type="place_order",
            ttl_seconds=ttl,
            account_id=account_id,
            proxy_id=proxy_id,
            max_duration_seconds=max_duration,
        )
        lease = self.profile.checkout(request, self.ctx(worker))
        self.collect()
        return lease

    def heartbeat(
        self,
        lease: Lease,
        *,
        step: str | None = None,
        url: str | None = None,
        safe: bool = False,
        mutating: bool = False,
        token: int | None = None,
    ) -> Lease:
        renewed = self.profile.heartbeat(
            lease.lease_id,
            lease.fencing_token if token is None else token,
            self.ctx(lease.worker_id),
            step=step,
            url=url,
            safe=safe,
            mutating=mutating,
        )
        self.collect()
        return renewed

    def release(
        self,
        lease: Lease,
        outcome: Outcome = Outcome.SUCCESS,
        *,
        final_url: str | None = DONE_URL,
        screenshot: str | None = None,
        screenshot_sha256: str | None = None,
        prompt_seen: bool = False,
        observed_proxy: str | None = None,
        observed_account: str | None = None,
        evidence_problem: str | None = None,
        reason: str = "",
    ) -> Verdict:
        report = ReleaseReport(
            outcome=outcome,
            final_url=final_url,
            screenshot=screenshot,
            screenshot_sha256=screenshot_sha256,
            prompt_seen=prompt_seen,
            observed_proxy=observed_proxy,
            observed_account=observed_account,
            evidence_problem=evidence_problem,
        )
        ctx = self.ctx(lease.worker_id, reason=reason)
        verdict = self.profile.release(lease.lease_id, lease.fencing_token, report, ctx)
        self.collect()
        return verdict

    def sweep(self, actor: str = "sweeper") -> Verdict | None:
        """What the store's sweep does to one profile: stale if overdue, then settle."""
        if not self.profile.is_overdue(self.now):
            return None
        ctx = self.ctx(actor, Role.SCHEDULER, "renewal deadline missed")
        self.profile.mark_stale(ctx)
        verdict = self.profile.settle_stale(ctx)
        self.collect()
        return verdict

    def force_release(self, actor: str = "ops-olga", role: Role = Role.OPERATOR) -> Verdict:
        verdict = self.profile.force_release(self.ctx(actor, role, "browser hung"))
        self.collect()
        return verdict

    def review(
        self,
        decision: ReviewDecision = ReviewDecision.RETURN,
        reviewer: str = "rita",
        role: Role = Role.REVIEWER,
    ) -> list[ProfileEvent]:
        self.profile.review(decision, "checked the account", self.ctx(reviewer, role))
        return self.collect()

    def quarantine(self, actor: str = "ops-olga") -> list[ProfileEvent]:
        self.profile.quarantine(self.ctx(actor, Role.OPERATOR, "suspicious"))
        return self.collect()

    def disable(self, actor: str = "ops-olga") -> list[ProfileEvent]:
        self.profile.disable(self.ctx(actor, Role.OPERATOR, "account closed"))
        return self.collect()

    def enable(self, actor: str = "ops-olga") -> list[ProfileEvent]:
        self.profile.enable(self.ctx(actor, Role.OPERATOR, "account reopened"))
        return self.collect()

    def stop_browser(self, signal: StopSignal = StopSignal.SIGHUP) -> list[ProfileEvent]:
        """Record an orphaned browser stopped on the registered directory."""
        directory = self.profile.user_data_dir
        assert directory is not None
        ctx = self.ctx("ops-olga", Role.OPERATOR)
        self.profile.record_browser_stop("vm", 4242, directory, signal, ctx)
        return self.collect()


def eventful_scene() -> Scene:
    """One profile taken through every kind of event the aggregate can record."""
    s = Scene()
    lease = s.checkout("worker-a", 120)
    s.heartbeat(lease, step="login", url="https://shop.example/login", safe=True)
    s.profile.extend(lease.lease_id, lease.fencing_token, 600, s.ctx("worker-a"))
    s.collect()
    s.release(lease, Outcome.SUCCESS)
    lease = s.checkout("worker-b", 60)
    s.heartbeat(lease, step="submit_order", mutating=True)
    s.advance(61)
    s.sweep()
    s.review(ReviewDecision.RETURN)
    s.checkout("worker-c")
    s.force_release()
    s.stop_browser()
    s.review(ReviewDecision.DISABLE)
    s.enable()
    s.quarantine()
    s.review(ReviewDecision.RETURN, reviewer="rolf")
    s.advance(3600)
    s.release(s.checkout("worker-d"), prompt_seen=True)
    return s
