"""The HTTP resources: each builds a ledger command (its body checked at the same door as the
CLI's) or runs a read, and answers with the ledger's own models and sentences.

Writes queue on the writer thread (group commit, ``service._writer``); reads run on the
reader threads (``service._readers``). The actor is the bearer token's, never the body's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ledger import (
    Availability,
    Checkout,
    Command,
    Disable,
    Enable,
    Extend,
    ForceRelease,
    Heartbeat,
    InvalidInput,
    Lease,
    LeaseCheck,
    ProfileRecord,
    Quarantine,
    RegisterProfile,
    Release,
    ReleaseResult,
    Review,
    Role,
    Sweep,
    SweepReport,
)
from ledger.access import TokenHolder
from service import _errors, _metrics
from service._auth import require
from service._bodies import (
    CheckoutBody,
    ExtendBody,
    HeartbeatBody,
    JsonRoute,
    OperatorBody,
    RegisterBody,
    ReleaseBody,
    ReviewBody,
)
from service._readers import Noted
from service._service import Service
from service._types import Caller, IdempotencyKey, LeasePath, ProfilePath

log = logging.getLogger("custody.service")
Operator = type[ForceRelease] | type[Quarantine] | type[Disable] | type[Enable]
Lease_ = type[Heartbeat] | type[Extend] | type[Release]
T = TypeVar("T")

# How long a lease watch may hold a request open, and how often it looks.
# Below the 30 s a stop grants requests in flight (custody serve's graceful shutdown); and
# custody serve tells the service when a stop begins (``Service.stopping``), at which every
# watch answers at once.
MAX_WAIT_SECONDS = 25.0
WATCH_INTERVAL_SECONDS = 0.25


def answered(model: BaseModel, status: int = 200) -> Response:
    """The answer as JSON, serialised once by the model itself: FastAPI would validate the
    returned model again against ``response_model`` (which stays, for the OpenAPI
    document), a cost every heartbeat would pay."""
    return Response(model.model_dump_json(), status_code=status, media_type="application/json")


def within(model: BaseModel, schema: type[BaseModel]) -> BaseModel:
    """``model`` as its route's response model says, with no field the model does not have:
    a resent release's ``resent`` mark (``ResentReleaseResult``) is said by its message here,
    as a resent force-release's is (the schema forbids other fields)."""
    if type(model) is schema:
        return model
    return schema.model_validate(model.model_dump(include=set(schema.model_fields)))


def command_id(caller: TokenHolder, key: str | None) -> str | None:
    """The command id an Idempotency-Key means: one actor's key never meets another's."""
    if key is None:
        return None
    _errors.check_key(key)
    digest = hashlib.sha256(f"{caller.actor}\n{key}".encode()).hexdigest()[:32]
    return f"http-{digest}"


def create_app(store_url: str | None = None) -> FastAPI:
    """The service on the store at ``store_url`` (None: ``$CUSTODY_STORE``, else
    ``./custody.db``), which must exist (``custody init``)."""
    service = Service(store_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        service.writer.start()
        try:
            yield
        finally:  # uvicorn stops taking requests first (SIGTERM), then this drains the writer
            await asyncio.to_thread(service.writer.stop)
            service.readers.close()

    app = FastAPI(
        title="custody lease service",
        version="1",
        lifespan=lifespan,
        description="Leases on browser profiles: checkout, heartbeat, release, review.",
        # No Swagger UI or ReDoc: their pages run scripts from a CDN, without a CSP, on the
        # console's origin, where a script may read a console page and post its form.
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below as a resource, under the API's rules for a request
        # A path with a trailing slash names no resource: 404 JSON, as the errors table says.
        # Starlette's default answered it 307 to the path without it, its Location built from
        # the Host header (Host: evil.example sent a sweep there), and a client that followed
        # it resent the command (rev38: `curl -L -X POST .../v1/sweep/` swept).
        redirect_slashes=False,
    )
    app.state.service = service
    app.router.route_class = JsonRoute  # set before the first route, so every route has it
    _errors.install(app)
    app.add_middleware(Noted)
    metrics = _metrics.Metrics(service)
    metrics.install(app)

    async def write(command: Command[T], key: str | None) -> T:
        """The command written; a refusal of its command id names the Idempotency-Key the
        caller sent, not the id the service derived from it."""
        try:
            return await service.write(command)
        except InvalidInput as refused:
            if key is None or command.command_id is None or refused.field != "command_id":
                raise
            raise _errors.key_refused(refused, command.command_id, key) from refused

    # -- the worker's lease -------------------------------------------------------------

    @app.post(
        "/v1/profiles/{profile_id}/checkout",
        status_code=201,
        response_model=Lease,
        responses=_errors.responses(401, 403, 404, 409, 410, 413, 422, 503),
        tags=["leases"],
    )
    async def checkout(
        profile_id: ProfilePath, body: CheckoutBody, who: Caller, key: IdempotencyKey = None
    ) -> Response:
        """Check out a profile for the calling worker: the lease, or 409 with why not."""
        require(who, Role.WORKER)
        command = Checkout(
            profile_id=profile_id,
            worker_id=who.actor,
            command_id=command_id(who, key),
            **body.model_dump(exclude_unset=True),
        )
        lease = await write(command, key)
        service.remember(lease.lease_id, lease.worker_id)
        return answered(lease, 201)

    def lease_action(
        path: str, body_type: type[Any], make: Lease_, answer: type[Any], doc: str
    ) -> None:
        """``POST /v1/leases/{lease_id}/PATH``: a worker's command under its own lease."""

        async def act(
            lease_id: LeasePath, body: Any, who: Caller, key: IdempotencyKey = None
        ) -> Response:
            require(who, Role.WORKER)
            fields = body.model_dump(exclude_unset=True)
            # A malformed lease id is bad input before any read. ``worker_id``: the write
            # refuses another worker's lease itself; ``own_lease`` only answers sooner.
            command: Command[Any] = make(
                lease_id=lease_id, command_id=command_id(who, key), worker_id=who.actor, **fields
            )
            await service.own_lease(who, lease_id)
            return answered(within(await write(command, key), answer))

        act.__annotations__["body"] = body_type  # what FastAPI reads the body as
        act.__name__ = path
        act.__doc__ = doc
        app.post(
            f"/v1/leases/{{lease_id}}/{path}",
            response_model=answer,
            responses=_errors.responses(401, 403, 404, 410, 413, 422, 503),
            tags=["leases"],
        )(act)

    lease_action(
        "heartbeat", HeartbeatBody, Heartbeat, Lease,
        "Renew the lease and record the step and URL; 410 when the lease is lost.",
    )  # fmt: skip
    lease_action("extend", ExtendBody, Extend, Lease, "Set a new renewal deadline for the lease.")
    lease_action(
        "release", ReleaseBody, Release, ReleaseResult,
        "End the lease with its outcome and evidence; the answer says where the profile now "
        "stands.",
    )  # fmt: skip

    @app.get(
        "/v1/leases/{lease_id}",
        response_model=LeaseCheck,
        responses=_errors.responses(401, 403, 404, 422, 503),
        tags=["leases"],
    )
    async def watch(
        request: Request,
        lease_id: LeasePath,
        who: Caller,
        wait: Annotated[
            float,
            Query(
                ge=0,
                le=MAX_WAIT_SECONDS,
                allow_inf_nan=False,  # rev32: nan was refused as "should be <= 25"
                description="seconds to hold the request while the lease stays live (a long "
                "poll): it answers as soon as the lease is revoked, ended or marked stale",
            ),
        ] = 0,
    ) -> LeaseCheck:
        """Whether the lease is still live; with ``wait``, a long poll that answers the moment
        it is not (a force-release, a quarantine, a disable, a sweep)."""
        check = await service.readers.run(lambda ledger: ledger.check_lease(lease_id))
        await service.own_lease(who, lease_id)
        loop = asyncio.get_running_loop()
        until = loop.time() + wait
        while (
            check.live
            and loop.time() < until
            and not service.stopping.is_set()
            and not await request.is_disconnected()
        ):
            await asyncio.sleep(min(WATCH_INTERVAL_SECONDS, max(until - loop.time(), 0)))
            check = await service.readers.run(lambda ledger: ledger.check_lease(lease_id))
        return check

    # -- people's actions --------------------------------------------------------------

    @app.post(
        "/v1/profiles",
        status_code=201,
        response_model=ProfileRecord,
        responses=_errors.responses(401, 403, 409, 413, 422, 503),
        tags=["operators"],
    )
    async def register(
        body: RegisterBody, who: Caller, key: IdempotencyKey = None
    ) -> ProfileRecord:
        """Register a profile (operators)."""
        require(who, Role.OPERATOR)
        fields = body.model_dump(exclude_unset=True)
        return await write(
            RegisterProfile(actor=who.actor, command_id=command_id(who, key), **fields), key
        )

    @app.post(
        "/v1/profiles/{profile_id}/review",
        response_model=Availability,
        responses=_errors.responses(401, 403, 404, 409, 413, 422, 503),
        tags=["reviewers"],
    )
    async def review(
        profile_id: ProfilePath, body: ReviewBody, who: Caller, key: IdempotencyKey = None
    ) -> Availability:
        """A reviewer's verdict on a blocked profile: return it, keep it quarantined, or
        disable it, with a note."""
        require(who, Role.REVIEWER)
        fields = body.model_dump(exclude_unset=True)
        verdict = Review(
            profile_id=profile_id, reviewer=who.actor, command_id=command_id(who, key), **fields
        )
        # The browser on this host, as the reviewer's command observes it (a resend observes
        # afresh: it is left out of the command's fingerprint).
        observed = verdict.model_copy(update={"browser": await service.browser_here(profile_id)})
        return await write(observed, key)

    def operator_action(path: str, make: Operator, answer: type[Any], doc: str) -> None:
        async def act(
            profile_id: ProfilePath, body: OperatorBody, who: Caller, key: IdempotencyKey = None
        ) -> Any:
            require(who, Role.OPERATOR)
            return await write(
                make(
                    profile_id=profile_id,
                    actor=who.actor,
                    reason=body.reason,
                    command_id=command_id(who, key),
                ),
                key,
            )

        act.__doc__ = doc
        act.__name__ = path.replace("-", "_")
        app.post(
            f"/v1/profiles/{{profile_id}}/{path}",
            response_model=answer,
            responses=_errors.responses(401, 403, 404, 409, 413, 422, 503),
            tags=["operators"],
        )(act)

    operator_action("force-release", ForceRelease, ReleaseResult, "End the live lease now.")
    operator_action("quarantine", Quarantine, Availability, "Quarantine the profile.")
    operator_action("disable", Disable, Availability, "Take the profile out of the pool.")
    operator_action("enable", Enable, Availability, "Put a disabled profile back.")

    @app.post(
        "/v1/sweep",
        response_model=SweepReport,
        responses=_errors.responses(401, 403, 422, 503),
        tags=["schedulers"],
    )
    async def sweep(who: Caller, key: IdempotencyKey = None) -> SweepReport:
        """Mark every lease past its renewal deadline stale and settle its profile."""
        require(who, Role.SCHEDULER, Role.OPERATOR)
        return await write(Sweep(actor=who.actor, command_id=command_id(who, key)), key)

    # -- reads -------------------------------------------------------------------------

    from service import _console, _reads

    _reads.install(app, service)
    _console.install(app, service)

    @app.get("/healthz", tags=["service"], responses=_errors.responses(503))
    async def healthz(response: Response) -> dict[str, str]:
        """200 while the store answers; 503 when it does not."""
        await service.readers.run(lambda ledger: ledger.store.schema_version())
        response.headers["Cache-Control"] = "no-store"
        return {"status": "ok"}

    # A load balancer's probe may be a HEAD: it was 405, and the service marked down (rev25).
    # Left out of the OpenAPI document, which describes what a client calls.
    app.head("/healthz", include_in_schema=False)(healthz)

    # FastAPI's own /openapi.json skipped JsonRoute's checks: a body or ``?x=1`` was answered
    # 200 as if not sent (rev38), where every other GET refuses them.
    @app.api_route("/openapi.json", methods=["GET", "HEAD"], include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    return app
