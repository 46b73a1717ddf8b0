"""Errors as the command line has them: one JSON body with a code a program can act on and the
ledger's own sentence for a person. 422 bad input naming the field, 404 an unknown profile,
409 a denied checkout (with the denial) or a refused action, 410 a lost lease, 401 no valid
token, 403 a role that may not act, 503 the store unavailable (with ``Retry-After``), 500 a
damaged store (a read model, an event no read can decode) naming the damage. Never a stack
trace in a body: anything unforeseen is a 500 whose body says to read the log."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from ledger import (
    CheckoutDenied,
    Denial,
    Forbidden,
    InvalidInput,
    LeaseLost,
    LedgerError,
    NotAllowed,
    ReadModelDamaged,
    StoreUnavailable,
    UnknownProfile,
    UnreadableEvent,
)
from ledger.rules import quoted, shown
from service._auth import Refused, Unauthorised

log = logging.getLogger("custody.service")

RETRY_AFTER_SECONDS = 2
# An Idempotency-Key: printable ASCII without spaces, as long as a UUID or a little more.
_KEY = re.compile(r"[!-~]{1,128}")


class Problem(BaseModel):
    """Every error's body: ``error`` is a code, ``message`` the sentence for a person."""

    error: str
    message: str
    field: str | None = None
    lease_id: str | None = None
    denial: Denial | None = None


_DESCRIBED = {
    401: "no valid bearer token",
    403: "the token's role may not do this, or the lease is another worker's",
    404: "no such profile",
    409: "denied: the checkout's denial, or the profile's state forbids the action",
    410: "the lease is lost: stop working",
    413: "the body is larger than any command takes (1 MiB)",
    422: "bad input, naming the field",
    503: "the store is unavailable; retry after Retry-After seconds",
}


# A name a caller sent (a query parameter's, a body's key) a refusal names as it is: at most
# this many characters of visible ASCII.
_PLAIN_NAME = re.compile(r"[!-~]{1,40}")


def named(name: str) -> str:
    """A name the caller sent (a query parameter, a body's key, a charset) as a refusal names
    it, in its ``field`` and its message alike: a short name of visible ASCII as it is
    (``account``); any other quoted as the ledger quotes what it refuses (``quoted_name``).
    rev35: a body's unknown key of 200,000 characters was answered whole, twice (400 KB), and
    one holding ``\x1b[2J`` cleared the terminal that printed it."""
    return name if _PLAIN_NAME.fullmatch(name) else quoted_name(name)


def quoted_name(name: str) -> str:
    """A name the caller sent as a refusal's sentence quotes it: as the ledger quotes what it
    refuses (``ledger.rules.quoted``: its repr, cut to a short prefix, then its length), each
    character a terminal would act on or show nothing for as its escape."""
    return shown(quoted(name), repr_quoted=True)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Problem, "description": _DESCRIBED[code]} for code in codes}


def not_of_type(said: str | None, media: str = "application/json") -> InvalidInput:
    """The refusal of a body sent as another type than ``media`` (``said``), or as none: naming
    ``Content-Type`` and what was sent. ``media``: the API's ``application/json``, or the
    console's forms' ``application/x-www-form-urlencoded``."""
    sent = "the request sent none" if said is None else f"got {said[:80]!r}"
    return InvalidInput("Content-Type", f"must be {media} ({sent})")


def check_key(key: str) -> None:
    if not _KEY.fullmatch(key):
        raise InvalidInput("Idempotency-Key", "must be 1-128 printable ASCII characters, no spaces")


def key_refused(refused: InvalidInput, command_id: str, key: str) -> InvalidInput:
    """The ledger's refusal of the command id derived from an Idempotency-Key, as the caller
    knows it: naming the header and the key it sent, never the service's digest."""
    problem = refused.problem.replace(repr(command_id), repr(key))
    return InvalidInput("Idempotency-Key", problem.replace("send a new id", "send a new key"))


def _answer(status: int, problem: Problem, **headers: str) -> JSONResponse:
    body = problem.model_dump(mode="json", exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers or None)


def problem_of(error: Exception) -> tuple[int, Problem, dict[str, str]]:
    """The status, body and headers an error is answered with; its message as a person is
    shown text (rev35 review: an account id refused was answered with its invisible
    characters raw, as the command line never prints them)."""
    # One line, as the command line's error lines are (``custody._text.one_line``): a
    # caller's line breaks joined by a space, not shown as escapes (rev35 review).
    joined = " ".join(filter(None, (part.strip() for part in str(error).splitlines())))
    said = shown(joined, repr_quoted=True)
    if isinstance(error, Unauthorised):
        return 401, Problem(error="unauthorised", message=said), {"WWW-Authenticate": "Bearer"}
    if isinstance(error, Refused | Forbidden):
        return 403, Problem(error="forbidden", message=said), {}
    if isinstance(error, UnknownProfile):
        return 404, Problem(error="unknown_profile", message=said, field="profile_id"), {}
    if isinstance(error, InvalidInput):
        return 422, Problem(error="invalid_input", message=said, field=error.field), {}
    if isinstance(error, CheckoutDenied):
        problem = Problem(error="checkout_denied", message=said, denial=error.denial)
        return 409, problem, {}
    if isinstance(error, LeaseLost):
        return 410, Problem(error="lease_lost", message=said, lease_id=error.lease_id), {}
    if isinstance(error, StoreUnavailable):
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return 503, Problem(error="store_unavailable", message=said), retry
    if isinstance(error, ReadModelDamaged | UnreadableEvent):
        # The store is damaged, not the request refused: nothing the caller can change.
        return 500, Problem(error=_code(error), message=said), {}
    if isinstance(error, NotAllowed):
        return 409, Problem(error="not_allowed", message=said), {}
    if isinstance(error, LedgerError):
        return 409, Problem(error=_code(error), message=said), {}
    log.exception("unforeseen failure", exc_info=error)
    return 500, Problem(error="internal", message="the service failed; its log says why"), {}


def _code(error: LedgerError) -> str:
    """An error's code in a body: its class's name in snake case."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def allowed(request: Request) -> list[str]:
    """Every method the request's path takes, over all the routes it matches (a path such as
    ``/v1/profiles`` has a route for GET and another for POST)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    async def known(_: Request, error: Exception) -> JSONResponse:
        status, problem, headers = problem_of(error)
        return _answer(status, problem, **headers)

    async def malformed(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {}
        loc = [str(p) for p in first.get("loc", ())]
        # pydantic's first part says where the value was (the body, the query, the path); the
        # rest is the caller's (rev35 review: a body's unknown key "query" was named "body").
        where = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
        # Each part as a refusal names what a caller sent: an unknown key is the caller's text.
        field = ".".join(named(part) for part in where) or "body"
        text = str(first.get("msg", "malformed")).removeprefix("Value error, ")
        if first.get("type") == "string_unicode":  # the ledger's words
            text = "must be valid Unicode text (it holds a lone surrogate: half a character)"
        elif first.get("type") == "json_invalid":  # service._bodies.read_json says why
            field, text = "body", str(first.get("ctx", {}).get("error", "is not valid JSON"))
        elif not where and isinstance(first.get("input"), bytes):
            # FastAPI reads a body as JSON only when its Content-Type says JSON.
            refused = not_of_type(request.headers.get("content-type"))
            field, text = refused.field, refused.problem
        elif first.get("type") == "extra_forbidden":
            text = "is no field this body takes"
        problem = Problem(error="invalid_input", message=f"invalid {field}: {text}", field=field)
        return _answer(422, problem)

    async def http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        problem = Problem(error="http_" + str(error.status_code), message=str(error.detail))
        headers = dict(error.headers or {})
        if error.status_code == 405:  # Starlette names the first matching route's methods
            said = {m.strip() for m in headers.get("Allow", "").split(",") if m.strip()}
            # Kept, and joined by the others': a router FastAPI includes (the console's) is no
            # Route to look into (rev26: its 405s answered an empty Allow).
            headers["Allow"] = ", ".join(sorted(said | set(allowed(request))))
        return _answer(error.status_code, problem, **headers)

    app.add_exception_handler(RequestValidationError, malformed)
    app.add_exception_handler(HTTPException, http)
    for kind in (LedgerError, Unauthorised, Refused):
        app.add_exception_handler(kind, known)

    async def unforeseen(_: Request, error: Exception) -> JSONResponse:
        # Starlette raises an unforeseen error again once it is answered, and uvicorn then
        # closes the connection: the answer says so, or a client that keeps connections alive
        # sends its next request on the closed one and fails.
        status, problem, headers = problem_of(error)
        return _answer(status, problem, **headers, Connection="close")

    app.add_exception_handler(Exception, unforeseen)  # logged, answered without a trace
