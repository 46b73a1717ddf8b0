"""Tables drawn by rich: coloured and fitted to the width on a terminal, plain in a pipe.

In a pipe a table is as wide as its longest row, so every row stays one line that ``grep`` and
``awk`` can read and no cell (a 128-character profile id, a long reason) is wrapped or cut. On a
terminal a cell too long for the width folds inside its column; nothing is ever truncated.
"""

from __future__ import annotations

import io
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from custody._text import moment, printable
from projections import StatusRow

# Wider than any row: in a pipe the table keeps its natural width and never wraps.
_UNBOUNDED_WIDTH = 1_000_000

_STATE_STYLES = {
    "available": "green",
    "leased": "cyan",
    "review_required": "yellow",
    "quarantined": "bold red",
    "disabled": "dim",
}


def write_status(rows: list[StatusRow], *, out: TextIO) -> None:
    """The status table: profile, state, reason, holder or last user, deadline."""
    table = _table("PROFILE", "STATE", "REASON", "HOLDER / LAST USER", "UNTIL")
    for r in rows:
        state = Text(r.state.value, style=_STATE_STYLES.get(r.state.value, ""))
        if r.overdue:
            state.append(" (overdue)", style="bold red")
        if r.damaged:
            state.append(" (row damaged: custody rebuild)", style="bold red")
        holder = r.holder_worker or (f"last: {r.last_worker}" if r.last_worker else "-")
        table.add_row(
            Text(printable(r.profile_id)),
            state,
            Text(r.reason.value if r.reason else "-"),
            Text(printable(holder)),
            Text(moment(r.until)),
        )
    _write(table, out)


def write_rows(headers: list[str], rows: list[list[str]], *, out: TextIO) -> None:
    """A plain table of text cells (a report's chosen columns)."""
    table = _table(*headers)
    for row in rows:
        table.add_row(*(Text(printable(cell)) for cell in row))
    _write(table, out)


def _table(*headers: str) -> Table:
    """On a narrow terminal a long value folds inside its column: never cut, never hidden."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _write(table: Table, out: TextIO) -> None:
    # FORCE_COLOR, NO_COLOR, TTY_COMPATIBLE and COLUMNS are honoured as rich documents them.
    terminal = Console(file=out, highlight=False, emoji=False)
    if terminal.is_terminal:
        terminal.print(table)
        return
    table.box = None
    buffer = io.StringIO()
    plain = Console(
        file=buffer, width=_UNBOUNDED_WIDTH, color_system=None, highlight=False, emoji=False
    )
    plain.print(table)
    # Each cell is padded to its column's width; the last column's padding is noise in a pipe.
    out.writelines(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def write_lines(lines: list[str], *, out: TextIO) -> None:
    """Lines of text: on a terminal folded to its width (nothing cut), in a pipe as they are."""
    terminal = Console(file=out, highlight=False, emoji=False)
    if not terminal.is_terminal:
        for line in lines:
            out.write(printable(line) + "\n")
        return
    for line in lines:
        terminal.print(Text(printable(line)), overflow="fold")
