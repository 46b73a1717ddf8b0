"""The base of every read-side row, and of every read model's table.

A read model fed from the notification log is a ``Projection``: a name (its position row and
its name on the command line), a ``Table``, and ``apply``, which turns a batch of events into
rows inside the transaction that also moves its position (``projections.runner``).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from ledger import FeedTransaction, Notification


class ReadModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def iso(value: datetime | None) -> str | None:
    """Times are stored as UTC ISO-8601 text with microseconds: they sort and compare as text
    the same way on SQLite and PostgreSQL."""
    return None if value is None else value.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Index:
    suffix: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class Table:
    """A read model's table: its columns (name, SQL type), key and indexes. The same DDL runs
    on SQLite and PostgreSQL. Index names carry a tag, so a rebuilt table (made under another
    name, then renamed) never meets the names of the indexes it replaces."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: str
    indexes: tuple[Index, ...] = ()

    @functools.cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @functools.cached_property
    def _getter(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        return operator.itemgetter(*self.column_names)

    def ddl(self, physical: str, tag: str) -> list[str]:
        cols = ", ".join(
            f"{name} {kind}" + (" PRIMARY KEY" if name == self.key else "")
            for name, kind in self.columns
        )
        statements = [f"CREATE TABLE {physical} ({cols})"]
        for index in self.indexes:
            unique = "UNIQUE " if index.unique else ""
            statements.append(
                f"CREATE {unique}INDEX {self.name}_{tag}_{index.suffix} "
                f"ON {physical} ({', '.join(index.columns)})"
            )
        return statements

    def insert_sql(self, physical: str, *, upsert: bool = False) -> str:
        names = self.column_names
        sql = f"INSERT INTO {physical} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        if not upsert:
            return sql
        updates = ", ".join(f"{c} = excluded.{c}" for c in names if c != self.key)
        return f"{sql} ON CONFLICT ({self.key}) DO UPDATE SET {updates}"

    def params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return self._getter(row)

    def write(
        self,
        tx: FeedTransaction,
        physical: str,
        rows: Sequence[Sequence[Any]],
        *,
        upsert: bool = False,
    ) -> None:
        """Insert (or upsert, by key) ``rows`` in bulk into ``physical``."""
        tx.insert(physical, self.column_names, rows, key=self.key if upsert else None)


class Projection:
    """A read model fed from the notification log. ``apply`` must be deterministic: the same
    events give the same rows, whether applied in one batch or many, today or in a rebuild."""

    name: str
    table: Table

    def apply(self, tx: FeedTransaction, table: str, batch: Sequence[Notification]) -> None:
        """Write the rows ``batch`` gives into ``table`` (the live table, or a rebuild's)."""
        raise NotImplementedError
