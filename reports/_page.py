"""The operators' HTML report: one self-contained page with the fleet summary, the blocked
profiles and why, a chart of leases over time, the health tables and the checklist.

Trouble shows at a glance: red badges for quarantined, stale and overdue profiles, for workers
with unclean endings and for checklist answers that need attention; amber for profiles
waiting in review. Everything comes from one read of the fleet, so every section agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger import Ledger
from projections import Explanation, explain, notes_once
from reports._chart import Chart, gantt
from reports._checklist import Checklist, answer, explanations
from reports._fleet import Fleet, summarise
from reports._frames import Source, opened, spoken
from reports._health import Health, assess
from reports._html import badge, esc, page, rows_table, table
from reports._sources import Sources, read_sources

TITLE = "custody fleet report"
# Blocked profiles explained on the page (each explanation replays the profile's stream).
EXPLAINED = 50
_BLOCKED = ("stale", "review_required", "quarantined", "disabled")


@dataclass(frozen=True)
class Page:
    """The report's HTML, with what it shows: leases drawn of all, profiles, and how many
    checklist answers need attention."""

    html: str
    leases: int
    leases_drawn: int
    profiles: int
    attention: int


def report_html(*, account: str | None = None, ledger: Source = None) -> Page:
    """The report as one HTML document (no script, nothing fetched), judged at the store's
    clock after bringing the read models up to date; ``account``'s profiles only if given."""
    with opened(ledger) as source, notes_once():  # a lag note once, not once per profile
        sources = read_sources(source, account=account)
        blocked = _explain_blocked(source, sources)
        listed = answer(sources, explanations(source, sources), account=account)
    fleet, health = summarise(sources, account=account), assess(sources)
    chart = gantt(sources.leases, sources.at, {s.profile_id for s in fleet.stuck})
    html = page(
        TITLE,
        [
            _header(fleet, health, listed),
            _fleet(fleet),
            _blocked(blocked, sources),
            _chart(chart),
            _health(health),
            _checklist(listed),
        ],
    )
    return Page(html, len(sources.leases), chart.bars, fleet.profiles, len(listed.attention))


def _explain_blocked(ledger: Ledger, sources: Sources) -> list[Explanation]:
    wanted = [r.profile_id for r in sources.profiles if r.state.value in _BLOCKED or r.overdue]
    return [explain(ledger, pid) for pid in wanted[:EXPLAINED]]


def _troubled_workers(health: Health) -> list[tuple[str, int]]:
    by_worker = health.endings["worker"]
    bad = by_worker.loc[by_worker["unclean"] > 0]
    return [(str(w), int(n)) for w, n in zip(bad["worker_id"], bad["unclean"], strict=True)]


def _header(fleet: Fleet, health: Health, listed: Checklist) -> str:
    counts = fleet.by_state
    pills = [badge(f"{fleet.profiles} profiles")]
    for state, level in (
        ("available", "good"),
        ("leased", ""),
        ("review_required", "warn"),
        ("stale", "bad"),
        ("quarantined", "bad"),
        ("disabled", ""),
    ):
        n = counts.get(state, 0)
        pills.append(badge(f"{state.replace('_', ' ')}: {n}", level if n else ""))
    pills.append(badge(f"overdue: {fleet.overdue}", "bad" if fleet.overdue else ""))
    for worker, n in _troubled_workers(health):
        pills.append(badge(f"worker {worker}: {n} unclean", "bad"))
    attention = len(listed.attention)
    pills.append(badge(f"checklist: {attention} need attention", "bad" if attention else "good"))
    scope = f" for account {esc(fleet.account)}" if fleet.account else ""
    return (
        f'<header><h1>{TITLE}</h1><p class="muted">Judged at {esc(fleet.at)} (the store\'s '
        f'clock){scope}.</p><div class="badges">{"".join(pills)}</div></header>'
    )


def _fleet(fleet: Fleet) -> str:
    states = list(fleet.by_state)
    rows = [
        [a, *(c[s] for s in states), sum(c.values())] for a, c in fleet.by_account_state.items()
    ]
    total = ["all accounts", *(fleet.by_state[s] for s in states), fleet.profiles]
    stuck = [
        [s.profile_id, s.account_id, s.trouble, s.since, spoken(s.seconds), s.cause, s.worker_id]
        for s in fleet.stuck
    ]
    levels = ["warn" if s.trouble == "review_required" else "bad" for s in fleet.stuck]
    r = fleet.review
    review = (
        f"<p>Finished review waits: {r.finished} (median {spoken(r.median_seconds)}, 95th "
        f"percentile {spoken(r.p95_seconds)}, longest {spoken(r.max_seconds)}); waiting now: "
        f"{r.waiting} (oldest {spoken(r.oldest_waiting_seconds)}).</p>"
    )
    return (
        '<section id="fleet"><h2>Fleet</h2><h3>Profiles by account and state</h3>'
        + rows_table(["account", *states, "profiles"], rows, total=total)
        + "<h3>Stuck the longest</h3>"
        + rows_table(
            ["profile", "account", "trouble", "since", "for", "cause", "worker"], stuck, levels
        )
        + "<h3>Time in review</h3>"
        + review
        + "</section>"
    )


def _blocked(blocked: list[Explanation], sources: Sources) -> str:
    rows = [
        [
            e.profile_id,
            e.state.value,
            e.reason.value if e.reason else None,
            e.since,
            e.message,
            e.last_review,
            e.remediation,
        ]
        for e in blocked
    ]
    levels = ["warn" if e.state.value == "review_required" else "bad" for e in blocked]
    total = sum(1 for r in sources.profiles if r.state.value in _BLOCKED or r.overdue)
    more = (
        f'<p class="muted">... and {total - len(blocked)} more</p>' if total > len(blocked) else ""
    )
    headers = ["profile", "state", "reason", "since", "why", "last review", "what unblocks it"]
    return (
        '<section id="blocked"><h2>Blocked profiles</h2>'
        + rows_table(headers, rows, levels)
        + more
        + "</section>"
    )


def _chart(chart: Chart) -> str:
    return (
        '<section id="leases"><h2>Leases over time</h2><figure>'
        f'{chart.svg}<figcaption class="muted">{esc(chart.caption)}</figcaption></figure>'
        "</section>"
    )


def _unclean(row: dict[str, Any]) -> str:
    return "bad" if (row.get("unclean") or 0) > 0 else ""


def _gap(row: dict[str, Any]) -> str:
    share = row.get("worst_share_of_ttl")
    return "bad" if share is not None and share == share and share > 1 else ""


def _health(health: Health) -> str:
    parts = ['<section id="health"><h2>Health</h2>']
    for name, frame in health.endings.items():
        parts.append(f"<h3>Endings by {name}</h3>" + table(frame, level=_unclean))
    parts.append("<h3>Lease durations (ended leases, seconds)</h3>" + table(health.durations))
    parts.append("<h3>Heartbeat gaps (longest silence first)</h3>")
    parts.append(table(health.heartbeat_gaps, limit=25, level=_gap))
    parts.append("<h3>Why profiles were sent to review or quarantine</h3>")
    parts.append(table(health.causes))
    parts.append("<h3>Profiles that keep failing</h3>")
    parts.append(table(health.failing, level=lambda _: "bad"))
    return "".join(parts) + "</section>"


def _checklist(listed: Checklist) -> str:
    items = []
    for c in listed.checks:
        evidence = "".join(f"<li>{esc(e)}</li>" for e in c.evidence)
        missing = f'<p class="missing">Not in the events: {esc(c.missing)}</p>' if c.missing else ""
        items.append(
            f'<li id="check-{c.number}"><strong>{esc(c.question)}</strong> '
            f'<span class="verdict {c.verdict}">{c.verdict}</span><br>{esc(c.answer)}'
            f'{missing}<ul class="evidence">{evidence}</ul></li>'
        )
    listed_items = "".join(items)
    return (
        '<section id="checklist"><h2>Checklist</h2>'
        f'<ol class="checklist">{listed_items}</ol></section>'
    )
