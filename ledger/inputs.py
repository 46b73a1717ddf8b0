"""Validation of command arguments at the boundary: one ``InvalidInput`` naming the field."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from ledger.domain.errors import InvalidInput
from ledger.domain.model import (
    FencingToken,
    Name,
    PositiveInt,
    ProfileId,
    Text,
    TtlSeconds,
    Url,
    parse_lease_id,
)
from ledger.domain.policies import RELEASE_POLICIES
from ledger.domain.state import REMEMBERED_UNCLEAN_ENDINGS

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _check(field: str, annotation: Any, value: Any) -> Any:
    adapter = _ADAPTERS.get(annotation)
    if adapter is None:
        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation)
    try:
        return adapter.validate_python(value, strict=True)
    except ValidationError as e:
        problem = e.errors()[0]["msg"].removeprefix("Value error, ")
        raise InvalidInput(field, f"{problem} (got {value!r})") from None


def profile_id(value: Any, field: str = "profile_id") -> str:
    result: str = _check(field, ProfileId, value)
    return result


def name(field: str, value: Any) -> str:
    result: str = _check(field, Name, value)
    return result


def optional_name(field: str, value: Any) -> str | None:
    return None if value is None else name(field, value)


def text(field: str, value: Any) -> str:
    result: str = _check(field, Text, value)
    return result


def optional_url(field: str, value: Any) -> str | None:
    if value is None:
        return None
    result: str = _check(field, Url, value)
    return result


def ttl_seconds(value: Any, field: str = "ttl_seconds") -> int:
    result: int = _check(field, TtlSeconds, value)
    return result


def positive_int(field: str, value: Any) -> int:
    result: int = _check(field, PositiveInt, value)
    return result


def unclean_limit(value: Any) -> int:
    """A profile remembers its last REMEMBERED_UNCLEAN_ENDINGS endings; a larger limit could
    never be reached."""
    limit = positive_int("unclean_limit", value)
    if limit > REMEMBERED_UNCLEAN_ENDINGS:
        raise InvalidInput("unclean_limit", f"at most {REMEMBERED_UNCLEAN_ENDINGS} (got {limit})")
    return limit


def fencing_token(value: Any) -> int:
    result: int = _check("fencing_token", FencingToken, value)
    return result


def lease_id(value: Any) -> tuple[str, int]:
    """Return (profile_id, token) named by a lease id."""
    if not isinstance(value, str):
        raise InvalidInput("lease_id", f"expected a string (got {value!r})")
    try:
        return parse_lease_id(value)
    except ValueError as e:
        raise InvalidInput("lease_id", str(e)) from None


def choice(field: str, enum: type[E], value: Any) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise InvalidInput(field, f"expected one of {allowed} (got {value!r})") from None


def release_policy(value: Any) -> str:
    if value not in RELEASE_POLICIES:
        allowed = ", ".join(RELEASE_POLICIES)
        raise InvalidInput("release_policy", f"expected one of {allowed} (got {value!r})")
    result: str = value
    return result


def flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(field, f"expected true or false (got {value!r})")
    return value
