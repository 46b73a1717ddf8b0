"""Each of the checklist's answers, from one read of the fleet (``reports._sources``).

Each check returns an ``Answer``: whether it needs attention, one line, the evidence lines
(ids first), and what the events cannot tell, if anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ledger.rules import OVERDUE
from projections import Explanation
from reports._frames import rows_of, spoken
from reports._health import UNCLEAN
from reports._reviews import waits
from reports._sources import Sources

# At most this many evidence lines per answer; the last says how many more there were.
EVIDENCE = 50
_ENDING_EVENTS = (
    "lease_released_cleanly",
    "lease_revoked",
    "review_requested",
    "profile_quarantined",
)
_MISMATCH = ("proxy_mismatch", "account_mismatch")


@dataclass(frozen=True)
class Answer:
    attention: bool
    line: str
    evidence: list[str] = field(default_factory=list)
    missing: str | None = None


def capped(lines: list[str]) -> list[str]:
    if len(lines) <= EVIDENCE:
        return lines
    return [*lines[: EVIDENCE - 1], f"... and {len(lines) - EVIDENCE + 1} more"]


def _ids(frame: pd.DataFrame, column: str = "lease_id") -> list[str]:
    return [str(v) for v in frame[column]]


def _breakdown(counts: Counter[str]) -> str:
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def account_owner(s: Sources, _: list[Explanation]) -> Answer:
    owned = [r for r in s.profiles if r.account_id]
    lacking = [f"{r.profile_id}: no account" for r in s.profiles if not r.account_id]
    per_account = Counter(r.account_id for r in owned)
    line = f"every profile has an account owner: {len(owned)} of {len(s.profiles)}"
    if lacking:
        line = f"profiles without an account owner: {len(lacking)} of {len(s.profiles)}"
    evidence = lacking + [f"{a}: {n} profile(s)" for a, n in sorted(per_account.items())]
    return Answer(bool(lacking), line, evidence)


def lease_records(s: Sources, _: list[Explanation]) -> Answer:
    acquired = set(_ids(s.events.loc[s.events["event_type"] == "lease_acquired"]))
    rows = set(_ids(s.leases))
    unrecorded, orphans = sorted(acquired - rows), sorted(rows - acquired)
    line = f"granted checkouts with a lease record: {len(acquired & rows)} of {len(acquired)}"
    evidence = [f"{lid}: checkout event without a lease record" for lid in unrecorded]
    evidence += [f"{lid}: lease record without a checkout event" for lid in orphans]
    missing = (
        "a refused checkout writes no event, so only granted checkouts can be counted: how "
        "many checkouts were asked for, and why each refused one was refused, is not recorded"
    )
    return Answer(bool(unrecorded or orphans), line, evidence, missing)


def worker_and_run(s: Sources, _: list[Explanation]) -> Answer:
    blank = s.leases.loc[
        s.leases["worker_id"].fillna("").eq("") | s.leases["run_id"].fillna("").eq("")
    ]
    whole = len(s.leases) - len(blank)
    line = f"leases with a worker id and a run id: {whole} of {len(s.leases)}"
    return Answer(not blank.empty, line, [f"{lid}: worker or run missing" for lid in _ids(blank)])


def heartbeats(s: Sources, _: list[Explanation]) -> Answer:
    silent = s.leases.loc[s.leases["heartbeats"] == 0]
    unended = silent.loc[silent["ended_at"].isna(), "status"]
    overdue = int(unended.eq(OVERDUE).sum())  # past its deadline: not live (rev42)
    line = f"leases without a heartbeat: {len(silent)} of {len(s.leases)}"
    still = [
        f"{n} {word}"
        for n, word in ((len(unended) - overdue, "still live"), (overdue, OVERDUE))
        if n
    ]
    if still:
        line += f" ({', '.join(still)})"
    evidence = [
        f"{r['lease_id']}: worker {r['worker_id']}, run {r['run_id']}, "
        + (f"ended {r['ending']}" if pd.notna(r["ending"]) else _unended(r))
        for r in rows_of(silent)
    ]
    return Answer(not silent.empty, line, evidence)


def _unended(lease: dict[str, Any]) -> str:
    """A lease not ended yet, as ``Sources.leases`` judged it: overdue or live."""
    return OVERDUE if lease["status"] == OVERDUE else "live"


def unreviewed_reuse(events: pd.DataFrame, unclean: set[str]) -> list[str]:
    """Checkouts granted on a profile whose previous lease ended unclean with no reviewer's
    verdict in between: one line per such checkout."""
    pending: dict[str, str] = {}
    found = []
    for row in rows_of(events):
        pid, kind, lease = str(row["profile_id"]), row["event_type"], row["lease_id"]
        if kind in _ENDING_EVENTS and pd.notna(lease) and str(lease) in unclean:
            pending[pid] = str(lease)
        elif kind == "profile_reviewed":
            pending.pop(pid, None)
        elif kind == "lease_acquired" and pid in pending:
            found.append(f"{lease}: granted after {pending.pop(pid)} ended unclean, unreviewed")
    return found


def _unclean(s: Sources) -> pd.DataFrame:
    return s.leases.loc[s.leases["ending"].isin(UNCLEAN)]


def _after_stale(s: Sources) -> dict[str, str]:
    """What followed each stale lease's ending: its review wait and how it ended."""
    said = {}
    for w in waits(s.events, s.at):
        if w.lease_id is not None and w.lease_id not in said:
            how = w.ended_by or f"waiting for review for {spoken(w.seconds)}"
            said[w.lease_id] = f"{w.state} ({w.cause}); {how}"
    return said


def ttl_is_a_deadline(s: Sources, _: list[Explanation]) -> Answer:
    stale = s.leases.loc[s.leases["ending"] == "stale"]
    to_pool = stale.loc[stale["profile_state_after"] == "available"]
    reused = unreviewed_reuse(s.events, set(_ids(stale)))
    overdue = [r for r in s.profiles if r.overdue]
    line = (
        f"stale endings that returned to the pool without review: {len(to_pool) + len(reused)} "
        f"(of {len(stale)}); leases past their deadline, not yet swept: {len(overdue)}"
    )
    evidence = [
        f"{r.lease_id}: {r.profile_id} held by {r.holder_worker}, deadline "
        f"{r.until.isoformat() if r.until else '-'} passed (run custody sweep)"
        for r in overdue
    ]
    evidence += [f"{lid}: stale, went straight to the pool" for lid in _ids(to_pool)] + reused
    after = _after_stale(s)
    evidence += [f"{lid}: stale -> {after.get(lid, '?')}" for lid in _ids(stale)]
    return Answer(bool(len(to_pool) or reused or overdue), line, evidence)


def stale_or_clean(s: Sources, _: list[Explanation]) -> Answer:
    ended = s.leases.loc[s.leases["ended_at"].notna()]
    unnamed = ended.loc[ended["ending"].isna()]
    unsettled = s.leases.loc[(s.leases["status"] == "stale") & s.leases["ended_at"].isna()]
    kinds = Counter(str(k) for k in ended["ending"].dropna())
    line = f"ended leases with a recorded ending: {len(ended) - len(unnamed)} of {len(ended)}"
    if kinds:
        line += f" ({_breakdown(kinds)})"
    evidence = [f"{lid}: ended without an ending kind" for lid in _ids(unnamed)]
    evidence += [f"{lid}: marked stale, not yet settled" for lid in _ids(unsettled)]
    return Answer(bool(len(unnamed) or len(unsettled)), line, evidence)


def quarantine(s: Sources, _: list[Explanation]) -> Answer:
    unclean = _unclean(s)
    to_pool = unclean.loc[unclean["profile_state_after"] == "available"]
    reused = unreviewed_reuse(s.events, set(_ids(unclean)))
    quarantined = s.events.loc[s.events["event_type"] == "profile_quarantined"]
    causes = Counter(str(c) for c in quarantined["cause"].fillna("unknown"))
    line = (
        f"unclean endings that reached the pool without review: {len(to_pool) + len(reused)} "
        f"of {len(unclean)}; quarantines: {len(quarantined)}"
    )
    if causes:
        line += f" ({_breakdown(causes)})"
    evidence = [f"{lid}: ended unclean, profile went to the pool" for lid in _ids(to_pool)]
    evidence += reused
    evidence += [
        f"{r['profile_id']}: quarantined ({r['cause']})"
        + (f" after {r['lease_id']}" if pd.notna(r["lease_id"]) else "")  # an operator's: none
        for r in rows_of(quarantined)
    ]
    return Answer(bool(len(to_pool) or reused), line, evidence)


def context(s: Sources, _: list[Explanation]) -> Answer:
    registered = {r.profile_id: (r.account_id, r.proxy_id) for r in s.profiles}
    off = [
        f"{r['lease_id']}: leased under {r['account_id']}/{r['proxy_id']}, "
        f"profile is {registered[r['profile_id']][0]}/{registered[r['profile_id']][1]}"
        for r in rows_of(s.leases)
        if r["profile_id"] in registered
        and (r["account_id"], r["proxy_id"]) != registered[r["profile_id"]]
    ]
    sent = s.events.loc[s.events["cause"].isin(_MISMATCH)]
    line = (
        f"leases under their profile's account and proxy: {len(s.leases) - len(off)} of "
        f"{len(s.leases)}; mismatches a worker reported: {len(sent)}"
    )
    evidence = off + [
        f"{r['profile_id']}: {r['cause']} reported on {r['lease_id']}, sent to {r['event_type']}"
        for r in rows_of(sent)
    ]
    missing = (
        "a checkout that names another account or proxy is refused and refusals write no "
        "event; which proxy a browser actually launched with is known only when its worker "
        "reports it at release (observed proxy and account), so whether every launch was "
        "checked cannot be told from the events"
    )
    return Answer(bool(off) or not sent.empty, line, evidence, missing)


def transitions_logged(s: Sources, _: list[Explanation]) -> Answer:
    counts = {str(r["event_type"]): int(r["events"]) for r in rows_of(s.counts)}
    bare = int(s.counts["bare"].sum()) if not s.counts.empty else 0
    lease_events = {k: n for k, n in counts.items() if k.startswith("lease_")}
    ended = s.leases.loc[s.leases["ended_at"].notna()]
    endings = s.events.loc[s.events["event_type"].isin(_ENDING_EVENTS)]
    logged = set(_ids(endings.dropna(subset=["lease_id"])))
    unlogged = [lid for lid in _ids(ended) if lid not in logged]
    line = (
        f"events in the log: {sum(counts.values())}, of them on leases "
        f"{sum(lease_events.values())} (each type's count below); ended leases whose ending is "
        f"an event: {len(ended) - len(unlogged)} of {len(ended)}; events without an actor or "
        f"command id: {bare}"
    )
    evidence = [f"{lid}: ended with no ending event" for lid in unlogged]
    evidence += [f"{k}: {n}" for k, n in sorted(counts.items())]
    return Answer(bool(unlogged or bare), line, evidence)


def _previous(events: pd.DataFrame) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Each profile_returned_to_pool row with the row before it on the same profile."""
    last: dict[str, dict[str, Any]] = {}
    pairs = []
    for row in rows_of(events):
        pid = str(row["profile_id"])
        if row["event_type"] == "profile_returned_to_pool":
            pairs.append((row, last.get(pid)))
        last[pid] = row
    return pairs


def reviewer_returns(s: Sources, _: list[Explanation]) -> Answer:
    pairs = _previous(s.events)
    unreviewed = [
        f"{row['profile_id']}: returned at {row['at'].isoformat()} without a reviewer's verdict"
        for row, before in pairs
        if before is None
        or before["event_type"] != "profile_reviewed"
        or before["actor_role"] != "reviewer"
    ]
    open_waits = [w for w in waits(s.events, s.at) if w.ended_at is None]
    oldest = max((w.seconds for w in open_waits), default=None)
    line = (
        f"returns to the pool after a reviewer's verdict: {len(pairs) - len(unreviewed)} of "
        f"{len(pairs)}; profiles waiting for a reviewer: {len(open_waits)}"
    )
    if oldest is not None:
        line += f" (oldest {spoken(oldest)})"
    evidence = unreviewed + [
        f"{row['profile_id']}: returned by {row['actor_id']} at {row['at'].isoformat()}"
        for row, _ in pairs
    ]
    evidence += [
        f"{w.profile_id}: waiting ({', '.join(t for t in (w.state, w.cause) if t)})"
        for w in open_waits
    ]
    return Answer(bool(unreviewed), line, evidence)


def explained(s: Sources, explanations: list[Explanation]) -> Answer:
    unavailable = [r for r in s.profiles if r.state.value != "available"]
    unexplained = [
        f"{r.profile_id}: {r.state.value} with no reason" for r in unavailable if r.reason is None
    ]
    damaged = [
        f"{r.profile_id}: availability row damaged ({r.damaged})" for r in s.profiles if r.damaged
    ]
    damaged += [  # not a profile, so counted nowhere: named here (rev36)
        f"{pid}: availability row of no registered profile "
        "(custody projections rebuild availability drops it)"
        for pid in s.junk_rows
    ]
    line = (
        f"unavailable profiles with a reason: {len(unavailable) - len(unexplained)} of "
        f"{len(unavailable)}"
    )
    evidence = (
        unexplained
        + damaged
        + [
            f"{e.profile_id}: {e.message}" + (f"; {e.remediation}" if e.remediation else "")
            for e in explanations
        ]
    )
    return Answer(bool(unexplained or damaged), line, evidence)
