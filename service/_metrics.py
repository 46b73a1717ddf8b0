"""``GET /metrics`` in Prometheus' text format: leases and profiles by state, stale endings by
profile, account and proxy, the oldest stale profile and the oldest open review, heartbeat lag,
request latency, and how many commands each group commit carried.

The fleet's figures are read from the store at each scrape (the same reports the command line
prints), so every replica reports the whole fleet; the request and commit figures are this
process's own."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger import Ledger, ProfileState
from ledger.feed import ReadModelBehind

if TYPE_CHECKING:
    from service._service import Service

T = TypeVar("T")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 200)


class _Fleet(Collector):
    """The families read from the store for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def fleet_families(ledger: Ledger) -> list[Metric]:
    from reports import fleet, health

    summary = fleet(ledger=ledger)
    profiles = GaugeMetricFamily("custody_profiles", "profiles by state", labels=["state"])
    for state, count in summary.by_state.items():
        profiles.add_metric([state], count)
    leased = summary.by_state.get(ProfileState.LEASED.value, 0)
    stale = summary.by_state.get(ProfileState.STALE.value, 0)
    leases = GaugeMetricFamily("custody_leases", "live leases by state", labels=["state"])
    leases.add_metric(["active"], leased - summary.overdue)
    leases.add_metric(["overdue"], summary.overdue)
    leases.add_metric(["stale"], stale)
    # A lease past its deadline makes its profile stale before any sweep marks it: its wait
    # counts from the deadline (an alert on this gauge never fired where no sweeper ran: rev26).
    stale_troubles = (ProfileState.STALE.value, "overdue")
    oldest_stale = max(
        (s.seconds or 0.0 for s in summary.stuck if s.trouble in stale_troubles), default=0.0
    )
    stale_age = GaugeMetricFamily(
        "custody_oldest_stale_seconds",
        "how long the longest-stale profile has been stale (overdue ones from their deadline)",
    )
    stale_age.add_metric([], oldest_stale)
    review_age = GaugeMetricFamily(
        "custody_oldest_review_seconds", "how long the oldest open review has waited"
    )
    review_age.add_metric([], summary.review.oldest_waiting_seconds or 0.0)
    now = summary.at
    # Rows of profiles never registered are junk, as to the fleet summary above (rev36 review:
    # a made-up leased row gave every quantile its lag of 29 million seconds).
    rows = ledger.availability()
    registered = set(ledger.profile_ids())
    lags = [
        (now - r.heartbeat_at).total_seconds()
        for r in rows
        if r.state is ProfileState.LEASED
        and r.heartbeat_at is not None
        and r.profile_id in registered
    ]
    lag = GaugeMetricFamily(
        "custody_heartbeat_lag_seconds", "seconds since live leases' last heartbeat",
        labels=["quantile"],
    )  # fmt: skip
    lags.sort()
    for q in (0.5, 0.99, 1.0):
        lag.add_metric([str(q)], lags[min(int(q * len(lags)), len(lags) - 1)] if lags else 0.0)
    families: list[Metric] = [profiles, leases, stale_age, review_age, lag]
    tables = health(ledger=ledger).endings
    for by, column in (("profile", "profile_id"), ("account", "account_id"), ("proxy", "proxy_id")):
        family = CounterMetricFamily(
            f"custody_stale_endings_by_{by}", f"leases that ended stale, by {by}", labels=[by]
        )
        for row in tables[by].itertuples(index=False):
            count = int(row.stale)  # type: ignore[arg-type]  # an int column
            if count:
                family.add_metric([str(getattr(row, column))], count)
        families.append(family)
    return families


def behind_family(notes: list[ReadModelBehind]) -> Metric:
    """The events each read model had still to fold when the scrape read it, which this
    service's login may not fold (or an open transaction held back): the fleet's other figures
    leave them out (rev32: a worker-only service's scrape read 0 profiles and 0 leases, and no
    alert could fire). 0 for a read model that was current."""
    family = GaugeMetricFamily(
        "custody_read_model_behind_events",
        "events of the log a read model had still to fold at this scrape; the other fleet "
        "figures leave them out",
        labels=["read_model"],
    )
    from projections import READ_MODELS

    behind: dict[str, int] = {}
    for note in notes:
        behind[note.name] = max(behind.get(note.name, 0), note.lag)
    for name in READ_MODELS:
        behind.setdefault(name, 0)
    for name, lag in sorted(behind.items()):
        family.add_metric([name], lag)
    return family


class Shared(Generic[T]):
    """One read at a time for any number of callers: a caller that arrives while a read runs
    waits for it to end and shares the read that starts next (never the running one, which
    may have read the store before a write the caller saw answered). Scrapers in a loop then
    hold one reader thread, not one each, beside the token checks and reads that need them."""

    def __init__(self, read: Callable[[], Awaitable[T]]) -> None:
        self._read = read
        self._lock = asyncio.Lock()
        self._started = 0  # reads started so far
        self._ended = 0  # the last read that ended with a result: its number
        self._result: T | None = None

    async def __call__(self) -> T:
        wanted = self._started + 1  # the first read to start after this call
        async with self._lock:
            if self._ended >= wanted:  # a read that started after this call came
                return self._result  # type: ignore[return-value]  # set with _ended
            self._started += 1
            number = self._started
            result = await self._read()
            self._result, self._ended = result, number
            return result


class Metrics:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.fleet = Shared(lambda: service.readers.run_noted(fleet_families))
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "custody_http_request_seconds", "request latency by route, method and status",
            ["route", "method", "status"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batches = Histogram(
            "custody_group_commit_commands", "commands written per transaction",
            buckets=_BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def install(self, app: FastAPI) -> None:
        app.add_middleware(_Timed, latency=self.latency)

        @app.get("/metrics", tags=["service"], response_class=Response)
        async def metrics() -> Response:
            """Prometheus' text format (no token: bind it where only your scraper reaches)."""
            for size in self.service.writer.stats.drain():
                self.batches.observe(size)
            families, notes = await self.fleet()
            families = [*families, behind_family(notes)]
            scrape = CollectorRegistry(auto_describe=False)
            scrape.register(_Fleet(families))
            body = generate_latest(self.registry) + generate_latest(scrape)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

        _ = metrics


# The methods a request's latency is labelled with; any other (h11 takes any token as a
# method) is counted as "other", so that made-up methods cannot grow the series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Timed:
    """Each request's latency by route template, method and status: a plain ASGI middleware
    (Starlette's ``BaseHTTPMiddleware`` runs every request through extra tasks and streams,
    which a heartbeat would pay for)."""

    def __init__(self, app: ASGIApp, latency: Histogram) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def sent(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.latency.labels(route, method, str(status[0])).observe(
                time.perf_counter() - started
            )
