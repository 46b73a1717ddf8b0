"""Tables: drawn by rich on a terminal (coloured and fitted to the width), plain in a pipe.

In a pipe a table is as wide as its longest row, so every row stays one line that ``grep`` and
``awk`` can read and no cell (a 128-character profile id, a long reason) is wrapped or cut; it
is laid out here, without importing rich (about 25 ms of start-up), by rich's own measure of a
character's width. On a terminal a cell too long for the width folds inside its column; nothing
is ever truncated. ``FORCE_COLOR`` (or ``TTY_COMPATIBLE=1``) colours a pipe's lines and changes
nothing else: a pipe or a file is never laid out as a terminal (``custody._text.for_a_person``).
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING, TextIO

from custody._text import colour_asked, for_a_person, moment, printable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from projections import StatusRow

# A cell: its pieces of text, each with the style it has on a terminal ("" for none).
Cell = list[tuple[str, str]]

_STATE_STYLES = {
    "available": "green",
    "leased": "cyan",
    "review_required": "yellow",
    "quarantined": "bold red",
    "disabled": "dim",
}


def write_status(rows: list[StatusRow], *, out: TextIO) -> None:
    """The status table: profile, state, reason, holder or last user, deadline."""
    cells: list[list[Cell]] = []
    for r in rows:
        state = [(r.state.value, _STATE_STYLES.get(r.state.value, ""))]
        if r.overdue:
            state.append((" (overdue)", "bold red"))
        if r.row_missing:
            state.append((" (row missing: custody rebuild)", "bold red"))
        elif r.damaged:
            state.append((" (row damaged: custody rebuild)", "bold red"))
        holder = r.holder_worker or (f"last: {r.last_worker}" if r.last_worker else "-")
        cells.append(
            [
                _plain(printable(r.profile_id)),
                state,
                _plain(r.reason.value if r.reason else "-"),
                _plain(printable(holder)),
                _plain(moment(r.until)),
            ]
        )
    _write(["PROFILE", "STATE", "REASON", "HOLDER / LAST USER", "UNTIL"], cells, out)


def write_rows(headers: list[str], rows: list[list[str]], *, out: TextIO) -> None:
    """A plain table of text cells (a report's chosen columns)."""
    _write(headers, [[_plain(printable(cell)) for cell in row] for row in rows], out)


def _plain(text: str) -> Cell:
    return [(text, "")]


def _write(headers: list[str], rows: list[list[Cell]], out: TextIO) -> None:
    rows = _as_written(rows, out)
    if for_a_person(out):
        terminal = _console(out)
        if terminal.is_terminal:
            # Each column needs a few cells to fold into: narrower than that, rich drew the
            # header rule and no row at all (COLUMNS=10, or 0); wider lines wrap instead.
            terminal.width = max(terminal.width, MIN_TABLE_COLUMNS * len(headers))
            terminal.print(_rich_table(headers, rows))
            return
    lines = _plain_lines([[(h, "bold")] for h in headers], rows)
    if colour_asked():  # FORCE_COLOR in a pipe: the same lines, coloured
        from rich.text import Text

        coloured = _console(out)
        if coloured.color_system is not None:
            for line in lines:
                text = Text.assemble(*line)
                text.rstrip()
                coloured.print(text, soft_wrap=True)
            return
    out.writelines("".join(text for text, _ in line).rstrip() + "\n" for line in lines)


def _as_written(rows: list[list[Cell]], out: TextIO) -> list[list[Cell]]:
    """The cells as ``out`` writes them, so that they are measured so: in a locale that is not
    UTF-8 a character its encoding has no byte for is written as its escape
    (``backslashreplace``, ``custody.cli``), and a column holding one stood out of line
    (rev40: 'w' and a dotless i measured two cells wide, written as seven)."""
    encoding = getattr(out, "encoding", None) or "utf-8"
    if codecs.lookup(encoding).name == "utf-8":
        return rows

    def written(text: str) -> str:
        return text.encode(encoding, "backslashreplace").decode(encoding)

    return [[[(written(text), style) for text, style in cell] for cell in row] for row in rows]


def _plain_lines(headers: list[Cell], rows: list[list[Cell]]) -> list[Cell]:
    """The table as rich lays it out borderless at an unbounded width: each column as wide as
    its widest cell, two spaces between columns. A line is its cells' pieces, each followed by
    its padding; the caller drops the last one's, which is noise in a pipe."""
    from rich.cells import cell_len  # rich's measure alone: no console

    table = [headers, *rows]
    texts = [["".join(text for text, _ in cell) for cell in row] for row in table]
    widths = [max(map(cell_len, column)) for column in zip(*texts, strict=True)]
    lines: list[Cell] = []
    for row, line in zip(table, texts, strict=True):
        pieces: Cell = []
        for cell, text, width in zip(row, line, widths, strict=True):
            pieces += [*cell, (" " * (width - cell_len(text) + 2), "")]
        lines.append(pieces)
    return lines


MIN_TABLE_COLUMNS = 6  # the least width a table gives each of its columns on a terminal


def _console(out: TextIO) -> Console:
    # FORCE_COLOR, NO_COLOR, TTY_COMPATIBLE and COLUMNS are honoured as rich documents them.
    from rich.console import Console

    return Console(file=out, highlight=False, emoji=False)


def _rich_table(headers: list[str], rows: list[list[Cell]]) -> Table:
    """On a narrow terminal a long value folds inside its column: never cut, never hidden."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(Text.assemble(*cell) for cell in row))
    return table


def write_lines(lines: list[str], *, out: TextIO) -> None:
    """Lines of text: on a terminal folded to its width (nothing cut), in a pipe as they are."""
    if for_a_person(out):
        from rich.text import Text

        terminal = _console(out)
        if terminal.is_terminal:
            for line in lines:
                terminal.print(Text(printable(line)), overflow="fold")
            return
    for line in lines:
        out.write(printable(line) + "\n")
