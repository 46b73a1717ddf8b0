"""The PostgreSQL recorder, in its own module so SQLite users never import psycopg."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from ledger.stores.recorders import availability_rows, upsert_availability_sql

_PG_UPSERT = upsert_availability_sql("%s")


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    def _insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        for row in availability_rows(kwargs):
            curs.execute(_PG_UPSERT, row)
