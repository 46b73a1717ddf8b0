"""Printing the reports: a DataFrame as a table, CSV or JSON (or into a file), and a replay.

Importing this module imports neither pandas nor the reports: a command that has a report to
print has imported them already.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from custody._printed import Printed, Streamed
from custody._text import for_a_person, printable, typed

if TYPE_CHECKING:
    import pandas as pd

    from projections import LeaseRow, TimelineRow
    from reports import Replay

# What the usage table shows; csv and json carry every column.
_USAGE_TABLE = (
    ("PROFILE", "profile_id"),
    ("LEASE", "lease_id"),
    ("WORKER", "worker_id"),
    ("RUN", "run_id"),
    ("TASK", "task_type"),
    ("STARTED", "started_at"),
    ("ENDED", "ended_at"),
    ("STATUS", "status"),  # overdue: past its deadline, not ended (rev42: read as live)
    ("ENDING", "ending"),
    ("OUTCOME", "outcome"),
    ("BEATS", "heartbeats"),
)


def missing(value: Any) -> bool:
    """Whether a cell holds no value: None, pandas' NA or NaT, or a float NaN. Text is never
    missing, whatever it says: "NaT", "<NA>", "None", "nan" and "" are values a caller may
    store (pandas is not imported to tell: its missing values are singletons of known types)."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _value(value: Any) -> Any:
    """A cell as JSON has it: times in ISO 8601 to the microsecond (one form per column: a time
    on a whole second kept its fraction out, and pandas could not read a column of both),
    missing values null, numbers as numbers, text exactly as stored."""
    if missing(value):
        return None
    if isinstance(value, datetime):  # pandas' Timestamp is a datetime
        return value.isoformat(timespec="microseconds")
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as plain dicts, as JSON has them (``_value``)."""
    columns = list(frame.columns)
    return [
        {c: _value(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def table_rows(frame: pd.DataFrame, columns: list[str] | None = None) -> list[tuple[Any, ...]]:
    """The frame's rows (of ``columns``, default all) as pandas holds them: what ``cell``
    formats, so a time is still a time there and text is still text."""
    chosen = frame if columns is None else frame.loc[:, columns]
    return list(chosen.itertuples(index=False, name=None))


@dataclass
class PagedAnswer(Streamed):
    """A report's DataFrames printed as csv or json, or saved to ``output`` in any file format,
    a page at a time as each comes (``timeline``'s: an export of any length holds one page;
    ``usage``'s, one frame). The store is read while they are written: a refusal comes with
    the first page, before any output; a failure later (the store gone, a damaged row) ends
    the command with its line and exit code, printed output cut short, a file left as it
    was (``save``)."""

    kind: str
    pages: Iterator[pd.DataFrame]
    fmt: str
    output: Path | None = None

    def stream(self, out: TextIO, *, as_json: bool) -> None:
        if self.output is not None:  # standard output gets its summary once the file is whole
            saved(self.pages, self.kind, self.fmt, self.output, out, as_json=as_json)
        elif as_json or self.fmt == "json":
            write_json(self.pages_begun(self.pages), out)
        else:
            pages = self.pages_begun(self.pages)
            write_csv_pages(pages, out, for_a_terminal=for_a_person(out))


def saved(
    frames: Iterable[pd.DataFrame],
    kind: str,
    fmt: str,
    path: Path,
    out: TextIO,
    *,
    as_json: bool,
) -> None:
    """Write ``frames`` (one report's, in order) to ``path`` in ``fmt`` and say so on ``out``:
    how many rows went to which file."""
    from custody._export import save

    counted = _Counted(frames)
    if fmt == "json":
        save(counted, fmt, path, lambda file: write_json(counted, file))
    else:
        save(counted, fmt, path, lambda file: write_csv_pages(counted, file))
    # The name as typed: under LC_ALL=C the OS's form of "rép.csv" holds surrogates
    # (rev40: JSON answered a name the caller never gave, one a strict reader refuses).
    name = typed(str(path))
    done = {"output": name, "format": fmt, "rows": counted.rows}
    if as_json:
        out.write(json.dumps(done) + "\n")
    else:
        # The path as typed, escaped as every other text a terminal is shown (rev33).
        shown = printable(name)
        out.write(f"wrote {counted.rows} {kind} rows to {shown} ({fmt})\n")


class _Counted:
    """Frames passed on once, their rows counted as they pass."""

    def __init__(self, frames: Iterable[pd.DataFrame]) -> None:
        self._frames = iter(frames)
        self.rows = 0

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for frame in self._frames:
            self.rows += len(frame)
            yield frame


def write_json(frames: Iterable[pd.DataFrame], out: TextIO) -> None:
    """The frames' rows as one JSON array of objects (``records``), written a row at a time:
    exactly what ``json.dumps`` of the whole list with ``indent=2`` writes."""
    put = out.write
    first = True
    for frame in frames:
        for record in records(frame):
            put("[\n" if first else ",\n")
            first = False
            put("  " + json.dumps(record, indent=2).replace("\n", "\n  "))
    put("[]\n" if first else "\n]\n")


def write_usage_table(rows: list[tuple[Any, ...]], out: TextIO) -> None:
    """The usage table for a person: ``_USAGE_TABLE``'s columns, a cell each (``cell``)."""
    from custody._tables import write_rows

    headers = [h for h, _ in _USAGE_TABLE]
    write_rows(headers, [[cell(v) for v in row] for row in rows], out=out)


@dataclass(frozen=True)
class UsageAnswer(Printed):
    """An account's leases as a table for a person (``--format table`` to a terminal or a
    pipe), from rows: no DataFrame, so no pandas. ``PagedAnswer`` prints every other format
    from ``reports.usage``'s DataFrame."""

    rows: list[LeaseRow]

    def write(self, out: TextIO, *, as_json: bool) -> None:
        columns = [c for _, c in _USAGE_TABLE]
        write_usage_table([tuple(getattr(r, c) for c in columns) for r in self.rows], out)


@dataclass
class TimelineAnswer(Streamed):
    """A timeline's rows as lines for a person, oldest first (``--format table`` to a
    terminal or a pipe; ``PagedAnswer`` prints every other format from DataFrames)."""

    pages: Iterable[list[TimelineRow]]
    one_profile: bool = False

    def stream(self, out: TextIO, *, as_json: bool) -> None:
        from custody._render import timeline_line
        from custody._text import printable

        written = False
        for page in self.pages_begun(self.pages):
            for row in page:
                line = timeline_line(row, profile=not self.one_profile)
                out.write(printable(line) + "\n")
                written = True
        if not written:
            out.write("(none)\n")


# What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def defanged(text: str) -> str:
    """A text cell as a CSV export writes it: a cell a spreadsheet would run as a formula gets
    a leading single quote (OWASP's advice), and so does one that already starts with quotes
    before such a character, so that ``undefanged`` gives every text back exactly."""
    if text.lstrip("'").startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def undefanged(cell: str) -> str:
    """The text a defanged CSV cell was made from (what a program reading the export does)."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_TRIGGERS):
        return cell[1:]
    return cell


def write_csv(frame: pd.DataFrame, out: TextIO, *, for_a_terminal: bool = False) -> None:
    """``write_csv_pages`` of one frame."""
    write_csv_pages([frame], out, for_a_terminal=for_a_terminal)


def write_csv_pages(
    frames: Iterable[pd.DataFrame], out: TextIO, *, for_a_terminal: bool = False
) -> None:
    """The frame as CSV: a header, then a row per record, each ending in a newline; a missing
    value is an empty cell, and a text cell a spreadsheet would take for a formula is defanged
    (``defanged``). A cell holding a line break of either kind is quoted. ``for_a_terminal``:
    every character a terminal would act on is written as its escape (``printable``), as a
    table writes it: a worker's URL must not drive the next person's terminal. A file or a
    pipe gets the texts exactly, in UTF-8 whatever the locale (``utf8_writer``)."""
    import csv

    shown: Callable[[str], str] = printable if for_a_terminal else str
    put = out.write if for_a_terminal else utf8_writer(out)

    # The csv module quotes a cell only for the line terminator's own characters: told "\r\n"
    # it quotes a lone "\r" too (told "\n", it wrote one bare, and no reader could read the
    # file back); each row's "\r\n" is then written as "\n".
    row_text = io.StringIO()
    writer = csv.writer(row_text, lineterminator="\r\n")

    def write(cells: list[Any]) -> None:
        writer.writerow(cells)
        put(row_text.getvalue()[:-2] + "\n")
        row_text.seek(0)
        row_text.truncate()

    for n, frame in enumerate(frames):
        if n == 0:
            write([shown(defanged(str(c))) for c in frame.columns])
        for row in records(frame):
            write(
                [
                    shown(defanged(v)) if isinstance(v, str) else ("" if v is None else v)
                    for v in row.values()
                ]
            )


def utf8_writer(out: TextIO) -> Callable[[str], object]:
    """What writes text to ``out`` as its exact UTF-8 bytes, whatever the locale: a stream of
    bytes beneath (stdout, a file) is written to directly, the text layer flushed first; a
    stream of text alone (``io.StringIO``) takes the text as it is. In a locale that is not
    UTF-8, stdout's own encoding wrote a dotless i (U+0131) as the six characters '\\u0131',
    as if typed so, and 'é' as a Latin-1 byte or as '\\xe9' (rev40)."""
    buffer = getattr(out, "buffer", None)
    if buffer is None:
        return out.write
    out.flush()
    return lambda text: buffer.write(text.encode("utf-8"))


def cell(value: Any) -> str:
    """A value as a table cell: "-" for missing, a time to the second with its offset (the
    reports' are UTC, and say so as every other text view does: rev40, ``usage`` and
    ``health`` cut it), a float without trailing zeros, text as it is (a text that looks like
    a time is not a time: never cut)."""
    if missing(value):
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


@dataclass(frozen=True)
class ReplayAnswer(Printed):
    replay: Replay

    def write(self, out: TextIO, *, as_json: bool) -> None:
        from custody._render import replay_lines
        from custody._text import printable

        if as_json:
            # ASCII, as every JSON answer is (json.dumps): exact in any locale, where
            # pydantic's own JSON wrote 'é' in the locale's encoding, or as '\xe9' (rev40).
            out.write(json.dumps(self.replay.model_dump(mode="json"), indent=2) + "\n")
            return
        for line in replay_lines(self.replay):
            out.write(printable(line) + "\n")
