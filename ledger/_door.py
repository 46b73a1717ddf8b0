"""The door every command comes in by: ``Command``, the frozen, strict base of each command
model, and the one way a validation failure becomes ``InvalidInput`` naming its field.

Apart from the commands themselves (``ledger._commands``), so that the ledger's reads, which
check a profile or lease id at this door, need not build every command model first.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Mapping
from functools import partial
from operator import is_
from typing import Any, ClassVar, Generic, Self, TypeVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from ledger._domain.errors import InvalidInput
from ledger._domain.model import (
    CommandId,
    Identity,
    LeaseId,
    ProfileId,
    carries_password,
    quoted,
)

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
            made = handler(data)
        except ValidationError as e:
            raise invalid(cls.kind, e) from None
        if made is not data:  # made from input here, not an instance let through as it was
            fields = made.__dict__
            noted = (fields, tuple(fields), tuple(fields.values()))
            _MADE[id(made)] = (weakref.ref(made, partial(_forget, id(made))), noted)
        return made

    def as_validated(self) -> Self:
        """This value as validation makes it, or the ``InvalidInput`` naming its first field
        that validation refuses, leaves out or makes otherwise: what ``Ledger.handle`` asks
        of every command before it acts. pydantic's ``model_construct`` checks nothing, so a
        command built with it went past the door (rev35: a profile id holding NUL or 5,000
        characters long recorded for good and never readable again, a release policy no
        release could apply, a heartbeat's step holding NUL read back otherwise, raw
        ``TypeError``s). Itself when it holds what validation made (the fingerprint a resent
        command id is matched on is taken of the instance given); validation's copy when
        that holds the same values as other types (an outcome as a ``str``, not its enum).

        An instance this process's validation made, holding no model in a field (validation
        lets an instance through unchecked), is itself at once: validating it again cost a
        heartbeat 3% of its CPU. Any other (built with ``model_construct``, copied, unpickled,
        holding a model) is validated again from the values it holds, and so is one that holds
        another value in a field than validation put there (rev35 review: a heartbeat's step
        set to a text holding NUL by ``object.__setattr__``, or in its ``__dict__``, after it
        was made went past the door); the fields' values are immutable (texts, numbers,
        times, enums, frozen models), so holding the very objects validation made is holding
        what it checked."""
        cls = type(self)
        noted = _MADE.get(id(self))
        if (
            noted is not None
            and noted[0]() is self
            and _same_objects(noted[1], self.__dict__)
            and not _holds_models(cls)
        ):
            return self
        return _as_made(self, cls.kind, ())

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


M = TypeVar("M", bound=BaseModel)
_ABSENT = object()
# The door models this process's validation made from input, by id, while they live, with the
# objects it put in their fields: one an id names, holding those objects still, is checked
# already (``Door.as_validated``). A dead model's entry goes with it.
# A made model's fields: its ``__dict__`` as validation left it, their names and their objects.
_Noted = tuple[dict[str, Any], tuple[str, ...], tuple[Any, ...]]
_MADE: dict[int, tuple[weakref.ref[Door], _Noted]] = {}
# Whether a door model's class has a field that may hold a model (``_holds_models``).
_NESTS: dict[type[BaseModel], bool] = {}


def _same_objects(noted: _Noted, fields: dict[str, Any]) -> bool:
    """Whether ``fields`` is the very dict validation made, holding under the same names, in
    the same order, the very objects it put there (rev35 review: values matched by position
    alone let a ``__dict__`` whose names traded places pass, a URL of 3,000 characters
    recorded as a step)."""
    made, names, values = noted
    return fields is made and tuple(fields) == names and all(map(is_, values, fields.values()))


def _forget(key: int, _: object) -> None:
    """A made model's entry in ``_MADE`` goes when the model does (before its id is reused)."""
    _MADE.pop(key, None)


def _holds_models(cls: type[BaseModel]) -> bool:
    """Whether a field of ``cls`` may hold a model (``Review.browser``): an instance that
    validation let through as it was, unchecked."""
    nests = _NESTS.get(cls)
    if nests is None:
        nests = _NESTS[cls] = any(_may_be_model(f.annotation) for f in cls.model_fields.values())
    return nests


def _may_be_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_may_be_model(a) for a in get_args(annotation))


def _as_made(model: M, kind: str, within: tuple[str, ...]) -> M:
    """``model`` (a field ``within`` a command's, or the command) as validation makes it from
    the values it holds, or ``InvalidInput`` naming the first field it refuses or would make
    otherwise. A model held in a field is checked too: validation passes an instance through
    as it is."""
    given = model.__dict__
    try:
        made = type(model).__pydantic_validator__.validate_python(given)
    except ValidationError as e:  # a value model's own validation: it has no door
        raise invalid(kind, e, within) from None
    except InvalidInput as e:  # a door's
        if not within:
            raise
        raise InvalidInput(".".join((*within, e.field)), e.problem) from None
    same = True
    for name, value in made.__dict__.items():
        held = given.get(name, _ABSENT)
        if isinstance(held, BaseModel):
            inner = _as_made(held, kind, (*within, name))
            if inner is not value:  # validation's copy of it, or of what it holds
                made = type(made).__pydantic_validator__.validate_python(
                    {**made.__dict__, name: inner}
                )
                same = same and inner is held
            continue
        if held is value:
            continue
        if held is _ABSENT:  # left out of the instance (not by model_construct, which fills
            same = False  # in each default): validation's default
        elif held != value:
            field = ".".join((*within, name))
            raise InvalidInput(field, f"is not what validation makes of it (got {quoted(held)})")
        elif type(held) is not type(value):
            same = False
    return model if same else made


def invalid(
    kind: str, error: ValidationError, within: tuple[str, ...] = (), *, quote: bool = True
) -> InvalidInput:
    """The ``InvalidInput`` a validation failure means: the first bad field (inside the field
    ``within``, for a model a command holds), in plain words, with a short quote of what was
    given (unless not ``quote``: a secret's, of which only its type is named)."""
    problem = error.errors()[0]
    field = ".".join((*within, *(str(p) for p in problem["loc"]))) or kind
    text = _SAID.get(problem["type"]) or problem["msg"].removeprefix("Value error, ")
    if problem["type"] != "missing":
        given = problem["input"]
        text += f" (got {quoted(given)})" if quote else f" (got one of type {type(given).__name__})"
    return InvalidInput(field, text)


# pydantic's words for a problem, where the caller deserves plainer ones.
_SAID = {"string_unicode": "must be valid Unicode text (it holds bytes that were not UTF-8)"}


# Not commands: parametrising a generic model (``Command[Any]``) builds its schema at import,
# and with it loads pydantic's plugins, start-up a read has no use for.
class ProfileQuery(Door):
    """A read's profile id, checked at the same door as a command's."""

    kind = "read"
    profile_id: ProfileId


class CheckoutQuery(Door):
    """What ``Ledger.checkout_denial`` is asked: the profile, and the account and proxy a
    checkout would name, each checked by the rule ``Checkout`` checks it by."""

    kind = "read"
    profile_id: ProfileId
    account_id: Identity | None = None
    proxy_id: Identity | None = None


class LeaseQuery(Door):
    """A read's lease id, checked at the same door as a command's."""

    kind = "read"
    lease_id: LeaseId


# The rules an argument outside a command is checked by (``checked``), each made once, when
# first used: a read that checks none builds none.
_RULES: dict[object, Any] = {}


def checked(field: str, rule: Any, value: object, *, secret: bool = False) -> Any:
    """``value`` as the door takes it by ``rule`` (``str``, ``Identity``: a type a command's
    field is declared with), or the ``InvalidInput`` naming ``field`` a command's field would
    raise, in the same words: for an argument no command carries (a read's account, a token,
    a store URL), whose wrong type was a raw AttributeError or TypeError (rev48). A
    ``secret`` (a token, a session, a URL that may hold a password) is not quoted: the bytes
    of one are still the secret."""
    adapter = _RULES.get(rule)
    if adapter is None:
        adapter = _RULES[rule] = TypeAdapter(rule)
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as e:
        raise invalid(field, e, quote=not secret) from None
