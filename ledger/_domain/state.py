"""A profile's state, evolved only by applying its events.

Applying an event never reads a clock, makes an id or touches the disk: every time and id it
stores arrived on the event. That is what makes replay deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from ledger._domain import events as ev
from ledger._domain.chain import GENESIS
from ledger._domain.endings import lease_ending
from ledger._domain.errors import NeverDecided, UnreadableEvent
from ledger._domain.model import (
    MAX_UNCLEAN_LIMIT,
    Cause,
    Frozen,
    Lease,
    LeaseStatus,
    ProfileRecord,
    ProfileState,
    Role,
    lease_id_for,
)

# How many unclean endings a profile keeps for the repeated-failure rule (bounds the state).
REMEMBERED_UNCLEAN_ENDINGS = MAX_UNCLEAN_LIMIT


class Block(Frozen):
    """Why a profile is in review or quarantine, and who put it there."""

    state: ProfileState
    cause: Cause
    since: datetime
    actor_id: str
    actor_role: Role
    reason: str
    lease_id: str | None
    unclean_leases: tuple[str, ...] = ()
    trigger: Cause | None = None


class Disabled(Frozen):
    since: datetime
    actor_id: str
    reason: str
    previous_state: ProfileState


class LastReview(Frozen):
    decision: str
    reviewer: str
    note: str
    at: datetime


E = TypeVar("E", bound=ev.ProfileEvent)
_OnALease = (
    ev.LeaseHeartbeat
    | ev.LeaseExtended
    | ev.LeaseReleaseRequested
    | ev.LeaseReleasedCleanly
    | ev.LeaseMarkedStale
    | ev.ReviewRequested
    | ev.ProfileQuarantined
    | ev.LeaseRevoked
)


class ProfileStateMachine:
    """Holds everything a profile's events established; ``apply`` is the only mutator."""

    def __init__(self, originator_id: UUID) -> None:
        self.id = originator_id
        self.version = 0
        self.profile_id = ""
        self.account_id = ""
        self.proxy_id = ""
        self.region: str | None = None
        self.user_data_dir: str | None = None
        self.release_policy = ""
        self.unclean_limit = 0
        self.unclean_window_seconds = 0
        self.max_lease_seconds: int | None = None
        self.state = ProfileState.AVAILABLE
        self.since: datetime | None = None
        self.lease: Lease | None = None
        self.last_lease: Lease | None = None
        self.last_token = 0
        self.block: Block | None = None
        self.disabled: Disabled | None = None
        self.last_review: LastReview | None = None
        self.unclean_endings: tuple[tuple[str, datetime], ...] = ()
        # Who ran each of those leases (lease id, worker), so that none of them reviews the
        # quarantine that lists their runs (rev28: only the last lease's worker was refused).
        self.unclean_runs: tuple[tuple[str, str], ...] = ()
        self.head = GENESIS  # the hash of the last event: the next one's link starts here
        self.last_at: datetime | None = None  # the last event's time: the next one's is not earlier

    def __deepcopy__(self, memo: dict[int, Any]) -> ProfileStateMachine:
        """Every value held is immutable (frozen models, tuples), so a shallow copy is a deep
        one: cheap enough for the repository's cache (and made without ``copy.copy``'s walk
        of the pickle protocol: a command copies the profile it holds every time)."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

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

    def apply(self, event: ev.ProfileEvent) -> None:
        """Evolve the state by one event; the event must be the next in this stream."""
        if event.originator_version != self.version + 1:  # put there outside custody
            said = f"the event {event.event_type[:40]!r} v{event.originator_version}"
            where = f" of profile {self.profile_id!r}" if self.profile_id else ""
            problem = f"it follows v{self.version}: versions between are missing"
            raise UnreadableEvent(said + where, problem)
        revoked = self.revoked_alone()
        if revoked is not None and not isinstance(
            event, ev.ReviewRequested | ev.ProfileQuarantined
        ):
            raise self._never(event, f"it follows {revoked}", "decides")
        _HANDLERS[type(event)](self, event)
        self.version = event.originator_version
        self.head = event.hash_after(self.head)
        self.last_at = event.at

    def revoked_alone(self) -> str | None:
        """What is wrong when the profile is left leased or stale with no lease: a revoke, which
        the ledger always records with the review or quarantine it sends the profile to, with
        nothing after it (rev26: an operator's login appended one alone; every read of the
        profile was an internal error, and an honest disable then enable made it "leased" with
        no lease). None when the state holds its lease, as it always does otherwise."""
        if self.lease is not None or self.state not in (ProfileState.LEASED, ProfileState.STALE):
            return None
        lease = self.last_lease.lease_id if self.last_lease is not None else "its lease"
        return f"the revoke of {lease} with no review or quarantine after it"

    def _enter(self, state: ProfileState, at: datetime) -> None:
        if state is not self.state or self.since is None:
            self.since = at
        self.state = state

    def _update_lease(self, **changes: Any) -> None:
        assert self.lease is not None
        self.lease = self.lease.model_copy(update=changes)

    def _held(self, e: _OnALease, *, status: LeaseStatus = LeaseStatus.ACTIVE) -> Lease:
        """``NeverDecided`` unless the event acts on the lease held, under its id (and fencing
        token, where it carries one), in ``status``: the ledger decides a worker's event only
        on its live lease (``LeaseRules.live_lease``), a stale mark only on a lease not yet
        stale, a sweep's ending only on a stale one. An event appended past the ledger with a
        link anyone can compute (a worker's login returned a quarantined profile to the pool
        with one ``lease_released_cleanly``, and bricked one with a heartbeat on no lease) is
        believed by no load. Returns the lease held."""
        lease, token = self.lease, getattr(e, "fencing_token", None)
        wrong = (
            "no lease is held"
            if lease is None
            else f"the lease held is {lease.lease_id!r}, not {e.lease_id!r}"
            if lease.lease_id != e.lease_id
            else f"fencing token {token} is not the lease's {lease.fencing_token}"
            if token is not None and token != lease.fencing_token
            else f"the lease held is {lease.lease_status.value}, not {status.value}"
            if lease.lease_status is not status
            else _late(e, lease)
        )
        if wrong is not None:
            raise self._never(e, wrong, "decides")
        assert lease is not None  # wrong says "no lease is held" otherwise
        return lease

    def _never(self, e: ev.ProfileEvent, wrong: str, verb: str) -> NeverDecided:
        said = f"the event {e.event_type!r} v{e.originator_version}"
        where = f" of profile {self.profile_id!r}" if self.profile_id else ""
        return NeverDecided(said + where, f"{wrong}: the ledger never {verb} it")

    def _end_lease(self, status: LeaseStatus, event: ev.ProfileEvent) -> None:
        """End the live lease, if any, naming its ending by the domain's one rule."""
        if self.lease is None:
            return
        ended = lease_ending(event, stale=self.lease.lease_status is LeaseStatus.STALE)
        assert ended is not None, f"{event.event_type} ends no lease"
        self._update_lease(
            lease_status=status,
            ending=ended.ending.value,
            ending_cause=ended.cause,
            ended_at=event.at,
        )
        self.last_lease = self.lease
        self.lease = None

    def _blocked(self, event: ev.ReviewRequested | ev.ProfileQuarantined) -> None:
        # A worker's release ends its live lease so; a sweep (the scheduler's) a stale one.
        # An operator's or a reviewer's block may follow the lease's end or name none.
        role = event.envelope.actor_role
        if role is Role.WORKER:
            self._held(event)
        elif role is Role.SCHEDULER:
            self._held(event, status=LeaseStatus.STALE)
        state = (
            ProfileState.REVIEW_REQUIRED
            if isinstance(event, ev.ReviewRequested)
            else ProfileState.QUARANTINED
        )
        self._end_lease(LeaseStatus.ENDED_UNCLEAN, event)
        unclean = event.unclean_leases if isinstance(event, ev.ProfileQuarantined) else []
        self.block = Block(
            state=state,
            cause=event.cause,
            since=event.at,
            actor_id=event.envelope.actor_id,
            actor_role=event.envelope.actor_role,
            reason=event.envelope.reason,
            lease_id=event.lease_id,
            unclean_leases=tuple(unclean),
            trigger=event.trigger if isinstance(event, ev.ProfileQuarantined) else None,
        )
        if event.lease_id is not None and all(
            lid != event.lease_id for lid, _ in self.unclean_endings
        ):
            kept = self.unclean_endings[-(REMEMBERED_UNCLEAN_ENDINGS - 1) :]
            self.unclean_endings = (*kept, (event.lease_id, event.at))
            ran = self.last_lease
            if ran is not None and ran.lease_id == event.lease_id:
                runs = self.unclean_runs[-(REMEMBERED_UNCLEAN_ENDINGS - 1) :]
                self.unclean_runs = (*runs, (ran.lease_id, ran.worker_id))
        self._enter(state, event.at)


def _on(cls: type[E]) -> Callable[[Callable[[ProfileStateMachine, E], None]], None]:
    def register(handler: Callable[[ProfileStateMachine, E], None]) -> None:
        _HANDLERS[cls] = handler

    return register


_HANDLERS: dict[type[ev.ProfileEvent], Callable[[ProfileStateMachine, Any], None]] = {}


@_on(ev.ProfileRegistered)
def _registered(p: ProfileStateMachine, e: ev.ProfileRegistered) -> None:
    if p.profile_id:  # a profile's account context never changes (``confirm_registration``)
        raise p._never(e, "a second registration of a registered profile", "records")
    p.profile_id = e.profile_id
    p.account_id = e.account_id
    p.proxy_id = e.proxy_id
    p.region = e.region
    p.user_data_dir = e.user_data_dir
    p.release_policy = e.release_policy
    p.unclean_limit = e.unclean_limit
    p.unclean_window_seconds = e.unclean_window_seconds
    p.max_lease_seconds = e.max_lease_seconds
    p._enter(ProfileState.AVAILABLE, e.at)


@_on(ev.LeaseAcquired)
def _acquired(p: ProfileStateMachine, e: ev.LeaseAcquired) -> None:
    # The rule every custody has kept: only a registered, available profile is leased, with
    # the next fencing token. An event that breaks it was appended past the ledger (a worker's
    # login with raw SQL returned a quarantined profile to the pool that way, its links whole):
    # nothing folds past it, so no load believes it and no checkout follows it.
    # The lease itself is the one ``checkout`` makes: live, not ended, of this profile and
    # its account and proxy, named by its token (rev26: a worker's login appended one already
    # stale, and every later sweep's honest stale mark was refused in its place).
    lease, token = e.lease, e.lease.fencing_token
    wrong = (
        "a lease on a profile never registered"
        if not p.profile_id
        else f"a lease on a profile that was {p.state.value}"
        if p.state is not ProfileState.AVAILABLE
        else f"fencing token {token} after {p.last_token}"
        if token != p.last_token + 1
        else f"a lease named {lease.lease_id!r}, not {lease_id_for(p.profile_id, token)!r}"
        if lease.lease_id != lease_id_for(p.profile_id, token)
        else f"a lease naming profile {lease.profile_id!r}, account {lease.account_id!r}, proxy "
        f"{lease.proxy_id!r}, not the profile's own"
        if (lease.profile_id, lease.account_id, lease.proxy_id)
        != (p.profile_id, p.account_id, p.proxy_id)
        else f"a lease granted {lease.lease_status.value}"
        if lease.lease_status is not LeaseStatus.ACTIVE
        or lease.ending is not None
        or lease.ended_at is not None
        else _unstarted(lease, e.at)
        or _beyond(lease, e.at, lease.ttl_seconds, lease.expires_at)
        or _unlimited(lease, e.at, p.max_lease_seconds)
    )
    if wrong is not None:
        raise p._never(e, wrong, "grants")
    p.lease = e.lease
    p.last_token = e.lease.fencing_token
    p.block = None
    p._enter(ProfileState.LEASED, e.at)


def _late(e: ev.ProfileEvent, lease: Lease) -> str | None:
    """A worker's event on its lease decided after the lease's deadline or its hard limit,
    which ``live_lease`` refuses as lost (rev26: a worker's login renewed a lease by hand
    after its deadline had passed, out of the sweep's sight). Only a worker's: a sweep marks
    an overdue lease stale, and an operator revokes one, after its deadline by their nature."""
    if e.envelope.actor_role is not Role.WORKER:
        return None
    if e.at > lease.expires_at:
        return f"a worker's event at {e.at.isoformat()}, past the deadline"
    if lease.hard_limit_at is not None and e.at > lease.hard_limit_at:
        return f"a worker's event at {e.at.isoformat()}, past the hard limit"
    return None


def _beyond(lease: Lease, at: datetime, ttl_seconds: int, expires_at: datetime) -> str | None:
    """What is wrong with a deadline set at ``at`` for ``ttl_seconds``: the ledger sets it to
    ``at`` plus the TTL, never past the lease's hard limit (rev26: a worker's login held a
    profile with a deadline in the year 9999, past its --max-lease)."""
    if expires_at > at + timedelta(seconds=ttl_seconds):
        return f"a deadline {expires_at.isoformat()} past {ttl_seconds} s from {at.isoformat()}"
    if lease.hard_limit_at is not None and expires_at > lease.hard_limit_at:
        return f"a deadline {expires_at.isoformat()} past the lease's hard limit"
    return None


def _unstarted(lease: Lease, at: datetime) -> str | None:
    """A lease not started, or last renewed, at its acquisition's time ``at``, as ``checkout``
    writes every lease: its deadline and hard limit are measured from ``at`` (rev37: a worker's
    login acquired one dated now that started in 2099, its deadline and hard limit an hour
    after; measured from its start, it passed, and the sweep never reached it)."""
    for what, given in (("started", lease.lease_started_at), ("renewed", lease.heartbeat_at)):
        if given != at:
            return f"a lease {what} at {given.isoformat()}, not at its checkout's {at.isoformat()}"
    return None


def _unlimited(lease: Lease, at: datetime, max_lease_seconds: int | None) -> str | None:
    """A lease acquired at ``at`` without the hard limit its profile's --max-lease sets (a
    checkout's may be tighter, never looser)."""
    if max_lease_seconds is None:
        return None
    latest = at + timedelta(seconds=max_lease_seconds)
    if lease.hard_limit_at is None or lease.hard_limit_at > latest:
        return f"a lease without the profile's hard limit of {max_lease_seconds} s"
    return None


@_on(ev.LeaseHeartbeat)
def _heartbeat(p: ProfileStateMachine, e: ev.LeaseHeartbeat) -> None:
    lease = p._held(e)
    wrong = _beyond(lease, e.at, lease.ttl_seconds, e.expires_at)
    if wrong is not None:
        raise p._never(e, wrong, "decides")
    changes: dict[str, Any] = {"heartbeat_at": e.at, "expires_at": e.expires_at}
    if e.step is not None:
        changes["last_step"] = e.step
    if e.url is not None:
        changes["last_url"] = e.url
    if e.mutating:
        changes["mutating_step"] = e.step
    elif e.safe:
        # A safe step confirms the account is in a known state, even after a mutation.
        changes["last_safe_step"] = e.step
        changes["mutating_step"] = None
    p._update_lease(**changes)


@_on(ev.LeaseExtended)
def _extended(p: ProfileStateMachine, e: ev.LeaseExtended) -> None:
    lease = p._held(e)
    wrong = _beyond(lease, e.at, e.ttl_seconds, e.expires_at)
    if wrong is not None:
        raise p._never(e, wrong, "decides")
    p._update_lease(heartbeat_at=e.at, expires_at=e.expires_at, ttl_seconds=e.ttl_seconds)


@_on(ev.LeaseReleaseRequested)
def _release_requested(p: ProfileStateMachine, e: ev.LeaseReleaseRequested) -> None:
    p._held(e)
    if e.final_url is not None:
        p._update_lease(last_url=e.final_url)


@_on(ev.LeaseReleasedCleanly)
def _released(p: ProfileStateMachine, e: ev.LeaseReleasedCleanly) -> None:
    p._held(e)  # only the live lease's clean end returns the profile to the pool
    p._end_lease(LeaseStatus.RELEASED, e)
    p.block = None
    p._enter(ProfileState.AVAILABLE, e.at)


@_on(ev.LeaseMarkedStale)
def _stale(p: ProfileStateMachine, e: ev.LeaseMarkedStale) -> None:
    p._held(e)
    p._update_lease(lease_status=LeaseStatus.STALE)
    p._enter(ProfileState.STALE, e.at)


@_on(ev.LeaseRevoked)
def _revoked(p: ProfileStateMachine, e: ev.LeaseRevoked) -> None:
    # An operator revokes the lease held, live or stale (force-release, quarantine, disable).
    held = p.lease.lease_status if p.lease is not None else LeaseStatus.ACTIVE
    p._held(e, status=held)
    p._end_lease(LeaseStatus.REVOKED, e)


@_on(ev.ReviewRequested)
def _review_requested(p: ProfileStateMachine, e: ev.ReviewRequested) -> None:
    p._blocked(e)


@_on(ev.ProfileQuarantined)
def _quarantined(p: ProfileStateMachine, e: ev.ProfileQuarantined) -> None:
    p._blocked(e)


@_on(ev.ProfileReviewed)
def _reviewed(p: ProfileStateMachine, e: ev.ProfileReviewed) -> None:
    p.last_review = LastReview(
        decision=e.decision.value, reviewer=e.envelope.actor_id, note=e.note, at=e.at
    )


@_on(ev.ProfileReturnedToPool)
def _returned(p: ProfileStateMachine, e: ev.ProfileReturnedToPool) -> None:
    if p.state not in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED):  # ``review``
        raise p._never(e, f"a return to the pool of a profile that was {p.state.value}", "decides")
    p.block = None
    p._enter(ProfileState.AVAILABLE, e.at)


@_on(ev.ProfileDisabled)
def _disabled(p: ProfileStateMachine, e: ev.ProfileDisabled) -> None:
    # ``disable`` ends a live lease first and records the state it leaves; ``enable`` returns
    # to that state, no other (rev26: an operator's login disabled a quarantined profile "from
    # available", and the next honest enable put it in the pool unreviewed).
    wrong = (
        "a disable of a profile never registered"
        if not p.profile_id
        else "a disable of a disabled profile"
        if p.state is ProfileState.DISABLED
        else f"a disable of a profile with the live lease {p.lease.lease_id!r}"
        if p.lease is not None
        else f"a disable from {e.previous_state.value} of a profile that was {p.state.value}"
        if e.previous_state is not p.state
        else None
    )
    if wrong is not None:
        raise p._never(e, wrong, "decides")
    p.disabled = Disabled(
        since=e.at,
        actor_id=e.envelope.actor_id,
        reason=e.envelope.reason,
        previous_state=e.previous_state,
    )
    p._enter(ProfileState.DISABLED, e.at)


@_on(ev.ProfileEnabled)
def _enabled(p: ProfileStateMachine, e: ev.ProfileEnabled) -> None:
    if p.state is not ProfileState.DISABLED or p.disabled is None:  # ``enable``
        raise p._never(e, f"an enable of a profile that was {p.state.value}", "decides")
    if e.state is not p.disabled.previous_state:
        was = p.disabled.previous_state.value
        raise p._never(
            e, f"an enable to {e.state.value} of a profile disabled from {was}", "decides"
        )
    p.disabled = None
    p._enter(e.state, e.at)


@_on(ev.BrowserStopped)
def _browser_stopped(p: ProfileStateMachine, e: ev.BrowserStopped) -> None:
    """Stopping an orphaned browser changes no lease and no state: a blocked profile still
    needs its review. The event is the audit record, read by the timeline."""
