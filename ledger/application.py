"""``Ledger``: the commands of the lease lifecycle over one store.

Each command validates its input, reads the store's clock, loads the profile, lets the aggregate
decide and saves the new events with the availability row in one transaction. When another
writer saved first (a version conflict), it reloads and decides again, so a lost race surfaces as
a domain answer (``CheckoutDenied``, ``LeaseLost``), never as a driver error.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError

from ledger import inputs
from ledger.commands import Issued, fingerprint, lease_context, new_id
from ledger.domain.errors import (
    InvalidInput,
    NotAllowed,
    StoreUnavailable,
    UnknownProfile,
)
from ledger.domain.events import ProfileEvent
from ledger.domain.model import (
    Lease,
    Outcome,
    ProfileRecord,
    ProfileState,
    ReleaseResult,
    ReviewDecision,
    Role,
    SweepResult,
)
from ledger.domain.policies import (
    DEFAULT_RELEASE_POLICY,
    DEFAULT_UNCLEAN_LIMIT,
    DEFAULT_UNCLEAN_WINDOW_SECONDS,
    ReleaseReport,
)
from ledger.domain.profile import CheckoutRequest, Context, Profile, replay
from ledger.domain.results import current_lease, release_result
from ledger.domain.view import Availability, availability_of
from ledger.stores.mapper import decode_profile_id
from ledger.stores.recorders import AVAILABILITY_COLUMNS, AVAILABILITY_TABLE, to_db
from ledger.stores.settings import StoreSettings
from ledger.stores.store import IntegrityError, Store, store_errors

T = TypeVar("T")
Clock = Callable[[], datetime]

# A command that loses this many version races in a row gives up (as StoreUnavailable: the
# caller may retry); with backoff and one stream per profile that takes a storm of writers.
MAX_ATTEMPTS = 30


class Ledger:
    """The Python entry point. Open with ``Ledger.open(store_url)``; close when done."""

    def __init__(
        self, settings: StoreSettings, *, clock: Clock | None = None, create: bool = True
    ) -> None:
        self.settings = settings
        self._store: Store | None = None
        self._clock = clock
        self._create = create

    @classmethod
    def open(
        cls, store_url: str | None = None, *, clock: Clock | None = None, create: bool = True
    ) -> Ledger:
        """A ledger on a store (None: ``$CUSTODY_STORE``, else ``./custody.db``).

        The URL is checked now (``InvalidInput``); the store is reached on first use, so a
        command refused for bad input touches nothing. A new SQLite file is initialised on
        first use unless ``create`` is False (for read-only callers, so a mistyped path does
        not make an empty ledger); PostgreSQL must have been initialised with ``init``
        (``custody init``) so that workers never race to create tables (``StoreUnavailable``
        says so).
        """
        return cls(StoreSettings.resolve(store_url), clock=clock, create=create)

    @classmethod
    def init(cls, store_url: str | None = None) -> Ledger:
        """Create the schema (idempotent) and return a ledger on it."""
        ledger = cls(StoreSettings.resolve(store_url))
        ledger._store = Store.open(ledger.settings, create=True)
        return ledger

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.connect(self.settings, create=self._create)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        """The clock every deadline is judged on (the store's, unless a test injects one)."""
        now = self._clock() if self._clock is not None else self.store.now()
        return now.astimezone(UTC)

    # -- reads ---------------------------------------------------------------------------------

    def profile(self, profile_id: str, *, version: int | None = None) -> Profile:
        """The profile aggregate (optionally as of ``version``); ``UnknownProfile`` if absent."""
        pid = inputs.profile_id(profile_id)
        try:
            with store_errors(self.settings):
                profile: Profile = self.store.app.repository.get(
                    Profile.create_id(pid), version=version, projector_func=replay
                )
        except AggregateNotFoundError:
            raise UnknownProfile(pid) from None
        return profile

    def profile_ids(self) -> list[str]:
        """Every registered profile, read from the event log itself, in id order."""
        ids: list[str] = []
        start = 1
        with store_errors(self.settings):
            while batch := self.store.app.recorder.select_notifications(
                start, 1000, topics=["profile_registered"]
            ):
                ids += [decode_profile_id(n.state) for n in batch]
                start = batch[-1].id + 1
        return sorted(ids)

    def history(self, profile_id: str) -> list[ProfileEvent]:
        """Every event on the profile's stream, oldest first."""
        pid = self.profile(profile_id).profile_id
        with store_errors(self.settings):
            return list(self.store.app.events.get(Profile.create_id(pid)))  # type: ignore[arg-type]

    # -- registration ----------------------------------------------------------------------------

    def register_profile(
        self,
        profile_id: str,
        *,
        account_id: str,
        proxy_id: str,
        region: str | None = None,
        user_data_dir: str | None = None,
        release_policy: str = DEFAULT_RELEASE_POLICY,
        unclean_limit: int = DEFAULT_UNCLEAN_LIMIT,
        unclean_window_seconds: int = DEFAULT_UNCLEAN_WINDOW_SECONDS,
        actor: str = "operator",
        command_id: str | None = None,
    ) -> ProfileRecord:
        """Register a profile with its account context. Registering the same record again is a
        no-op; a different record for an existing profile raises ``NotAllowed``."""
        record = ProfileRecord(
            profile_id=inputs.profile_id(profile_id),
            account_id=inputs.name("account_id", account_id),
            proxy_id=inputs.name("proxy_id", proxy_id),
            region=inputs.optional_name("region", region),
            user_data_dir=inputs.optional_name("user_data_dir", user_data_dir),
            release_policy=inputs.release_policy(release_policy),
            unclean_limit=inputs.unclean_limit(unclean_limit),
            unclean_window_seconds=inputs.positive_int(
                "unclean_window_seconds", unclean_window_seconds
            ),
        )
        actor = inputs.name("actor", actor)
        for _ in range(2):  # a second round only after losing a registration race
            try:
                existing = self.profile(record.profile_id).registration()
            except UnknownProfile:
                issued = self._issue(command_id, "register", record)
                ctx = issued.at(self.now()).context(actor, Role.OPERATOR, reason="registered")
                try:
                    self._save(Profile.register(record, ctx))
                except IntegrityError:
                    continue
                return record
            if existing != record:
                msg = (
                    f"profile {record.profile_id} is already registered differently "
                    f"(account {existing.account_id}, proxy {existing.proxy_id})"
                )
                raise NotAllowed(msg)
            return existing
        raise StoreUnavailable(f"could not register {record.profile_id}: conflicting writers")

    # -- the lease -------------------------------------------------------------------------------

    def checkout(
        self,
        profile_id: str,
        *,
        worker_id: str,
        run_id: str,
        task_type: str,
        ttl_seconds: int = 300,
        account_id: str | None = None,
        proxy_id: str | None = None,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Lease:
        """Lease the profile to a worker, or raise ``CheckoutDenied`` with the reason."""
        pid = inputs.profile_id(profile_id)
        request = CheckoutRequest(
            worker_id=inputs.name("worker_id", worker_id),
            run_id=inputs.name("run_id", run_id),
            task_type=inputs.name("task_type", task_type),
            ttl_seconds=inputs.ttl_seconds(ttl_seconds),
            account_id=inputs.optional_name("account_id", account_id),
            proxy_id=inputs.optional_name("proxy_id", proxy_id),
        )

        def act(profile: Profile, issued: Issued) -> None:
            correlation = correlation_id or request.run_id
            profile.checkout(request, issued.context(request.worker_id, Role.WORKER, correlation))

        issued = self._issue(command_id, "checkout", pid, request)
        return self._command(pid, issued, act, current_lease)

    def heartbeat(
        self,
        lease_id: str,
        *,
        fencing_token: int,
        step: str | None = None,
        url: str | None = None,
        safe: bool = False,
        mutating: bool = False,
        command_id: str | None = None,
    ) -> Lease:
        """Renew the lease's deadline and record the step and URL; ``LeaseLost`` if it is gone."""
        pid, _ = inputs.lease_id(lease_id)
        token = inputs.fencing_token(fencing_token)
        step = inputs.optional_name("step", step)
        url = inputs.optional_url("url", url)
        safe, mutating = inputs.flag("safe", safe), inputs.flag("mutating", mutating)

        def act(profile: Profile, issued: Issued) -> None:
            ctx = lease_context(profile, lease_id, issued, "")
            profile.heartbeat(
                lease_id, token, ctx, step=step, url=url, safe=safe, mutating=mutating
            )

        issued = self._issue(command_id, "heartbeat", lease_id, token, step, url, safe, mutating)
        return self._command(pid, issued, act, current_lease)

    def extend(
        self, lease_id: str, *, fencing_token: int, ttl_seconds: int, command_id: str | None = None
    ) -> Lease:
        """Give a live lease a new TTL, counted from now."""
        pid, _ = inputs.lease_id(lease_id)
        token = inputs.fencing_token(fencing_token)
        ttl = inputs.ttl_seconds(ttl_seconds)

        def act(profile: Profile, issued: Issued) -> None:
            ctx = lease_context(profile, lease_id, issued, f"extend to {ttl}s")
            profile.extend(lease_id, token, ttl, ctx)

        issued = self._issue(command_id, "extend", lease_id, token, ttl)
        return self._command(pid, issued, act, current_lease)

    def release(
        self,
        lease_id: str,
        *,
        fencing_token: int,
        outcome: Outcome | str,
        reason: str | None = None,
        final_url: str | None = None,
        screenshot: str | None = None,
        prompt_seen: bool = False,
        observed_proxy: str | None = None,
        observed_account: str | None = None,
        command_id: str | None = None,
    ) -> ReleaseResult:
        """End the lease with the worker's report; the rules decide pool, review or quarantine."""
        pid, _ = inputs.lease_id(lease_id)
        token = inputs.fencing_token(fencing_token)
        report = ReleaseReport(
            outcome=inputs.choice("outcome", Outcome, outcome),
            final_url=inputs.optional_url("final_url", final_url),
            screenshot=inputs.optional_name("screenshot", screenshot),
            prompt_seen=inputs.flag("prompt_seen", prompt_seen),
            observed_proxy=inputs.optional_name("observed_proxy", observed_proxy),
            observed_account=inputs.optional_name("observed_account", observed_account),
        )
        said = inputs.text("reason", reason or "")
        if report.outcome is Outcome.EXPECTED_FAILURE and not said.strip():
            raise InvalidInput("reason", "an expected failure must say what it was")

        def act(profile: Profile, issued: Issued) -> None:
            ctx = lease_context(profile, lease_id, issued, said or report.outcome.value)
            profile.release(lease_id, token, report, ctx)

        issued = self._issue(command_id, "release", lease_id, token, report, said)
        return self._command(pid, issued, act, release_result)

    # -- operators, reviewers and the sweep ----------------------------------------------------

    def force_release(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> ReleaseResult:
        """End the live lease by hand; the profile goes to review."""
        return self._operate(
            profile_id, actor, reason, command_id, Profile.force_release, release_result
        )

    def quarantine(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> Availability:
        """Quarantine the profile (ending any live lease) until a reviewer clears it."""
        return self._operate(
            profile_id, actor, reason, command_id, Profile.quarantine, availability_of
        )

    def disable(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> Availability:
        """Take the profile out of rotation (ending any live lease, which then needs review)."""
        return self._operate(
            profile_id, actor, reason, command_id, Profile.disable, availability_of
        )

    def enable(
        self, profile_id: str, *, actor: str, reason: str, command_id: str | None = None
    ) -> Availability:
        """Bring a disabled profile back to the state it was disabled from."""
        return self._operate(profile_id, actor, reason, command_id, Profile.enable, availability_of)

    def review(
        self,
        profile_id: str,
        *,
        reviewer: str,
        decision: ReviewDecision | str,
        note: str,
        command_id: str | None = None,
    ) -> Availability:
        """A reviewer returns the profile to the pool, keeps it quarantined, or disables it."""
        pid = inputs.profile_id(profile_id)
        who = inputs.name("reviewer", reviewer)
        verdict = inputs.choice("decision", ReviewDecision, decision)
        said = inputs.name("note", note)

        def act(profile: Profile, issued: Issued) -> None:
            profile.review(verdict, said, issued.context(who, Role.REVIEWER, reason=said))

        issued = self._issue(command_id, "review", pid, who, verdict, said)
        return self._command(pid, issued, act, availability_of)

    def sweep(self, *, actor: str = "sweeper") -> list[SweepResult]:
        """Mark every lease past its deadline stale and send its profile to review or quarantine.

        Candidates come from the availability rows; each is re-judged on its aggregate, so a
        lease renewed since the row was read is left alone.
        """
        who = inputs.name("actor", actor)
        now = self.now()
        rows = self.store.query(
            f"SELECT profile_id FROM {AVAILABILITY_TABLE} "
            "WHERE state = 'stale' OR (state = 'leased' AND until < ?) ORDER BY profile_id",
            (to_db(now),),
        )
        results = [self._sweep_one(row["profile_id"], who) for row in rows]
        return [r for r in results if r is not None]

    def _sweep_one(self, profile_id: str, actor: str) -> SweepResult | None:
        settled: list[str] = []

        def act(profile: Profile, issued: Issued) -> None:
            settled.clear()  # a retry after a version conflict decides afresh
            ctx = issued.context(actor, Role.SCHEDULER, reason="renewal deadline missed")
            if profile.is_overdue(ctx.now):
                profile.mark_stale(ctx)
            if profile.state is ProfileState.STALE and profile.lease is not None:
                settled.append(profile.lease.lease_id)
                profile.settle_stale(ctx)

        issued = self._issue(None, "sweep", profile_id, actor)
        profile = self._command(profile_id, issued, act, lambda p: p)
        if not settled or profile.block is None:
            return None
        return SweepResult(
            profile_id=profile.profile_id,
            lease_id=settled[0],
            profile_state=profile.state,
            cause=profile.block.cause,
        )

    def availability(self) -> list[Availability]:
        """Every profile's availability row, as stored beside its events."""
        columns = ", ".join(AVAILABILITY_COLUMNS)
        rows = self.store.query(f"SELECT {columns} FROM {AVAILABILITY_TABLE} ORDER BY profile_id")
        return [Availability.model_validate(r) for r in rows]

    # -- plumbing ---------------------------------------------------------------------------------

    def _operate(
        self,
        profile_id: str,
        actor: str,
        reason: str,
        command_id: str | None,
        method: Callable[[Profile, Context], Any],
        result_of: Callable[[Profile], T],
    ) -> T:
        pid = inputs.profile_id(profile_id)
        who = inputs.name("actor", actor)
        said = inputs.name("reason", reason)

        def act(profile: Profile, issued: Issued) -> None:
            method(profile, issued.context(who, Role.OPERATOR, reason=said))

        issued = self._issue(command_id, method.__name__, pid, who, said)
        return self._command(pid, issued, act, result_of)

    def _issue(self, command_id: str | None, name: str, *arguments: object) -> Issued:
        """Stamp a command: its id (the caller's or a new one) and its fingerprint."""
        cid = inputs.name("command_id", command_id) if command_id is not None else new_id()
        return Issued(cid, fingerprint(name, *arguments))

    def _command(
        self,
        profile_id: str,
        issued: Issued,
        act: Callable[[Profile, Issued], None],
        result_of: Callable[[Profile], T],
    ) -> T:
        """Load, decide, save; on a version conflict back off, reload and decide again.

        A command id this profile already applied returns the result as of that command and
        appends nothing, so a worker may safely resend after a timeout; the same id with
        different arguments is refused as ``InvalidInput``.
        """
        for attempt in range(MAX_ATTEMPTS):
            profile = self.profile(profile_id)
            if issued.command_id in profile.commands:
                return result_of(self._replayed(profile, issued))
            act(profile, issued.at(self.now()))
            if not profile.pending_events:
                return result_of(profile)
            try:
                self._save(profile)
            except IntegrityError:
                # Another writer took this version; jitter keeps the losers from colliding again.
                time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))  # noqa: S311
                continue
            return result_of(profile)
        msg = f"profile {profile_id} is busy: {MAX_ATTEMPTS} conflicting writes in a row; retry"
        raise StoreUnavailable(msg)

    def _replayed(self, profile: Profile, issued: Issued) -> Profile:
        version, command = profile.commands[issued.command_id]
        if command != issued.command:
            first = command.split(":", 1)[0] or "another command"
            msg = f"{issued.command_id!r} was already used on {profile.profile_id} for {first}"
            raise InvalidInput("command_id", msg)
        return self.profile(profile.profile_id, version=version)

    def _save(self, profile: Profile) -> None:
        with store_errors(self.settings):
            self.store.app.save(profile, availability=[availability_of(profile)])
