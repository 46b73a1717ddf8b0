"""The Profile aggregate: a browser profile's registration, its leases (``LeaseRules``), and
what operators and reviewers decide about it.

Command methods decide, then trigger events; they never read a clock or make ids: the time and
the command's ids arrive in a ``Context``. Denials raise and trigger nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger._domain import events as ev
from ledger._domain.aggregate import Context, require, same_identity
from ledger._domain.browser import BrowserCheck, StopSignal, review_refusal
from ledger._domain.denials import state_denial
from ledger._domain.directories import normalised
from ledger._domain.errors import InvalidInput, NotAllowed
from ledger._domain.leasing import CheckoutRequest, LeaseRules
from ledger._domain.loading import fold
from ledger._domain.model import (
    Cause,
    DenialReason,
    ProfileRecord,
    ProfileState,
    ReviewDecision,
    Role,
    in_line,
    quoted,
)
from ledger._domain.policies import Ending, Verdict, judge_stale
from ledger._domain.snapshot import ProfileSnapshot

__all__ = ["CheckoutRequest", "Context", "Profile", "replay", "same_identity"]


class Profile(LeaseRules):
    """A browser profile and its leases. Satisfies eventsourcing's aggregate protocol."""

    @classmethod
    def register(cls, record: ProfileRecord, ctx: Context) -> Profile:
        profile = cls(cls.create_id(record.profile_id))
        profile._trigger(ev.ProfileRegistered, ctx, **record.model_dump())
        return profile

    def confirm_registration(self, record: ProfileRecord, ctx: Context) -> None:
        """Registering the same record again changes nothing; another record for this profile
        is ``NotAllowed`` (a profile's account context never changes)."""
        existing = self.registration()
        differing = [
            f"{name} {_shown(getattr(existing, name))}, not {_shown(getattr(record, name))}"
            for name in type(record).model_fields
            if _compared(existing, name) != _compared(record, name)
        ]
        if differing:
            msg = f"profile {record.profile_id} is already registered differently: "
            raise NotAllowed(msg + "; ".join(differing))

    def worker_of(self, lease_id: str) -> tuple[str, str | None]:
        """Who a command under ``lease_id`` acts as, and the run it correlates on: the live
        lease's worker and run ("unknown" when that is not the live lease: the command will be
        refused as ``LeaseLost``, and its refusal names no one)."""
        lease = self.lease if self.lease and self.lease.lease_id == lease_id else None
        return (lease.worker_id, lease.run_id) if lease else ("unknown", None)

    def force_release(self, ctx: Context) -> Verdict:
        """End a live lease by hand; the profile goes to review, never straight to the pool."""
        require(ctx, Role.OPERATOR)
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
        """Quarantine the profile, ending any live lease, until a reviewer clears it. A
        disabled profile's disable ends with it, in the same write: enabled to the state it was
        disabled from, then quarantined (rev28: the only way was an ``enable`` first, which put
        it in the pool for any worker to take before the quarantine)."""
        require(ctx, Role.OPERATOR)
        if self.state is ProfileState.QUARANTINED:
            raise NotAllowed(f"profile {self.profile_id} is already quarantined")
        if self.state is ProfileState.DISABLED:
            assert self.disabled is not None
            if self.disabled.previous_state is ProfileState.QUARANTINED:
                raise NotAllowed(
                    f"profile {self.profile_id} is already quarantined, and disabled: "
                    "`custody enable` returns it to its quarantine"
                )
            self._trigger(ev.ProfileEnabled, ctx, state=self.disabled.previous_state)
        lease_id = self.lease.lease_id if self.lease else None
        if lease_id is not None:
            self._trigger(ev.LeaseRevoked, ctx, lease_id=lease_id, cause=Cause.OPERATOR)
        self._trigger(
            ev.ProfileQuarantined, ctx, cause=Cause.OPERATOR, lease_id=lease_id, unclean_leases=[]
        )

    def disable(self, ctx: Context) -> None:
        """Take the profile out of rotation; a live lease ends and will need review."""
        require(ctx, Role.OPERATOR)
        if self.state is ProfileState.DISABLED:
            raise NotAllowed(f"profile {self.profile_id} is already disabled")
        if self.lease is not None:
            # A run cut short by disabling ends unknown: it must be reviewed after enabling.
            self.force_release(ctx)
        self._trigger(ev.ProfileDisabled, ctx, previous_state=self.state)

    def enable(self, ctx: Context) -> None:
        """Return a disabled profile to the state it was disabled from."""
        require(ctx, Role.OPERATOR)
        if self.state is not ProfileState.DISABLED or self.disabled is None:
            raise NotAllowed(f"profile {self.profile_id} is {self.state.value}, not disabled")
        self._trigger(ev.ProfileEnabled, ctx, state=self.disabled.previous_state)

    def _nothing_to_review(self, ctx: Context) -> str:
        """A review of a profile in no review, and what would bring it to one: a lease past its
        deadline is swept first, a profile disabled from review enabled first (rev48: "nothing to
        review" of a profile ``why`` said waits for a review, with no way on)."""
        denial = state_denial(self, ctx.now)
        state = self.state.value
        overdue = denial is not None and denial.reason is DenialReason.STALE
        from_review = self.disabled is not None and self.disabled.previous_state in (
            ProfileState.REVIEW_REQUIRED,
            ProfileState.QUARANTINED,
        )
        # Only where a review follows (the sweep's of a lease past its deadline, an enable's
        # of a profile disabled from review): a live lease released cleanly, or a profile
        # disabled from the pool enabled, goes back to the pool (fixrev 294: "yet" promised a
        # review that never came).
        if denial is None or not (overdue or (self.state is ProfileState.DISABLED and from_review)):
            return f"profile {self.profile_id} is {state}: nothing to review"
        if self.state is ProfileState.LEASED:
            state += " past its deadline"
        return (
            f"profile {self.profile_id} is {state}: nothing to review yet "
            f"(to unblock: {denial.remediation})"
        )

    def review(
        self,
        decision: ReviewDecision,
        note: str,
        ctx: Context,
        browser: BrowserCheck | None = None,
        expected_version: int | None = None,
    ) -> None:
        """A reviewer's verdict on a profile in review or quarantine (reviewer role only).
        ``browser`` is what an inspection of the profile's directory found, if anyone looked:
        a browser still running there forbids returning the profile to the pool. With
        ``expected_version``, the version the reviewer judged: refused if the profile has
        moved on since (another verdict, another run), so that the verdict cannot land on a
        run its reviewer never saw."""
        require(ctx, Role.REVIEWER)
        if expected_version is not None and expected_version > self.version:
            # A version the profile never reached was judged by nobody: bad input, not a
            # profile that "changed since" (rev45: --expected-version 99 at version 2, exit 1).
            raise InvalidInput(
                "expected_version",
                f"{expected_version} is past profile {self.profile_id}'s version "
                f"{self.version}: give a version you read",
            )
        # The version first: a verdict overtaken by another (the profile returned to the pool
        # meanwhile) is told so, not that there is nothing to review (rev48).
        if expected_version is not None and expected_version != self.version:
            raise NotAllowed(
                f"profile {self.profile_id} changed since the version {expected_version} you "
                f"judged (it is at {self.version}): read it again before giving a verdict"
            )
        if self.state not in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED):
            raise NotAllowed(self._nothing_to_review(ctx))
        # The profile's last lease is what a reviewer judges (a block an operator put on an
        # idle profile included), and a quarantine for repeated unclean endings every run it
        # lists (rev28): none of their workers may be the one to clear it.
        last = self.last_lease
        runs = [(last.lease_id, last.worker_id, "the profile's last lease")] if last else []
        listed = self.block.unclean_leases if self.block is not None else ()
        runs += [
            (ran, who, "one of the runs this quarantine lists")
            for ran, who in self.unclean_runs
            if ran in listed
        ]
        for ran, who, what in runs:
            if same_identity(who, ctx.actor_id):
                actor = in_line(ctx.actor_id)
                named = actor if ctx.actor_id == who else f"{actor} (that is {in_line(who)})"
                raise NotAllowed(
                    f"{named} ran {what} ({ran}): a worker may not review its own run; "
                    "another reviewer must"
                )
        refused = review_refusal(self.profile_id, decision, browser)
        if refused is not None:
            raise NotAllowed(refused)
        self._trigger(ev.ProfileReviewed, ctx, decision=decision, note=note)
        if decision is ReviewDecision.RETURN:
            self._trigger(ev.ProfileReturnedToPool, ctx)
        elif decision is ReviewDecision.QUARANTINE:
            # The verdict keeps the runs a quarantine for repeated unclean endings lists, in
            # the event itself: their workers stay barred from clearing it (rev37: it listed
            # none, and the first worker returned the profile to the pool).
            lease_id = self.block.lease_id if self.block else None
            self._trigger(
                ev.ProfileQuarantined,
                ctx,
                cause=Cause.REVIEWER,
                lease_id=lease_id,
                unclean_leases=list(listed),
            )
        else:
            self._trigger(ev.ProfileDisabled, ctx, previous_state=self.state)

    def record_browser_stop(
        self, host: str, pid: int, user_data_dir: str, signal: StopSignal, ctx: Context
    ) -> None:
        """Record that the browser on the profile's registered directory was stopped. The
        caller stopped it only after ``browser.stop_refusal`` found no holder; this records
        what happened, so a lease taken since does not unmake it. Operator role only."""
        require(ctx, Role.OPERATOR)
        if user_data_dir != self.user_data_dir:
            registered = self.user_data_dir or "none"
            raise NotAllowed(f"{user_data_dir!r} is not the registered directory ({registered})")
        self._trigger(
            ev.BrowserStopped, ctx, host=host, pid=pid, user_data_dir=user_data_dir, signal=signal
        )


def replay(
    initial: Profile | None, events: Iterable[ev.ProfileEvent | ProfileSnapshot]
) -> Profile | None:
    """Projector for the repository: fold events onto ``initial`` (None: a new profile), or
    onto the snapshot that comes first (``ledger._domain.loading.fold``)."""
    return fold(initial, events, Profile)


def _compared(record: ProfileRecord, name: str) -> object:
    """A registration's field as two registrations are compared: a directory as every
    directory is (``/srv/p/`` is ``/srv/p``)."""
    value = getattr(record, name)
    return normalised(value) if name == "user_data_dir" and value is not None else value


def _shown(value: object) -> str:
    """A registered value as the refusal quotes it: a short prefix and its length, as every
    error line does (rev34: a 200-character account was quoted whole)."""
    return "none" if value is None else quoted(value)
