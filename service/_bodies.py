"""The request bodies: each command's fields less those the service fills in (the profile or
lease from the path, the actor from the token, the command id from ``Idempotency-Key``).

Made from the command models themselves, so a field is declared once (``ledger``'s commands)
and the OpenAPI schema says exactly what the ledger checks; the command built from a body is
checked again at the ledger's door (rules across fields, such as an expected failure's
reason).

A body is read by ``read_json`` (through ``JsonRoute``): JSON in UTF-8, each key once, or
bad input naming the body; never a text nobody sent, a key read two ways, or a 400 naming
nothing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, get_args
from urllib.parse import unquote_to_bytes

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, create_model
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import Scope

from ledger import (
    Checkout,
    Extend,
    ForceRelease,
    Heartbeat,
    InvalidInput,
    RegisterProfile,
    Release,
    Review,
)
from ledger.rules import plain_number
from service._errors import named, not_of_type, quoted_name
from service._types import _bearer, _caller

# Filled in by the service, never by a caller.
_FILLED = frozenset(
    {"command_id", "profile_id", "lease_id", "worker_id", "actor", "reviewer", "browser"}
)


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def body_of(
    command: type[BaseModel],
    name: str,
    *,
    keep: frozenset[str] = frozenset(),
    doc: str | None = None,
) -> Any:
    fields: dict[str, Any] = {
        field: (info.annotation, info)
        for field, info in command.model_fields.items()
        if field not in _FILLED or field in keep
    }
    return create_model(name, __base__=Body, __doc__=doc or command.__doc__, **fields)


CheckoutBody = body_of(Checkout, "CheckoutBody")
HeartbeatBody = body_of(Heartbeat, "HeartbeatBody")
ExtendBody = body_of(Extend, "ExtendBody")
ReleaseBody = body_of(Release, "ReleaseBody")
ReviewBody = body_of(Review, "ReviewBody")
RegisterBody = body_of(RegisterProfile, "RegisterBody", keep=frozenset({"profile_id"}))


# Every operator's command takes the same body: the reason, as the ledger checks it.
OperatorBody = body_of(
    ForceRelease, "OperatorBody", doc="Why an operator acts (recorded on the event)."
)


# The most keys one object of a body may hold. No command takes more than a dozen fields, none
# of them an object; pydantic builds one error for each key it does not know, and 100,000 of
# them in a body under the size limit held the event loop, every caller's heartbeat with it,
# for about a second a request (rev32).
MAX_KEYS = 64

# The longest number a body may hold. No field takes more than 18 digits (a fencing token);
# beyond this a number is refused as the body's fault before Python converts it (a conversion
# costs time quadratic in its length, and past 4,300 digits raises).
MAX_DIGITS = 100


class Unreadable(json.JSONDecodeError):
    """A body that is no JSON object the service reads; ``msg`` says why in a user's words.
    A ``JSONDecodeError``, because that is what FastAPI answers as bad input (with ``msg``);
    any other failure to read a body it answers 400, naming nothing."""

    def __init__(self, problem: str, text: str = "", position: int = 0) -> None:
        super().__init__(problem, text, position)


def read_json(body: bytes) -> Any:
    """The JSON text ``body`` holds, read as RFC 8259 has it: UTF-8 (a leading byte order
    mark ignored), each key of an object once. ``Unreadable`` otherwise, and for a number
    longer than ``MAX_DIGITS`` or nesting deeper than Python's recursion limit."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        where = f"byte 0x{body[error.start]:02x} at offset {error.start}"
        raise Unreadable(f"is not UTF-8 text ({where})") from None
    try:
        return json.loads(text, object_pairs_hook=_object, parse_int=_integer)
    except Unreadable:
        raise
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise Unreadable(f"is not valid JSON ({error.msg} at {where})", text, error.pos) from None
    except RecursionError:
        raise Unreadable("nests arrays or objects too deeply") from None


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are each given once: of a key given twice, neither is taken; and
    no more of them than ``MAX_KEYS``."""
    if len(pairs) > MAX_KEYS:
        raise Unreadable(
            f"holds an object of {len(pairs):,} keys (no command takes more than {MAX_KEYS})"
        )
    found = dict(pairs)
    if len(found) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Unreadable(f"gives the key {quoted_name(key)} more than once")
            seen.add(key)
    return found


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_DIGITS:
        count = len(digits.lstrip("-"))
        raise Unreadable(f"holds a number {count:,} digits long (no field takes one that long)")
    return int(digits)


# The largest body the service reads. The largest a command takes is a release whose every
# text is as long as the ledger allows, each character escaped as JSON's longest (a
# surrogate pair's twelve bytes): about 105 KB. Reading a larger one would only cost memory
# and the event loop's time (json.loads of 60 MB held every other caller for 4 s).
MAX_BODY_BYTES = 1024 * 1024


def _too_large() -> HTTPException:
    limit = f"{MAX_BODY_BYTES:,} bytes"
    return HTTPException(413, f"the body is larger than {limit}, more than any command takes")


def gone() -> HTTPException:
    """What a request whose caller hung up before sending all of its body is answered (no one
    reads it): 400, as FastAPI answers a checkout's body cut off so. Never an unforeseen
    failure: rev44, a GET declaring a body, sent two bytes of it and closed, was a 500 with a
    traceback in the log, no token needed."""
    return HTTPException(400, "the caller closed the connection before sending all of its body")


class JsonRequest(Request):
    """A request whose JSON body is read by ``read_json``, and read no further than
    ``MAX_BODY_BYTES`` (413 ``http_413`` past it: refused by its Content-Length before any
    byte is read, or as the bytes arrive)."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            declared = self.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise _too_large()
            chunks, size = [], 0
            try:
                async for chunk in self.stream():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        raise _too_large()
                    chunks.append(chunk)
            except ClientDisconnect:
                raise gone() from None
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            _utf8_declared(self.headers.get("content-type", ""))
            self._json = read_json(body)
        return self._json


def _utf8_declared(content_type: str) -> None:
    """``Unreadable`` for a body declared in another charset than UTF-8: JSON is UTF-8 (RFC
    8259), and a Latin-1 body's ``Ã©`` was read as ``é`` and stored, 201 (rev24)."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
            if charset not in ("utf-8", "utf8"):
                raise Unreadable(
                    f"declares the charset {quoted_name(charset)}: JSON is UTF-8, send it so"
                )


class SegmentRoute(APIRoute):
    """A route whose path parameters are each one segment of the path as sent: an id holding
    a ``/``, sent as ``%2F``, reaches its resource and is refused there as any malformed id
    is (``matches``). The console's pages are routed so too (rev33)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """The route's match on the path as sent, each parameter decoded after, where that path
        holds ``%2F``: the server decodes it before routing, so ``/v1/profiles/a%2Fb/checkout``
        matched no route and was a 404 naming nothing, where ``a%20b`` was 422 naming
        ``profile_id``; and ``/v1/profiles/p1%2Fwhy`` answered p1's ``/why`` (rev33). A path
        that names no resource stays 404. So too where the path is no UTF-8 once decoded: the
        server reads such bytes as U+FFFD, a character nobody sent (rev36: ``/console/profiles/
        %ff`` was refused quoting ``'\\ufffd'``); a parameter that is no UTF-8 is kept as it was
        sent (``a%ffb``), and refused as any malformed id is, quoting that."""
        raw: bytes = scope.get("raw_path") or b""
        if b"%" not in raw or (b"%2F" not in raw and b"%2f" not in raw and _utf8(raw)):
            return super().matches(scope)
        # custody serve sets no root_path: the path as sent is the path the routes match.
        match, child = super().matches({**scope, "path": raw.decode("latin-1"), "root_path": ""})
        if match is not Match.NONE:
            child["path_params"] = {k: _segment(v) for k, v in child["path_params"].items()}
        return match, child


def _utf8(raw: bytes) -> bool:
    try:
        unquote_to_bytes(raw).decode()
    except UnicodeDecodeError:
        return False
    return True


def _segment(sent: str) -> str:
    """A path segment as sent (its bytes read as Latin-1), percent-decoded; one that is no
    UTF-8 once decoded as it was sent, each byte outside visible ASCII percent-encoded."""
    raw = sent.encode("latin-1")
    if _utf8(raw):
        return unquote_to_bytes(raw).decode()
    return "".join(chr(b) if 0x20 < b < 0x7F else f"%{b:02X}" for b in raw)


class JsonRoute(SegmentRoute):
    """A resource whose JSON body is read by ``read_json`` (FastAPI's own reading takes a key
    given twice, the last winning, and answers a body it cannot read 400, naming nothing).
    A resource that needs a token checks it first: FastAPI reads and parses the body before
    it resolves any dependency, so a stranger's body (of any size) was read, and a bad one
    answered 422 instead of 401.

    A path parameter is one segment of the path as sent (``SegmentRoute``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        needs_token = _needs(self.dependant, _caller)
        takes = _queries(self.dependant)
        numbers = _numbers(self.dependant)
        takes_body = self.body_field is not None

        async def handled(request: Request) -> Response:
            _headers_once(request.scope["headers"])
            if needs_token:  # raises Unauthorised (401) before any byte of the body is read
                await _caller(request, await _bearer(request))
            _query_read_one_way(request.scope["query_string"], takes, numbers)
            reading = JsonRequest(request.scope, request.receive)
            if takes_body:
                json_declared(request.headers.get("content-type"))
            else:
                await _no_body(reading)
            return await handle(reading)

        return handled


# The headers a request gives once: which token, which key, which body type. Of two, Starlette
# reads the first and another server (or a proxy) may read the last (rev32: two Idempotency-Keys
# were taken as the first).
_ONCE = (b"authorization", b"idempotency-key", b"content-type")


def _headers_once(headers: list[tuple[bytes, bytes]]) -> None:
    given = Counter(key.lower() for key, _ in headers)
    for name in _ONCE:
        if given[name] > 1:
            said = name.decode().title()
            raise InvalidInput(said, f"is given {given[name]} times; send it once")


def _query_read_one_way(
    query: bytes, takes: frozenset[str], numbers: dict[str, bool] | None = None
) -> None:
    """A query whose every parameter is given once, is UTF-8 once decoded (``%ff`` is not), is
    one the resource takes (``takes``) and, if a number (``numbers``: whether it takes a
    fraction), one written plainly as the command line's are (``ledger.rules.plain_number``:
    rev44, ``?last=1_0``, ``+3``, `` 3`` and ``3.0`` were read as numbers the command line
    refuses; a fraction may have an exponent, as clients write one: ``?wait=1e-07``). Starlette
    takes the last of a parameter given twice (``?account=a&account=b`` read ``b``) and reads
    bytes that are no UTF-8 as U+FFFD, a text nobody sent (rev32); and a parameter no resource
    reads was ignored, so a misspelt filter (``?stat=stale``) answered every profile, ``POST
    /v1/sweep?dry_run=true`` swept for real and ``?wiat=20`` answered at once (rev35). Checked
    before anything is read or written."""
    if not query:
        return
    seen: dict[str, int] = {}
    for pair in query.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode()
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            sent = raw_name.decode("ascii", "replace")
            said = named(sent) if sent else "query"
            raise InvalidInput(said, "is not UTF-8 text once decoded") from None
        if name not in takes:
            said = f"takes {', '.join(sorted(takes))}" if takes else "takes no query parameters"
            raise InvalidInput(
                named(name), f"is no query parameter this resource takes (it {said})"
            )
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            raise InvalidInput(named(name), "is given more than once in the query; give it once")
        if not numbers or name not in numbers:
            continue
        fraction = numbers[name]
        if not plain_number(value, fraction=fraction, exponent=True):
            said = "perhaps with a fraction and an exponent" if fraction else "a whole number"
            problem = f"must be written in ASCII digits, {said} (got {quoted_name(value)})"
            raise InvalidInput(named(name), problem)


async def _no_body(request: JsonRequest) -> None:
    """Nothing, for a request that sends no body to a resource that takes none; else bad input
    naming the body: ``POST /v1/sweep`` with ``{"dry_run": true}``, or with ``{not json``,
    swept for real, 200, the body never read (rev35). A GET's body is refused too: it has no
    meaning in HTTP (RFC 9110, 9.3.1), and one read as a filter would answer everything."""
    body = await request.body()
    if body:
        raise InvalidInput("body", f"this resource takes no body; it was sent {len(body):,} bytes")


def _queries(dependant: Dependant) -> frozenset[str]:
    """The query parameters a resource reads, its dependencies' with its own."""
    own = frozenset(p.alias for p in dependant.query_params)
    return own.union(*(_queries(d) for d in dependant.dependencies))


def _numbers(dependant: Dependant) -> dict[str, bool]:
    """The query parameters a resource reads as numbers, its dependencies' with its own: each
    with whether it takes a fraction (a ``float``) or not (an ``int``)."""
    found: dict[str, bool] = {}
    for dependency in dependant.dependencies:
        found.update(_numbers(dependency))
    for param in dependant.query_params:
        kinds = {param.field_info.annotation, *get_args(param.field_info.annotation)}
        if float in kinds or int in kinds:
            found[param.alias] = float in kinds
    return found


def json_declared(content_type: str | None) -> None:
    """Nothing for a body sent as ``application/json`` (``declared``; a ``charset``, which
    ``JsonRequest.json`` then checks is UTF-8), or sent with no type (which FastAPI refuses,
    ``not_of_type``); else ``not_of_type``, naming ``Content-Type``, before a byte of the body
    is read. FastAPI reads any ``application/*+json`` as JSON, and ignores any parameter:
    rev44, ``application/evil+json`` and ``application/json;foo=bar`` were read as the
    command."""
    if content_type is not None:
        declared(content_type, "application/json")


def declared(content_type: str | None, media: str) -> None:
    """Nothing for a body whose ``Content-Type`` is ``media`` (in any case), a ``charset`` its
    only parameter; else ``not_of_type``, naming ``Content-Type`` and what was sent. The one
    rule for a body's type: the API's JSON bodies (``json_declared``) and the console's forms
    (``service._console.read_form``: rev45, a verdict sent as ``application/json`` or
    ``text/plain`` was read as a form and recorded)."""
    if content_type is not None:
        kind, *params = content_type.split(";")
        if kind.strip().lower() == media and not any(
            param.strip() and param.partition("=")[0].strip().lower() != "charset"
            for param in params
        ):
            return
    raise not_of_type(content_type, media)


def _needs(dependant: Dependant, call: Callable[..., Any]) -> bool:
    """Whether ``call`` is among the dependencies a resource resolves."""
    return any(d.call is call or _needs(d, call) for d in dependant.dependencies)
