"""The review console: pages for people under ``/console``. A reviewer signs in with the token
``custody access token NAME --role reviewer`` printed for them, sees the profiles waiting for a
verdict, opens one (why it is blocked, the last run's steps, final URL and screenshot, its
timeline) and returns it, keeps it quarantined or disables it, with a note.

What it guarantees:

- The reviewer is the token's actor, never a form's field; only a reviewer's token signs in.
- The cookie carries a console session, never the token (rev45: a browser sends a cookie to
  every port of the host, and another server there received the reviewer's token, which then
  acted on the JSON API). A session lives in the store (``ledger.access.start_session``), so
  every replica takes it; every page and action asks the store again, and it ends at sign-out
  (for every replica), after ``SESSION_SECONDS`` on the store's clock, or when its token is
  revoked. The API takes no session as a bearer token.
- Every verdict is the ledger's ``Review`` command, written by the service's writer: one
  event per action, and the ledger's own sentence on the page when it refuses.
- A form is accepted only from the console's own origin (``Origin``, else ``Referer``), with
  the session's form token (derived from the session, not the token); the cookie is HttpOnly
  and SameSite=Strict.
- Nothing is fetched from elsewhere, no script runs (the Content-Security-Policy allows none),
  and every text is escaped by the templates (Jinja2's autoescape).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.exceptions import HTTPException as AnyHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match, Route

from ledger import InvalidInput, Ledger, LedgerError, Review, Role
from ledger.access import TokenHolder, end_session, session_holder, start_session
from ledger.rules import MAX_NAME, one_part, shown
from service import _console_reads as reads
from service._auth import MAX_TOKEN_LENGTH, Refused, Unauthorised, require
from service._bodies import (
    JsonRequest,
    SegmentRoute,
    _no_body,
    _query_read_one_way,
    declared,
    gone,
)
from service._errors import named, problem_of

if TYPE_CHECKING:
    from service._service import Service

COOKIE = "custody_console"
SESSION_SECONDS = 8 * 3600
FORM_MAX_BYTES = 16 * 1024
FORM_MAX_FIELDS = 20
FORM_TYPE = "application/x-www-form-urlencoded"  # what a page's form is sent as
# The fields each form takes: any other is refused, never left unread (rev41: ``extra=1``
# beside a verdict was ignored and the verdict recorded, where the JSON API refuses the key).
SIGN_IN_FIELDS = frozenset({"token"})
SIGN_OUT_FIELDS = frozenset({"csrf"})
VERDICT_FIELDS = frozenset({"csrf", "expected_version", "decision", "note"})
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# What a page shows where nothing was recorded (no step, no URL, no screenshot): marked up
# apart from any text, in words holding a space, which ``one_part`` quotes in any recorded
# text (``_part``), so no worker's text reads as it (rev45: a step or URL "none" or "none
# recorded" read as none).
NOTHING = Markup('<em class="nothing">none recorded</em>')
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Kept:
    """What a refused verdict form held, drawn into the form again so that the reviewer's text
    is not lost (rev41: a note the ledger refused as too long came back as an empty field).
    ``note`` is shown as typed (``_Typed``): it is the reviewer's own text, and sent again.
    ``version`` is the one the form's page showed: once the profile has moved on from it, the
    decision is not drawn again, to be made anew on the page as the profile now stands."""

    decision: str = ""
    note: str = ""
    version: str = ""


@dataclass(frozen=True)
class Session:
    """A signed-in reviewer, their session's secret (the cookie's value), and the form token
    their pages' forms carry."""

    who: TokenHolder
    secret: str
    csrf: str


Act = Callable[[Session], Awaitable[Response]]


def form_token(session: str) -> str:
    """The form token a session's forms carry: derived from the session's secret, so a page
    of another site (which cannot read the cookie) cannot forge it, any replica can check it,
    and it ends with the session."""
    return hashlib.sha256(f"custody console form\n{session}".encode()).hexdigest()


class Console:
    """The console's pages on one service: its templates, and the session every page and
    action is judged under."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.templates = Environment(
            loader=PackageLoader("service", "templates"),
            autoescape=True,  # the guard against a worker's text becoming markup
            undefined=StrictUndefined,
            finalize=_visible,  # a worker's bidi override must not reorder what the page shows
        )
        self.templates.filters["when"] = _when
        self.templates.filters["age"] = _age
        self.templates.filters["part"] = _part
        self.templates.globals["nothing"] = NOTHING

    async def reviewer(self, token: str | None) -> TokenHolder:
        """Who the token is: ``Unauthorised`` (none, unknown, revoked) or ``Refused`` (a role
        that may not review)."""
        holder = await self.service.tokens.caller(f"Bearer {token or ''}")
        require(holder, Role.REVIEWER)
        return holder

    async def session(self, secret: str | None) -> Session:
        """The live session the cookie names, read from the store (never remembered: a
        sign-out on another replica ends it here too); ``Unauthorised`` when there is none."""
        if not secret or len(secret) > MAX_TOKEN_LENGTH:
            raise Unauthorised("no console session: sign in")
        holder = await self.service.readers.run(lambda ledger: session_holder(ledger, secret))
        if holder is None:
            raise Unauthorised("the console session has ended: sign in again")
        require(holder, Role.REVIEWER)
        return Session(holder, secret, form_token(secret))

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("who", None)
        context.setdefault("csrf", "")
        said = context.get("said")
        # A refusal's sentence: an error line, its values quoted already (``_ErrorLine``).
        context["said"] = None if said is None else _ErrorLine(said)
        html = self.templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def refusal(self, status: int, said: str, session: Session | None = None) -> Response:
        back = "/console/queue" if session else "/console/sign-in"
        return self.page(
            "refused.html", status, title="Refused" if status < 500 else "Not done", said=said,
            back=back, who=session and session.who, csrf=session.csrf if session else "",
        )  # fmt: skip

    def refused(self, error: LedgerError | Refused, session: Session | None = None) -> Response:
        """The refusal page for ``error``: the status, sentence and headers (a 503's
        ``Retry-After``) the API answers it with, on a page with the console's own headers."""
        status, problem, headers = problem_of(error)
        answer = self.refusal(status, problem.message, session)
        answer.headers.update(headers)
        return answer

    async def signed_in(
        self, request: Request, act: Act, *, form: frozenset[str] | None = None
    ) -> Response:
        """``act`` for the session's reviewer; a form (``form``: the fields it takes) must also
        come from this origin with the session's form token, and hold no other field. No
        session: to the sign-in page. A refusal: its page, with the sentence of whoever
        refused (the ledger's, for a command)."""
        if form is not None and not same_origin(request):
            return self.refusal(403, "a form is accepted only from the console's own pages")
        try:
            session = await self.session(request.cookies.get(COOKIE))
        except Unauthorised:
            return _secured(RedirectResponse("/console/sign-in", status_code=303))
        except (LedgerError, Refused) as error:
            # A role that may not review (403); the store out of reach while the token is
            # looked up (503: rev38, it escaped to the API's JSON, without the page's CSP).
            return self.refused(error)
        try:
            if form is not None:
                said = (await read_form(request, form)).get("csrf", "")
                if not hmac.compare_digest(said.encode(), session.csrf.encode()):
                    msg = "the form's token is not this session's: reload the page"
                    return self.refusal(403, msg, session)
            return await act(session)
        except (LedgerError, Refused) as error:
            return self.refused(error, session)

    async def profile(
        self,
        session: Session,
        profile_id: str,
        *,
        said: str | None = None,
        status: int = 200,
        kept: Kept | None = None,
    ) -> Response:
        """The profile's page; ``said`` is a refusal to show above it, ``kept`` what the refused
        verdict form held, drawn into the form again."""
        page = await self.service.readers.run(lambda ledger: reads.profile_page(ledger, profile_id))
        if kept is not None and kept.version != str(page.version):
            kept = replace(kept, decision="")
        return self.page(
            "profile.html", status, title=profile_id, page=page, who=session.who,
            csrf=session.csrf, said=said, kept=kept or Kept(), note_max=MAX_NAME,
        )  # fmt: skip


def page_route(console: Console) -> type[SegmentRoute]:
    """The console's routes, each refusing on its refusal page (422) what it would not read:
    any query parameter (no page takes one), and a body sent with a GET, as the API refuses
    them (rev38: ``/console/queue?x=1`` and a GET with a body were answered as if not sent)."""

    class PageRoute(SegmentRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handle = super().get_route_handler()
            takes_body = "POST" in (self.methods or set())

            async def handled(request: Request) -> Response:
                try:
                    _query_read_one_way(request.scope["query_string"], frozenset())
                    if not takes_body:
                        await _no_body(JsonRequest(request.scope, request.receive))
                except InvalidInput as refused:
                    return console.refused(refused)
                except HTTPException as large:  # a body past what any command takes
                    return console.refusal(large.status_code, str(large.detail))
                return await handle(request)

            return handled

    return PageRoute


def same_origin(request: Request) -> bool:
    """Whether a form was posted from this origin: its ``Origin`` header (every browser sends
    one on a POST), else its ``Referer``'s origin, must be the console's own."""
    said = request.headers.get("origin")
    if said is None or said == "null":
        referer = urlsplit(request.headers.get("referer", ""))
        said = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    return said is not None and hmac.compare_digest(said.lower(), own.lower())


async def read_form(request: Request, takes: frozenset[str]) -> dict[str, str]:
    """An urlencoded form's fields, each given once, each one of those it ``takes``;
    ``InvalidInput`` naming ``Content-Type`` for a body sent as another type than
    ``FORM_TYPE`` (the API's rule for a body's type, ``declared``: rev45, a verdict sent as
    ``application/json`` was read as a form and recorded), past ``FORM_MAX_BYTES`` or
    ``FORM_MAX_FIELDS``, for text that is not UTF-8, for a field given twice (rev38:
    ``decision=return&...&decision=disable`` recorded ``return``, where the JSON API refuses
    a key given twice, and another reader of the form may take the last), or for a field the
    form does not take (rev41), naming it. Read once, then remembered."""
    known: dict[str, str] | None = getattr(request.state, "form", None)
    if known is not None:
        return known
    declared(request.headers.get("content-type"), FORM_TYPE)  # before a byte is read
    body = b""
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_MAX_BYTES:
                raise InvalidInput("form", f"must be at most {FORM_MAX_BYTES} bytes")
    except ClientDisconnect:  # a 500 and a traceback in the log, as the API's bodies were
        raise gone() from None
    # Counted as parse_qs counts them (every "&"), said apart from text that is no form (rev41:
    # a form of 21 fields was refused as "must be a UTF-8 urlencoded form").
    count = body.count(b"&") + 1 if body else 0
    if count > FORM_MAX_FIELDS:
        raise InvalidInput("form", f"must have at most {FORM_MAX_FIELDS} fields (got {count})")
    try:
        # errors="strict": a percent-escape of bytes that are not UTF-8 is refused, never
        # decoded with replacement into a text nobody sent (parse_qs' default).
        fields = parse_qs(
            body.decode(), keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS, errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise InvalidInput("form", "must be a UTF-8 urlencoded form") from error
    for name, values in fields.items():
        if len(values) > 1:
            raise InvalidInput(
                named(name), f"is given {len(values)} times in the form; give it once"
            )
    unknown = [named(name) for name in fields if name not in takes]
    if unknown:
        nor = f", nor is {', '.join(unknown[1:])}" if unknown[1:] else ""
        raise InvalidInput(unknown[0], f"is no field this form takes{nor}")
    form = {name: values[0] for name, values in fields.items()}
    request.state.form = form
    return form


def _secured(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def _whole(text: str) -> int | str:
    """A form's whole number as an int; any other text as it is, for the ledger's check to
    refuse naming its field (a form sends only text)."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else text


class _Typed(str):
    """A text shown as it was typed, its every character kept: a field's value drawn back into
    the form that sent it (``Kept``), which is sent again as it stands (escaping an invisible
    character, as a page shows a worker's text, would change the reviewer's note)."""


class _ErrorLine(str):
    """A refusal's sentence, as a page says it: its values quoted by ``repr`` already (the
    ledger's ``quoted``), so shown as the command line shows an error line, each backslash as
    it is (``ledger.rules.shown``'s ``repr_quoted``): a value's escape is not doubled (rev36)."""


def _visible(value: Any) -> Any:
    """A text with each invisible or control character (a bidi override, a zero-width space,
    a variation selector) shown as its escape, as the command line shows it to a person
    (``ledger.rules.shown``); a note's line breaks and tabs are kept."""
    if isinstance(value, _ErrorLine):
        return shown(value, repr_quoted=True)
    if isinstance(value, _Typed):
        return value
    if not isinstance(value, str) or shown(value) == value:
        return value
    # Each run between the breaks as a whole: a combining mark is shown on its letter, never
    # escaped as if it stood alone (rev27: a Hindi note read as escapes, one letter at a time).
    return "".join(part if part in ("\n", "\t") else shown(part) for part in _BREAKS.split(value))


_BREAKS = re.compile("([\n\t])")


def _part(value: str | None) -> str:
    """A recorded text (a worker's step, URL, run id; an account id) as a page's line shows
    it, as ``custody why`` prints it: ``one_part``'s, a text holding a space, a quote, ``;``
    or ``,`` its JSON string, so that none reads as more parts (rev45: a run id ``worker_09
    / run_7`` read as a worker and a run on the ``worker / run / task`` line) nor as
    ``NOTHING``, which stands where none was recorded (an empty text, as ``why``'s ``-``)."""
    return one_part(value) if value else NOTHING


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "—"
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours < 48 else f"{hours // 24} days"


def install(app: FastAPI, service: Service) -> None:
    """The console's routes under ``/console`` (left out of the OpenAPI document: they are
    pages for people, not resources for programs)."""
    console = Console(service)
    # Its ids routed as one segment each, as the API's: a %2F in one is refused as bad input.
    router = APIRouter(prefix="/console", include_in_schema=False, route_class=page_route(console))
    stylesheet = (files("service") / "templates" / "console.css").read_bytes()

    @router.get("")
    @router.get("/")  # the console's address as a person may type it (no slash redirects)
    async def home() -> Response:
        return _secured(RedirectResponse("/console/queue", status_code=303))

    @router.get("/console.css")
    async def style() -> Response:
        return _secured(Response(stylesheet, media_type="text/css"))

    @router.get("/sign-in")
    async def sign_in_page() -> Response:
        return console.page("sign_in.html", title="Sign in")

    @router.post("/sign-in")
    async def sign_in(request: Request) -> Response:
        if not same_origin(request):
            return console.refusal(403, "a form is accepted only from the console's own pages")
        try:
            token = (await read_form(request, SIGN_IN_FIELDS)).get("token", "").strip()
            await console.reviewer(token)
            started = await service.readers.run(
                lambda ledger: start_session(ledger, token, SESSION_SECONDS)
            )
            if started is None:  # revoked since the token cache read it
                raise Unauthorised("the token is unknown or revoked")
            earlier = request.cookies.get(COOKIE)
            if earlier:  # signed in anew: the session before ends (review 261: it lived 8 h)
                await service.readers.run(lambda ledger: end_session(ledger, earlier))
        except (Unauthorised, InvalidInput) as error:
            # A form the page never sends (a field unknown or given twice) is bad input (422),
            # as the API answers it; a token that is no reviewer's, 401.
            status = 422 if isinstance(error, InvalidInput) else 401
            return console.page("sign_in.html", status, title="Sign in", said=str(error))
        except (LedgerError, Refused) as error:  # a role that may not review; the store down
            return console.refused(error)
        signed = _secured(RedirectResponse("/console/queue", status_code=303))
        # The session, never the token: a browser sends the cookie to every port of this host.
        signed.set_cookie(
            COOKIE, started.session, max_age=SESSION_SECONDS, path="/console", httponly=True,
            samesite="strict", secure=request.url.scheme == "https",
        )  # fmt: skip
        return signed

    @router.post("/sign-out")
    async def sign_out(request: Request) -> Response:
        async def out(session: Session) -> Response:
            # Ended in the store: the cookie's value, kept or copied, signs in nowhere again.
            await service.readers.run(lambda ledger: end_session(ledger, session.secret))
            gone = _secured(RedirectResponse("/console/sign-in", status_code=303))
            gone.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
            return gone

        return await console.signed_in(request, out, form=SIGN_OUT_FIELDS)

    @router.get("/queue")
    async def queue(request: Request) -> Response:
        async def show(session: Session) -> Response:
            waiting = await service.readers.run(reads.queue)
            return console.page("queue.html", title="Queue", queue=waiting, who=session.who,
                                csrf=session.csrf)  # fmt: skip

        return await console.signed_in(request, show)

    @router.get("/profiles/{profile_id}")
    async def profile(request: Request, profile_id: str) -> Response:
        return await console.signed_in(request, lambda s: console.profile(s, profile_id))

    @router.get("/profiles/{profile_id}/screenshot")
    async def screenshot(request: Request, profile_id: str) -> Response:
        async def show(session: Session) -> Response:
            return await _screenshot(console, session, profile_id)

        return await console.signed_in(request, show)

    @router.post("/profiles/{profile_id}/review")
    async def review(request: Request, profile_id: str) -> Response:
        async def decide(session: Session) -> Response:
            form = await read_form(request, VERDICT_FIELDS)
            try:
                if not form.get("expected_version"):  # a page drawn before it had the field
                    said = "the form does not say which version its page showed: reload the page"
                    raise InvalidInput("expected_version", said)
                verdict = Review.model_validate(
                    {
                        "profile_id": profile_id,
                        "reviewer": session.who.actor,  # the token's, never the form's
                        "decision": form.get("decision", ""),
                        "note": form.get("note", ""),
                        # The version the page showed: a verdict on a profile that moved on
                        # since (another verdict, another run) is refused, never applied.
                        "expected_version": _whole(form.get("expected_version", "")),
                    }
                )
                browser = await service.browser_here(profile_id)
                await service.write(verdict.model_copy(update={"browser": browser}))
            except (LedgerError, Refused) as refused:
                status, problem, _ = problem_of(refused)
                # The form drawn again as it was sent (rev41: the reviewer's note was lost).
                kept = Kept(
                    decision=form.get("decision", ""),
                    note=_Typed(form.get("note", "")),
                    version=form.get("expected_version", ""),
                )
                return await console.profile(session, profile_id, said=problem.message,
                                             status=status, kept=kept)  # fmt: skip
            done = f"/console/profiles/{quote(profile_id, safe='')}"
            return _secured(RedirectResponse(done, status_code=303))

        return await console.signed_in(request, decide, form=VERDICT_FIELDS)

    app.include_router(router)
    _answered_as_pages(app, console, router)


def _answered_as_pages(app: FastAPI, console: Console, router: APIRouter) -> None:
    """Every HTTP error under ``/console`` (an address no page has, 404; a method a page does
    not take, 405 with its ``Allow``; a body cut off) answered on the console's refusal page,
    with its headers (the CSP, ``X-Frame-Options``, ``Cache-Control: no-store``), never the
    API's JSON: rev45, ``/console/queue/``, ``GET /console/profiles/p1/review`` and ``HEAD
    /console/queue`` were JSON without them. Any other path: the API's answer. A 405's
    ``Allow`` names every method the page's address takes, over the console's routes (the
    API's ``allowed`` sees no route inside an included router: ``PUT /console/sign-in`` named
    ``GET`` alone)."""
    api = app.exception_handlers[AnyHTTPException]

    async def answered(request: Request, error: Exception) -> Response:
        sent = api(request, error)
        json = await sent if isinstance(sent, Awaitable) else sent
        path = request.scope["path"]
        if path != "/console" and not path.startswith("/console/"):
            return json
        assert isinstance(error, AnyHTTPException)
        allow = json.headers.get("allow")
        if allow is not None:
            methods = {
                method
                for route in router.routes
                if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE
                for method in route.methods or ()
            }
            allow = ", ".join(sorted(methods))
        said = str(error.detail)
        if error.status_code == 404:
            said = "the console has no page at this address"
        elif error.status_code == 405 and allow:
            said = f"this page is not asked for with {named(request.method)}: it takes {allow}"
        page = console.refusal(error.status_code, said)
        if allow:
            page.headers["Allow"] = allow
        return page

    app.add_exception_handler(AnyHTTPException, answered)


async def _screenshot(console: Console, session: Session, profile_id: str) -> Response:
    """The last run's screenshot, when the service may show it; else 404 saying why."""

    def find(ledger: Ledger) -> reads.Evidence | None:
        view = ledger.view(profile_id)
        lease = view.lease or view.last_lease
        return None if lease is None else reads.last_evidence(ledger, profile_id, lease.lease_id)

    evidence = await console.service.readers.run(find)
    if evidence is None or evidence.screenshot is None:
        return console.refusal(404, "the profile's last run filed no screenshot", session)
    path = evidence.screenshot
    problem, content, media = await asyncio.to_thread(
        reads.screenshot_problem, path, evidence.sha256
    )
    if problem is not None:
        return console.refusal(404, f"the screenshot was at {path}; {problem}", session)
    return _secured(Response(content, media_type=media))
