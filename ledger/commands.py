"""A command as issued: its id, its fingerprint and the time it is decided at.

The fingerprint binds a command id to what was asked, so a resent command is recognised and
the same id reused for something else is refused.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from ledger.domain.model import Role
from ledger.domain.profile import Context, Profile


def new_id() -> str:
    return uuid.uuid4().hex


def fingerprint(name: str, *arguments: object) -> str:
    """``name:digest`` of the command's arguments, stable across processes and runs."""
    digest = hashlib.sha256(json.dumps(arguments, default=repr).encode()).hexdigest()[:16]
    return f"{name}:{digest}"


@dataclass(frozen=True)
class Issued:
    """A command as issued: its id, its fingerprint and, once decided, the store's time."""

    command_id: str
    command: str
    now: datetime | None = None

    def at(self, now: datetime) -> Issued:
        return Issued(self.command_id, self.command, now)

    def context(
        self, actor: str, role: Role, correlation_id: str | None = None, *, reason: str = ""
    ) -> Context:
        assert self.now is not None, "a command is decided at a time: use at(now) first"
        return Context(
            actor_id=actor,
            role=role,
            now=self.now,
            command_id=self.command_id,
            correlation_id=correlation_id or self.command_id,
            causation_id=self.command_id,
            reason=reason,
            command=self.command,
        )


def lease_context(profile: Profile, lease_id: str, issued: Issued, reason: str) -> Context:
    """Lease commands act as the lease's worker and correlate on its run."""
    lease = profile.lease if profile.lease and profile.lease.lease_id == lease_id else None
    worker = lease.worker_id if lease else "unknown"
    return issued.context(worker, Role.WORKER, lease.run_id if lease else None, reason=reason)
