"""A PostgreSQL append wakes the listeners in its own round trip (issue 16): exactly one
NOTIFY for an append that committed, none for one that failed, and the append's own error
(or success) unchanged by the wake-up queued behind it."""

from __future__ import annotations

import contextlib
import dataclasses
import select
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from conftest import register
from eventsourcing.persistence import IntegrityError, StoredEvent

from ledger import Checkout, ForceRelease, Heartbeat, InvalidInput, LeaseLost, Ledger
from ledger._domain.profile import Profile

QUIET_S = 0.5  # how long a listener waits to be sure nothing more arrives


@pytest.fixture
def opened(pg_url: str) -> Iterator[Ledger]:
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        yield ledger


@pytest.fixture
def listening(pg_url: str, opened: Ledger) -> Iterator[psycopg.Connection[Any]]:
    """A connection LISTENing on the recorder's channel."""
    channel = opened.store.app.recorder.channel_name
    conn = psycopg.connect(pg_url, autocommit=True)
    conn.execute(psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(channel)))
    try:
        yield conn
    finally:
        conn.close()


def _heard(conn: psycopg.Connection[Any]) -> int:
    """How many notifications arrive until none has for ``QUIET_S``."""
    count = 0
    while select.select([conn.pgconn.socket], [], [], QUIET_S)[0]:
        conn.pgconn.consume_input()
        while conn.pgconn.notifies() is not None:
            count += 1
    return count


def _stream(ledger: Ledger, profile_id: str) -> list[StoredEvent]:
    return list(ledger.store.app.recorder.select_events(Profile.create_id(profile_id)))


def _lease(ledger: Ledger, profile_id: str) -> Any:
    checkout = Checkout(profile_id=profile_id, worker_id="w1", run_id="r", task_type="t")
    return ledger.handle(checkout)


def test_an_append_that_commits_wakes_the_listeners_once(
    opened: Ledger, listening: psycopg.Connection[Any]
) -> None:
    """One heartbeat, one notification, after the events are visible."""
    lease = _lease(opened, register(opened))
    _heard(listening)  # the registration's and the checkout's
    opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    assert _heard(listening) == 1


def test_an_append_that_takes_a_taken_version_raises_as_before_and_wakes_nobody(
    opened: Ledger, listening: psycopg.Connection[Any]
) -> None:
    """A version conflict is the library's IntegrityError (what ``Store.save`` maps to a
    conflict), no listener hears of it, and the connection goes back to the pool clean."""
    recorder = opened.store.app.recorder
    pid = register(opened)
    _heard(listening)
    taken = _stream(opened, pid)[-1]
    with pytest.raises(IntegrityError):
        recorder.insert_events([taken])
    assert _heard(listening) == 0
    _lease(opened, pid)  # the next append goes through, and wakes once
    assert _heard(listening) == 1


def test_an_append_with_a_used_command_id_raises_as_before_and_wakes_nobody(
    opened: Ledger, listening: psycopg.Connection[Any]
) -> None:
    """A command id recorded first by another writer fails the whole append: nothing of it
    is kept, and nobody is woken."""
    recorder = opened.store.app.recorder
    pid = register(opened)
    lease = _lease(opened, pid)
    opened.handle(
        Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, command_id="c1")
    )
    _heard(listening)
    last = _stream(opened, pid)[-1]
    after = dataclasses.replace(last, originator_version=last.originator_version + 1)
    with pytest.raises(IntegrityError):
        recorder.insert_events([after], commands=[("c1", pid, after.originator_version, "x")])
    assert _heard(listening) == 0
    assert _stream(opened, pid)[-1].originator_version == last.originator_version


def test_a_heartbeat_refused_as_behind_wakes_nobody(
    pg_url: str, opened: Ledger, listening: psycopg.Connection[Any]
) -> None:
    """A heartbeat decided on a held profile another process moved on: its refused append
    sends nothing, nor does the refusal then made on the store's profile."""
    pid = register(opened)
    lease = _lease(opened, pid)
    with Ledger.open(pg_url) as other:
        other.handle(ForceRelease(profile_id=pid, actor="op", reason="stop"))
    _heard(listening)
    with pytest.raises(LeaseLost):
        opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    assert opened.conflicts == 1
    assert _heard(listening) == 0


def test_a_wake_up_that_fails_after_the_commit_leaves_the_append_committed(
    opened: Ledger, listening: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wake-up runs after the append's COMMIT: its failure (here a statement the server
    refuses, as it would refuse a NOTIFY on a full queue) neither undoes the append nor
    reaches the caller, and the connection is usable afterwards."""
    recorder = opened.store.app.recorder
    pid = register(opened)
    lease = _lease(opened, pid)
    before = _stream(opened, pid)[-1].originator_version
    monkeypatch.setattr(recorder, "_notify_sql", b"SELECT 1/0")
    started = time.monotonic()
    opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    assert time.monotonic() - started < 5
    assert _stream(opened, pid)[-1].originator_version == before + 1
    assert opened.conflicts == 0
    monkeypatch.undo()
    _heard(listening)
    opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    assert _heard(listening) == 1


def test_a_registration_claiming_a_directory_wakes_once_and_a_refused_one_nobody(
    opened: Ledger, listening: psycopg.Connection[Any]
) -> None:
    """A registration that claims a directory (appended in the transaction that looks at the
    directories already claimed) wakes the listeners once; one refused for an overlapping
    directory wakes nobody."""
    register(opened, "profile_a", user_data_dir="/srv/profiles/a")
    assert _heard(listening) == 1
    with pytest.raises(InvalidInput):
        register(opened, "profile_b", account_id="other", user_data_dir="/srv/profiles/a/b")
    assert _heard(listening) == 0


def test_a_registration_whose_wake_up_fails_stays_registered(
    opened: Ledger, listening: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wake-up after a directory-claiming registration's COMMIT may fail without undoing
    it or reaching the caller."""
    monkeypatch.setattr(opened.store.app.recorder, "_notify_sql", b"SELECT 1/0")
    register(opened, "profile_a", user_data_dir="/srv/profiles/a")
    assert [e.originator_version for e in _stream(opened, "profile_a")] == [1]
    monkeypatch.undo()
    assert _heard(listening) == 0
    _lease(opened, "profile_a")
    assert _heard(listening) == 1


def test_an_append_prepares_its_statement_again_on_a_connection_that_dropped_it(
    opened: Ledger,
) -> None:
    """The one-round-trip append's prepared statement, dropped from a pooled connection
    (psycopg sends DEALLOCATE ALL when a transaction on it rolls back), is prepared again:
    the heartbeat after it goes through as the first one did, with no conflict."""
    lease = _lease(opened, register(opened))
    opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    pool = opened.store.app.recorder.datastore.pool
    with contextlib.ExitStack() as held:  # every pooled connection, idle now
        for _ in range(pool.get_stats()["pool_size"]):
            held.enter_context(pool.connection(timeout=1)).execute("DEALLOCATE ALL")
    opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    assert opened.conflicts == 0
    assert len(_stream(opened, lease.profile_id)) == 4


def test_an_append_sends_begin_commit_and_the_wake_up_prepared(opened: Ledger) -> None:
    """Every statement of the one-round-trip append is prepared on the connection that sent
    it and run as prepared, BEGIN, COMMIT and the wake-up too: the server parses and plans
    none of them again (a third of a bare append's CPU on the server)."""
    lease = _lease(opened, register(opened))
    for _ in range(6):  # the pool lends its connections in turn
        opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    pool = opened.store.app.recorder.datastore.pool
    appended = []
    with contextlib.ExitStack() as held:  # every pooled connection, idle now
        for _ in range(pool.get_stats()["pool_size"]):
            conn = held.enter_context(pool.connection(timeout=1))
            rows = conn.execute(
                "SELECT name, statement, generic_plans + custom_plans AS runs"
                " FROM pg_prepared_statements WHERE name LIKE 'custody%'"
            ).fetchall()
            if any(row["name"].startswith("custody_append_") for row in rows):
                appended.append({row["name"]: (row["statement"], row["runs"]) for row in rows})
    assert appended, "no pooled connection kept the append prepared"
    for kept in appended:
        runs = sum(n for name, (_, n) in kept.items() if name.startswith("custody_append_"))
        assert kept.get("custody_begin") == ("BEGIN", runs), kept
        assert kept.get("custody_commit") == ("COMMIT", runs), kept
        wakes = [v for name, v in kept.items() if name.startswith("custody_wake_")]
        assert len(wakes) == 1, kept
        assert "pg_notify" in wakes[0][0], kept
        assert wakes[0][1] == runs, kept


def test_a_new_shape_of_append_after_a_rolled_back_one_is_prepared_once(opened: Ledger) -> None:
    """After psycopg's DEALLOCATE ALL (it follows any rollback on a connection: a lost race),
    the first append of a shape new to the connection prepares it, then finds BEGIN gone:
    every later append of that shape goes through, on every pooled connection (rev33: the
    retry prepared the new one again, "prepared statement already exists", and that shape
    failed on the connection for good: 3 of 8 releases after one lost checkout race)."""
    lease = _lease(opened, register(opened))
    beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token)
    pool = opened.store.app.recorder.datastore.pool
    size = pool.get_stats()["pool_size"]
    for _ in range(size):  # the plain heartbeat's shape, prepared on every connection
        opened.handle(beat)
    with contextlib.ExitStack() as held:
        for _ in range(size):
            held.enter_context(pool.connection(timeout=1)).execute("DEALLOCATE ALL")
    for n in range(3 * size):  # a shape new to every connection: a command id
        opened.handle(beat.model_copy(update={"command_id": f"c{n}"}))
    for _ in range(2 * size):
        opened.handle(beat)
    assert len(_stream(opened, lease.profile_id)) == 2 + 6 * size
