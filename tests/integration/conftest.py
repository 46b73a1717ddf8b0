"""The integration suite runs unchanged on every store: SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pg_cluster import PostgresCluster

from ledger import Ledger, RegisterProfile

if TYPE_CHECKING:
    from serving import Served


class StepClock:
    """A clock a test moves by hand, starting at the real time."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _fresh_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'custody.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    Ledger.init(url).close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, initialised store of each kind: the shared suite runs unchanged on both."""
    return _fresh_store(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, initialised SQL store: for what only a database has (schema, clock, files)."""
    return _fresh_store(request.param, request, tmp_path)


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server of the test's own, for a test that stops, restarts or reconfigures
    it (the session's is shared)."""
    started = PostgresCluster.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def ledger(store_url: str, clock: StepClock) -> Iterator[Ledger]:
    """A ledger on the store, judging deadlines on ``clock``."""
    with Ledger.open(store_url, clock=clock) as opened:
        yield opened


def register(ledger: Ledger, profile_id: str = "profile_shop_17", **overrides: object) -> str:
    fields: dict[str, object] = {"account_id": "account_shop_17", "proxy_id": "proxy_us_east_12"}
    fields.update(overrides)
    ledger.handle(RegisterProfile(profile_id=profile_id, **fields))  # type: ignore[arg-type]
    return profile_id


def event_count(ledger: Ledger) -> int:
    """How many events the whole store holds (read from the notification log itself)."""
    return ledger.store.event_count()


@pytest.fixture
def served(store_url: str) -> Iterator[Served]:
    """``custody serve`` on a fresh store of each kind, with a token per role."""
    from serving import serve

    running = serve(store_url)
    try:
        yield running
    finally:
        running.stop()
