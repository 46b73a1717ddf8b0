"""Printing the reports: a DataFrame as a table, CSV or JSON (or into a file), and a replay.

Importing this module imports neither pandas nor the reports: a command that has a report to
print has imported them already.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import pandas as pd

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
    ("ENDING", "ending"),
    ("OUTCOME", "outcome"),
    ("BEATS", "heartbeats"),
)


class Printed:
    """A result that prints itself (the report commands' answers)."""

    def write(self, out: TextIO, *, as_json: bool) -> None:
        raise NotImplementedError

    def failed(self) -> tuple[int, str] | None:
        """The exit code and one line, when the answer itself means failure (``checklist
        --strict`` with an answer needing attention); None otherwise."""
        return None


def _value(value: Any) -> Any:
    """A cell as JSON has it: times in ISO 8601, missing values null, numbers as numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if str(value) in ("<NA>", "NaT"):  # pandas' missing values (NaT is a datetime)
        return None
    if isinstance(value, datetime):  # pandas' Timestamp is a datetime
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as plain dicts."""
    columns = list(frame.columns)
    return [
        {c: _value(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


@dataclass(frozen=True)
class FrameAnswer(Printed):
    """A report's DataFrame and how to print it."""

    kind: str
    frame: pd.DataFrame
    fmt: str
    one_profile: bool = False
    output: Path | None = None  # --output FILE: the frame goes there, a summary to ``out``

    def write(self, out: TextIO, *, as_json: bool) -> None:
        if self.output is not None:
            self._save(self.output, out, as_json=as_json)
        elif as_json or self.fmt == "json":
            out.write(json.dumps(records(self.frame), indent=2) + "\n")
        elif self.fmt == "csv":
            write_csv(self.frame, out)
        elif self.kind == "timeline":
            self._timeline(out)
        else:
            from custody.tables import write_rows

            rows = records(self.frame)
            write_rows(
                [h for h, _ in _USAGE_TABLE],
                [[cell(r[c]) for _, c in _USAGE_TABLE] for r in rows],
                out=out,
            )

    def _save(self, path: Path, out: TextIO, *, as_json: bool) -> None:
        from custody.export import save

        text = FrameAnswer(self.kind, self.frame, self.fmt)
        save(self.frame, self.fmt, path, lambda file: text.write(file, as_json=False))
        done = {"output": str(path), "format": self.fmt, "rows": len(self.frame)}
        if as_json:
            out.write(json.dumps(done) + "\n")
        else:
            out.write(f"wrote {len(self.frame)} {self.kind} rows to {path} ({self.fmt})\n")

    def _timeline(self, out: TextIO) -> None:
        from custody.render import printable, timeline_line
        from projections import TimelineRow

        rows = records(self.frame)
        if not rows:
            out.write("(none)\n")
        for row in rows:
            line = timeline_line(TimelineRow.model_validate(row), profile=not self.one_profile)
            out.write(printable(line) + "\n")


def write_csv(frame: pd.DataFrame, out: TextIO) -> None:
    """The frame as CSV: a header, then a row per record (missing values empty)."""
    import csv

    writer = csv.DictWriter(out, fieldnames=list(frame.columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(records(frame))


def cell(value: Any) -> str:
    """A value as a table cell: "-" for missing, times to the second, floats without
    trailing zeros."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    text = str(value)
    return text[:19].replace("T", " ") if text[4:5] == "-" and text[10:11] == "T" else text


@dataclass(frozen=True)
class ReplayAnswer(Printed):
    replay: Replay

    def write(self, out: TextIO, *, as_json: bool) -> None:
        from custody.render import printable, replay_lines

        if as_json:
            out.write(self.replay.model_dump_json(indent=2) + "\n")
            return
        for line in replay_lines(self.replay):
            out.write(printable(line) + "\n")
