"""The unit of work: load a profile, let the aggregate decide, save, in one place.

It owns what every command needs around the decision: the store's clock, the idempotent replay
of a command id already applied, and the retry after a version conflict (another writer appended
to the stream first: reload, decide again). A lost race therefore surfaces as a domain answer
(``CheckoutDenied``, ``LeaseLost``), never as a driver error.

A handler says what the aggregate is asked as a ``Decision``: one of ``Profile``'s command
methods with the command's arguments bound, and who acts. The unit of work calls it on the
loaded profile and returns what happened (``Done``); the handler makes its answer from that.

The aggregate and its events are imported when a command runs, not with the module: a ledger
opened to read (``custody status``) asks its unit of work for the time alone.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from ledger._domain.acting import Forbidden, check_acts
from ledger._domain.errors import (
    InvalidInput,
    LeaseLost,
    LedgerError,
    NotAllowed,
    StoreUnavailable,
    UnknownProfile,
)
from ledger._domain.model import Lease, Role, quoted
from ledger._door import Command
from ledger.ports import DeadlineRefused, LateSave, Misdated, Repository, Save, StreamConflict

if TYPE_CHECKING:
    from ledger._domain.events import ProfileEvent
    from ledger._domain.profile import Context, Profile
    from ledger._domain.row import Availability

Clock = Callable[[], datetime]
R = TypeVar("R")

# The records a command is run with (who acts, what is decided, what was done) are immutable
# NamedTuples and the batch a plain class, not dataclasses: on Python 3.11 a frozen dataclass
# costs about 0.35 ms to define (a compile per generated method), a NamedTuple 0.07, and every
# command, a read's too, imports this module for the store's time.

# A command that loses this many version races in a row gives up (as StoreUnavailable: the
# caller may retry); with backoff and one stream per profile that takes a storm of writers.
MAX_ATTEMPTS = 30
# A save the store refuses as misdated this many times in a row, its clock measured again before
# each new decision, is not a stall or a step the measurement catches up with: said at once
# (rev35: it was retried 30 times and answered "busy: conflicting writes").
MISDATED_AT_MOST = 3


class Acting(NamedTuple):
    """Who a command acts as. ``actor`` None: the worker of the lease ``lease_id`` (a lease
    command proves it with the fencing token), correlated on that lease's run."""

    role: Role
    actor: str | None = None
    reason: str = ""
    correlation_id: str | None = None
    lease_id: str | None = None


class Decision(NamedTuple):
    """What the aggregate is asked: ``act(profile, ctx=...)``, a ``Profile`` command method
    with the command's arguments bound (``functools.partial``), acting as ``acting``."""

    act: Callable[..., object]
    acting: Acting


class Creation(NamedTuple):
    """A command that starts a stream when its profile has none: ``make(ctx=...)`` returns
    the new profile (``Profile.register``); ``then`` decides when the profile exists."""

    make: Callable[..., Profile]
    then: Decision


class Done(NamedTuple):
    """What an answer is made from: the profile right after the command (as it was then, for
    a replayed command id), the events this run appended (none when it changed nothing or was
    a replay) and, for a replay, the lease it acted on as that lease stands now."""

    profile: Profile
    appended: Sequence[ProfileEvent] = ()
    replayed: bool = False
    lease_now: Lease | None = None
    # The monotonic time (``time.monotonic``) by which its save must hold the store's locks:
    # a worker's decision on its live lease stands only until that lease's deadline (None:
    # any time). ``_in_time``.
    in_time: float | None = None


# The most a command's time is raised to its profile's last event's: a race between writers, or
# clocks apart within the store's bound (ttl-as-a-deadline.md, "Whose clock"). A clock set back
# further keeps its own time: raised, every deadline decided on it would stretch by the step,
# and the sweep, judging on the clock, would leave a dead worker's lease unswept as long (rev28).
RAISED_AT_MOST = timedelta(seconds=1)
# How long past its lease's deadline a worker's decision made before it may still commit: none.
# A save that gets the store's locks later is refused and decided again, as the lease then
# stands (rev34: a release that waited 2.5 s behind another writer's lock committed after
# the deadline, and returned to the pool a profile every read had called stale). It was the
# store clock's error bound (0.1 s) until rev35: the service then answered a lease "not live:
# a heartbeat is refused" at its deadline and took a heartbeat 60 ms later, which renewed it;
# the reads and the check judge on the one clock of the process, so no bound is due between
# them (processes apart judge within the clock's bound: ttl-as-a-deadline.md).
COMMIT_GRACE_S = 0.0


class _Issued(NamedTuple):
    """A command as issued: its id, its fingerprint and the store's time of this attempt.
    Decided on a profile, it acts at that time or, if the profile's last event is later (the
    time was read before another writer's commit that the load then found, or from a clock
    a little behind that writer's), at that event's, by at most ``RAISED_AT_MOST``: a
    profile's events do not go back in time but on a clock set back further.
    """

    command_id: str
    fingerprint: str
    now: datetime
    read_at: float  # ``time.monotonic()`` when ``now`` was read

    def context(self, acting: Acting, profile: Profile | None) -> Context:
        from ledger._domain.profile import Context

        actor, correlation = acting.actor, acting.correlation_id
        if actor is None and profile is not None and acting.lease_id is not None:
            actor, run = profile.worker_of(acting.lease_id)
            correlation = correlation or run
        now = self.now
        last = profile.last_at if profile is not None else None
        if last is not None and now < last <= now + RAISED_AT_MOST:
            now = last
        return Context(
            actor_id=actor or "unknown",
            role=acting.role,
            now=now,
            command_id=self.command_id,
            correlation_id=correlation or self.command_id,
            causation_id=self.command_id,
            reason=acting.reason,
            command=self.fingerprint,
        )


class _Alone(BaseException):
    """A command that cannot share the batch's transaction (its profile is already in the
    batch, or it makes a new profile): it runs on its own after the batch. A BaseException,
    so that a handler's ``except Exception`` passes it through."""


class _Batch:
    """Commands run together (``UnitOfWork.together``): one store time, their saves held
    until the last has decided, and which call made each."""

    def __init__(self, now: datetime) -> None:
        self.now, self.read_at = now, time.monotonic()
        self.saves: list[Save] = []
        self.in_time: float | None = None  # the earliest of its saves' (``Done.in_time``)
        self.callers: list[int] = []
        self.profiles: set[str] = set()
        self.calling = 0


class UnitOfWork:
    """Runs commands against one repository. Not shared across threads."""

    def __init__(self, repository: Repository, clock: Clock | None = None) -> None:
        self.repository = repository
        self._clock = clock
        # Writes refused and retried (version races lost; a resent command id found by its
        # write), for tests and metrics.
        self.conflicts = 0
        self._batch: _Batch | None = None
        # Set while a conflicted batch's commands run again: none trusts a held profile.
        self._distrust = False

    def now(self) -> datetime:
        """The clock every deadline is judged on (the store's, unless a test injects one)."""
        if self._batch is not None:
            return self._batch.now
        now = self._clock() if self._clock is not None else self.repository.now()
        return now.astimezone(UTC)

    def together(self, calls: Sequence[Callable[[], R]]) -> list[R | LedgerError]:
        """Run several commands (``calls``: each runs one command's handler, so calls ``run``
        once) with their writes in one transaction: group commit for a process that serves
        many leases. Each is judged by the same rules as alone, at one store time (or its
        profile's last event's, if later: ``_Issued``), and answered on its own: its answer,
        or the ``LedgerError`` it raised. If another writer
        took one of their versions first, nothing of the batch is kept and each command runs
        again on its own (with ``run``'s retries); so does a command whose profile is already
        in the batch, or that registers a profile. Inside another batch, the calls join it."""
        if self._batch is not None:
            return [_answer(call) for call in calls]
        self._batch = batch = _Batch(self.now())
        answers: dict[int, R | LedgerError] = {}
        alone: list[int] = []
        try:
            for n, call in enumerate(calls):
                batch.calling = n
                try:
                    answers[n] = _answer(call)
                except _Alone:
                    alone.append(n)
        finally:
            self._batch = None
        if batch.saves:
            try:
                self.repository.save_together(batch.saves, in_time=batch.in_time)
            except StreamConflict:  # nothing kept: each on its own, as if sent alone
                self.conflicts += 1
                alone = sorted({*alone, *batch.callers})
                # Some profile this process held was behind the store: each decides again
                # on the profile as the store has it, not on the held one that conflicted.
                self._distrust = True
            except Forbidden as refused:
                if not refused.by_database:
                    raise
                # The database refused one of the batch's writes (a row it will not take, a
                # login's role taken since it was read): nothing kept, each on its own, so the
                # refusal is that command's answer, in the line a fresh process gives, and the
                # others are kept (rev37's sweep; rev43's review: a batch of heartbeats was
                # refused whole, in the database's text).
                alone = sorted({*alone, *batch.callers})
        try:
            for n in alone:
                answers[n] = _answer(calls[n])
        finally:
            self._distrust = False
        return [answers[n] for n in range(len(calls))]

    def alone(self) -> None:
        """Inside ``together``: leave the batch before deciding anything, to run on its own
        after it. For a command whose record is not one profile's save (a sweep's answer,
        recorded once all its writes are kept): joined to the batch, it would be recorded
        before the batch commits, and stand for writes the batch then lost."""
        if self._batch is not None:
            raise _Alone

    def require(self, role: Role, *, fresh: bool = False) -> None:
        """``Forbidden`` unless the store's login may act as ``role``, and the store lets
        anything be recorded (``Authority.barred``). A refusal is judged on the login's roles
        read again (``fresh`` reads them first in any case: the database refused a write)."""
        authority = self.repository.authority(fresh=fresh)
        if role not in authority.roles and not fresh:
            authority = self.repository.authority(fresh=True)
        authority.refuse_if_barred()
        check_acts(role, authority.roles, authority.login)

    def load(self, profile_id: str, version: int | None = None) -> Profile:
        profile = self.repository.load(profile_id, version)
        if profile is None:
            raise UnknownProfile(profile_id)
        return profile

    def run(self, command: Command[Any], profile_id: str, decision: Decision | Creation) -> Done:
        """Load, decide, save; on a version conflict back off, reload and decide again.

        A command id this profile already applied is answered as of that command and appends
        nothing, so a worker may safely resend after a timeout; the same id with other
        arguments is refused as ``InvalidInput``. A ``Creation`` starts a new stream when the
        profile does not exist (else ``UnknownProfile``).
        """
        acting = (decision.then if isinstance(decision, Creation) else decision).acting
        self.require(acting.role)  # before anything is read
        if self._batch is not None:
            return self._batched(self._batch, command, profile_id, decision)
        given = command.command_id
        command_id, fingerprint = command.issued_id(), command.fingerprint()
        recorded = None if given is None else (given, fingerprint)
        misdated = 0  # refusals as misdated in a row
        refused: DeadlineRefused | None = None  # the last attempt's, if the store judged so
        late = False  # a save of this command was refused as late
        for attempt in range(MAX_ATTEMPTS):
            # The first attempt decides on the profile this process holds, reading nothing,
            # not even its command id; after a conflict (it was behind, or the id was used),
            # on the profile as the store has it, the id looked up first.
            trusting = attempt == 0 and not self._distrust
            issued = _Issued(command_id, fingerprint, self.now(), time.monotonic())
            done = self._attempt(command, profile_id, decision, issued, trusting, trusting)
            if done.replayed or not done.appended:
                return done
            profile, events = done.profile, done.appended
            in_time = done.in_time
            if late and self._clock is not None:
                # Decided again after a late save, on a clock given to the ledger: that clock
                # judged the lease live at this time, and it is the one deadlines are judged
                # on. The window on the monotonic clock, which a clock frozen (or moved by
                # hand) does not keep pace with, would refuse every save again (rev37: at the
                # deadline, 30 times, then "busy"). A clock that keeps real time is past the
                # deadline by now, and the decision refused. Without a clock given, the
                # store's is read, and the window kept: held at its last time after a new
                # measurement, it may stand still while the server's moves on.
                in_time = None
            try:
                self.repository.save(profile, _row(profile), recorded, in_time=in_time)
            except Forbidden as e:
                if e.by_database:  # the login's roles, taken since they were read: said so
                    self.require(acting.role, fresh=True)
                raise
            except StreamConflict as e:  # another writer took the version or this command id,
                # or the save got the store's locks past the deadline its decision stood on, or
                # the store found its time too far from the store's clock
                self.conflicts += 1
                misdated = misdated + 1 if isinstance(e, Misdated) else 0
                if misdated >= MISDATED_AT_MOST:
                    raise StoreUnavailable(
                        f"the store refused {misdated} times in a row to record profile "
                        f"{profile_id}'s events as dated too far from its clock, measured again "
                        "each time: this process's clock is not the store's (check both clocks, "
                        "or a clock this process was given); nothing was written"
                    ) from None
                if isinstance(e, DeadlineRefused):
                    if refused is not None:  # decided again at a fresh time, refused again
                        raise _judged_by_the_store(e, acting) from None
                    refused = e
                    continue  # decided again at once: nothing to back off from
                refused = None
                late = late or isinstance(e, LateSave)  # decided again, as the lease stands
                # Jitter keeps the losers of one race from colliding again.
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))  # noqa: S311
                continue
            return Done(profile, events)
        msg = f"profile {profile_id} is busy: {MAX_ATTEMPTS} conflicting writes in a row; retry"
        raise StoreUnavailable(msg, busy=True)

    def _batched(
        self, batch: _Batch, command: Command[Any], profile_id: str, decision: Decision | Creation
    ) -> Done:
        """``run`` inside ``together``: decided now, saved with the batch (the answer made
        from it stands only if the batch is kept, else the command runs again alone)."""
        if isinstance(decision, Creation) or profile_id in batch.profiles:
            raise _Alone  # a registration checks its directory against committed ones only
        fingerprint = command.fingerprint()
        issued = _Issued(command.issued_id(), fingerprint, batch.now, batch.read_at)
        done = self._attempt(command, profile_id, decision, issued, True)
        if done.replayed or not done.appended:
            return done
        given = command.command_id
        recorded = None if given is None else (given, fingerprint)
        batch.saves.append((done.profile, _row(done.profile), recorded))
        if done.in_time is not None:
            earliest = batch.in_time
            batch.in_time = done.in_time if earliest is None else min(earliest, done.in_time)
        batch.callers.append(batch.calling)
        batch.profiles.add(profile_id)
        return done

    def _attempt(
        self,
        command: Command[Any],
        profile_id: str,
        decision: Decision | Creation,
        issued: _Issued,
        trusting: bool = False,
        optimistic: bool = False,
    ) -> Done:
        """One attempt of ``run``, before the save: the answer to a resent command id, or the
        profile with the decision made on it at ``issued.now`` (its events pending, as
        ``appended``).

        ``trusting``: decided first on the profile this process holds (``_held_decision``).
        ``optimistic`` too: the caller's command id is looked up only if that decision appends
        nothing. One that appends is saved with the id, and the save conflicts if the id was
        recorded (it is the commands table's key) as when the profile was behind: the next
        attempt, not trusting, looks it up and answers the resend. A write reads nothing first.
        A refusal under a command id looks the id up again before it is raised.
        """
        given, fingerprint = command.command_id, issued.fingerprint
        if not optimistic and (resent := self._resent(given, fingerprint, profile_id, decision)):
            return resent
        if (refused := command.refusal()) is not None:
            if optimistic and (resent := self._resent(given, fingerprint, profile_id, decision)):
                return resent
            raise refused
        if trusting and (held := self._held_decision(profile_id, decision, issued)) is not None:
            return Done(held[0], list(held[0].pending_events), in_time=held[1])
        if optimistic and (resent := self._resent(given, fingerprint, profile_id, decision)):
            return resent
        try:
            profile, in_time = self._decided(profile_id, decision, issued)
        except LedgerError:
            # The same command sent twice at once: its other copy may have been recorded since
            # the id was looked up, and this refusal made by that copy's own write. The resend
            # gets the first copy's answer.
            if resent := self._resent(given, fingerprint, profile_id, decision):
                return resent
            raise
        return Done(profile, list(profile.pending_events), in_time=in_time)

    def _held_decision(
        self, profile_id: str, decision: Decision | Creation, issued: _Issued
    ) -> tuple[Profile, float | None] | None:
        """The profile this process holds, read from nothing, with the decision made on it,
        if that decision appends; else None. A decision that appends stands on it, because
        its save conflicts if another writer appended since (every change of a profile is an
        event on its stream). A refusal, or a decision that appends nothing, could be the held
        profile's being behind: it is made again on the profile as the store has it."""
        if isinstance(decision, Creation):
            return None
        held = self.repository.cached(profile_id)
        if held is None:
            return None
        in_time = _in_time(held, decision.acting, issued)
        try:
            decision.act(held, ctx=issued.context(decision.acting, held))
        except LedgerError:
            return None
        return (held, in_time) if held.pending_events else None

    def _decided(
        self, profile_id: str, decision: Decision | Creation, issued: _Issued
    ) -> tuple[Profile, float | None]:
        """The profile as the store has it, with the decision made on it (its events pending),
        and the time its save must hold the store's locks by (``_in_time``)."""
        profile = self.repository.load(profile_id)
        if profile is None:
            if not isinstance(decision, Creation):
                raise UnknownProfile(profile_id)
            return decision.make(ctx=issued.context(decision.then.acting, None)), None
        if isinstance(decision, Creation):
            decision = decision.then
        in_time = _in_time(profile, decision.acting, issued)
        decision.act(profile, ctx=issued.context(decision.acting, profile))
        return profile, in_time

    def _resent(
        self,
        command_id: str | None,
        fingerprint: str,
        profile_id: str,
        decision: Decision | Creation,
    ) -> Done | None:
        """A caller's command id names one command in the whole store. Recorded for this very
        command on this profile: the answer as of that command, appending nothing. Recorded
        for another profile or another command: ``InvalidInput``. Not recorded, or no id
        given (nothing read): None."""
        if command_id is None:
            return None
        record = self.repository.command_record(command_id)
        if record is None:
            return None
        if record.profile_id != profile_id:
            used = f"on profile {record.profile_id}" if record.profile_id else "for a sweep"
            msg = f"{quoted(command_id)} was already used {used}: send a new id"
            raise InvalidInput("command_id", msg)
        kind = record.command.split(":", 1)[0]
        if record.command != fingerprint:
            if kind == fingerprint.split(":", 1)[0]:
                first = f"a {kind} with other arguments"
            else:
                first = kind or "another command"
            msg = (
                f"{quoted(command_id)} was already used on {profile_id} for {first}: send a new id"
            )
            raise InvalidInput("command_id", msg)
        self._recorded_in_its_role(command_id, record.version, profile_id, decision)
        then = self.load(profile_id, record.version)
        acted = then.lease or then.last_lease
        if acted is None:
            return Done(then, (), True, None)
        current = self.load(profile_id)
        if kind in _ANSWERED_WITH_THE_LEASE:
            # The live lease, as the command without an id finds it: a lease that ended since
            # (swept, forced, released), or is still held but past its renewal deadline or
            # hard limit, is ``LeaseLost`` (exit 4), never a lease that reads as granted or
            # renewed (a resent checkout exited 0 on a profile the sweep had sent to review).
            live = current.live_lease(acted.lease_id, acted.fencing_token, self.now())
            return Done(then, (), True, live)
        return Done(then, (), True, self._lease_now(current, acted))

    def _recorded_in_its_role(
        self, command_id: str, version: int, profile_id: str, decision: Decision | Creation
    ) -> None:
        """``InvalidInput`` unless the event the id was recorded beside was made in the role
        this command needs: on PostgreSQL a worker's login that predicted a reviewer's command
        id (and its arguments) recorded it beside an event of its own, and the review was then
        answered as a resend, nothing recorded (rev24). Read only for a resend."""
        acting = (decision.then if isinstance(decision, Creation) else decision).acting
        found = self.repository.event_at(profile_id, version)
        if found is not None and found.envelope.actor_role != acting.role:
            recorded = found.envelope.actor_role.value
            msg = (
                f"{quoted(command_id)} was recorded on {profile_id} beside an event in the "
                f"{recorded} role, not this command's {acting.role.value}: send a new id"
            )
            raise InvalidInput("command_id", msg)

    def _lease_now(self, profile: Profile, lease: Lease) -> Lease:
        """The lease as it stands now on ``profile`` (loaded now: a replayed answer must not
        say a lease is active that has since ended): the live or last lease, else the lease
        found ending in the history."""
        for held in (profile.lease, profile.last_lease):
            if held is not None and held.lease_id == lease.lease_id:
                return held
        from ledger._domain.profile import Profile

        folded = Profile(profile.id)
        for event in self.repository.history(profile.profile_id):
            folded.apply(event)
            ended = folded.last_lease
            if ended is not None and ended.lease_id == lease.lease_id:
                return ended
        return lease


# The commands whose answer is the lease: a resent one must not report as active a lease the
# ledger no longer lets anyone act on.
_ANSWERED_WITH_THE_LEASE = frozenset({"checkout", "heartbeat", "extend"})


def _in_time(profile: Profile, acting: Acting, issued: _Issued) -> float | None:
    """For a worker's command on the lease ``profile`` holds (before the decision), the
    monotonic time by which its save must hold the store's locks: the lease's deadline (or
    hard limit, if sooner) as far off as it was when the command's time was read, plus
    ``COMMIT_GRACE_S``. Measured on the monotonic clock, so that a clock a test injects judges
    the decision and this alike. None for any other command: what it decides does not lapse
    with time (a sweep's stale mark, a review)."""
    if acting.role is not Role.WORKER or acting.lease_id is None:
        return None
    lease = profile.lease
    if lease is None or lease.lease_id != acting.lease_id:
        return None  # refused by the decision
    deadline = lease.capped(lease.expires_at)
    return issued.read_at + (deadline - issued.now).total_seconds() + COMMIT_GRACE_S


def _judged_by_the_store(refused: DeadlineRefused, acting: Acting) -> LedgerError:
    """A command the store refused twice in a row on its lease's deadline, as its own clock
    has it (``DeadlineRefused``), decided again at a fresh time in between: the decision was
    made on a clock other than the store's (a worker's host behind, a scheduler's ahead).
    Deadlines are judged on the store's clock: a worker's lease is lost (exit 4), as the
    ledger would have said deciding on that clock; another role's command is not allowed
    (a sweep names the profile among its failures and settles nothing of it). Never the
    conflicts' "busy": retrying changes nothing until the clock is set right."""
    why = f"the store refused it: {refused}"
    if acting.role is Role.WORKER and acting.lease_id is not None:
        return LeaseLost(acting.lease_id, why)
    return NotAllowed(why)


def _row(profile: Profile) -> Availability:
    """The availability row saved with the profile's events."""
    from ledger._domain.view import availability_of

    return availability_of(profile)


def _answer(call: Callable[[], R]) -> R | LedgerError:
    """The call's answer, or the ledger's refusal it raised (``_Alone`` goes through)."""
    try:
        return call()
    except LedgerError as e:
        return e
