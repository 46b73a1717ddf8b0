"""Our application recorders, built the way the store builds them, on one given database.

`open_recorder(url)` goes through the library's own factory with the environment the store
derives from its URL and `APPLICATION_RECORDER_TOPIC` naming our class, then adds our
availability table: the recorder under test is the one production runs, on its tables.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import ApplicationRecorder, InfrastructureFactory
from eventsourcing.utils import Environment, get_topic

from ledger._stores.postgres import PostgresLedgerRecorder
from ledger._stores.recorders import (
    AVAILABILITY_COLUMNS,
    AVAILABILITY_TABLE,
    SQLiteLedgerRecorder,
    availability_ddl,
)
from ledger._stores.settings import APPLICATION_NAME, StoreSettings

RECORDER_CLASSES: dict[str, type[ApplicationRecorder]] = {
    "sqlite": SQLiteLedgerRecorder,
    "postgresql": PostgresLedgerRecorder,
}


def open_recorder(url: str) -> tuple[InfrastructureFactory[Any], Any]:
    """The factory (close it when done) and our recorder for the store at ``url``, with the
    library's tables and ours created. Fails if the factory did not build our class."""
    settings = StoreSettings.from_url(url)
    env = settings.environment(create_table=True)
    expected = RECORDER_CLASSES[settings.kind]
    env["APPLICATION_RECORDER_TOPIC"] = get_topic(expected)
    factory = InfrastructureFactory.construct(Environment(APPLICATION_NAME, env))
    try:
        recorder: Any = factory.application_recorder()
        assert type(recorder) is expected, type(recorder)
        with recorder.datastore.transaction(commit=True) as cursor:
            for statement in availability_ddl():
                cursor.execute(statement)
    except BaseException:
        factory.close()
        raise
    return factory, recorder


def availability_rows(recorder: Any) -> dict[str, dict[str, Any]]:
    """Every availability row the recorder's database holds, by profile id."""
    columns = ", ".join(AVAILABILITY_COLUMNS)
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT {columns} FROM {AVAILABILITY_TABLE}")
        rows = [dict(row) for row in cursor.fetchall()]
    return {row["profile_id"]: row for row in rows}
