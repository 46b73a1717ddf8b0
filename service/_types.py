"""The parameters the resources share: paths, the idempotency key, and the caller (from the
bearer token, through the process's ``Service``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger.access import TokenHolder

_bearer = HTTPBearer(auto_error=False, description="custody access token ACTOR --role ROLE")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def _caller(request: Request, credentials: Credentials) -> TokenHolder:
    """The request's caller, asked once a request: the route checks the token before the body
    is read (``service._bodies.JsonRoute``) and its dependency is then answered from that."""
    checked: TokenHolder | None = request.scope.get(_CHECKED)
    if checked is not None:
        return checked
    said = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    holder: TokenHolder = await request.app.state.service.tokens.caller(said)
    request.scope[_CHECKED] = holder
    return holder


_CHECKED = "custody.caller"  # where a request's scope keeps its caller once checked


Caller = Annotated[TokenHolder, Depends(_caller)]
ProfilePath = Annotated[str, Path(description="a registered profile's id")]
LeasePath = Annotated[str, Path(description="a lease id, as checkout answered it")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="the request's command id: a resent request returns the first answer "
        "and appends nothing",
    ),
]
