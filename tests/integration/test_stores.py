"""What the stores promise: their clock, their schema step, and failing with one clear error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from conftest import register

from ledger import InvalidInput, Ledger, StoreUnavailable
from ledger.stores import sql as store_module


class _SkewedDatetime(datetime):
    """A local clock one hour fast, as on a worker host with a broken NTP."""

    @classmethod
    def now(cls, tz: object = None) -> _SkewedDatetime:  # type: ignore[override]
        real = datetime.now(UTC) + timedelta(hours=1)
        return cls.fromtimestamp(real.timestamp(), tz=UTC)


def test_deadlines_use_the_store_clock_not_the_worker_clock(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a lease starts on the server's clock even if the local clock is an hour
    fast; on SQLite (embedded, one host) the local clock is the store's clock."""
    monkeypatch.setattr(store_module, "datetime", _SkewedDatetime)
    with Ledger.open(sql_store_url) as ledger:
        pid = register(ledger)
        lease = ledger.checkout(pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=60)
    offset = lease.lease_started_at - datetime.now(UTC)
    if sql_store_url.startswith("postgresql"):
        assert abs(offset) < timedelta(minutes=5)
    else:
        assert offset > timedelta(minutes=55)
    assert lease.expires_at - lease.lease_started_at == timedelta(seconds=60)


def test_unreachable_postgres_is_one_clear_error() -> None:
    """A store nobody listens on raises StoreUnavailable naming the store, not a driver error."""
    with (
        Ledger.open("postgresql://custody@127.0.0.1:1/custody") as ledger,
        pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1/custody unavailable"),
    ):
        ledger.checkout("p", worker_id="w", run_id="r", task_type="t")


def test_uninitialised_postgres_says_run_init_and_creates_nothing(pg_url: str) -> None:
    """Commands on a PostgreSQL database without the schema ask for custody init; no table
    appears, because workers never race to create tables."""
    with Ledger.open(pg_url) as ledger, pytest.raises(StoreUnavailable, match="custody init"):
        ledger.checkout("p", worker_id="w", run_id="r", task_type="t")
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_init_is_idempotent(store_url: str) -> None:
    """Running init on an initialised store keeps its events."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
    Ledger.init(store_url).close()
    with Ledger.open(store_url) as ledger:
        assert [e.event_type for e in ledger.history(pid)] == ["profile_registered"]


def test_malformed_store_urls_are_bad_input() -> None:
    """A store URL that is neither sqlite:/// nor postgresql:// is named as invalid input."""
    for url in ("mysql://x/y", "sqlite://relative.db", "postgresql://host-without-user/db"):
        with pytest.raises(InvalidInput, match="store"):
            Ledger.open(url)


def test_sqlite_file_in_missing_directory_is_unavailable(tmp_path: object) -> None:
    """An SQLite path whose directory does not exist is reported, and not created."""
    url = f"sqlite:///{tmp_path}/missing/custody.db"
    with Ledger.open(url) as ledger, pytest.raises(StoreUnavailable, match="does not exist"):
        ledger.checkout("p", worker_id="w", run_id="r", task_type="t")


def test_schema_version_is_checked_and_init_migrates(sql_store_url: str) -> None:
    """A store from an older custody is refused until init migrates it; one from a newer
    custody is refused with a word to upgrade; the events survive both."""
    with Ledger.open(sql_store_url) as ledger:
        pid = register(ledger)
        ledger.store.execute("UPDATE custody_schema SET version = 0")
    with Ledger.open(sql_store_url) as ledger, pytest.raises(StoreUnavailable, match="to migrate"):
        ledger.view(pid)
    Ledger.init(sql_store_url).close()
    with Ledger.open(sql_store_url) as ledger:
        assert ledger.view(pid).record.profile_id == pid
        ledger.store.execute("UPDATE custody_schema SET version = 99")
    with Ledger.open(sql_store_url) as ledger, pytest.raises(StoreUnavailable, match="upgrade"):
        ledger.view(pid)
