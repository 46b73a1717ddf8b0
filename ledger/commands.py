"""Commands: what a caller asks of the ledger, validated strictly at the boundary.

Each command is a frozen pydantic model. ``parse`` turns any validation failure into one
``InvalidInput`` naming the field, so nothing malformed reaches the aggregate or the store.

A command's ``fingerprint`` binds a command id to what was asked: a hash of the command's
canonical JSON, leaving out the id itself and every field still at its default. A later version
that adds an optional field therefore fingerprints an old command exactly as before, so a worker
that retries across a deploy is recognised, not refused.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from ledger.domain.browser import BrowserCheck, StopSignal
from ledger.domain.errors import InvalidInput
from ledger.domain.model import (
    CommandId,
    Directory,
    FencingToken,
    Identity,
    LeaseId,
    MaxLeaseSeconds,
    Name,
    Outcome,
    ProfileId,
    ReviewDecision,
    Sha256,
    Text,
    TtlSeconds,
    UncleanLimit,
    UncleanWindow,
    Url,
)
from ledger.domain.policies import (
    DEFAULT_RELEASE_POLICY,
    DEFAULT_UNCLEAN_LIMIT,
    DEFAULT_UNCLEAN_WINDOW_SECONDS,
    PolicyName,
)

C = TypeVar("C", bound="Command")

# Enums arrive as their values from the CLI, JSON and the README's examples; everything else is
# strict (no "300" for a TTL, no 1 for a flag).
_LAX = Field(strict=False)
# How much of a rejected value an error line quotes.
QUOTED_PREFIX = 60


class Command(BaseModel):
    """Base of every command: frozen, strict, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    kind: ClassVar[str] = ""
    # Fields that carry what the caller observed rather than what it asked: a resend observes
    # afresh, so they are left out of the fingerprint.
    observed: ClassVar[frozenset[str]] = frozenset()

    command_id: CommandId | None = None

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


def parse(cls: type[C], **fields: Any) -> C:
    """Validate ``fields`` as a ``cls`` command; ``InvalidInput`` names the first bad field."""
    try:
        return cls.model_validate(fields)
    except ValidationError as e:
        problem = e.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or cls.kind
        text = _SAID.get(problem["type"]) or problem["msg"].removeprefix("Value error, ")
        if problem["type"] != "missing":
            text += f" (got {quoted(problem['input'])})"
        raise InvalidInput(field, text) from None


# pydantic's words for a problem, where the caller deserves plainer ones.
_SAID = {"string_unicode": "must be valid Unicode text (it holds bytes that were not UTF-8)"}


def quoted(value: Any) -> str:
    """A value as an error line may show it: its repr, cut to a short prefix."""
    shown = repr(value)
    return shown if len(shown) <= QUOTED_PREFIX else f"{shown[:QUOTED_PREFIX]}... ({len(shown)})"


class RegisterProfile(Command):
    kind = "register"
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


class Checkout(Command):
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


class LeaseCommand(Command):
    """A command a worker sends under its lease, proving it with the fencing token."""

    lease_id: LeaseId
    fencing_token: FencingToken


class Heartbeat(LeaseCommand):
    kind = "heartbeat"
    step: Name | None = None
    url: Url | None = None
    safe: bool = False
    mutating: bool = False


class Extend(LeaseCommand):
    kind = "extend"
    ttl_seconds: TtlSeconds


class Release(LeaseCommand):
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


class OperatorCommand(Command):
    """An operator's action on a profile, with who and why."""

    profile_id: ProfileId
    actor: Identity
    reason: Name


class ForceRelease(OperatorCommand):
    kind = "force_release"


class Quarantine(OperatorCommand):
    kind = "quarantine"


class Disable(OperatorCommand):
    kind = "disable"


class Enable(OperatorCommand):
    kind = "enable"


class Review(Command):
    kind = "review"
    observed = frozenset({"browser"})
    profile_id: ProfileId
    reviewer: Identity
    decision: Annotated[ReviewDecision, _LAX]
    note: Name
    browser: BrowserCheck | None = None  # what an inspection of the directory found, if made


class RecordBrowserStop(Command):
    """An operator's record of an orphaned browser stopped on the profile's directory."""

    kind = "browser_stop"
    profile_id: ProfileId
    actor: Identity
    host: Name
    pid: Annotated[int, Field(ge=1)]
    user_data_dir: Name
    signal: Annotated[StopSignal, _LAX]


class Sweep(Command):
    kind = "sweep"
    actor: Identity = "sweeper"


class SettleOverdue(Command):
    """The sweep's command on one profile: mark its overdue lease stale, then decide."""

    kind = "sweep"
    profile_id: ProfileId
    actor: Identity
