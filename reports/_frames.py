"""What every report shares: the ledger it reads, the moments it is given, the dtypes it returns.

A report reads a read model's table into pandas through ``Ledger.feed.read_frame`` (sqlite3 on
SQLite, ADBC on PostgreSQL) and returns the same dtypes on every store: times as
``datetime64[us, UTC]``, counts as nullable ``Int64``, text as pandas' string dtype.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from ledger import InvalidInput, Ledger

if TYPE_CHECKING:
    import pandas as pd

# A report's source: an open ledger, a store URL, or None ($CUSTODY_STORE, else ./custody.db).
Source = Ledger | str | None
Moment = datetime | date | str | None


@contextmanager
def opened(source: Source) -> Iterator[Ledger]:
    """The ledger to read: the one given (left open), or one opened on the URL and closed after.
    A report never creates a store."""
    if isinstance(source, Ledger):
        yield source
        return
    with Ledger.open(source, create=False) as ledger:
        yield ledger


def rows_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts keyed by column name (pandas' own values, missing as NA)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def moment(field: str, value: Moment, *, until: bool = False) -> datetime | None:
    """The UTC instant a datetime or ISO 8601 text (``2026-11-27T09:45Z``) names; a time
    without an offset is UTC. A date alone (``2026-11-27``) means the whole day: its first
    instant, or with ``until`` its last (``23:59:59.999999``). So does a text time with
    ``until``, to its own precision: ``09:45:07`` reaches through ``09:45:07.999999`` and
    ``09:45`` through ``09:45:59.999999``, so that a time copied from a text view (shown to
    the second) takes in the events of that second it shows. ``InvalidInput`` names the
    field for text that is no time, and for a time with no UTC instant (the first hours of
    year 1 east of Greenwich, the last of year 9999 west of it)."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):  # date.today(): the day
        value = value.isoformat()
    if isinstance(value, str):
        value = _parsed(field, value, until=until)
    elif not isinstance(value, datetime) or value != value:  # NaT is a datetime unequal to itself
        msg = f"expected a datetime, a date or ISO 8601 text, not {str(value)[:40]!r}"
        raise InvalidInput(field, msg)
    elif getattr(value, "nanosecond", 0):  # a pandas Timestamp: what the CLI's text refuses
        msg = f"{value} is finer than a microsecond, which custody keeps no time finer than"
        raise InvalidInput(field, msg)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        msg = f"{value.isoformat()} is out of range: it has no instant in UTC"
        raise InvalidInput(field, msg) from None


def as_of(ledger: Ledger, at: datetime | None) -> datetime:
    """The moment an "as of" report is judged at: ``at``, or the store's time when None.
    ``InvalidInput`` naming ``at`` for a moment after the store's time: the events cannot
    tell what is still to come, and an answer about it would read as fact."""
    now = ledger.now()
    if at is None:
        return now
    if at > now:
        raise InvalidInput("at", f"{at.isoformat()} is after the store's time {now.isoformat()}")
    return at


def _parsed(field: str, text: str, *, until: bool) -> datetime:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        pass
    else:  # a day: from its first instant, or through its last
        if until and _WEEK.fullmatch(text.strip()):  # a week: through its Sunday
            if day > date.max - timedelta(days=6):  # 9999-W52's Sunday is past year 9999
                msg = f"the week's last day is past 9999-12-31 (got {text[:40]!r})"
                raise InvalidInput(field, msg)
            day += timedelta(days=6)
        return datetime.combine(day, time.max if until else time.min, tzinfo=UTC)
    try:
        # Python takes a space before the offset only after whole seconds (rev33: "09:45:07.5
        # +0000" was refused where "09:45:07 +0000" was read).
        parsed = datetime.fromisoformat(_SPACE_BEFORE_OFFSET.sub("", text.strip()))
    except ValueError:
        ex = f"such as 2026-11-27T09:45:00Z (got {text[:40]!r})"
        msg = f"expected an ISO 8601 time {ex}"
        if _ORDINAL.match(text):  # ISO 8601's, but Python reads none (review 260)
            msg = f"an ordinal date (a day of the year) is not read: give the calendar date, {ex}"
        raise InvalidInput(field, msg) from None
    apart = _DATE_THEN.match(text)
    if apart is not None and apart.group(1) not in "Tt ":  # rev33: Python takes any character
        msg = f"the date and the time are apart by T (or a space) (got {text[:40]!r})"
        raise InvalidInput(field, msg)
    if _DECIMAL_HOUR_OR_MINUTE.search(text):  # Python reads T15.5 as 15:00:00.5, not 15:30
        msg = f"a fraction goes after the seconds, as in 09:45:07.5 (got {text[:40]!r})"
        raise InvalidInput(field, msg)
    if _FRACTIONAL_OFFSET.search(text):  # Python reads +00:00:00.5 as UTC, the fraction lost
        msg = f"an offset from UTC is whole seconds at most, as in +01:00 (got {text[:40]!r})"
        raise InvalidInput(field, msg)
    if _BEYOND_MICROSECONDS.search(text):  # Python cuts them: a --since a little earlier
        msg = f"a fraction of a second has at most 6 digits, microseconds (got {text[:40]!r})"
        raise InvalidInput(field, msg)
    if until:
        parsed = _through_its_last_instant(text.strip(), parsed)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# An ISO 8601 ordinal date (``2026-335``, ``2026335``), perhaps with a time after it.
_ORDINAL = re.compile(r"\s*\d{4}-?\d{3}(?:[Tt\s]|$)")

# An ISO 8601 week without its day (``2026-W48``), which ``date.fromisoformat`` reads as its
# Monday.
_WEEK = re.compile(r"\d{4}-?W\d{2}")

# The time of day at the end of an ISO 8601 time, with its offset if any: hours, minutes,
# seconds and a fraction, each optional after the hours (``09``, ``0945``, ``09:45:07.5``).
_TIME_OF_DAY = re.compile(
    r"(\d{2})(?::?(\d{2})(?::?(\d{2})([.,]\d+)?)?)?"
    r"\s*(?:[Zz]|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?)?$"
)
# ISO 8601's decimal hours or minutes (``T15.5``, ``T15:04.9``), which ``fromisoformat`` reads as
# a fraction of the second: refused.
_DECIMAL_HOUR_OR_MINUTE = re.compile(r"[Tt\s]\d{2}(?::?\d{2})?[.,]\d")
# A date in one of the forms ``fromisoformat`` reads, and the character after it, which it
# takes whatever it is (``2026-12-06x00:55.5`` read as 00:55:00.5: rev33).
_DATE_THEN = re.compile(r"\s*(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}-?W\d{2}-?\d)(.)", re.DOTALL)
# The spaces between a time and its offset at the end of the text.
_SPACE_BEFORE_OFFSET = re.compile(
    r"(?<=\d)\s+(?=(?:[Zz]|[+-]\d{2}(?::?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?)$)"
)
# An offset from UTC with a fraction of a second (``+00:00:00.5``), which ``fromisoformat``
# reads as UTC when its whole part is zero, the fraction dropped (rev47: --at T+00:00:00.5 was
# judged at T, not half a second before).
_FRACTIONAL_OFFSET = re.compile(r"[+-]\d{2}:?\d{2}:?\d{2}[.,]\d+\s*$")
# A fraction of a second finer than a microsecond, which ``fromisoformat`` cuts.
_BEYOND_MICROSECONDS = re.compile(r"[.,]\d{7}")


def _through_its_last_instant(text: str, parsed: datetime) -> datetime:
    """``parsed`` moved to the last microsecond of the unit ``text`` gives it to: the hour,
    the minute or the second; as it is when the text has a fraction of a second."""
    given = _TIME_OF_DAY.search(text)
    if given is None or given.group(4):
        return parsed
    if given.group(2) is None:
        return parsed.replace(minute=59, second=59, microsecond=999_999)
    if given.group(3) is None:
        return parsed.replace(second=59, microsecond=999_999)
    return parsed.replace(microsecond=999_999)


def typed(
    frame: pd.DataFrame,
    *,
    times: Sequence[str] = (),
    integers: Sequence[str] = (),
    floats: Sequence[str] = (),
    read_model: str | None = None,
) -> pd.DataFrame:
    """The frame with one dtype per column whatever store it came from; every other column
    becomes text (missing values are missing, never the string ``None``). A value of the
    ``read_model``'s rows that is not of its column's type (put there by hand) is
    ``ReadModelDamaged`` naming it and its rebuild."""
    out = frame.copy()
    for column in out.columns:
        cast = _cast(str(column), times, integers, floats)
        try:
            out[column] = cast(out[column])
        except (ValueError, TypeError) as error:
            if read_model is None:
                raise
            from ledger import ReadModelDamaged  # only for a damaged row

            raise ReadModelDamaged.unreadable(
                read_model, column, _unreadable(out[column], cast)
            ) from error
    return out


def judged(leases: pd.DataFrame, at: datetime) -> pd.DataFrame:
    """The leases read model's rows (``typed``) with each status as at ``at``, by the ledger's
    rule (``ledger.rules.lease_status_at``): ``overdue`` for an active lease past its deadline
    then, which no sweep had marked stale yet. TTL is a renewal deadline: such a lease is not
    live (rev42: usage and health read it as active and live while the sweeper was down)."""
    import pandas as pd

    from ledger.rules import lease_status_at

    pairs = zip(leases["status"], leases["expires_at"], strict=True)
    statuses = [lease_status_at(str(status), deadline, at) for status, deadline in pairs]
    return leases.assign(status=pd.array(statuses, dtype="string"))


def _cast(
    column: str, times: Sequence[str], integers: Sequence[str], floats: Sequence[str]
) -> Callable[[pd.Series], pd.Series]:
    """What ``typed`` makes of the column's values; ``ValueError`` or ``TypeError`` for a
    value it cannot make one of its type."""
    if column in times:
        return _times
    if column in integers:
        return _integers
    if column in floats:
        return _floats
    return _text


def _times(values: pd.Series) -> pd.Series:
    import pandas as pd  # here, so that parsing a moment (``moment``) never imports pandas

    return pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[us, UTC]")


def _integers(values: pd.Series) -> pd.Series:
    """The values as nullable ``Int64``. A number no int64 holds exactly (a fraction, 1e30,
    infinity) is refused before pandas' cast, which warns ("RuntimeWarning: invalid value
    encountered in cast", printed above the command line's one line: rev45) and then refuses
    it, or for infinity raises ``OverflowError``."""
    if values.dtype.kind == "f":
        numbers = values.dropna()
        held = (numbers % 1 == 0) & (numbers >= -(2.0**63)) & (numbers < 2.0**63)
        if not held.all():
            raise ValueError("a number no int64 holds")
    elif values.dtype == object:
        for value in values:
            if isinstance(value, float) and not _held(value):
                raise ValueError("a number no int64 holds")
    return values.astype("Int64")


def _held(value: float) -> bool:
    """Whether an int64 holds the float exactly (NaN: a missing value, held as NA)."""
    return value != value or (value.is_integer() and -(2.0**63) <= value < 2.0**63)


def _floats(values: pd.Series) -> pd.Series:
    return values.astype("float64")


def _text(values: pd.Series) -> pd.Series:
    return values.astype("string")


def _unreadable(values: pd.Series, cast: Callable[[pd.Series], pd.Series]) -> object:
    """The first of the values ``cast`` refuses, as the rows path names it (rev45: the
    DataFrame path named a value of another row, or None, where ``timeline`` named the cell):
    the end of the shortest run of values from the first that it refuses, found by halving,
    so that a large frame costs a few casts. ``cast`` takes or refuses each value on its own."""
    taken, refused = 0, len(values)  # values[:taken] are cast; values[:refused] are not
    while refused - taken > 1:
        middle = (taken + refused) // 2
        try:
            cast(values.iloc[:middle])
        except (ValueError, TypeError):
            refused = middle
        else:
            taken = middle
    return values.iloc[refused - 1]


def spoken(seconds: float | None) -> str:
    """A duration as a person reads it: ``45s``, ``5m 18s``, ``3h 02m``, ``2d 04h``;
    ``-`` for none."""
    if seconds is None or seconds != seconds:  # None or NaN
        return "-"
    if seconds < 0:  # a clock set back between two events: said as it is, not as -1d 23h
        return "-" + spoken(-seconds) if round(seconds) else "0s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
