"""Reading a profile's event history back as its leases, for tests that race real processes."""

from __future__ import annotations

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
