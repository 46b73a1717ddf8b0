"""The door every command comes in by: ``Command``, the frozen, strict base of each command
model, and the one way a validation failure becomes ``InvalidInput`` naming its field.

Apart from the commands themselves (``ledger._commands``), so that the ledger's reads, which
check a profile or lease id at this door, need not build every command model first.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from ledger._domain.errors import InvalidInput
from ledger._domain.model import CommandId, LeaseId, ProfileId, carries_password, quoted

R = TypeVar("R")

# Enums arrive as their values from the CLI, JSON and the README's examples; everything else is
# strict (no "300" for a TTL, no 1 for a flag).
LAX = Field(strict=False)


class Door(BaseModel):
    """What every value checked at the door is: frozen, strict, unknown fields refused, and
    bad input one ``InvalidInput`` naming the first bad field."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, defer_build=True)

    kind: ClassVar[str] = ""

    @model_validator(mode="wrap")
    @classmethod
    def _at_the_door(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Bad input is one ``InvalidInput`` naming the first bad field, whoever builds the
        command (the API's caller, the command line, the SDK)."""
        try:
            return handler(data)
        except ValidationError as e:
            raise invalid(cls.kind, e) from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; one with ``update`` comes in by the door again, checked as any other
        (pydantic's copy checks nothing: rev31, a command copied with a negative hard limit or
        an account id holding a line break went into the append-only log)."""
        copied = super().model_copy(deep=deep)
        return copied if not update else type(self).model_validate({**dict(copied), **update})


class Command(Door, Generic[R]):
    """Base of every command: checked at the door; ``R`` is its answer."""

    # Fields that carry what the caller observed rather than what it asked: a resend observes
    # afresh, so they are left out of the fingerprint.
    observed: ClassVar[frozenset[str]] = frozenset()
    # Whether the command may start a profile's stream (and a new store).
    creates: ClassVar[bool] = False

    # Fields a command not applied yet must not carry a password in (``refusal``): URLs, and
    # ids that name a proxy (read with ``user:password@host`` too).
    secret_free: ClassVar[tuple[str, ...]] = ()
    secret_free_ids: ClassVar[tuple[str, ...]] = ()

    command_id: CommandId | None = None

    def refusal(self) -> InvalidInput | None:
        """Why the ledger refuses this command if it has not applied it, or None. Judged once
        its command id is looked up, not at the door: a resend of a command applied before
        the rule existed (custody took a password in a URL until 2026-12-04) is answered, not
        refused. A URL or a proxy id carrying ``user:password@`` is refused, the value not
        quoted (it goes to a terminal, a log, an HTTP answer)."""
        for fields, bare in ((self.secret_free, False), (self.secret_free_ids, True)):
            for field in fields:
                if carries_password(getattr(self, field), bare=bare):
                    return InvalidInput(field, "must not carry a password (user:password@)")
        return None

    def fingerprint(self) -> str:
        """``kind:digest`` of what was asked; stable across processes, runs and versions that
        only add optional fields."""
        left_out = {"command_id", *self.observed}
        asked = self.model_dump(mode="json", exclude=left_out, exclude_defaults=True)
        canonical = _FINGERPRINT_JSON.encode(asked)
        digest = hashlib.sha256(f"{self.kind}\n{canonical}".encode()).hexdigest()[:16]
        return f"{self.kind}:{digest}"

    def issued_id(self) -> str:
        """The caller's command id, or a new one for a command sent once."""
        return self.command_id if self.command_id is not None else new_id()


# What json.dumps(asked, sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds on
# every call, built once: a fingerprint is taken of every command.
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def new_id() -> str:
    """A new random id, as ``uuid.uuid4().hex`` spells it (32 lowercase hex digits, version 4,
    RFC 4122 variant), without building a ``UUID``: a command sent once takes one, and
    ``uuid4`` cost a heartbeat about 2% of its CPU."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    return raw.hex()


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


# Not commands: parametrising a generic model (``Command[Any]``) builds its schema at import,
# and with it loads pydantic's plugins, start-up a read has no use for.
class ProfileQuery(Door):
    """A read's profile id, checked at the same door as a command's."""

    kind = "read"
    profile_id: ProfileId


class LeaseQuery(Door):
    """A read's lease id, checked at the same door as a command's."""

    kind = "read"
    lease_id: LeaseId
