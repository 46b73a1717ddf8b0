"""The append and a load's select borrow their pooled connection themselves
(``ledger._stores.postgres._Lent``) instead of through the library's ``get_connection``, and
must end it as the library did, on a real PostgreSQL store: a database error translated with
its cause, an exhausted or closed pool the library's ``OperationalError`` (the ledger's
``StoreUnavailable``), a KeyboardInterrupt rolled back with the connection given back, a
connection killed mid-statement replaced; every connection back in the pool, idle (review11:
each passes on the library's way too)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import register
from eventsourcing import persistence

from ledger import Checkout, Heartbeat, Ledger
from ledger._domain.errors import StoreUnavailable
from ledger._domain.profile import Profile


@pytest.fixture
def opened(pg_url: str) -> Iterator[Ledger]:
    Ledger.init(pg_url).close()
    with Ledger.open(f"{pg_url}?timeout=1" if "?" not in pg_url else pg_url) as ledger:
        yield ledger


def _pool(ledger: Ledger) -> Any:
    return ledger.store.app.recorder.datastore.pool


def _all_back_idle(ledger: Ledger) -> list[str]:
    pool = _pool(ledger)
    deadline = time.monotonic() + 3  # the pool replaces a lost connection in the background
    while (stats := pool.get_stats())["pool_available"] != stats["pool_size"]:
        assert time.monotonic() < deadline, stats
        time.sleep(0.05)
    with contextlib.ExitStack() as held:
        return [
            held.enter_context(pool.connection(timeout=1)).info.transaction_status.name
            for _ in range(stats["pool_size"])
        ]


def _leased(ledger: Ledger) -> tuple[str, Heartbeat]:
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    return pid, Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token)


def test_a_select_s_database_error_is_the_library_s(opened: Ledger) -> None:
    recorder = opened.store.app.recorder
    with pytest.raises(persistence.DataError) as raised:
        recorder.select_events("not a uuid")
    assert isinstance(raised.value.__cause__, psycopg.DataError)
    assert set(_all_back_idle(opened)) == {"IDLE"}


def test_an_exhausted_pool_is_the_library_s_operational_error(opened: Ledger) -> None:
    pid, beat = _leased(opened)
    pool = _pool(opened)
    pool.timeout = 0.5
    taken = []
    try:
        while pool.get_stats().get("pool_size", 0) < pool.max_size or pool.get_stats().get(
            "pool_available", 0
        ):
            taken.append(pool.getconn(timeout=1))
        with pytest.raises(persistence.OperationalError):
            opened.store.app.recorder.select_events(Profile.create_id(pid))
        with pytest.raises(StoreUnavailable):
            opened.handle(beat)
    finally:
        for conn in taken:
            pool.putconn(conn)
    opened.handle(beat)
    assert set(_all_back_idle(opened)) == {"IDLE"}


def test_keyboard_interrupt_inside_a_select_gives_the_connection_back(
    opened: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid, beat = _leased(opened)

    def interrupted(self: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(psycopg.Cursor, "fetchall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        opened.store.app.recorder.select_events(Profile.create_id(pid))
    monkeypatch.undo()
    assert set(_all_back_idle(opened)) == {"IDLE"}
    opened.handle(beat)


def test_a_connection_killed_inside_a_select_is_unavailable_then_replaced(
    opened: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger._stores.postgres as pg

    pid, beat = _leased(opened)
    killing = (
        "SELECT originator_id, originator_version, topic, state FROM custody_events "
        "WHERE originator_id = %s AND pg_terminate_backend(pg_backend_pid())"
    )
    monkeypatch.setattr(pg, "_select_sql", lambda *_: killing)
    with pytest.raises(persistence.OperationalError):
        opened.store.app.recorder.select_events(Profile.create_id(pid))
    monkeypatch.undo()
    opened.handle(beat)
    assert set(_all_back_idle(opened)) == {"IDLE"}


def test_a_closed_store_s_select_is_the_library_s_operational_error(pg_url: str) -> None:
    Ledger.init(pg_url).close()
    ledger = Ledger.open(pg_url)
    pid, _ = _leased(ledger)
    recorder = ledger.store.app.recorder
    ledger.close()
    with pytest.raises(persistence.OperationalError):
        recorder.select_events(Profile.create_id(pid))


def test_keyboard_interrupt_inside_an_append_writes_nothing_and_loses_no_connection(
    opened: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger._stores.postgres as pg

    pid, beat = _leased(opened)
    before = opened.view(pid).version

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(pg, "_round_trip", interrupted)
    with pytest.raises(KeyboardInterrupt):
        opened.handle(beat)
    monkeypatch.undo()
    assert set(_all_back_idle(opened)) == {"IDLE"}
    opened.handle(beat)
    assert opened.view(pid).version == before + 1
