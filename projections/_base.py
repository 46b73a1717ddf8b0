"""The read side's vocabulary: the answers it gives, the read models it keeps, their tables.

Everything a read returns (a row, a status, an explanation) is a ``ReadResult``: a frozen
pydantic model. A read model fed from the notification log is a ``ReadModel``: a name (its
checkpoint's name, and its name on the command line), a ``Table``, and ``fold``, which writes
the rows a batch of events gives inside the transaction that also moves its checkpoint
(``projections._runner``).

These are custody's own words, not eventsourcing's ``Projection``/``TrackingRecorder``/
``ProjectionRunner``, because that contract cannot keep what the read models need (eventsourcing
9.5's source): its runner follows ``recorder.subscribe()``, which SQLite's recorder refuses
(``NotImplementedError``); ``Projection.process_event`` takes one event at a time, where a
catch-up folds a batch of hundreds in one transaction; ``TrackingRecorder.insert_tracking``
opens a transaction of its own on its own table, so a rebuild could not swap a shadow table in
and move the position in the same transaction; a second runner of one projection fails on the
tracking row's ``IntegrityError``, where two of ours take turns on the checkpoint; and its
LISTEN has no polling fallback. A read model's position is its checkpoint
(``ledger.FeedTransaction.claim_checkpoint`` / ``move_checkpoint``), never "tracking".
"""

from __future__ import annotations

import functools
import hashlib
import numbers
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ledger.feed import FeedTransaction, LoggedEvent, ReadModelDamaged

_T = TypeVar("_T")


class ReadResult(BaseModel):
    """What a read returns: frozen, and refusing fields it does not declare."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def iso(value: datetime | None) -> str | None:
    """Times are stored as UTC ISO-8601 text with microseconds: they sort and compare as text
    the same way on SQLite and PostgreSQL. A time without an offset is UTC, as everywhere in
    custody (rev31: ``astimezone`` read it as the host's local time)."""
    return None if value is None else utc(value).isoformat(timespec="microseconds")


def utc(value: datetime) -> datetime:
    """``value`` in UTC; one without an offset is taken as UTC, as everywhere in custody."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
class Index(NamedTuple):
    suffix: str
    columns: tuple[str, ...]
    unique: bool = False


DIGEST = "digest"


@dataclass(frozen=True)
class Table:
    """A read model's table: its columns (name, SQL type), key and indexes. The same DDL runs
    on SQLite and PostgreSQL. Index names carry a tag, so a rebuilt table (made under another
    name, then renamed) never meets the names of the indexes it replaces.

    Every row also stores ``digest``: a 64-bit hash of its other columns, computed when it is
    written (``digest``). A row edited by hand no longer matches its digest, which is how
    ``projections status`` finds an edit in any column without replaying the events."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: str
    indexes: tuple[Index, ...] = ()

    @functools.cached_property
    def column_names(self) -> tuple[str, ...]:
        """The columns a read gives (the digest is the table's own)."""
        return tuple(name for name, _ in self.columns)

    @functools.cached_property
    def stored_names(self) -> tuple[str, ...]:
        """Every column of the table, in its order: the columns, then the digest."""
        return (*self.column_names, DIGEST)

    @functools.cached_property
    def _getter(self) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
        return operator.itemgetter(*self.column_names)

    @functools.cached_property
    def _floats(self) -> tuple[int, ...]:
        return tuple(i for i, (_, kind) in enumerate(self.columns) if kind.startswith("DOUBLE"))

    @functools.cached_property
    def _kinds(self) -> tuple[tuple[str, tuple[type, ...], bool], ...]:
        """Each stored column's name, the Python types a row it writes reads back as, and
        whether it may be NULL."""
        found = []
        for name, kind in (*self.columns, (DIGEST, "BIGINT NOT NULL")):
            types: tuple[type, ...] = (str,)
            if kind.startswith("BIGINT"):
                types = (int,)
            elif kind.startswith("DOUBLE"):
                types = (int, float)
            found.append((name, types, "NOT NULL" not in kind and name != self.key))
        return tuple(found)

    def junk(self, row: Sequence[Any]) -> list[tuple[str, Any]]:
        """The cells of a stored row (``stored_names``' values) that hold what no row written
        here holds, by type (text in a number column, a number in a text one, NULL where it
        never is; SQLite keeps whatever a hand writes): (column, value) each. A read or a
        check meets them as an internal error otherwise (rev36: ``float('x')``, ``'v' > 1``)."""
        return [
            (name, value)
            for (name, types, nullable), value in zip(self._kinds, row, strict=True)
            if not ((value is None and nullable) or type(value) in types)
        ]

    def digest(self, values: Sequence[Any]) -> int:
        """The digest of a row's column values, as written or as read back (a float column
        reads back as a float, whatever number was written). A value of another type is
        hashed as it is: its row no longer matches (rev36: ``float('x')`` was an internal
        error of ``projections status``)."""
        if self._floats:
            values = list(values)
            for i in self._floats:
                if isinstance(values[i], numbers.Real):
                    values[i] = float(values[i])
        text = repr(tuple(values)).encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)

    def ddl(self, physical: str, tag: str) -> list[str]:
        cols = ", ".join(
            f"{name} {kind}" + (" PRIMARY KEY" if name == self.key else "")
            for name, kind in (*self.columns, (DIGEST, "BIGINT"))
        )
        statements = [f"CREATE TABLE {physical} ({cols})"]
        for index in self.indexes:
            unique = "UNIQUE " if index.unique else ""
            statements.append(
                f"CREATE {unique}INDEX {self.name}_{tag}_{index.suffix} "
                f"ON {physical} ({', '.join(index.columns)})"
            )
        return statements

    def indexed_by(self, names: Sequence[str]) -> bool:
        """Whether indexes of these names (as ``ddl`` names them, whatever their tag) include
        each of the table's."""
        prefix = f"{self.name}_"
        made = {n.removeprefix(prefix).partition("_")[2] for n in names if n.startswith(prefix)}
        return all(index.suffix in made for index in self.indexes)

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
        """Insert (or upsert, by key) ``rows`` (values of ``column_names``) in bulk into
        ``physical``, each with its digest."""
        digested = [(*row, self.digest(row)) for row in rows]
        tx.insert(physical, self.stored_names, digested, key=self.key if upsert else None)


@dataclass(frozen=True)
class Bound:
    """The range of a count a read takes (``projections.LAST_EVENTS``, ``EVENTS_AROUND``): one
    rule for the Python API and the command line's option (``custody._wiring.CountType``)."""

    name: str  # the parameter's name, which InvalidInput names
    low: int
    high: int

    def checked(self, value: int) -> int:
        """``value`` if it is a whole number from ``low`` to ``high``, else ``InvalidInput``
        naming the parameter and the range (before any query: a number past SQLite's integers
        was the driver's ``OverflowError``)."""
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not whole or not self.low <= value <= self.high:
            from ledger import InvalidInput

            problem = f"must be a whole number from {self.low:,} to {self.high:,}"
            raise InvalidInput(self.name, f"{problem}, got {_shown(value)}")
        return value


def _shown(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}" if abs(value) < 10**30 else "a number of more than 30 digits"
    return f"a {type(value).__name__}"


def require_window(since: datetime | None, until: datetime | None) -> None:
    """``InvalidInput`` naming ``since`` for a window that ends before it starts: an empty
    answer would pass it off as a quiet time."""
    # Compared as ``iso`` stores them (UTC text sorts as time), a naive time with an aware one.
    if since is not None and until is not None and str(iso(since)) > str(iso(until)):
        from ledger import InvalidInput

        msg = f"{since.isoformat()} is after until {until.isoformat()}: the window holds no time"
        raise InvalidInput("since", msg)


def validated_rows(name: str, validate: Callable[[Any], _T], rows: Any) -> _T:
    """``validate(rows)``; a row that does not validate is ``ReadModelDamaged`` naming the
    read model ``name``, the column and its value, and the rebuild."""
    try:
        return validate(rows)
    except ValidationError as error:
        first = error.errors()[0]
        raise ReadModelDamaged.unreadable(name, first["loc"][-1], first.get("input")) from None


def layout_problem(table: Table, found: Sequence[str]) -> str:
    """What is wrong with a read model's table whose columns are ``found`` (none: missing)."""
    if not found:
        return f"its table {table.name} is missing"
    lacks = [c for c in table.stored_names if c not in found]
    extra = [c for c in found if c not in table.stored_names]
    said = [f"lacks {', '.join(lacks)}"] if lacks else []
    said += [f"has {', '.join(extra)}, which it should not"] if extra else []
    how = "; ".join(said) or "its columns in another order"
    return (
        f"its table {table.name} is of another layout ({how}: an older custody made it, or a "
        "hand altered it; custody init rebuilds it)"
    )


class ReadModel:
    """A read model fed from the notification log. ``fold`` must be deterministic: the same
    events give the same rows, whether folded in one batch or many, today or in a rebuild."""

    name: str
    table: Table
    # What the read model's rows of a profile are counted against, up to its checkpoint: the
    # profile's ``events`` (one row each) or the ``leases`` it acquired (one row each).
    counts: str = "events"
    # Of a read model with one row per lease (``counts`` "leases"): the event types that always
    # name the lease live then, each folded into its row, so a row's version reaches the last
    # of them (``projections._verify`` finds a row put back as it was before them).
    lease_topics: tuple[str, ...] = ()

    def unreadable(self, row: Sequence[Any]) -> list[tuple[str, Any]]:
        """The cells of a stored row (``table.stored_names``' values) that hold what no row
        this read model writes holds, (column, value) each: of another type (``Table.junk``),
        else the first that ``row`` does not take."""
        found = self.table.junk(row)
        if found or (model := self.row_model()) is None:
            return found
        try:
            model.model_validate(dict(zip(self.table.column_names, row, strict=False)))
        except ValidationError as error:
            first = error.errors()[0]
            return [(str(first["loc"][-1]), first.get("input"))]
        return []

    def row_model(self) -> type[ReadResult] | None:
        """What a read turns a row into: ``unreadable`` checks a row edited by hand with it
        too, naming a cell no read could turn into an answer (a time that is not a time)."""
        return None

    @property
    def one_row_per_event(self) -> bool:
        return self.counts == "events"

    def fold(self, tx: FeedTransaction, table: str, batch: Sequence[LoggedEvent]) -> None:
        """Write the rows ``batch`` gives into ``table`` (the live table, or a rebuild's),
        continuing from the rows already there."""
        raise NotImplementedError
