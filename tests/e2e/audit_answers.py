"""The compliance notebook's answers computed twice outside the notebook: from the report
functions, and from the raw events (``Ledger.history``) by rules written out here in plain
terms, using neither the ledger's state nor the read models.

Both give the JSON the notebook's last cell prints, so a test can compare all three exactly.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd

import reports
from ledger import Ledger, ProfileEvent

UNKNOWN = ("stale", "forced", "revoked")  # no worker said how the run went
RENEWALS = ("lease_heartbeat", "lease_extended")  # each sets the lease's deadline anew
BLOCKED = ("review_required", "quarantined")


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    as_of: datetime

    def holds(self, start: datetime, end: datetime | None) -> bool:
        """Something that began at ``start`` and ended at ``end`` (None: still going) was
        open at some moment of the window."""
        return start <= self.until and (end is None or end >= self.since)


def from_reports(store: str, account: str, w: Window) -> dict[str, Any]:
    """The answers as the report functions give them, as of ``w.as_of``."""
    used = reports.usage(account, since=w.since, until=w.until, at=w.as_of, ledger=store)
    unknown = reports.ended_unknown(since=w.since, until=w.until, at=w.as_of, ledger=store)
    waits = reports.review_waits(since=w.since, until=w.until, at=w.as_of, ledger=store)
    return {
        "account": account,
        "window": [w.since.isoformat(), w.until.isoformat()],
        "workers": dict(Counter(str(v) for v in used["worker_id"])),
        "profiles": sorted({str(p) for p in used["profile_id"]}),
        "unknown_endings": [
            {k: _cell(r[k]) for k in ("run_id", "worker_id", "profile_id", "ending", "cause")}
            for r in unknown.to_dict("records")
        ],
        "review_waits": [{k: _cell(r[k]) for k in WAIT_KEYS} for r in waits.to_dict("records")],
    }


WAIT_KEYS = ("profile_id", "state", "cause", "started_at", "ended_at", "ended_by", "seconds")


def _cell(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    return value.isoformat() if isinstance(value, datetime) else value


def from_events(store: str, account: str, w: Window) -> dict[str, Any]:
    """The answers worked out from each profile's own events up to ``w.as_of``."""
    leases, waits = [], []
    with Ledger.open(store, create=False) as ledger:
        for pid in ledger.profile_ids():
            history = [e for e in ledger.history(pid) if e.envelope.at <= w.as_of]
            if not history:  # registered after the moment
                continue
            leases += _leases(history)
            waits += _waits(history, w.as_of)
    used = [x for x in leases if x["account"] == account and w.holds(x["start"], x["end"])]
    # Unknown: ended by the sweep or an operator, or not ended yet and past its deadline then
    # (no worker may end it any more).
    unknown = sorted(
        (x for x in leases if _unknown(x, w.as_of) and w.holds(x["start"], x["end"])),
        key=lambda x: (x["start"], x["lease_id"]),
    )
    open_then = sorted(
        (x for x in waits if w.holds(x["start"], x["end"])),
        key=lambda x: (x["start"], x["profile_id"]),
    )
    return {
        "account": account,
        "window": [w.since.isoformat(), w.until.isoformat()],
        "workers": dict(Counter(x["worker_id"] for x in used)),
        "profiles": sorted({x["profile_id"] for x in used}),
        "unknown_endings": [
            {k: x[k] for k in ("run_id", "worker_id", "profile_id", "ending", "cause")}
            for x in unknown
        ],
        "review_waits": [
            {
                "profile_id": x["profile_id"],
                "state": x["state"],
                "cause": x["cause"],
                "started_at": x["start"].isoformat(),
                "ended_at": x["end"].isoformat() if x["end"] else None,
                "ended_by": x["ended_by"],
                "seconds": ((x["end"] or w.as_of) - x["start"]).total_seconds(),
            }
            for x in open_then
        ],
    }


def _unknown(lease: dict[str, Any], as_of: datetime) -> bool:
    """How the lease's run went is unknown at ``as_of``: it ended so, or it had not ended and
    its deadline had passed."""
    if lease["ending"] is None:
        return bool(as_of > lease["deadline"])
    return lease["ending"] in UNKNOWN


def _leases(history: list[ProfileEvent]) -> list[dict[str, Any]]:
    """Each lease of one profile: who took it, when, its last deadline, and how and when it
    ended. A lease ends at the first event that ends it: released cleanly (clean, or
    expected_failure), revoked by an operator (forced by a force-release, else revoked), or
    its profile sent to review or quarantine while it was live (stale if the sweep had marked
    it stale first). Its checkout, each heartbeat and each extension set its deadline."""
    account = str(history[0].account_id)  # type: ignore[attr-defined]
    found: dict[str, dict[str, Any]] = {}
    stale: set[str] = set()
    for e in history:
        data = e.model_dump()
        if e.event_type == "lease_acquired":
            lease = data["lease"]
            found[lease["lease_id"]] = {
                "lease_id": lease["lease_id"],
                "profile_id": e.profile_id,
                "account": account,
                "worker_id": lease["worker_id"],
                "run_id": lease["run_id"],
                "start": e.envelope.at,
                "deadline": lease["expires_at"],
                "end": None,
                "ending": None,
                "cause": None,
            }
            continue
        lease_id = data.get("lease_id")
        if e.event_type in RENEWALS and lease_id in found:
            found[lease_id]["deadline"] = data["expires_at"]
        if e.event_type == "lease_marked_stale":
            stale.add(lease_id)
        row = found.get(lease_id) if lease_id else None
        if row is None or row["ending"] is not None:
            continue
        ended = _ended(e.event_type, data, lease_id in stale)
        if ended is not None:
            row["ending"], row["cause"], row["end"] = *ended, e.envelope.at
    return list(found.values())


def _ended(kind: str, data: dict[str, Any], was_stale: bool) -> tuple[str, str | None] | None:
    cause = data.get("cause")
    cause = None if cause is None else str(cause.value if hasattr(cause, "value") else cause)
    if kind == "lease_released_cleanly":
        outcome = str(getattr(data["outcome"], "value", data["outcome"]))
        return ("clean" if outcome == "success" else "expected_failure"), None
    if kind == "lease_revoked":
        return ("forced" if cause == "force_release" else "revoked"), cause
    if kind in ("review_requested", "profile_quarantined"):
        if was_stale:
            return "stale", cause
        return ("review" if kind == "review_requested" else "quarantine"), cause
    return None


def _waits(history: list[ProfileEvent], as_of: datetime) -> list[dict[str, Any]]:
    """One profile's waits for a reviewer: from the event that blocked it (review, quarantine,
    or enabling it back into one of them) while it was not already waiting, to the next
    verdict or its disabling; in the blocked state it was last put in before that. An enable
    back into a blocked state resumes the wait the disabling ended (an operator's, or a
    reviewer's verdict of disable), for its cause."""
    found, waiting, parked = [], None, None
    for e in history:
        data = e.model_dump()
        state = {"review_requested": "review_required", "profile_quarantined": "quarantined"}
        blocked = state.get(e.event_type)
        if e.event_type == "profile_enabled" and str(data["state"].value) in BLOCKED:
            blocked = str(data["state"].value)
        if blocked is not None and waiting is None:
            cause = data.get("cause")
            resumed = parked if e.event_type == "profile_enabled" else None
            parked = None
            waiting = {
                "profile_id": e.profile_id,
                "state": blocked,
                "cause": resumed["cause"]
                if resumed
                else None
                if cause is None
                else str(cause.value),
                "start": e.envelope.at,
                "end": None,
                "ended_by": None,
            }
            found.append(waiting)
        elif blocked is not None:
            waiting["state"] = blocked
        elif e.event_type in ("profile_reviewed", "profile_disabled") and waiting is not None:
            how = str(data["decision"].value) if e.event_type == "profile_reviewed" else "disabled"
            waiting.update(end=e.envelope.at, ended_by=f"{how} by {e.envelope.actor_id}")
            if how in ("disabled", "disable"):
                parked = waiting
            waiting = None
    return found
