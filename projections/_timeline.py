"""The timeline read model: one flat row per event, the audit envelope in columns.

Fed from the notification log (``projections._runner``), so a timeline of one profile, of an
account or of the whole fleet in a time window is one indexed query, never a replay: ready for
SQL and pandas without decoding a payload.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from datetime import datetime
from typing import Any, TypeVar, overload

from pydantic import TypeAdapter

from ledger import InvalidInput, Ledger, ReadModelDamaged
from ledger.feed import Feed, FeedTransaction, LoggedEvent
from ledger.rules import checked_text, quoted, storable
from projections._base import (
    DIGEST,
    Bound,
    Index,
    ReadModel,
    ReadResult,
    Table,
    iso,
    require_window,
    validated_rows,
)
from projections._runner import catch_up

# How many of the last events a timeline keeps (``last``): more than any store here holds, a
# bound, so a typo is bad input (and never past SQLite's integers).
LAST_EVENTS = Bound("last", 1, 10_000_000)
EVENTS_AROUND = Bound("events", 0, 1_000)  # shown either side of a replay's moment (``around``)
# How many events a page of a timeline read in pages holds (``timeline_pages``): an export's
# memory is one page's (about 30 MB at the default), whatever the store holds.
PAGE = Bound("rows", 1, 1_000_000)
PAGE_ROWS = 5_000

# Payload fields lifted into their own columns; the rest is summarised in ``detail``.
_LIFTED = ("lease_id", "step", "url", "cause", "outcome", "fencing_token")
_ENVELOPE_AND_IDS = {"originator_id", "originator_version", "profile_id", "envelope"}

TIMELINE = Table(
    name="custody_timeline",
    columns=(
        ("position", "BIGINT"),
        ("at", "TEXT NOT NULL"),
        ("profile_id", "TEXT NOT NULL"),
        ("account_id", "TEXT"),
        ("version", "BIGINT NOT NULL"),
        ("event_type", "TEXT NOT NULL"),
        ("actor_id", "TEXT NOT NULL"),
        ("actor_role", "TEXT NOT NULL"),
        ("reason", "TEXT NOT NULL"),
        ("lease_id", "TEXT"),
        ("run_id", "TEXT"),
        ("worker_id", "TEXT"),
        ("fencing_token", "BIGINT"),
        ("step", "TEXT"),
        ("url", "TEXT"),
        ("cause", "TEXT"),
        ("outcome", "TEXT"),
        ("detail", "TEXT NOT NULL"),
        ("correlation_id", "TEXT NOT NULL"),
        ("causation_id", "TEXT NOT NULL"),
        ("command_id", "TEXT NOT NULL"),
    ),
    key="position",
    indexes=(
        Index("stream", ("profile_id", "version"), unique=True),
        Index("profile_at", ("profile_id", "at")),
        Index("account_at", ("account_id", "at")),
        # The suffix names the detail's quoting (``_shown``, rev24): a table made before it
        # lacks the index, so ``custody init`` rebuilds it (``projections.upgrade``).
        Index("at_quoted", ("at",)),
        # A lease's acquisition, found by each batch that continues it (``_runs``), without a
        # walk over its heartbeats.
        Index("lease_event", ("lease_id", "event_type")),
    ),
)


class TimelineRow(ReadResult):
    """One event, flat: who did what, when, to which profile, account, lease and run, and
    why; ``position`` is its place in the whole store's log."""

    position: int
    at: datetime
    profile_id: str
    account_id: str | None
    version: int
    event_type: str
    actor_id: str
    actor_role: str
    reason: str
    lease_id: str | None
    run_id: str | None
    worker_id: str | None
    fencing_token: int | None
    step: str | None
    url: str | None
    cause: str | None
    outcome: str | None
    detail: str
    correlation_id: str
    causation_id: str
    command_id: str


# Where the rows a fold copies a column from are read: its transaction, or the feed.
Queried = FeedTransaction | Feed

# What a timeline is read into: rows as dicts, or a DataFrame.
Found = TypeVar("Found", bound=Sized)


@functools.cache
def _rows() -> TypeAdapter[list[TimelineRow]]:
    """Validating a page of rows at once is about twice as fast as one model at a time. Built
    on first use: its schema is start-up that ``status`` or ``who`` never needs."""
    return TypeAdapter(list[TimelineRow])


@functools.cache
def _payload_fields() -> dict[str, tuple[str, ...]]:
    """Each event type's payload fields in its model's order: the order ``detail`` lists them
    in (the stored JSON sorts its keys). Read from the events on the first fold, so that a
    timeline with nothing new to fold imports no event."""
    from ledger import EVENT_CLASSES

    return {
        event_type: tuple(f for f in cls.model_fields if f not in _ENVELOPE_AND_IDS)
        for event_type, cls in EVENT_CLASSES.items()
    }


def _iso_text(at: str) -> str:
    """``iso`` of a time as JSON gives it. pydantic writes a UTC time with microseconds as
    ``...HH:MM:SS.ffffffZ``: that one is rewritten as text; any other form is parsed."""
    if len(at) == 27 and at[-1] == "Z":
        return at[:-1] + "+00:00"
    return str(iso(datetime.fromisoformat(at)))


def _shown(value: Any) -> Any:
    """A value as ``detail`` lists it: a text that could read as more of the list (a comma, an
    equals sign, a quote, space at an end, nothing) as its JSON string, so that it reads back
    as one value. A worker's ``--evidence-problem 'gone, prompt_seen=True'`` read as a release
    that saw a prompt (rev24)."""
    if isinstance(value, str) and (
        not value or value != value.strip() or any(c in value for c in ',="')
    ):
        return json.dumps(value, ensure_ascii=False)
    return value


def flat(event_type: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
    """The columns of one event that need nothing but the event itself, from its fields as
    JSON gives them (``LoggedEvent.data``, or ``model_dump(mode="json")``): no model is
    decoded, which is most of what a catch-up would otherwise spend."""
    payload = {k: data.get(k) for k in _payload_fields()[event_type]}
    lease = payload.pop("lease", None)
    worker = run = None
    if lease is not None:  # lease_acquired carries the whole lease record
        payload.setdefault("lease_id", lease["lease_id"])
        payload.setdefault("fencing_token", lease["fencing_token"])
        worker, run = lease["worker_id"], lease["run_id"]
        payload["worker_id"], payload["run_id"] = worker, run
        payload["task_type"], payload["expires_at"] = lease["task_type"], lease["expires_at"]
    lifted = {k: payload.pop(k, None) for k in _LIFTED}
    if "final_url" in payload and lifted["url"] is None:
        lifted["url"] = payload.pop("final_url")
    env = data["envelope"]
    return {
        "at": _iso_text(env["at"]),
        "profile_id": data["profile_id"],
        "account_id": payload.get("account_id"),
        "version": version,
        "event_type": event_type,
        "actor_id": env["actor_id"],
        "actor_role": env["actor_role"],
        "reason": env["reason"],
        "run_id": run,
        "worker_id": worker,
        "detail": ", ".join(
            f"{k}={_shown(v)}" for k, v in payload.items() if v not in (None, [], False)
        ),
        "correlation_id": env["correlation_id"],
        "causation_id": env["causation_id"],
        "command_id": env["command_id"],
        **lifted,
    }


TIMELINE_NAME = "timeline"


class TimelineReadModel(ReadModel):
    name = TIMELINE_NAME
    table = TIMELINE

    def row_model(self) -> type[ReadResult]:
        return TimelineRow

    def fold(self, tx: FeedTransaction, table: str, batch: Sequence[LoggedEvent]) -> None:
        self.table.write(tx, table, [self.table.params(r) for r in flattened(tx, table, batch)])


def flattened(source: Queried, table: str, batch: Sequence[LoggedEvent]) -> list[dict[str, Any]]:
    """The timeline's rows of ``batch`` (by column name), as a fold writes them: the account
    and a lease's run and worker found in the batch or in ``table``'s rows (read from
    ``source``: the fold's transaction, or the feed for rows past the checkpoint)."""
    flats = [flat(n.event_type, n.version, n.data()) for n in batch]
    accounts = _accounts(source, table, flats)
    runs = _runs(source, table, flats)
    for n, row in zip(batch, flats, strict=True):
        row["position"] = n.position
        row["account_id"] = accounts.get(row["profile_id"])
        if row["lease_id"] is not None and row["event_type"] != "lease_acquired":
            row["run_id"], row["worker_id"] = runs.get(row["lease_id"], (None, None))
    return flats


def _accounts(tx: Queried, table: str, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Each profile's account: an account never changes, so its registration says it (in this
    batch, or already in the table: one query for the batch)."""
    found = {r["profile_id"]: r["account_id"] for r in rows if r["event_type"] == _REGISTERED}
    wanted = sorted({r["profile_id"] for r in rows} - set(found))
    for chunk in _chunks(wanted):
        for r in _copied(tx, table, "version = 1 AND profile_id", chunk):
            found[r["profile_id"]] = r["account_id"]
    return found


def _runs(
    tx: Queried, table: str, rows: list[dict[str, Any]]
) -> dict[str, tuple[str | None, str | None]]:
    """Each lease's run and worker, from its acquisition (in this batch, or in the table)."""
    found = {
        r["lease_id"]: (r["run_id"], r["worker_id"])
        for r in rows
        if r["event_type"] == "lease_acquired"
    }
    wanted = sorted({r["lease_id"] for r in rows if r["lease_id"] is not None} - set(found))
    for chunk in _chunks(wanted):
        for r in _copied(tx, table, "event_type = 'lease_acquired' AND lease_id", chunk):
            found[r["lease_id"]] = (r["run_id"], r["worker_id"])
    return found


def _copied(tx: Queried, table: str, where: str, chunk: list[str]) -> list[dict[str, Any]]:
    """The stored rows (``where`` ends with the column ``chunk`` holds values of) that this
    batch copies a column from, each checked against its digest: a row edited by hand is
    ``ReadModelDamaged``, never copied into the rows after it under fresh digests."""
    columns = ", ".join(TIMELINE.stored_names)
    marks = ", ".join("?" * len(chunk))
    found = tx.query(f"SELECT {columns} FROM {table} WHERE {where} IN ({marks})", chunk)
    for row in found:
        if TIMELINE.digest([row[c] for c in TIMELINE.column_names]) != row[DIGEST]:
            said = (
                f"the row of profile {row['profile_id']} at version {row['version']} is unlike "
                "the digest written with it (edited by hand)"
            )
            raise ReadModelDamaged(TIMELINE_NAME, said)
    return found


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


_REGISTERED = "profile_registered"


TIMELINE_READ_MODEL = TimelineReadModel()


def select(
    *,
    profile_id: str | None = None,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    last: int | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """The SQL (``?`` placeholders) and parameters of a timeline query, in log order; with
    ``last``, only the last ``last`` events of it (one profile's through its stream index,
    whatever the stream's length). ``InvalidInput`` for a ``last`` out of ``LAST_EVENTS``."""
    if last is not None:
        LAST_EVENTS.checked(last)
    where, params = _filters(profile_id, account_id, since, until)
    columns = ", ".join(TIMELINE.column_names)
    sql = f"SELECT {columns} FROM {TIMELINE.name} WHERE {' AND '.join(where)}"
    if last is None:
        return f"{sql} ORDER BY position", tuple(params)
    # A profile's versions follow its log order, and (profile_id, version) is indexed.
    newest = "version" if profile_id is not None else "position"
    sql = f"SELECT * FROM ({sql} ORDER BY {newest} DESC LIMIT ?) AS latest ORDER BY position"
    return sql, (*params, last)


def _filters(
    profile_id: str | None, account_id: str | None, since: datetime | None, until: datetime | None
) -> tuple[list[str], list[Any]]:
    """The ``WHERE`` clauses (``?`` placeholders, joined by ``AND``) and parameters that pick a
    timeline's events, whatever its order and length."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    for clause, value in (
        ("profile_id = ?", profile_id),
        ("account_id = ?", readable_account(account_id)),
        ("at >= ?", _stored("since", since)),
        ("at <= ?", _stored("until", until)),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    return where, params


def _stored(field: str, value: datetime | None) -> str | None:
    """A time as the timeline stores it (UTC text); one without an offset is UTC, as
    everywhere in custody. ``InvalidInput`` naming ``field`` for a time with no UTC instant."""
    if value is not None and (not isinstance(value, datetime) or value != value):  # a date, NaT
        msg = f"expected a datetime, not {str(value)[:40]!r}"
        raise InvalidInput(field, msg)
    try:
        return iso(value)  # one without an offset taken as UTC
    except OverflowError:
        assert value is not None
        msg = f"{value.isoformat()} is out of range: it has no instant in UTC"
        raise InvalidInput(field, msg) from None


def _asked(
    ledger: Ledger,
    profile_id: str | None,
    account_id: str | None,
    since: datetime | None,
    until: datetime | None,
    last: int | None,
) -> tuple[str, tuple[Any, ...]]:
    """A timeline's query (``select``), its window checked and the timeline brought up to
    date first, so that no command that finished before is missing from it."""
    readable_profile(ledger, profile_id)
    require_window(since, until)
    sql, params = select(
        profile_id=profile_id, account_id=account_id, since=since, until=until, last=last
    )
    catch_up(ledger, TIMELINE_READ_MODEL)
    return sql, params


def read_timeline(
    ledger: Ledger,
    read: Callable[[str, Sequence[Any]], Found],
    *,
    profile_id: str | None = None,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    last: int | None = None,
) -> Found:
    """The one definition of a timeline answer, whatever shape it is read in: the events of
    one profile, an account or every profile, optionally within a time window (and only the
    ``last`` of them), in log order (oldest first), brought up to date first. ``read`` runs
    the query (``Feed.query`` for rows, ``Feed.read_frame`` for a DataFrame).
    ``UnknownProfile`` for a profile never registered; ``InvalidInput`` for a ``last`` out of
    ``LAST_EVENTS`` (1 to 10,000,000), a time with no UTC instant, a window that ends before it
    starts, or an account no profile was registered under."""
    sql, params = _asked(ledger, profile_id, account_id, since, until, last)
    found = read(sql, params)
    if len(found) == 0:
        _require_known(ledger, profile_id, account_id)
    return found


def _last_position(page: Any) -> int:
    """The log position of a page's last event: a page of rows (dicts) or a DataFrame."""
    if isinstance(page, list):
        return int(page[-1]["position"])
    return int(page["position"].iloc[-1])


def timeline_pages(
    ledger: Ledger,
    profile_id: str | None = None,
    *,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    last: int | None = None,
    rows: int = PAGE_ROWS,
) -> Iterator[list[TimelineRow]]:
    """``timeline``'s rows in pages of at most ``rows`` (``timeline_pages_read``): a timeline
    of any length, one page in memory at a time."""
    pages = timeline_pages_read(
        ledger,
        ledger.feed.query,
        profile_id=profile_id,
        account_id=account_id,
        since=since,
        until=until,
        last=last,
        rows=rows,
    )
    for page in pages:
        yield timeline_rows(page)


def _require_known(ledger: Ledger, profile_id: str | None, account_id: str | None) -> None:
    """What an empty timeline of ``profile_id`` or ``account_id`` means when either is
    unknown: ``UnknownProfile`` (or ``InvalidInput`` for a malformed id), ``InvalidInput``
    naming ``account``."""
    if profile_id is not None:
        ledger.history(profile_id)  # raises UnknownProfile (or InvalidInput for a bad id)
    if account_id is not None:
        require_account(ledger, account_id)


def timeline_pages_read(
    ledger: Ledger,
    read: Callable[[str, Sequence[Any]], Found],
    *,
    profile_id: str | None = None,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    last: int | None = None,
    rows: int = PAGE_ROWS,
) -> Iterator[Found]:
    """``read_timeline``'s answer in pages of at most ``rows`` events each, in log order, so
    that an export of any length holds one page at a time (a whole fleet's timeline read at
    once held about 6 KB an event: rev42, 2.5 GB for 368,000 events). The events are those
    the timeline held after its catch-up, before the first page was read: one committed while
    the pages are read is left for the next timeline, as a single read would leave it. The
    first page is read when the iterator is first advanced and refuses exactly as
    ``read_timeline`` does; it comes even when empty, every later page holds events."""
    PAGE.checked(rows)
    sql, params = _asked(ledger, profile_id, account_id, since, until, last)
    where, picked = _filters(profile_id, account_id, since, until)
    # The positions the answer spans, read once: rows folded after it (by another command's
    # catch-up) lie above ``hi``. With ``last``, the last events' own span, whose every event
    # of these filters is one of them.
    if last is None:
        statement = f"SELECT MAX(position) AS hi FROM {TIMELINE.name} WHERE {' AND '.join(where)}"
        span = ledger.feed.query(statement, picked)[0]
        lo, hi = None, span["hi"]
    else:
        statement = f"SELECT MIN(position) AS lo, MAX(position) AS hi FROM ({sql}) AS answer"
        span = ledger.feed.query(statement, params)[0]
        lo, hi = span["lo"], span["hi"]
    if hi is None:
        where.append("1 = 0")  # nothing: the page, empty, says so in the shape it is read in
    else:
        where.append("position <= ?")
        picked.append(hi)
    if lo is not None:
        where.append("position >= ?")
        picked.append(lo)
    columns = ", ".join(TIMELINE.column_names)
    first = True
    after: int | None = None
    while True:
        also = [] if after is None else ["position > ?"]
        statement = (
            f"SELECT {columns} FROM {TIMELINE.name} WHERE {' AND '.join([*where, *also])} "
            "ORDER BY position LIMIT ?"
        )
        page = read(statement, [*picked, *([] if after is None else [after]), rows])
        if first and len(page) == 0:
            _require_known(ledger, profile_id, account_id)
        if len(page) > 0 or first:
            yield page
        if len(page) < rows:
            return
        first = False
        after = _last_position(page)


def timeline(
    ledger: Ledger,
    profile_id: str | None = None,
    *,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    last: int | None = None,
) -> list[TimelineRow]:
    """``read_timeline`` as flat rows (``reports.timeline`` gives the same as a DataFrame)."""
    rows = read_timeline(
        ledger,
        ledger.feed.query,
        profile_id=profile_id,
        account_id=account_id,
        since=since,
        until=until,
        last=last,
    )
    return timeline_rows(rows)


def timeline_rows(rows: list[dict[str, Any]]) -> list[TimelineRow]:
    """Rows of the timeline, by column name, as ``TimelineRow`` (``ReadModelDamaged`` for a
    value no fold writes)."""
    return validated_rows(TIMELINE_NAME, _rows().validate_python, rows)


@overload
def readable_account(account_id: str) -> str: ...
@overload
def readable_account(account_id: None) -> None: ...
def readable_account(account_id: str | None) -> str | None:
    """``account_id`` as a query may take it: one holding what no registration takes (NUL, a
    lone surrogate) is ``InvalidInput`` naming ``account``, before any query is built on it,
    since PostgreSQL fails a query on it as if the store were down; one that is no text (a
    number, bytes) is ``InvalidInput`` naming ``account`` too (rev48: AttributeError)."""
    if account_id is not None and storable(checked_text("account", account_id)) != account_id:
        msg = f"no profile was ever registered under account {quoted(account_id)}"
        raise InvalidInput("account", f"{msg}: an account id holds no NUL or lone surrogate")
    return account_id


def readable_profile(ledger: Ledger, profile_id: str | None) -> None:
    """A profile id holding what no registration takes (NUL, a lone surrogate: bytes typed that
    were not UTF-8) is refused before any query is built on it, as every read of a profile
    refuses it (``InvalidInput`` naming ``profile_id``): the query's encoding failed on it, said
    as output that could not be written, exit 1 (rev47), and so is one that is no text (rev48:
    a number was an AttributeError)."""
    if profile_id is not None and (
        not isinstance(profile_id, str) or storable(profile_id) != profile_id
    ):
        ledger.history(profile_id)  # raises InvalidInput: no such id is ever registered


def require_account(ledger: Ledger, account_id: str) -> None:
    """``InvalidInput`` naming ``account`` unless a profile was ever registered under it, as
    its events say: one indexed read of the timeline (brought up to date first), whose every
    row carries the account its profile was registered under (``readable_account`` first)."""
    readable_account(account_id)
    catch_up(ledger, TIMELINE_READ_MODEL)
    sql = f"SELECT profile_id FROM {TIMELINE.name} WHERE account_id = ? LIMIT 1"
    if ledger.feed.query(sql, (account_id,)):
        return
    # A login that folds nothing (a worker's, ``Feed.maintains``) may read a timeline not yet
    # at the registration: the availability rows, written beside the events, have it.
    if not ledger.feed.maintains() and any(
        r.account_id == account_id for r in ledger.availability()
    ):
        return
    msg = f"no profile was ever registered under account {quoted(account_id)}"
    raise InvalidInput("account", msg)


def version_at(ledger: Ledger, profile_id: str, at: datetime) -> int | None:
    """The profile's stream version at time ``at``: the last of its events up to the first
    recorded after ``at`` (None if it was not registered yet). A stream's times go back only
    when the store's clock was set back by more than a second (``docs/explanation/
    ttl-as-a-deadline.md``, "Whose clock"): an event recorded after one stamped past ``at`` is
    never taken as at or before it, whatever its own time (rev30: ``replay --at`` before a
    profile's registration showed it leased, from events written after a step back). Found
    through the timeline's (profile, time) index."""
    if not ledger.feed.maintains():  # a worker's login: the timeline may lag the events
        version = None
        for event in ledger.history(profile_id):
            if event.envelope.at > at:
                break
            version = event.originator_version
        return version
    catch_up(ledger, TIMELINE_READ_MODEL)
    rows = ledger.feed.query(
        f"SELECT (SELECT min(version) FROM {TIMELINE.name} WHERE profile_id = ? AND at > ?) "
        f"AS later, (SELECT max(version) FROM {TIMELINE.name} WHERE profile_id = ?) AS last",
        (profile_id, iso(at), profile_id),
    )
    later, last = _version(rows[0]["later"]), _version(rows[0]["last"])
    version = last if later is None else later - 1
    return None if version is None or version < 1 else version


def versions_as_of(ledger: Ledger, profiles: Iterable[str], at: datetime) -> dict[str, int]:
    """Each of ``profiles``' stream version at time ``at`` as ``version_at`` finds it (the last
    event before the first stamped after ``at``; 0: none yet), left out for a profile none of
    whose events is stamped after ``at``: one scan of the timeline's events after ``at``, on a
    store whose read models this login keeps."""
    wanted = set(profiles)
    catch_up(ledger, TIMELINE_READ_MODEL)
    rows = ledger.feed.query(
        f"SELECT profile_id, min(version) AS later FROM {TIMELINE.name} WHERE at > ? "
        "GROUP BY profile_id",
        (iso(at),),
    )
    found = {str(r["profile_id"]): _version(r["later"]) for r in rows}
    return {p: v - 1 for p, v in found.items() if p in wanted and v is not None}


def _version(value: Any) -> int | None:
    """A version the timeline's aggregate found: ``ReadModelDamaged`` naming the column and
    the value for what no row written holds (rev36: SQLite's ``max`` of ``'v'`` and 1 is
    ``'v'``; ``replay --at`` was an internal error comparing it)."""
    if value is None or type(value) is int:
        return value
    raise ReadModelDamaged.unreadable(TIMELINE_NAME, "version", value)


def at_moments(ledger: Ledger, profile_id: str, moments: Iterable[datetime]) -> list[TimelineRow]:
    """The profile's events recorded at exactly these moments, in log order: a command's events
    share its time, so the moment a state began gives the command that put the profile there.
    One lookup on the (profile, time) index, whatever the stream's length."""
    wanted = sorted({str(iso(m)) for m in moments})
    if not wanted:
        return []
    catch_up(ledger, TIMELINE_READ_MODEL)
    columns = ", ".join(TIMELINE.column_names)
    rows = ledger.feed.query(
        f"SELECT {columns} FROM {TIMELINE.name} WHERE profile_id = ? "
        f"AND at IN ({', '.join('?' * len(wanted))}) ORDER BY position",
        (profile_id, *wanted),
    )
    return validated_rows(TIMELINE_NAME, _rows().validate_python, rows)
