"""The Profile aggregate: one event stream per browser profile, and the lease rules.

Command methods decide, then trigger events; they never read a clock or make ids: the time and
the command's ids arrive in a ``Context``. Denials raise and trigger nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from ledger._domain import events as ev
from ledger._domain.browser import BrowserCheck, StopSignal, review_refusal
from ledger._domain.denials import context_denial, state_denial
from ledger._domain.endings import ending_text
from ledger._domain.errors import CheckoutDenied, InvalidInput, LeaseLost, NotAllowed
from ledger._domain.model import (
    Cause,
    Envelope,
    Lease,
    LeaseStatus,
    ProfileRecord,
    ProfileState,
    ReviewDecision,
    Role,
    lease_id_for,
)
from ledger._domain.policies import (
    RELEASE_POLICIES,
    Ending,
    ReleaseReport,
    Verdict,
    judge_release,
    judge_stale,
    repeated_unclean,
)
from ledger._domain.snapshot import ProfileSnapshot
from ledger._domain.state import ProfileStateMachine

PROFILE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:custody:profile")


@dataclass(frozen=True)
class Context:
    """Who issues a command, when (on the store's clock) and under which ids."""

    actor_id: str
    role: Role
    now: datetime
    command_id: str
    correlation_id: str
    causation_id: str
    reason: str = ""
    command: str = ""  # what was asked, as a fingerprint: a reused command id must match it


@dataclass(frozen=True)
class CheckoutRequest:
    worker_id: str
    run_id: str
    task_type: str
    ttl_seconds: int
    account_id: str | None = None
    proxy_id: str | None = None
    max_duration_seconds: int | None = None  # the lease's hard limit, within the profile's


class Profile(ProfileStateMachine):
    """A browser profile and its leases. Satisfies eventsourcing's aggregate protocol."""

    def __init__(self, originator_id: UUID) -> None:
        super().__init__(originator_id)
        self._pending: list[ev.ProfileEvent] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> Profile:
        copied = super().__deepcopy__(memo)
        assert isinstance(copied, Profile)
        copied._pending = list(self._pending)
        return copied

    @staticmethod
    def create_id(profile_id: str) -> UUID:
        """The aggregate id is derived from the profile's own id, so no lookup is needed."""
        return uuid5(PROFILE_NAMESPACE, profile_id)

    def collect_events(self) -> Sequence[ev.ProfileEvent]:
        collected, self._pending = self._pending, []
        return collected

    @property
    def pending_events(self) -> list[ev.ProfileEvent]:
        return list(self._pending)

    def _trigger(self, cls: type[ev.ProfileEvent], ctx: Context, **payload: Any) -> None:
        # Events after the first in one command are caused by the one before them.
        previous = self._pending[-1] if self._pending else None
        same_command = previous is not None and previous.envelope.command_id == ctx.command_id
        causation = previous.event_id if previous and same_command else ctx.causation_id
        envelope = Envelope(
            actor_id=ctx.actor_id,
            actor_role=ctx.role,
            reason=ctx.reason,
            correlation_id=ctx.correlation_id,
            causation_id=causation,
            command_id=ctx.command_id,
            command=ctx.command,
            at=ctx.now,
        )
        event = cls(
            originator_id=self.id,
            originator_version=self.version + 1,
            profile_id=payload.pop("profile_id", self.profile_id),
            envelope=envelope,
            **payload,
        )
        self.apply(event)
        self._pending.append(event)

    # -- registration -----------------------------------------------------------------------

    @classmethod
    def register(cls, record: ProfileRecord, ctx: Context) -> Profile:
        profile = cls(cls.create_id(record.profile_id))
        profile._trigger(ev.ProfileRegistered, ctx, **record.model_dump())
        return profile

    def confirm_registration(self, record: ProfileRecord, ctx: Context) -> None:
        """Registering the same record again changes nothing; another record for this profile
        is ``NotAllowed`` (a profile's account context never changes)."""
        existing = self.registration()
        if existing != record:
            msg = (
                f"profile {record.profile_id} is already registered differently "
                f"(account {existing.account_id}, proxy {existing.proxy_id})"
            )
            raise NotAllowed(msg)

    def worker_of(self, lease_id: str) -> tuple[str, str | None]:
        """Who a command under ``lease_id`` acts as, and the run it correlates on: the live
        lease's worker and run ("unknown" when that is not the live lease: the command will be
        refused as ``LeaseLost``, and its refusal names no one)."""
        lease = self.lease if self.lease and self.lease.lease_id == lease_id else None
        return (lease.worker_id, lease.run_id) if lease else ("unknown", None)

    def registration(self) -> ProfileRecord:
        return ProfileRecord(
            profile_id=self.profile_id,
            account_id=self.account_id,
            proxy_id=self.proxy_id,
            region=self.region,
            user_data_dir=self.user_data_dir,
            release_policy=self.release_policy,
            unclean_limit=self.unclean_limit,
            unclean_window_seconds=self.unclean_window_seconds,
            max_lease_seconds=self.max_lease_seconds,
        )

    # -- the lease ----------------------------------------------------------------------------

    def checkout(self, request: CheckoutRequest, ctx: Context) -> Lease:
        """Grant a lease with the next fencing token, or raise ``CheckoutDenied``."""
        denial = context_denial(self, request.account_id, request.proxy_id) or state_denial(
            self, ctx.now
        )
        if denial is not None:
            raise CheckoutDenied(denial)
        token = self.last_token + 1
        hard_limit = self._hard_limit(request, ctx.now)
        deadline = ctx.now + timedelta(seconds=request.ttl_seconds)
        lease = Lease(
            lease_id=lease_id_for(self.profile_id, token),
            profile_id=self.profile_id,
            account_id=self.account_id,
            worker_id=request.worker_id,
            run_id=request.run_id,
            task_type=request.task_type,
            proxy_id=self.proxy_id,
            lease_status=LeaseStatus.ACTIVE,
            lease_started_at=ctx.now,
            heartbeat_at=ctx.now,
            expires_at=min(deadline, hard_limit) if hard_limit else deadline,
            ttl_seconds=request.ttl_seconds,
            release_policy=self.release_policy,
            fencing_token=token,
            hard_limit_at=hard_limit,
        )
        self._trigger(ev.LeaseAcquired, ctx, lease=lease)
        return lease

    def _hard_limit(self, request: CheckoutRequest, now: datetime) -> datetime | None:
        """The tighter of the profile's limit and the checkout's (None: neither sets one)."""
        limits = [s for s in (self.max_lease_seconds, request.max_duration_seconds) if s]
        return now + timedelta(seconds=min(limits)) if limits else None

    def live_lease(self, lease_id: str, fencing_token: int, now: datetime) -> Lease:
        """The lease a worker may act on, or ``LeaseLost`` saying why it may not."""
        lease = self.lease
        if lease is None or lease.lease_id != lease_id:
            ended = (
                self.last_lease
                if self.last_lease and self.last_lease.lease_id == lease_id
                else None
            )
            if ended is not None:
                assert ended.ended_at is not None
                how = ending_text(ended.ending, ended.ending_cause)
                why = f"lease ended {how} at {ended.ended_at.isoformat()}"
            elif lease is not None:
                why = f"profile {self.profile_id} is now held under {lease.lease_id}"
            else:
                why = f"profile {self.profile_id} has no live lease {lease_id}"
            raise LeaseLost(lease_id, why)
        if fencing_token != lease.fencing_token:
            why = f"fencing token {fencing_token} is not the lease's token {lease.fencing_token}"
            raise LeaseLost(lease_id, why)
        if lease.lease_status is LeaseStatus.STALE:
            raise LeaseLost(lease_id, "the lease was marked stale")
        if lease.hard_limit_at is not None and now >= lease.hard_limit_at:
            why = f"hard limit {lease.hard_limit_at.isoformat()} reached: stop the run"
            raise LeaseLost(lease_id, why)
        if lease.overdue_at(now):
            why = f"renewal deadline {lease.expires_at.isoformat()} passed"
            raise LeaseLost(lease_id, why)
        return lease

    def heartbeat(
        self,
        lease_id: str,
        fencing_token: int,
        ctx: Context,
        *,
        step: str | None,
        url: str | None,
        safe: bool,
        mutating: bool,
    ) -> Lease:
        """Renew the deadline by the lease's TTL (never past its hard limit) and record the
        step and URL.

        A safe or mutating mark needs the step's name: an unnamed mutation would erase the
        record of an earlier one."""
        if (safe or mutating) and step is None:
            raise InvalidInput("step", "a step name is required with safe or mutating")
        if safe and mutating:
            raise InvalidInput("safe", "a step cannot both mutate the account and confirm it safe")
        lease = self.live_lease(lease_id, fencing_token, ctx.now)
        self._trigger(
            ev.LeaseHeartbeat,
            ctx,
            lease_id=lease_id,
            fencing_token=fencing_token,
            step=step,
            url=url,
            safe=safe,
            mutating=mutating,
            expires_at=lease.capped(ctx.now + timedelta(seconds=lease.ttl_seconds)),
        )
        assert self.lease is not None
        return self.lease

    def extend(self, lease_id: str, fencing_token: int, ttl_seconds: int, ctx: Context) -> Lease:
        """Set a new TTL and deadline (counted from now, never past the hard limit) for a
        live lease."""
        lease = self.live_lease(lease_id, fencing_token, ctx.now)
        self._trigger(
            ev.LeaseExtended,
            ctx,
            lease_id=lease_id,
            fencing_token=fencing_token,
            ttl_seconds=ttl_seconds,
            expires_at=lease.capped(ctx.now + timedelta(seconds=ttl_seconds)),
        )
        assert self.lease is not None
        return self.lease

    def release(
        self, lease_id: str, fencing_token: int, report: ReleaseReport, ctx: Context
    ) -> Verdict:
        """End the lease; the profile returns to the pool only if the ending is explainable."""
        lease = self.live_lease(lease_id, fencing_token, ctx.now)
        self._trigger(
            ev.LeaseReleaseRequested,
            ctx,
            lease_id=lease_id,
            fencing_token=fencing_token,
            **asdict(report),  # the event records the worker's report field for field
        )
        verdict = judge_release(lease, report, RELEASE_POLICIES[lease.release_policy])
        if verdict.ending is Ending.CLEAN:
            self._trigger(ev.LeaseReleasedCleanly, ctx, lease_id=lease_id, outcome=report.outcome)
            return verdict
        return self._end_unclean(verdict, lease_id, ctx)

    def _end_unclean(self, verdict: Verdict, lease_id: str, ctx: Context) -> Verdict:
        """Send the profile to review or quarantine; the N-th unclean ending quarantines."""
        assert verdict.cause is not None
        listed = repeated_unclean(
            self.unclean_endings, lease_id, ctx.now, self.unclean_limit, self.unclean_window_seconds
        )
        if verdict.ending is Ending.REVIEW and listed is None:
            self._trigger(ev.ReviewRequested, ctx, cause=verdict.cause, lease_id=lease_id)
            return verdict
        repeated = verdict.ending is not Ending.QUARANTINE
        cause = Cause.REPEATED_UNCLEAN_ENDINGS if repeated else verdict.cause
        self._trigger(
            ev.ProfileQuarantined,
            ctx,
            cause=cause,
            lease_id=lease_id,
            unclean_leases=listed or [],
            trigger=verdict.cause if repeated else None,
        )
        return Verdict(Ending.QUARANTINE, cause)

    # -- the sweep ----------------------------------------------------------------------------

    def is_overdue(self, now: datetime) -> bool:
        return (
            self.state is ProfileState.LEASED
            and self.lease is not None
            and self.lease.overdue_at(now)
        )

    def sweep(self, ctx: Context) -> None:
        """The sweep's decision: a lease past its deadline is marked stale, and a stale lease
        is settled (review or quarantine). A profile with nothing overdue is left alone."""
        if self.is_overdue(ctx.now):
            self.mark_stale(ctx)
        if self.state is ProfileState.STALE and self.lease is not None:
            self.settle_stale(ctx)

    def mark_stale(self, ctx: Context) -> None:
        """Record that the live lease missed its deadline (the caller checked ``is_overdue``)."""
        _require(ctx, Role.SCHEDULER, Role.OPERATOR)
        lease = self.lease
        if lease is None or not self.is_overdue(ctx.now):
            raise NotAllowed(f"profile {self.profile_id} has no lease past its deadline")
        self._trigger(
            ev.LeaseMarkedStale,
            ctx,
            lease_id=lease.lease_id,
            expires_at=lease.expires_at,
            last_heartbeat_at=lease.heartbeat_at,
            last_step=lease.last_step,
            last_url=lease.last_url,
            last_safe_step=lease.last_safe_step,
            mutating_step=lease.mutating_step,
        )

    def settle_stale(self, ctx: Context) -> Verdict:
        """Judge a stale lease: quarantine after an unconfirmed mutation, else review."""
        _require(ctx, Role.SCHEDULER, Role.OPERATOR)
        if self.state is not ProfileState.STALE or self.lease is None:
            raise NotAllowed(f"profile {self.profile_id} is not stale")
        return self._end_unclean(judge_stale(self.lease), self.lease.lease_id, ctx)

    # -- operators and reviewers --------------------------------------------------------------

    def force_release(self, ctx: Context) -> Verdict:
        """End a live lease by hand; the profile goes to review, never straight to the pool."""
        _require(ctx, Role.OPERATOR)
        lease = self.lease
        if lease is None:
            raise NotAllowed(f"profile {self.profile_id} has no live lease to force-release")
        self._trigger(ev.LeaseRevoked, ctx, lease_id=lease.lease_id, cause=Cause.FORCE_RELEASE)
        # Ending a run by hand does not make an unconfirmed mutation any safer.
        verdict = judge_stale(lease) if lease.mutating_step else None
        return self._end_unclean(
            verdict or Verdict(Ending.REVIEW, Cause.FORCE_RELEASE), lease.lease_id, ctx
        )

    def quarantine(self, ctx: Context) -> None:
        """Quarantine the profile, ending any live lease, until a reviewer clears it."""
        _require(ctx, Role.OPERATOR)
        if self.state in (ProfileState.QUARANTINED, ProfileState.DISABLED):
            raise NotAllowed(f"profile {self.profile_id} is already {self.state.value}")
        lease_id = self.lease.lease_id if self.lease else None
        if lease_id is not None:
            self._trigger(ev.LeaseRevoked, ctx, lease_id=lease_id, cause=Cause.OPERATOR)
        self._trigger(
            ev.ProfileQuarantined, ctx, cause=Cause.OPERATOR, lease_id=lease_id, unclean_leases=[]
        )

    def disable(self, ctx: Context) -> None:
        """Take the profile out of rotation; a live lease ends and will need review."""
        _require(ctx, Role.OPERATOR)
        if self.state is ProfileState.DISABLED:
            raise NotAllowed(f"profile {self.profile_id} is already disabled")
        if self.lease is not None:
            # A run cut short by disabling ends unknown: it must be reviewed after enabling.
            self.force_release(ctx)
        self._trigger(ev.ProfileDisabled, ctx, previous_state=self.state)

    def enable(self, ctx: Context) -> None:
        """Return a disabled profile to the state it was disabled from."""
        _require(ctx, Role.OPERATOR)
        if self.state is not ProfileState.DISABLED or self.disabled is None:
            raise NotAllowed(f"profile {self.profile_id} is {self.state.value}, not disabled")
        self._trigger(ev.ProfileEnabled, ctx, state=self.disabled.previous_state)

    def review(
        self,
        decision: ReviewDecision,
        note: str,
        ctx: Context,
        browser: BrowserCheck | None = None,
    ) -> None:
        """A reviewer's verdict on a profile in review or quarantine (reviewer role only).
        ``browser`` is what an inspection of the profile's directory found, if anyone looked:
        a browser still running there forbids returning the profile to the pool."""
        _require(ctx, Role.REVIEWER)
        if self.state not in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED):
            raise NotAllowed(f"profile {self.profile_id} is {self.state.value}: nothing to review")
        if self.last_lease is not None and same_identity(self.last_lease.worker_id, ctx.actor_id):
            who = self.last_lease.worker_id
            raise NotAllowed(f"{ctx.actor_id} is {who}, who ran the lease under review")
        refused = review_refusal(self.profile_id, decision, browser)
        if refused is not None:
            raise NotAllowed(refused)
        self._trigger(ev.ProfileReviewed, ctx, decision=decision, note=note)
        if decision is ReviewDecision.RETURN:
            self._trigger(ev.ProfileReturnedToPool, ctx)
        elif decision is ReviewDecision.QUARANTINE:
            lease_id = self.block.lease_id if self.block else None
            self._trigger(
                ev.ProfileQuarantined,
                ctx,
                cause=Cause.REVIEWER,
                lease_id=lease_id,
                unclean_leases=[],
            )
        else:
            self._trigger(ev.ProfileDisabled, ctx, previous_state=self.state)

    def record_browser_stop(
        self, host: str, pid: int, user_data_dir: str, signal: StopSignal, ctx: Context
    ) -> None:
        """Record that the browser on the profile's registered directory was stopped. The
        caller stopped it only after ``browser.stop_refusal`` found no holder; this records
        what happened, so a lease taken since does not unmake it. Operator role only."""
        _require(ctx, Role.OPERATOR)
        if user_data_dir != self.user_data_dir:
            registered = self.user_data_dir or "none"
            raise NotAllowed(f"{user_data_dir!r} is not the registered directory ({registered})")
        self._trigger(
            ev.BrowserStopped, ctx, host=host, pid=pid, user_data_dir=user_data_dir, signal=signal
        )


def same_identity(a: str, b: str) -> bool:
    """Two spellings of one identity: compared after Unicode compatibility folding and case
    folding, so "W4" or a full-width w4 cannot pass for someone other than w4."""
    return _folded(a) == _folded(b)


def _folded(identity: str) -> str:
    return unicodedata.normalize("NFKC", identity).casefold().strip()


def _require(ctx: Context, *roles: Role) -> None:
    if ctx.role not in roles:
        allowed = " or ".join(r.value for r in roles)
        raise NotAllowed(f"{ctx.actor_id} acts as {ctx.role.value}; this needs the {allowed} role")


def replay(
    initial: Profile | None, events: Iterable[ev.ProfileEvent | ProfileSnapshot]
) -> Profile | None:
    """Projector for the repository: fold events onto ``initial`` (None: a new profile), or
    onto the snapshot that comes first."""
    profile = initial
    for event in events:
        if isinstance(event, ProfileSnapshot):  # the repository gives it first, if any
            profile = Profile(event.originator_id)
            event.restore(profile)
            continue
        if profile is None:
            profile = Profile(event.originator_id)
        profile.apply(event)
    return profile
