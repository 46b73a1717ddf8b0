"""A Gantt-style chart of leases per profile over time, coloured by how each ended, as an SVG
to inline in a page (matplotlib's SVG backend: static, tens of KB, nothing to fetch).

Each lease is one bar whose SVG group has the id ``lease-<n>`` (n counts the bars drawn), so a
test, or a person with the page's source, can count them. A large fleet is capped: at most
``ROWS`` profiles (those in trouble first, then the most recently leased) and ``BARS`` leases
(the latest); the caption says what was left out.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

from ledger.rules import past_deadline
from projections.queries import LEASE_ORDER
from reports._frames import rows_of
from reports._health import UNCLEAN
from reports._matplotlib_home import settle

settle()  # before matplotlib is imported: it looks for its directories then

import matplotlib  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

ROWS = 40
BARS = 400
LABEL = 40  # characters of a profile's label on the axis
# One colour per ending; live leases have their own, and so do live ones past their deadline.
COLOURS = {
    "clean": "#2e7d32",
    "expected_failure": "#7cb342",
    "review": "#f9a825",
    "quarantine": "#c62828",
    "stale": "#6a1b9a",
    "forced": "#8d6e63",
    "revoked": "#ad1457",
    "live": "#0288d1",
    "overdue": "#e65100",
}


@dataclass(frozen=True)
class Chart:
    """The SVG (empty when there is no lease), how many bars it draws, and its caption."""

    svg: str
    bars: int
    caption: str


def gantt(leases: pd.DataFrame, now: datetime, blocked: set[str] | None = None) -> Chart:
    """The chart of ``leases`` (the leases read model's rows), live leases drawn up to
    ``now``; profiles in ``blocked`` or with an unclean ending come first when capping."""
    if leases.empty:
        return Chart("", 0, "No lease yet: nothing to draw.")
    shown, profiles = _capped(leases, blocked or set())
    svg = _draw(shown, profiles, now)
    caption = (
        f"{len(shown)} of {len(leases)} leases on {len(profiles)} of "
        f"{leases['profile_id'].nunique()} profiles"
    )
    if len(shown) < len(leases):
        caption += f" (capped: at most {ROWS} profiles, trouble first, and the latest {BARS})"
    return Chart(svg, len(shown), caption + ".")


def _capped(leases: pd.DataFrame, blocked: set[str]) -> tuple[pd.DataFrame, list[str]]:
    per = leases.groupby("profile_id").agg(last=("started_at", "max"))
    troubled = set(leases.loc[leases["ending"].isin(UNCLEAN), "profile_id"]) | blocked
    per["trouble"] = [pid in troubled for pid in per.index]
    ranked = per.sort_values(["trouble", "last"], ascending=[False, False])
    chosen = [str(p) for p in ranked.index[:ROWS]]
    shown = leases.loc[leases["profile_id"].isin(chosen)]
    shown = shown.sort_values(list(LEASE_ORDER)).tail(BARS)
    return shown, sorted({str(p) for p in shown["profile_id"]})


def _draw(shown: pd.DataFrame, profiles: list[str], now: datetime) -> str:
    row = {pid: n for n, pid in enumerate(profiles)}
    start = date2num(shown["started_at"].dt.tz_convert(None).dt.to_pydatetime())
    ends = shown["ended_at"].fillna(pd.Timestamp(now)).dt.tz_convert(None).dt.to_pydatetime()
    width = date2num(ends) - start
    span = max(float(width.max() if len(width) else 0), float(start.max() - start.min()))
    width = width.clip(min=max(span, 1 / 86_400) * 0.004)  # a 1 s lease stays visible
    # Text stays text (fonts are not drawn as paths), ids are stable, and "$" in a profile id
    # is not read as mathematics.
    with matplotlib.rc_context(
        # Times drawn in UTC, as the axis says, whatever a matplotlibrc's timezone is.
        {
            "svg.fonttype": "none",
            "svg.hashsalt": "custody",
            "text.parse_math": False,
            "timezone": "UTC",
        }
    ):
        fig = Figure(figsize=(11, 1.2 + 0.28 * len(profiles)), layout="constrained")
        ax = fig.add_subplot()
        leases = rows_of(shown)
        bars = ax.barh(
            [row[str(lease["profile_id"])] for lease in leases], width, left=start, height=0.6,
            color=[COLOURS[_kind(lease, now)] for lease in leases], edgecolor="white",
            linewidth=0.4,
        )  # fmt: skip
        for n, patch in enumerate(bars.patches):  # one call draws them all, in row order
            patch.set_gid(f"lease-{n}")
        _axes(ax, profiles)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    return _strip_prolog(buffer.getvalue())


def _kind(lease: dict[str, Any], now: datetime) -> str:
    ending = lease["ending"]
    if ending is not None and ending is not pd.NA:
        return str(ending)
    deadline = lease["expires_at"]
    return "overdue" if isinstance(deadline, datetime) and past_deadline(deadline, now) else "live"


def labels(profiles: list[str]) -> list[str]:
    """Each profile's label on the chart's axis: an id longer than ``LABEL`` characters as its
    start, an ellipsis and its end; ids still alike that way are told apart by a number in
    the order drawn (`` #1``, `` #2``: no id holds an ellipsis or a space). Cut at 40 with no
    ellipsis, two ids sharing their first 40 characters read as one (rev28)."""
    cut = [p if len(p) <= LABEL else f"{p[: LABEL - 16]}…{p[-15:]}" for p in profiles]
    alike = Counter(cut)
    seen: Counter[str] = Counter()
    found = []
    for label in cut:
        if alike[label] > 1:
            seen[label] += 1
            label = f"{label} #{seen[label]}"
        found.append(label)
    return found


def _axes(ax: Axes, profiles: list[str]) -> None:
    ax.set_yticks(range(len(profiles)), labels=labels(profiles), fontsize=8)
    ax.set_ylim(-0.7, len(profiles) - 0.3)
    ax.invert_yaxis()
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.grid(axis="x", color="#dddddd", linewidth=0.5)
    ax.set_xlabel("time (UTC)")
    handles = [Patch(color=c, label=k.replace("_", " ")) for k, c in COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8,
              frameon=False)  # fmt: skip


def _strip_prolog(svg: str) -> str:
    """The <svg> element alone: no XML declaration or DOCTYPE inside an HTML page."""
    return svg[svg.index("<svg") :]
