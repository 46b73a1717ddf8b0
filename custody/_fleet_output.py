"""Printing the fleet reports: the fleet summary (alone or below the status table), the health
tables (table, CSV or JSON) and the checklist.

Importing this module imports neither pandas, rich nor the reports: a command that has such a
report to print has imported them already.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from custody._output import cell, records, table_rows, write_csv
from custody._printed import Printed
from custody._text import for_a_person

if TYPE_CHECKING:
    from projections import StatusRow
    from reports import Checklist, Fleet, Health

# Exit code of ``checklist --strict`` when an answer needs attention: none of the others.
ATTENTION_EXIT = 5
# Rows per health table in table format; csv and json carry every row.
TABLE_ROWS = 20


def fleet_lines(fleet: Fleet) -> list[str]:
    """The fleet summary in a few lines for a person."""
    from ledger.rules import one_part  # the ledger is loaded by now: the fleet read it
    from reports import spoken

    def counted(counts: dict[str, int]) -> str:
        return ", ".join(f"{s} {n}" for s, n in counts.items() if n) or "none"

    # An account as every other line quotes an id (rev34: "acme, proxy evil: 1 (available 1)"
    # read as two accounts).
    scope = f" of account {one_part(fleet.account)}" if fleet.account else ""
    lines = [
        f"fleet{scope}: {fleet.profiles} profiles: {counted(fleet.by_state)}; "
        f"overdue {fleet.overdue}"
    ]
    lines += [
        f"  {one_part(a)}: {sum(c.values())} ({counted(c)})"
        for a, c in fleet.by_account_state.items()
    ]
    if fleet.stuck:
        lines.append("stuck the longest:")
    for s in fleet.stuck[:10]:
        cause = f" ({s.cause})" if s.cause else ""
        worker = one_part(s.worker_id) if s.worker_id else "-"  # rev33: "w1, worker w2"
        lines.append(
            f"  {s.profile_id}: {s.trouble} for {spoken(s.seconds)}{cause}, worker {worker}"
        )
    if len(fleet.stuck) > 10:
        lines.append(f"  ... and {len(fleet.stuck) - 10} more (custody --json fleet)")
    # As the checklist names them (rev36 left fleet counting them without a word).
    damaged = [
        f"  {p}: availability row damaged ({what})" for p, what in fleet.damaged_rows.items()
    ]
    damaged += [
        f"  {p}: availability row of no registered profile "
        "(custody projections rebuild availability drops it)"
        for p in fleet.junk_rows
    ]
    if damaged:
        lines.append(f"availability rows damaged: {len(damaged)}")
    lines += damaged[:10]
    if len(damaged) > 10:
        lines.append(f"  ... and {len(damaged) - 10} more (custody --json fleet)")
    r = fleet.review
    lines.append(
        f"review waits: finished {r.finished} (median {spoken(r.median_seconds)}, p95 "
        f"{spoken(r.p95_seconds)}, longest {spoken(r.max_seconds)}); waiting {r.waiting} "
        f"(oldest {spoken(r.oldest_waiting_seconds)})"
    )
    return lines


def _lines(lines: list[str], out: TextIO) -> None:
    from custody._tables import write_lines

    write_lines(lines, out=out)


@dataclass(frozen=True)
class FleetAnswer(Printed):
    fleet: Fleet

    def write(self, out: TextIO, *, as_json: bool) -> None:
        if as_json:
            # ASCII, exact in any locale, as ``ReplayAnswer``'s.
            out.write(json.dumps(self.fleet.model_dump(mode="json"), indent=2) + "\n")
        else:
            _lines(fleet_lines(self.fleet), out)


@dataclass(frozen=True)
class StatusAnswer(Printed):
    """The status table with the fleet summary below it (``--json``: both in one object)."""

    rows: list[StatusRow]
    fleet: Fleet

    def write(self, out: TextIO, *, as_json: bool) -> None:
        if as_json:
            body = {
                "profiles": [r.model_dump(mode="json") for r in self.rows],
                "fleet": self.fleet.model_dump(mode="json"),
            }
            out.write(json.dumps(body, indent=2) + "\n")
            return
        from custody._tables import write_status

        if self.rows:
            write_status(self.rows, out=out)
        else:
            out.write("(none)\n")
        out.write("\n")
        _lines(fleet_lines(self.fleet), out)


@dataclass(frozen=True)
class HealthAnswer(Printed):
    health: Health
    fmt: str

    def write(self, out: TextIO, *, as_json: bool) -> None:
        tables = self.health.tables()
        if as_json or self.fmt == "json":
            body = {"at": self.health.at.isoformat(), **{k: records(v) for k, v in tables.items()}}
            out.write(json.dumps(body, indent=2) + "\n")
        elif self.fmt == "csv":
            self._csv(out)
        else:
            self._tables(out)

    def _csv(self, out: TextIO) -> None:
        """Every table in one CSV: a ``table`` column names each row's table, and a row has
        the columns of its table (the others empty). The columns are every table's, rows or
        none: a script reading them by name failed on a quiet day, when a table with no rows
        left its columns out (rev28: no ``worker_id`` before the first lease)."""
        import pandas as pd

        tables = self.health.tables()
        columns = ["table", *dict.fromkeys(c for f in tables.values() for c in f.columns)]
        frames = [f.assign(table=name) for name, f in tables.items() if not f.empty]
        whole = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        write_csv(whole.reindex(columns=columns), out, for_a_terminal=for_a_person(out))

    def _tables(self, out: TextIO) -> None:
        from custody._tables import write_rows

        for name, frame in self.health.tables().items():
            out.write(f"{name.replace('_', ' ')}:\n")
            if frame.empty:
                out.write("  (none)\n\n")
                continue
            rows = table_rows(frame.head(TABLE_ROWS))
            write_rows(
                [str(c) for c in frame.columns], [[cell(v) for v in r] for r in rows], out=out
            )
            if len(frame) > TABLE_ROWS:
                out.write(f"  ... and {len(frame) - TABLE_ROWS} more (--format csv or json)\n")
            out.write("\n")


@dataclass(frozen=True)
class ChecklistAnswer(Printed):
    """The eleven answers; under ``--strict`` an answer needing attention makes the command
    exit ``ATTENTION_EXIT``."""

    checklist: Checklist
    strict: bool

    def write(self, out: TextIO, *, as_json: bool) -> None:
        from custody._text import printable

        if as_json:
            body = self.checklist.model_dump(mode="json")
            body["attention"] = len(self.checklist.attention)
            out.write(json.dumps(body, indent=2) + "\n")
            return
        for c in self.checklist.checks:
            out.write(printable(f"{c.number:2d}. [{c.verdict}] {c.question}") + "\n")
            out.write(printable(f"    {c.answer}") + "\n")
            if c.missing:
                out.write(printable(f"    not in the events: {c.missing}") + "\n")
            for line in c.evidence:
                out.write(printable(f"      - {line}") + "\n")
        attention = len(self.checklist.attention)
        out.write(f"{len(self.checklist.checks) - attention} ok, {attention} need attention\n")

    def failed(self) -> tuple[int, str] | None:
        attention = self.checklist.attention
        if not self.strict or not (attention or self.checklist.behind):
            return None
        if not attention:  # rev32: "11 ok", exit 0, from read models missing quarantines
            left_out = len(self.checklist.behind)
            return ATTENTION_EXIT, (
                f"checklist: every answer ok, but {left_out} read model(s) had events this "
                "login may not fold: the answers leave them out (see the notes)"
            )
        numbers = ", ".join(str(c.number) for c in attention)
        return ATTENTION_EXIT, f"checklist: {len(attention)} answer(s) need attention ({numbers})"
