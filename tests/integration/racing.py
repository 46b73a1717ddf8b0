"""For tests that race real processes: run them to their JSON summaries, and read a profile's
event history back as its leases."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from ledger import Lease, Ledger

_ENDINGS = {"lease_released_cleanly", "review_requested", "profile_quarantined", "lease_revoked"}


def leases_in_order(ledger: Ledger, profile_id: str) -> list[Lease]:
    """The profile's leases as acquired, oldest first, asserting what must hold whatever the
    race: no lease is acquired while another is live, tokens rise by one, every lease ended."""
    live: str | None = None
    token = 0
    acquired = []
    for event in ledger.history(profile_id):
        if event.event_type == "lease_acquired":
            assert live is None, f"{event.event_id}: acquired while {live} was live"
            lease: Lease = event.lease  # type: ignore[attr-defined]
            assert lease.fencing_token == token + 1, f"{event.event_id}: token did not rise by 1"
            token, live = lease.fencing_token, lease.lease_id
            acquired.append(lease)
        elif event.event_type in _ENDINGS and getattr(event, "lease_id", None) == live:
            live = None
    assert live is None, f"{profile_id}: lease {live} never ended"
    return acquired


def run_all(script: str, argvs: Sequence[Sequence[str]]) -> list[Any]:
    """Start ``python script ARGS`` for every argument list at once; wait for all; each must
    exit 0 and print one JSON document, returned in the order given."""
    procs = [
        subprocess.Popen(
            [sys.executable, script, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in argvs
    ]
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        summaries.append(json.loads(out))
    return summaries
