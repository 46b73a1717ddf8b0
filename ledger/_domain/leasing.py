"""The lease rules of the Profile aggregate: checkout, renewal, release, and the sweep of a lease
past its deadline. Denials raise and trigger nothing; a lost lease is ``LeaseLost`` saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ledger._domain import events as ev
from ledger._domain.acting import Forbidden
from ledger._domain.aggregate import AggregateRoot, Context, require
from ledger._domain.denials import also_blocked, context_denial, state_denial
from ledger._domain.endings import ending_text
from ledger._domain.errors import CheckoutDenied, InvalidInput, LeaseLost, LedgerError, NotAllowed
from ledger._domain.model import (
    Cause,
    Lease,
    LeaseStatus,
    ProfileState,
    Role,
    lease_id_for,
    one_part,
    parse_lease_id,
    told_apart,
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

# The reason a sweep records, by the deadline its lease passed: a lease whose deadline was its
# hard limit was not let lapse by its worker, who may have renewed to the end (rev30).
RENEWAL_DEADLINE_MISSED = "renewal deadline missed"
HARD_LIMIT_REACHED = "hard limit reached"


@dataclass(frozen=True)
class CheckoutRequest:
    worker_id: str
    run_id: str
    task_type: str
    ttl_seconds: int
    account_id: str | None = None
    proxy_id: str | None = None
    max_duration_seconds: int | None = None  # the lease's hard limit, within the profile's


class LeaseRules(AggregateRoot):
    """A profile's leases: who may hold it, until when, and how each lease ends."""

    def checkout(self, request: CheckoutRequest, ctx: Context) -> Lease:
        """Grant a lease with the next fencing token, or raise ``CheckoutDenied``."""
        denial = context_denial(self, request.account_id, request.proxy_id) or state_denial(
            self, ctx.now
        )
        if denial is not None:
            raise CheckoutDenied(also_blocked(self, denial, ctx.now))
        token = self.last_token + 1
        hard_limit = self._hard_limit(request, ctx.now)
        deadline = later(ctx.now, request.ttl_seconds)
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
        return later(now, min(limits)) if limits else None

    def _issued(self, lease_id: str) -> bool:
        """Whether ``lease_id`` names a lease of this profile's, one of tokens 1 to the last
        (spelt as issued: ``lease-02`` is none)."""
        try:
            _, token = parse_lease_id(lease_id)
        except ValueError:
            return False
        return 0 < token <= self.last_token and lease_id == lease_id_for(self.profile_id, token)

    def live_lease(
        self, lease_id: str, fencing_token: int, now: datetime, worker_id: str | None = None
    ) -> Lease:
        """The lease a worker may act on, or ``LeaseLost`` saying why it may not; with
        ``worker_id`` (the worker the caller speaks for), ``Forbidden`` first if the lease
        named is another worker's, judged here, inside the write, so that no checkout can
        come between the check and the event."""
        lease = self.lease
        if worker_id is not None:
            named = next(
                (x for x in (lease, self.last_lease) if x and x.lease_id == lease_id), None
            )
            if named is not None and named.worker_id != worker_id:
                held = "is" if named is lease else "was"
                msg = (
                    f"lease {lease_id} {held} held by {one_part(named.worker_id)}, "
                    f"not {one_part(worker_id)}"
                )
                msg += told_apart(named.worker_id, worker_id)
                raise Forbidden(msg)
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
            elif not self._issued(lease_id):  # not "now held under": it never lost one (rev28)
                why = f"profile {self.profile_id} never issued a lease {lease_id}"
            elif lease is not None:
                why = f"profile {self.profile_id} is now held under {lease.lease_id}"
            else:
                why = f"profile {self.profile_id} has no live lease {lease_id}"
            # Issued and no longer the live lease: the ledger ended it, whoever asked.
            raise LeaseLost(lease_id, why, ended=ended is not None or self._issued(lease_id))
        if fencing_token != lease.fencing_token:
            why = f"fencing token {fencing_token} is not the lease's token {lease.fencing_token}"
            raise LeaseLost(lease_id, why)
        if lease.lease_status is LeaseStatus.STALE:
            raise LeaseLost(lease_id, "the lease was marked stale", ended=True)
        # Past it, as past the deadline it caps: at the instant itself the lease is live to
        # everyone (rev33: lost to its holder, live to the sweep and to a checkout, for that
        # microsecond nobody could end it).
        if lease.hard_limit_at is not None and now > lease.hard_limit_at:
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
        worker_id: str | None = None,
    ) -> Lease:
        """Renew the deadline by the lease's TTL (never past its hard limit) and record the
        step and URL.

        A safe or mutating mark needs the step's name: an unnamed mutation would erase the
        record of an earlier one."""
        if (safe or mutating) and step is None:
            raise InvalidInput("step", "a step name is required with safe or mutating")
        if safe and mutating:
            raise InvalidInput("safe", "a step cannot both mutate the account and confirm it safe")
        lease = self.live_lease(lease_id, fencing_token, ctx.now, worker_id)
        self._trigger(
            ev.LeaseHeartbeat,
            ctx,
            lease_id=lease_id,
            fencing_token=fencing_token,
            step=step,
            url=url,
            safe=safe,
            mutating=mutating,
            expires_at=lease.capped(later(ctx.now, lease.ttl_seconds)),
        )
        assert self.lease is not None
        return self.lease

    def extend(
        self,
        lease_id: str,
        fencing_token: int,
        ttl_seconds: int,
        ctx: Context,
        worker_id: str | None = None,
    ) -> Lease:
        """Set a new TTL and deadline (counted from now, never past the hard limit) for a
        live lease."""
        lease = self.live_lease(lease_id, fencing_token, ctx.now, worker_id)
        self._trigger(
            ev.LeaseExtended,
            ctx,
            lease_id=lease_id,
            fencing_token=fencing_token,
            ttl_seconds=ttl_seconds,
            expires_at=lease.capped(later(ctx.now, ttl_seconds)),
        )
        assert self.lease is not None
        return self.lease

    def release(
        self,
        lease_id: str,
        fencing_token: int,
        report: ReleaseReport,
        ctx: Context,
        worker_id: str | None = None,
    ) -> Verdict:
        """End the lease; the profile returns to the pool only if the ending is explainable."""
        lease = self.live_lease(lease_id, fencing_token, ctx.now, worker_id)
        self._trigger(
            ev.LeaseReleaseRequested,
            ctx,
            lease_id=lease_id,
            fencing_token=fencing_token,
            # The event records the worker's report field for field (flat values: no copy).
            **vars(report),
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
        is settled (review or quarantine). A profile with nothing overdue is left alone. A
        lease whose deadline was its hard limit is settled saying so, not that its worker
        missed a renewal (no renewal could have kept it)."""
        limited = self.lease is not None and self.lease.ended_by_hard_limit()
        ctx = replace(ctx, reason=HARD_LIMIT_REACHED if limited else RENEWAL_DEADLINE_MISSED)
        if self.is_overdue(ctx.now):
            self.mark_stale(ctx)
        if self.state is ProfileState.STALE and self.lease is not None:
            self.settle_stale(ctx)

    def mark_stale(self, ctx: Context) -> None:
        """Record that the live lease missed its deadline (the caller checked ``is_overdue``)."""
        require(ctx, Role.SCHEDULER)
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
        require(ctx, Role.SCHEDULER)
        if self.state is not ProfileState.STALE or self.lease is None:
            raise NotAllowed(f"profile {self.profile_id} is not stale")
        return self._end_unclean(judge_stale(self.lease), self.lease.lease_id, ctx)


def later(now: datetime, seconds: float) -> datetime:
    """A deadline ``seconds`` after ``now``. A store clock so near year 10000's start that none
    fits is said as what it is (rev33: a bare OverflowError, exit 1 "internal error")."""
    try:
        return now + timedelta(seconds=seconds)
    except OverflowError:
        msg = (
            f"the store's clock reads {now.isoformat()}: no deadline {seconds:g} s later fits "
            "before year 10000 (check the clock)"
        )
        raise LedgerError(msg) from None
