"""A reference model of the lease rules: small enough to check by reading it.

The state machine test runs every command on the real ``Profile`` and on this model. The model
says, before the command runs, either how it must be refused (the error and its reason) or what
the profile must look like afterwards. It restates the rules of issue 2 in its own plain terms
and takes only the vocabulary (enums, errors, the release report) from ``ledger._domain``, so a
guard deleted from the aggregate cannot also vanish from the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger._domain.errors import CheckoutDenied, LeaseLost, LedgerError, NotAllowed
from ledger._domain.model import (
    Cause,
    DenialReason,
    LeaseStatus,
    Outcome,
    ProfileState,
    ReviewDecision,
    Role,
)
from ledger._domain.policies import ReleaseReport
from ledger._domain.profile import Profile

REVIEW, QUARANTINE = ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED

# Each release policy: does a release need a screenshot, and where does an unproven ending go?
POLICIES: dict[str, tuple[bool, ProfileState]] = {
    "manual_review_on_unknown_state": (False, REVIEW),
    "quarantine_on_unknown_state": (False, QUARANTINE),
    "evidence_required": (True, REVIEW),
    "strict_evidence": (True, QUARANTINE),
}

# A review after one of these causes means nobody knows how the last run ended.
UNKNOWN_ENDINGS = {
    Cause.LEASE_EXPIRED,
    Cause.HARD_LIMIT_REACHED,
    Cause.UNKNOWN_FINAL_URL,
    Cause.MISSING_SCREENSHOT,
    Cause.UNEXPECTED_FAILURE,
    Cause.EVIDENCE_FAILED,
    Cause.FORCE_RELEASE,
}


@dataclass(frozen=True)
class Refusal:
    """How a command must be refused: the error class and what it must say.

    ``says`` is the ``DenialReason`` of a ``CheckoutDenied``; for ``LeaseLost`` and
    ``NotAllowed`` it is a phrase their one-line message must contain. ``ended``: a
    ``LeaseLost``'s flag, that the ledger ended the lease or marked it stale."""

    error: type[LedgerError]
    says: str
    ended: bool = False

    def check(self, refused: LedgerError) -> None:
        assert type(refused) is self.error, f"expected {self}, got {refused!r}"
        if isinstance(refused, CheckoutDenied):
            assert refused.reason == self.says, f"expected {self}, got {refused.reason}"
        else:
            assert self.says in str(refused), f"expected {self}, got {refused}"
        if isinstance(refused, LeaseLost):
            assert refused.ended is self.ended, f"expected {self}, got {refused!r}"


def denied(reason: DenialReason) -> Refusal:
    return Refusal(CheckoutDenied, reason)


def lost(why: str, *, ended: bool = False) -> Refusal:
    return Refusal(LeaseLost, why, ended)


def not_allowed(why: str) -> Refusal:
    return Refusal(NotAllowed, why)


@dataclass(frozen=True)
class Standing:
    """What the model and the aggregate must agree on after every command."""

    state: ProfileState
    lease_id: str | None
    token: int | None
    worker: str | None
    ttl: int | None
    expires_at: datetime | None
    hard_limit: datetime | None
    stale: bool
    mutating: bool
    last_token: int
    last_ended: str | None
    last_ending: tuple[str, Cause | None] | None
    cause: Cause | None
    disabled_from: ProfileState | None
    unclean: tuple[str, ...]


def standing_of(p: Profile) -> Standing:
    """The aggregate's side of the comparison."""
    lease = p.lease
    blocked = p.state in (REVIEW, QUARANTINE) and p.block is not None
    disabled = p.state is ProfileState.DISABLED and p.disabled is not None
    return Standing(
        state=p.state,
        lease_id=lease.lease_id if lease else None,
        token=lease.fencing_token if lease else None,
        worker=lease.worker_id if lease else None,
        ttl=lease.ttl_seconds if lease else None,
        expires_at=lease.expires_at if lease else None,
        hard_limit=lease.hard_limit_at if lease else None,
        stale=lease is not None and lease.lease_status is LeaseStatus.STALE,
        mutating=lease is not None and lease.mutating_step is not None,
        last_token=p.last_token,
        last_ended=p.last_lease.lease_id if p.last_lease else None,
        last_ending=(p.last_lease.ending, p.last_lease.ending_cause) if p.last_lease else None,
        cause=p.block.cause if blocked and p.block else None,
        disabled_from=p.disabled.previous_state if disabled and p.disabled else None,
        unclean=tuple(lid for lid, _ in p.unclean_endings),
    )


@dataclass
class ModelLease:
    lease_id: str
    token: int
    worker: str
    ttl: int
    expires_at: datetime
    limit: datetime | None = None  # the hard limit: no renewal past it, nothing after it
    mutating: bool = False  # a mutating step has not been confirmed by a safe step since
    stale: bool = False

    def renew(self, ttl: int, now: datetime) -> None:
        """A renewal's deadline: ``ttl`` from now, but never past the hard limit."""
        self.ttl, self.expires_at = ttl, now + _s(ttl)
        if self.limit is not None and self.expires_at > self.limit:
            self.expires_at = self.limit


@dataclass
class ModelProfile:
    """One profile as the rules describe it. Each command returns the refusal it must meet,
    or None after changing the model to what the command must leave behind."""

    profile_id: str
    account_id: str
    proxy_id: str
    policy: str
    unclean_limit: int
    unclean_window: int
    max_lease: int | None = None  # every lease's hard limit, in seconds
    state: ProfileState = ProfileState.AVAILABLE
    lease: ModelLease | None = None
    last_token: int = 0
    last_worker: str | None = None  # whose run a review looks at
    last_ended: str | None = None
    last_ending: tuple[str, Cause | None] | None = None  # how it ended, and the cause beside
    cause: Cause | None = None
    disabled_from: ProfileState | None = None
    unclean: list[tuple[str, datetime]] = field(default_factory=list)

    def standing(self) -> Standing:
        lease = self.lease
        return Standing(
            state=self.state,
            lease_id=lease.lease_id if lease else None,
            token=lease.token if lease else None,
            worker=lease.worker if lease else None,
            ttl=lease.ttl if lease else None,
            expires_at=lease.expires_at if lease else None,
            hard_limit=lease.limit if lease else None,
            stale=lease is not None and lease.stale,
            mutating=lease is not None and lease.mutating,
            last_token=self.last_token,
            last_ended=self.last_ended,
            last_ending=self.last_ending,
            cause=self.cause if self.state in (REVIEW, QUARANTINE) else None,
            disabled_from=self.disabled_from if self.state is ProfileState.DISABLED else None,
            unclean=tuple(lid for lid, _ in self.unclean),
        )

    def overdue(self, now: datetime) -> bool:
        """The lease is live and its renewal deadline has passed (the deadline itself is not)."""
        return self.lease is not None and not self.lease.stale and now > self.lease.expires_at

    # -- the worker's commands --------------------------------------------------------------

    def checkout(
        self,
        worker: str,
        ttl: int,
        account: str | None,
        proxy: str | None,
        now: datetime,
        max_duration: int | None = None,
    ) -> Refusal | None:
        if account is not None and account != self.account_id:
            return denied(DenialReason.ACCOUNT_MISMATCH)
        if proxy is not None and proxy != self.proxy_id:
            return denied(DenialReason.PROXY_MISMATCH)
        reason = self._standing_denial(now)
        if reason is not None:
            return denied(reason)
        self.last_token += 1
        lease_id = f"lease-{self.last_token}@{self.profile_id}"
        limits = [s for s in (self.max_lease, max_duration) if s is not None]
        limit = now + _s(min(limits)) if limits else None
        self.lease = ModelLease(lease_id, self.last_token, worker, ttl, now, limit)
        self.lease.renew(ttl, now)
        self.last_worker, self.state, self.cause = worker, ProfileState.LEASED, None
        return None

    def _standing_denial(self, now: datetime) -> DenialReason | None:
        if self.state is ProfileState.LEASED:
            return DenialReason.STALE if self.overdue(now) else DenialReason.ALREADY_LEASED
        if self.state is REVIEW:
            unknown = self.cause in UNKNOWN_ENDINGS
            return DenialReason.PREVIOUS_RUN_UNKNOWN if unknown else DenialReason.REVIEW_REQUIRED
        return {
            ProfileState.AVAILABLE: None,
            ProfileState.STALE: DenialReason.STALE,
            ProfileState.QUARANTINED: DenialReason.QUARANTINED,
            ProfileState.DISABLED: DenialReason.DISABLED,
        }[self.state]

    def _lost(self, lease_id: str, token: int, now: datetime) -> Refusal | None:
        """Why a worker presenting this lease id and token may not act, if it may not."""
        lease = self.lease
        if lease is None or lease.lease_id != lease_id:
            if lease_id == self.last_ended:
                return lost("lease ended", ended=True)
            issued = {f"lease-{t}@{self.profile_id}" for t in range(1, self.last_token + 1)}
            if lease_id not in issued:
                return lost("never issued")
            return lost("is now held under" if lease else "has no live lease", ended=True)
        if token != lease.token:
            return lost("fencing token")
        if lease.stale:
            return lost("marked stale", ended=True)
        if lease.limit is not None and now > lease.limit:
            return lost("hard limit")
        if now > lease.expires_at:
            return lost("renewal deadline")
        return None

    def heartbeat(
        self, lease_id: str, token: int, *, safe: bool, mutating: bool, now: datetime
    ) -> Refusal | None:
        refusal = self._lost(lease_id, token, now)
        if refusal is None and self.lease is not None:
            self.lease.renew(self.lease.ttl, now)
            if mutating or safe:
                self.lease.mutating = mutating
        return refusal

    def extend(self, lease_id: str, token: int, ttl: int, now: datetime) -> Refusal | None:
        refusal = self._lost(lease_id, token, now)
        if refusal is None and self.lease is not None:
            self.lease.renew(ttl, now)
        return refusal

    def release(
        self, lease_id: str, token: int, report: ReleaseReport, now: datetime
    ) -> Refusal | None:
        refusal = self._lost(lease_id, token, now)
        if refusal is None and self.lease is not None:
            ending = self._judge(self.lease, report)
            if ending is None:
                self.last_ended, self.lease = self.lease.lease_id, None
                clean = report.outcome is Outcome.SUCCESS
                self.last_ending = ("clean" if clean else "expected_failure", None)
                self.state = ProfileState.AVAILABLE
            else:
                self._end_unclean(*ending, now)
        return refusal

    def _judge(self, lease: ModelLease, report: ReleaseReport) -> tuple[ProfileState, Cause] | None:
        """Where a release sends the profile (None: back to the pool): quarantine findings
        outrank review findings, and among equals the one listed first wins."""
        needs_screenshot, unproven = POLICIES[self.policy]
        failed = report.outcome is Outcome.FAILURE
        # An expected failure is explained by its reason: no URL or screenshot to prove.
        proves = report.outcome is not Outcome.EXPECTED_FAILURE
        findings = [
            (report.observed_proxy not in (None, self.proxy_id), QUARANTINE, Cause.PROXY_MISMATCH),
            (
                report.observed_account not in (None, self.account_id),
                QUARANTINE,
                Cause.ACCOUNT_MISMATCH,
            ),
            # Any failure, expected or not, after a change to the account nobody confirmed.
            (
                report.outcome is not Outcome.SUCCESS and lease.mutating,
                QUARANTINE,
                Cause.MUTATION_UNCONFIRMED,
            ),
            (report.prompt_seen, REVIEW, Cause.VERIFICATION_PROMPT),
            (failed, REVIEW, Cause.UNEXPECTED_FAILURE),
            # Evidence the worker could not collect proves nothing, whatever the outcome.
            (report.evidence_problem is not None, unproven, Cause.EVIDENCE_FAILED),
            (proves and report.final_url is None, unproven, Cause.UNKNOWN_FINAL_URL),
            (
                proves
                and needs_screenshot
                and (report.screenshot is None or report.screenshot_sha256 is None),
                unproven,
                Cause.MISSING_SCREENSHOT,
            ),
        ]
        for worst in (QUARANTINE, REVIEW):
            for found, state, cause in findings:
                if found and state is worst:
                    return state, cause
        return None

    # -- the sweep ----------------------------------------------------------------------------

    def sweep(self, now: datetime) -> None:
        """What the store's sweep does: an overdue lease is marked stale and settled at once."""
        if self.state is ProfileState.LEASED and self.overdue(now):
            self._settle(now)

    def mark_stale(self, role: Role, now: datetime) -> Refusal | None:
        if role is not Role.SCHEDULER:
            return not_allowed("role")
        if self.state is not ProfileState.LEASED or not self.overdue(now):
            return not_allowed("no lease past its deadline")
        assert self.lease is not None
        self.lease.stale, self.state = True, ProfileState.STALE
        return None

    def settle_stale(self, now: datetime) -> Refusal | None:
        if self.state is not ProfileState.STALE:
            return not_allowed("is not stale")
        self._settle(now)
        return None

    def _settle(self, now: datetime) -> None:
        assert self.lease is not None
        if self.lease.mutating:
            self._end_unclean(QUARANTINE, Cause.MUTATION_UNCONFIRMED, now, "stale")
        elif self.lease.limit is not None and self.lease.expires_at >= self.lease.limit:
            self._end_unclean(REVIEW, Cause.HARD_LIMIT_REACHED, now, "stale")  # no renewal could
        else:
            self._end_unclean(REVIEW, Cause.LEASE_EXPIRED, now, "stale")

    # -- operators and reviewers --------------------------------------------------------------

    def force_release(self, role: Role, now: datetime) -> Refusal | None:
        if role is not Role.OPERATOR:
            return not_allowed("role")
        if self.lease is None:
            return not_allowed("no live lease to force-release")
        if self.lease.mutating:
            self._end_unclean(QUARANTINE, Cause.MUTATION_UNCONFIRMED, now, "forced")
        else:
            self._end_unclean(REVIEW, Cause.FORCE_RELEASE, now, "forced")
        return None

    def quarantine(self, role: Role, now: datetime) -> Refusal | None:
        if role is not Role.OPERATOR:
            return not_allowed("role")
        disabled = self.state is ProfileState.DISABLED
        if self.state is QUARANTINE or (disabled and self.disabled_from is QUARANTINE):
            return not_allowed("is already quarantined")
        if disabled:  # enabled and quarantined in one write
            assert self.disabled_from is not None
            self.state = self.disabled_from
        self._block(QUARANTINE, Cause.OPERATOR, now, "revoked")
        return None

    def disable(self, role: Role, now: datetime) -> Refusal | None:
        if role is not Role.OPERATOR:
            return not_allowed("role")
        if self.state is ProfileState.DISABLED:
            return not_allowed("is already disabled")
        if self.lease is not None:
            self.force_release(role, now)
        self.disabled_from, self.state = self.state, ProfileState.DISABLED
        return None

    def enable(self, role: Role) -> Refusal | None:
        if role is not Role.OPERATOR:
            return not_allowed("role")
        if self.state is not ProfileState.DISABLED or self.disabled_from is None:
            return not_allowed("not disabled")
        self.state = self.disabled_from
        return None

    def review(
        self, reviewer: str, role: Role, decision: ReviewDecision, now: datetime
    ) -> Refusal | None:
        if role is not Role.REVIEWER:
            return not_allowed("role")
        if self.state not in (REVIEW, QUARANTINE):
            return not_allowed("nothing to review")
        if reviewer == self.last_worker:
            return not_allowed("ran the profile's last lease")
        if decision is ReviewDecision.RETURN:
            self.state, self.cause = ProfileState.AVAILABLE, None
        elif decision is ReviewDecision.QUARANTINE:
            self._block(QUARANTINE, Cause.REVIEWER, now)
        else:
            self.disabled_from, self.state = self.state, ProfileState.DISABLED
        return None

    # -- how a lease ends badly -----------------------------------------------------------------

    def _end_unclean(
        self, state: ProfileState, cause: Cause, now: datetime, how: str | None = None
    ) -> None:
        """The ``unclean_limit``-th unclean ending within the window quarantines, whatever
        the ending on its own would have asked for."""
        window = _s(self.unclean_window)
        earlier = [lid for lid, at in self.unclean if now - at <= window]
        if len(earlier) + 1 >= self.unclean_limit and state is REVIEW:
            state, cause = QUARANTINE, Cause.REPEATED_UNCLEAN_ENDINGS
        self._block(state, cause, now, how)

    def _block(
        self, state: ProfileState, cause: Cause, now: datetime, how: str | None = None
    ) -> None:
        """Enter review or quarantine; a live lease ends there and counts as unclean. ``how``
        says who ended it: the sweep (stale, with the cause it was blocked for) or an operator
        (forced, revoked: the operator's cause); otherwise its release, named after where the
        profile went."""
        if self.lease is not None:
            self.last_ended, self.lease = self.lease.lease_id, None
            self.unclean.append((self.last_ended, now))
            if how == "forced":
                self.last_ending = ("forced", Cause.FORCE_RELEASE)
            elif how == "revoked":
                self.last_ending = ("revoked", Cause.OPERATOR)
            else:
                self.last_ending = (how or ("review" if state is REVIEW else "quarantine"), cause)
        self.state, self.cause = state, cause


def _s(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)
