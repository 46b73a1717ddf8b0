"""Our recorders keep the library's contract: its own conformance suites, run on our classes.

`eventsourcing.tests.persistence` ships the suites any custom recorder can inherit. Ours write
the availability row beside the events, so they must still insert, select, number and refuse
events exactly as the library's recorders do. Each test gets a fresh database built the way the
store builds it (the library's factory, our recorder topic, our availability table): a real
SQLite file, or a fresh database on the session's PostgreSQL cluster.

Suites not subclassed here, and why: `AggregateRecorderTestCase` pins aggregate recorders
(`insert_events` returning None), where application recorders return notification ids;
`ProcessRecorderTestCase`/`TrackingRecorderTestCase` pin classes we do not subclass;
`InfrastructureFactoryTestCase` pins the library's factory, not a recorder (that the factory
builds our class from the topic is asserted by `open_recorder` for every test here).
`NonInterleavingNotificationIDsBaseCase` runs on SQLite only: it pins the library's table lock,
which makes concurrent appends draw their ids in turn so that a reader tailing the log by id
never misses one. custody's PostgreSQL appends take no store-wide lock (issue 16), so two
concurrent appends may interleave their ids and commit out of order; its readers instead hand
on nothing past a gap an append in progress may fill (``ledger._stores.settled``), which
`tests/integration/test_followers.py` proves with many writer processes, every event counted.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.tests import persistence as suites
from ledger_recorders import open_recorder

from ledger._stores.postgres import PostgresLedgerRecorder
from ledger._stores.recorders import SQLiteLedgerRecorder

_THREAD_JOIN_TIMEOUT_S = 30
_LISTEN_TIMEOUT_S = 10


class _OnFreshStore:
    """Opens our recorder on the test's own store (``self.store_url``) and closes it after."""

    store_url: str

    def setUp(self) -> None:
        self._factories: list[Any] = []
        self._threads_before = set(threading.enumerate())

    def tearDown(self) -> None:
        # The library's test_concurrent_no_conflicts tells its reader threads to stop but never
        # joins them, and the library's pool closes connections still in use: on SQLite that
        # segfaulted the interpreter (3 runs in 30). Wait for the test's own threads first.
        try:
            for thread in set(threading.enumerate()) - self._threads_before:
                if not thread.daemon:
                    thread.join(_THREAD_JOIN_TIMEOUT_S)
                    assert not thread.is_alive(), f"{thread.name} still running after the test"
        finally:
            for factory in self._factories:
                factory.close()

    def create_recorder(self) -> Any:
        factory, recorder = open_recorder(self.store_url)
        self._factories.append(factory)
        return recorder


class _OnSQLiteFile(_OnFreshStore):
    @pytest.fixture(autouse=True)
    def _sqlite_file(self, tmp_path: Path) -> None:
        self.store_url = f"sqlite:///{tmp_path / 'custody.db'}"


@pytest.mark.postgres
class _OnPostgres(_OnFreshStore):
    @pytest.fixture(autouse=True)
    def _postgres_database(self, pg_url: str) -> None:
        self.store_url = pg_url


class TestSQLiteLedgerRecorderKeepsTheApplicationRecorderContract(
    _OnSQLiteFile, suites.ApplicationRecorderTestCase[SQLiteLedgerRecorder]
):
    """The library's application recorder suite, on `SQLiteLedgerRecorder` and a real file."""

    def test_insert_subscribe(self) -> None:
        """SQLite has no subscriptions, in the library's recorder as in ours: the library's
        optional subscribe test cannot apply, so this pins that ``subscribe`` refuses."""
        recorder = self.create_recorder()
        with pytest.raises(NotImplementedError, match="does not support subscriptions"):
            recorder.subscribe(gt=0)


class TestPostgresLedgerRecorderKeepsTheApplicationRecorderContract(
    _OnPostgres, suites.ApplicationRecorderTestCase[PostgresLedgerRecorder]
):
    """The library's application recorder suite, on `PostgresLedgerRecorder` and a real
    PostgreSQL database."""

    def create_recorder(self) -> Any:
        """Our recorder, whose ``subscribe`` returns only once the subscription listens.

        The library's subscription runs its LISTEN concurrently with its first read, so an
        insert made right after ``subscribe()`` returns can commit its NOTIFY before the LISTEN
        and go unseen until the next insert; the library's subscribe test then waits forever
        (it hung about 1 run in 10 here). That race is the library's, not our recorder's, so
        the test waits, on the server's own pg_stat_activity, for the LISTEN to complete.
        """
        recorder = super().create_recorder()
        subscribe = recorder.subscribe

        def subscribe_once_listening(gt: int | None = None, topics: Any = ()) -> Any:
            since = _server_now(recorder)
            subscription = subscribe(gt=gt, topics=topics)
            _wait_for_listen(recorder, since)
            return subscription

        recorder.subscribe = subscribe_once_listening
        return recorder

    def test_insert_subscribe(self) -> None:
        """The library's LISTEN/NOTIFY subscription sees what our recorder inserts."""
        self.optional_test_insert_subscribe()


def _server_now(recorder: Any) -> Any:
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute("SELECT clock_timestamp() AS now")
        return cursor.fetchone()["now"]


def _wait_for_listen(recorder: Any, since: Any) -> None:
    """Return once a session of this database has completed a LISTEN since ``since``."""
    deadline = time.monotonic() + _LISTEN_TIMEOUT_S
    while time.monotonic() < deadline:
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() "
                "AND query LIKE 'LISTEN %%' AND state = 'idle' AND state_change >= %s",
                (since,),
            )
            if cursor.fetchone()["n"]:
                return
        time.sleep(0.01)
    raise AssertionError(f"no LISTEN completed within {_LISTEN_TIMEOUT_S}s")


class TestSQLiteLedgerRecorderNeverInterleavesNotificationIds(
    _OnSQLiteFile, suites.NonInterleavingNotificationIDsBaseCase
):
    """Two concurrent inserts on one SQLite file get two unbroken runs of notification ids."""
