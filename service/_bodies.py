"""The request bodies: each command's fields less those the service fills in (the profile or
lease from the path, the actor from the token, the command id from ``Idempotency-Key``).

Made from the command models themselves, so a field is declared once (``ledger``'s commands)
and the OpenAPI schema says exactly what the ledger checks; the command built from a body is
checked again at the ledger's door (rules across fields, such as an expected failure's
reason)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from ledger import Checkout, Extend, Heartbeat, RegisterProfile, Release, Review

# Filled in by the service, never by a caller.
_FILLED = frozenset(
    {"command_id", "profile_id", "lease_id", "worker_id", "actor", "reviewer", "browser"}
)


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def body_of(command: type[BaseModel], name: str, *, keep: frozenset[str] = frozenset()) -> Any:
    fields: dict[str, Any] = {
        field: (info.annotation, info)
        for field, info in command.model_fields.items()
        if field not in _FILLED or field in keep
    }
    return create_model(name, __base__=Body, __doc__=command.__doc__, **fields)


CheckoutBody = body_of(Checkout, "CheckoutBody")
HeartbeatBody = body_of(Heartbeat, "HeartbeatBody")
ExtendBody = body_of(Extend, "ExtendBody")
ReleaseBody = body_of(Release, "ReleaseBody")
ReviewBody = body_of(Review, "ReviewBody")
RegisterBody = body_of(RegisterProfile, "RegisterBody", keep=frozenset({"profile_id"}))


class OperatorBody(Body):
    """Why an operator acts (recorded on the event)."""

    reason: str
