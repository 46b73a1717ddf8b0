"""The reads: where profiles stand, why one is blocked, who used it, its timeline and its
state at a moment, the fleet. Any valid token may read; every answer is the same model the
command line prints with ``--json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, Query

from ledger import InvalidInput, Ledger, ProfileRecord, ProfileState
from projections import Explanation, StatusRow, TimelineRow, Usage
from reports import Fleet, Replay
from service import _errors
from service._types import Caller, ProfilePath

if TYPE_CHECKING:
    from service._service import Service

MAX_EVENTS = 10_000


def install(app: FastAPI, service: Service) -> None:
    readers = service.readers
    reading = _errors.responses(401, 404, 422, 503)

    @app.get("/v1/profiles", response_model=list[StatusRow], responses=reading, tags=["reads"])
    async def profiles(
        who: Caller,
        account: Annotated[str | None, Query(description="only this account's profiles")] = None,
        state: Annotated[
            ProfileState | None,
            Query(
                description="only this state (stale: also a leased profile past its renewal "
                "deadline, not yet swept, whose row still says leased)"
            ),
        ] = None,
    ) -> list[StatusRow]:
        """Every profile's availability: state, holder, deadline, reason, last user."""
        from projections import status

        return await readers.run(lambda ledger: status(ledger, account_id=account, state=state))

    @app.get(
        "/v1/profiles/{profile_id}", response_model=ProfileRecord, responses=reading,
        tags=["reads"],
    )  # fmt: skip
    async def registration(profile_id: ProfilePath, who: Caller) -> ProfileRecord:
        """The profile's registration: its account, proxy, region, directory and policy (what
        a worker needs to launch its browser on the leased profile)."""
        return await readers.run(lambda ledger: ledger.view(profile_id).record)

    @app.get(
        "/v1/profiles/{profile_id}/why", response_model=Explanation, responses=reading,
        tags=["reads"],
    )  # fmt: skip
    async def why(profile_id: ProfilePath, who: Caller) -> Explanation:
        """Why the profile is (or is not) available, and what unblocks it."""
        from projections import explain_view

        def read(ledger: Ledger) -> Explanation:
            view, problem = ledger.checked_view(profile_id)
            return explain_view(ledger, view, problem)

        return await readers.run(read)

    @app.get(
        "/v1/profiles/{profile_id}/who", response_model=Usage, responses=reading, tags=["reads"]
    )
    async def who_used(profile_id: ProfilePath, who: Caller) -> Usage:
        """Who holds the profile, or held it last and how that lease ended."""
        from projections import who as usage

        return await readers.run(lambda ledger: usage(ledger, profile_id))

    @app.get(
        "/v1/profiles/{profile_id}/timeline", response_model=list[TimelineRow],
        responses=reading, tags=["reads"],
    )  # fmt: skip
    async def timeline(
        profile_id: ProfilePath,
        who: Caller,
        since: Annotated[str | None, Query(description="from this time (ISO 8601)")] = None,
        until: Annotated[
            str | None,
            Query(
                description="up to this time (ISO 8601), itself included to its precision: a "
                "date the whole day, a time to the second the whole second; with a fraction "
                "(as Date.toISOString() writes) the instant itself"
            ),
        ] = None,
        last: Annotated[int | None, Query(ge=1, le=MAX_EVENTS, description="the last N")] = None,
    ) -> list[TimelineRow]:
        """The profile's events, oldest first: steps, URLs, endings."""
        from projections import timeline as rows
        from reports import moment

        start, end = moment("since", since), moment("until", until, until=True)

        def read(ledger: Ledger) -> list[TimelineRow]:
            ledger.require(profile_id)
            # Without ``last``, no more than ``last`` allows either (rev32: a profile's 12,002
            # events, 6.2 MB, in one answer while ?last=20000 was refused); never cut short
            # silently: more is refused, saying how to ask.
            found = rows(ledger, profile_id, since=start, until=end, last=last or MAX_EVENTS + 1)
            if last is None and len(found) > MAX_EVENTS:
                raise InvalidInput(
                    "last",
                    f"the timeline holds more than {MAX_EVENTS:,} events, more than one answer "
                    f"carries: ask for the last N (at most {MAX_EVENTS:,}) or a shorter window "
                    "(since, until)",
                )
            return found

        return await readers.run(read)

    @app.get(
        "/v1/profiles/{profile_id}/replay", response_model=Replay, responses=reading,
        tags=["reads"],
    )  # fmt: skip
    async def replay(
        profile_id: ProfilePath,
        who: Caller,
        at: Annotated[str, Query(description="the moment (ISO 8601)")],
        events: Annotated[int, Query(ge=0, le=1000, description="events around the moment")] = 5,
    ) -> Replay:
        """The profile as it stood at a moment."""
        from reports import replay as replayed

        return await readers.run(
            lambda ledger: replayed(profile_id, at=at, events=events, ledger=ledger)
        )

    @app.get("/v1/fleet", response_model=Fleet, responses=reading, tags=["reads"])
    async def fleet(
        who: Caller,
        account: Annotated[str | None, Query(description="only this account's profiles")] = None,
    ) -> Fleet:
        """Counts by state, the stuck profiles and the review queue's waits."""
        from reports import fleet as summary

        return await readers.run(lambda ledger: summary(account=account, ledger=ledger))
