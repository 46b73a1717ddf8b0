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

import hashlib
import json
import uuid
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from ledger._domain.browser import BrowserCheck, StopSignal
from ledger._domain.errors import InvalidInput
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
    ReleaseResult,
    ReviewDecision,
    Sha256,
    SweepReport,
    SweepResult,
    Text,
    TtlSeconds,
    UncleanLimit,
    UncleanWindow,
    Url,
    parse_lease_id,
)
from ledger._domain.policies import (
    DEFAULT_RELEASE_POLICY,
    DEFAULT_UNCLEAN_LIMIT,
    DEFAULT_UNCLEAN_WINDOW_SECONDS,
    PolicyName,
)
from ledger._domain.view import Availability

R = TypeVar("R")

# Enums arrive as their values from the CLI, JSON and the README's examples; everything else is
# strict (no "300" for a TTL, no 1 for a flag).
_LAX = Field(strict=False)
# How much of a rejected value an error line quotes.
QUOTED_PREFIX = 60


class Command(BaseModel, Generic[R]):
    """Base of every command: frozen, strict, unknown fields refused; ``R`` is its answer."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, defer_build=True)

    kind: ClassVar[str] = ""
    # Fields that carry what the caller observed rather than what it asked: a resend observes
    # afresh, so they are left out of the fingerprint.
    observed: ClassVar[frozenset[str]] = frozenset()
    # Whether the command may start a profile's stream (and a new store).
    creates: ClassVar[bool] = False

    command_id: CommandId | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _at_the_door(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Bad input is one ``InvalidInput`` naming the first bad field, whoever builds the
        command (the API's caller, the command line, the SDK)."""
        try:
            return handler(data)
        except ValidationError as e:
            raise invalid(cls.kind, e) from None

    def fingerprint(self) -> str:
        """``kind:digest`` of what was asked; stable across processes, runs and versions that
        only add optional fields."""
        left_out = {"command_id", *self.observed}
        asked = self.model_dump(mode="json", exclude=left_out, exclude_defaults=True)
        canonical = json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        digest = hashlib.sha256(f"{self.kind}\n{canonical}".encode()).hexdigest()[:16]
        return f"{self.kind}:{digest}"

    def issued_id(self) -> str:
        """The caller's command id, or a new one for a command sent once."""
        return self.command_id if self.command_id is not None else uuid.uuid4().hex


def invalid(kind: str, error: ValidationError) -> InvalidInput:
    """The ``InvalidInput`` a validation failure means: the first bad field, in plain words,
    with a short quote of what was given."""
    problem = error.errors()[0]
    field = ".".join(str(p) for p in problem["loc"]) or kind
    text = _SAID.get(problem["type"]) or problem["msg"].removeprefix("Value error, ")
    if problem["type"] != "missing":
        text += f" (got {quoted(problem['input'])})"
    return InvalidInput(field, text)


# pydantic's words for a problem, where the caller deserves plainer ones.
_SAID = {"string_unicode": "must be valid Unicode text (it holds bytes that were not UTF-8)"}


def quoted(value: Any) -> str:
    """A value as an error line may show it: its repr, cut to a short prefix."""
    shown = repr(value)
    return shown if len(shown) <= QUOTED_PREFIX else f"{shown[:QUOTED_PREFIX]}... ({len(shown)})"


class RegisterProfile(Command[ProfileRecord]):
    kind = "register"
    creates = True
    profile_id: ProfileId
    account_id: Identity
    proxy_id: Identity
    region: Name | None = None
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
    task_type: Name
    ttl_seconds: TtlSeconds = 300
    account_id: Identity | None = None
    proxy_id: Identity | None = None
    correlation_id: Name | None = None
    max_duration_seconds: MaxLeaseSeconds | None = None


class LeaseCommand(Command[R], Generic[R]):
    """A command a worker sends under its lease, proving it with the fencing token."""

    lease_id: LeaseId
    fencing_token: FencingToken

    @property
    def profile_id(self) -> str:
        """The profile whose stream the lease lives on (the lease id names it)."""
        return parse_lease_id(self.lease_id)[0]


class Heartbeat(LeaseCommand[Lease]):
    kind = "heartbeat"
    step: Name | None = None
    url: Url | None = None
    safe: bool = False
    mutating: bool = False


class Extend(LeaseCommand[Lease]):
    kind = "extend"
    ttl_seconds: TtlSeconds


class Release(LeaseCommand[ReleaseResult]):
    kind = "release"
    # ``outcome`` comes before ``reason``: the validator below reads it.
    outcome: Annotated[Outcome, _LAX]
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
        if info.data.get("outcome") is Outcome.EXPECTED_FAILURE and not (reason or "").strip():
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
    decision: Annotated[ReviewDecision, _LAX]
    note: Name
    browser: BrowserCheck | None = None  # what an inspection of the directory found, if made


class RecordBrowserStop(Command[Availability]):
    """An operator's record of an orphaned browser stopped on the profile's directory."""

    kind = "browser_stop"
    profile_id: ProfileId
    actor: Identity
    host: Name
    pid: Annotated[int, Field(ge=1)]
    user_data_dir: Name
    signal: Annotated[StopSignal, _LAX]


class Sweep(Command[SweepReport]):
    kind = "sweep"
    actor: Identity = "sweeper"


class SettleOverdue(Command[SweepResult | None]):
    """The sweep's command on one profile: mark its overdue lease stale, then decide."""

    kind = "sweep"
    profile_id: ProfileId
    actor: Identity
