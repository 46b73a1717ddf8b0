"""A profile's timeline: one flat row per event, in stream order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger import Ledger, ProfileEvent
from projections.base import ReadModel

# Payload fields lifted into their own columns; the rest is summarised in ``detail``.
_LIFTED = ("lease_id", "step", "url", "cause", "outcome", "fencing_token")
_ENVELOPE_AND_IDS = {"originator_id", "originator_version", "profile_id", "envelope"}


class TimelineRow(ReadModel):
    """One event, flat: who did what, when, to which lease, and why."""

    profile_id: str
    version: int
    at: datetime
    event_type: str
    actor_id: str
    actor_role: str
    reason: str
    lease_id: str | None
    fencing_token: int | None
    step: str | None
    url: str | None
    cause: str | None
    outcome: str | None
    detail: str
    command_id: str
    correlation_id: str
    causation_id: str


def row_of(event: ProfileEvent) -> TimelineRow:
    payload: dict[str, Any] = event.model_dump(mode="json", exclude=_ENVELOPE_AND_IDS)
    lease = payload.pop("lease", None)
    if lease is not None:  # lease_acquired carries the whole lease record
        payload.setdefault("lease_id", lease["lease_id"])
        payload.setdefault("fencing_token", lease["fencing_token"])
        payload["worker_id"], payload["run_id"] = lease["worker_id"], lease["run_id"]
        payload["task_type"], payload["expires_at"] = lease["task_type"], lease["expires_at"]
    lifted = {k: payload.pop(k, None) for k in _LIFTED}
    if "final_url" in payload and lifted["url"] is None:
        lifted["url"] = payload.pop("final_url")
    detail = ", ".join(f"{k}={v}" for k, v in payload.items() if v not in (None, [], False))
    env = event.envelope
    return TimelineRow(
        profile_id=event.profile_id,
        version=event.originator_version,
        at=env.at,
        event_type=event.event_type,
        actor_id=env.actor_id,
        actor_role=env.actor_role.value,
        reason=env.reason,
        detail=detail,
        command_id=env.command_id,
        correlation_id=env.correlation_id,
        causation_id=env.causation_id,
        **lifted,
    )


def timeline(ledger: Ledger, profile_id: str) -> list[TimelineRow]:
    """Every event of the profile as a flat row, oldest first."""
    return [row_of(e) for e in ledger.history(profile_id)]
