"""Commands: what a caller asks of the ledger, as values, validated strictly at the door.

Each command is a frozen pydantic model a caller builds (``Heartbeat(lease_id=..., ...)``) and
hands to ``Ledger.handle``; its type parameter is what the ledger answers (``Command[Lease]``).
Building one with a malformed field raises one ``InvalidInput`` naming the field, so nothing
malformed reaches the aggregate or the store. The command line, the worker SDK and the tests
build the same models: each argument is declared once, here.

A command's ``fingerprint`` binds a command id to what was asked: a hash of the command's
canonical JSON, leaving out the id itself and every field still at its default. A later version
that adds an optional field therefore fingerprints an old command exactly as before, so a worker
that retries across a deploy is recognised, not refused.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Generic, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from ledger._domain.browser import BrowserCheck, StopSignal
from ledger._domain.model import (
    CommandId,
    Directory,
    FencingToken,
    Identity,
    Lease,
    LeaseId,
    MaxLeaseSeconds,
    Name,
    Outcome,
    ProfileId,
    ProfileRecord,
    ReviewDecision,
    Role,
    Sha256,
    StreamVersion,
    Text,
    TtlSeconds,
    UncleanLimit,
    UncleanWindow,
    Url,
    parse_lease_id,
    says_something,
)
from ledger._domain.policies import (
    DEFAULT_RELEASE_POLICY,
    DEFAULT_UNCLEAN_LIMIT,
    DEFAULT_UNCLEAN_WINDOW_SECONDS,
    PolicyName,
)
from ledger._domain.results import ReleaseResult, SweepReport, SweepResult
from ledger._domain.view import Availability
from ledger._door import LAX, Command as Command

R = TypeVar("R")


class RegisterProfile(Command[ProfileRecord]):
    kind = "register"
    creates = True
    secret_free_ids = ("proxy_id",)
    profile_id: ProfileId
    account_id: Identity
    proxy_id: Identity
    region: Identity | None = None
    user_data_dir: Directory | None = None
    release_policy: PolicyName = DEFAULT_RELEASE_POLICY
    unclean_limit: UncleanLimit = DEFAULT_UNCLEAN_LIMIT
    unclean_window_seconds: UncleanWindow = DEFAULT_UNCLEAN_WINDOW_SECONDS
    max_lease_seconds: MaxLeaseSeconds | None = None
    actor: Identity = "operator"


class Checkout(Command[Lease]):
    kind = "checkout"
    profile_id: ProfileId
    worker_id: Identity
    run_id: Identity
    task_type: Identity
    ttl_seconds: TtlSeconds = 300
    account_id: Identity | None = None
    proxy_id: Identity | None = None
    correlation_id: Name | None = None
    max_duration_seconds: MaxLeaseSeconds | None = None


class LeaseCommand(Command[R], Generic[R]):
    """A command a worker sends under its lease, proving it with the fencing token."""

    lease_id: LeaseId
    fencing_token: FencingToken
    # The worker the caller speaks for, where something other than the token proves it (the
    # lease service sets it from the caller's own token): ``Forbidden`` if the lease is
    # another worker's, judged with the write, where a check before it could be overtaken by
    # a checkout (a fencing token is a small number, not a secret).
    worker_id: Identity | None = None

    @property
    def profile_id(self) -> str:
        """The profile whose stream the lease lives on (the lease id names it)."""
        return parse_lease_id(self.lease_id)[0]


class Heartbeat(LeaseCommand[Lease]):
    kind = "heartbeat"
    secret_free = ("url",)
    step: Name | None = None
    url: Url | None = None
    safe: bool = False
    mutating: bool = False


class Extend(LeaseCommand[Lease]):
    kind = "extend"
    ttl_seconds: TtlSeconds


class Release(LeaseCommand[ReleaseResult]):
    kind = "release"
    secret_free = ("final_url",)
    # ``outcome`` comes before ``reason``: the validator below reads it.
    outcome: Annotated[Outcome, LAX]
    reason: Text | None = Field(default=None, validate_default=True)
    final_url: Url | None = None
    screenshot: Name | None = None
    screenshot_sha256: Sha256 | None = None
    prompt_seen: bool = False
    observed_proxy: Identity | None = None
    observed_account: Identity | None = None
    evidence_problem: Text | None = None

    @field_validator("reason")
    @classmethod
    def _expected_failure_says_why(cls, reason: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("outcome") is Outcome.EXPECTED_FAILURE and not says_something(
            reason or ""
        ):
            raise ValueError("an expected failure must say what it was")
        return reason

    @field_validator("screenshot_sha256")
    @classmethod
    def _digest_of_a_screenshot(cls, digest: str | None, info: ValidationInfo) -> str | None:
        if digest is not None and info.data.get("screenshot") is None:
            raise ValueError("a screenshot digest needs the screenshot it is the digest of")
        return digest


class OperatorCommand(Command[R], Generic[R]):
    """An operator's action on a profile, with who and why."""

    profile_id: ProfileId
    actor: Identity
    reason: Name


class ForceRelease(OperatorCommand[ReleaseResult]):
    kind = "force_release"


class Quarantine(OperatorCommand[Availability]):
    kind = "quarantine"


class Disable(OperatorCommand[Availability]):
    kind = "disable"


class Enable(OperatorCommand[Availability]):
    kind = "enable"


class Review(Command[Availability]):
    kind = "review"
    observed = frozenset({"browser"})
    profile_id: ProfileId
    reviewer: Identity
    decision: Annotated[ReviewDecision, LAX]
    note: Name
    browser: BrowserCheck | None = None  # what an inspection of the directory found, if made
    # The profile's version the reviewer judged (a page drawn, a ``view`` read): refused once
    # the profile has moved on, so a verdict never lands on a run its reviewer did not see.
    expected_version: StreamVersion | None = None


class RecordBrowserStop(Command[Availability]):
    """An operator's record of an orphaned browser stopped on the profile's directory."""

    kind = "browser_stop"
    # The role the record is made in: a caller that stops the browser before recording it
    # asks first whether its login may (``Ledger.may_record``).
    acts_as: ClassVar[Role] = Role.OPERATOR
    profile_id: ProfileId
    actor: Identity
    host: Name
    pid: Annotated[int, Field(ge=1)]
    user_data_dir: Directory  # the registered directory, as long as registration takes it
    signal: Annotated[StopSignal, LAX]


class Sweep(Command[SweepReport]):
    kind = "sweep"
    actor: Identity = "sweeper"


class SettleOverdue(Command[SweepResult | None]):
    """The sweep's command on one profile: mark its overdue lease stale, then decide.

    Its events are the sweep's: they carry ``sweep_id``, the sweep's command id (the caller's,
    or one made for it), as their command and correlation id, and the sweep's fingerprint, so
    that the id finds every event one sweep wrote, on every profile (they carried a fresh id
    each, and ``--command-id`` was on none of them: rev30). The id is recorded once, for the
    sweep, before its first write (``Repository.record_sweep``); never here, for one profile
    (``command_id`` stays None): the commands table's key is the id, which names one command,
    the sweep, however many profiles it settles."""

    kind = "sweep"
    profile_id: ProfileId
    actor: Identity
    sweep_id: CommandId

    def issued_id(self) -> str:
        """The sweep's id, on each profile it settles."""
        return self.sweep_id

    def fingerprint(self) -> str:
        """The sweep's: what was asked is the sweep (``Sweep.actor`` is the only argument)."""
        return Sweep(actor=self.actor).fingerprint()
