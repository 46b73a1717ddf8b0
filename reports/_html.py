"""The pieces of the HTML report: escaped text, badges, tables from DataFrames, the style.

Every value from the ledger (ids, reasons, notes, URLs) is escaped; the page holds no script
and its Content-Security-Policy forbids fetching anything, so a page opened by mistake on a
machine with a network still loads nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from html import escape
from typing import Any

import pandas as pd

from ledger.rules import shown
from reports._frames import rows_of

# No script, no fetch of any kind: styles inline, images (none today) only as data: URLs.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px;
       color: #222; padding: 0 1rem; }
h1 { margin-bottom: .2rem; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2rem;
     margin-top: 2rem; } h3 { margin-bottom: .3rem; }
.muted { color: #666; }
.badges { display: flex; flex-wrap: wrap; gap: .4rem; margin: .8rem 0; }
.badge { border-radius: 1rem; padding: .15rem .7rem; font-weight: 600; background: #e0e0e0; }
.badge.bad { background: #c62828; color: #fff; }
.badge.warn { background: #f9a825; color: #222; }
.badge.good { background: #2e7d32; color: #fff; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e3e3; padding: .2rem .6rem; text-align: left;
         vertical-align: top; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #ffebee; }
tr.warn td { background: #fff8e1; }
.verdict { font-weight: 700; text-transform: uppercase; font-size: 12px; }
.verdict.ok { color: #2e7d32; } .verdict.attention { color: #c62828; }
ol.checklist > li { margin-bottom: .8rem; }
ul.evidence { margin: .2rem 0; font-size: 13px; color: #444; }
figure { margin: 0; } figure svg { max-width: 100%; height: auto; }
.missing { color: #8d6e63; font-style: italic; }
"""


def esc(value: Any) -> str:
    """A value as page text: missing as ``-``, times in ISO 8601 to the second, escaped (what
    a browser would not show as itself, too: ``_visible``). Text is never missing, whatever it
    says ("NaT", "<NA>", "None" are values a caller may store)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if isinstance(value, datetime):
        return escape(value.isoformat(timespec="seconds"))
    if isinstance(value, float):
        return _number(value)
    return escape(_visible(str(value)))


def _number(value: float) -> str:
    """A float as the health tables give it, to 3 places (trailing zeros dropped), a large one
    whole: two places showed a day's deadline missed by 3 s, a share of 1.001, as 1.00, what a
    lease renewed at its very deadline reads (rev28), and a p95 of 0.004 s as 0.00."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


# Each character a browser would act on or show nothing for (controls, bidi overrides and
# isolates, zero-width and other invisible characters, line separators) written as its escape,
# as the command line writes it: in the page an account ``account_shop_<U+202E>71`` displayed
# as ``account_shop_17`` (rev24), and so did one with U+034F inside (rev25).
_visible = shown


def badge(text: str, level: str = "") -> str:
    """A pill: ``bad`` (red), ``warn`` (amber), ``good`` (green) or neutral. Its text is shown
    as ``esc`` shows a value: a worker's id with a bidi isolate in the header's pill read as
    another worker's (rev25)."""
    return f'<span class="badge {level}">{escape(_visible(text))}</span>'


def table(
    frame: pd.DataFrame,
    *,
    limit: int = 50,
    level: Callable[[dict[str, Any]], str] | None = None,
) -> str:
    """A DataFrame as an HTML table of at most ``limit`` rows (a line says how many more);
    ``level`` names a row's class (``bad``, ``warn`` or empty)."""
    if frame.empty:
        return '<p class="muted">(none)</p>'
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = rows_of(frame.head(limit))
    body = "".join(_row(r, level(r) if level else "") for r in rows)
    more = len(frame) - len(rows)
    note = f'<p class="muted">... and {more} more rows</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _row(record: dict[str, Any], level: str) -> str:
    cells = "".join(
        f'<td class="num">{esc(v)}</td>' if _numeric(v) else f"<td>{esc(v)}</td>"
        for v in record.values()
    )
    return f'<tr class="{level}">{cells}</tr>' if level else f"<tr>{cells}</tr>"


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def rows_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    levels: Sequence[str] | None = None,
    *,
    total: Sequence[Any] | None = None,
) -> str:
    """A table of plain rows (cells already chosen), each with an optional class, and a
    ``total`` row under them, in the table's foot, its first cell a header: apart from any
    row of data (rev33: an account named "all accounts" read as the fleet's total)."""
    if not rows:
        return '<p class="muted">(none)</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        _row(dict(zip(headers, row, strict=True)), level)
        for row, level in zip(rows, levels or [""] * len(rows), strict=True)
    )
    foot = ""
    if total is not None:
        label, *values = total
        cells = _row({str(n): v for n, v in enumerate(values)}, "").removeprefix("<tr>")
        foot = f'<tfoot><tr><th scope="row">{esc(label)}</th>{cells}</tfoot>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>{foot}</table>"


def page(title: str, sections: Sequence[str]) -> str:
    """The whole document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
