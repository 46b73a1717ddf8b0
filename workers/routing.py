"""Account-aware routing: lease any available profile of an account, not one named profile.

The availability rows (the read model) say which profiles look free; the lease itself is taken
on each profile's own stream, where the aggregate decides, so a row that is out of date can cost
an attempt but never a second holder. Candidates are tried in random order: workers that route
at the same instant then mostly pick different profiles instead of all racing for the first.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from ledger import (
    Availability,
    CheckoutDenied,
    Denial,
    DenialReason,
    Lease,
    Ledger,
    ProfileState,
    UnknownProfile,
)

# How a profile that could not be leased is counted in the aggregated reason.
_LABELS = {
    DenialReason.ALREADY_LEASED: "leased",
    DenialReason.STALE: "stale",
    DenialReason.REVIEW_REQUIRED: "in review",
    DenialReason.PREVIOUS_RUN_UNKNOWN: "previous run unknown",
    DenialReason.QUARANTINED: "quarantined",
    DenialReason.DISABLED: "disabled",
    DenialReason.PROXY_MISMATCH: "proxy mismatch",
    DenialReason.ACCOUNT_MISMATCH: "account mismatch",
}


class NoProfileAvailable(CheckoutDenied):
    """No profile of the account (and region) could be leased.

    ``reason`` is ``no_profile_available`` and ``message`` the aggregated count ("0 of 12
    profiles for account_shop: 7 leased, 3 quarantined, 2 proxy mismatch"); ``standing`` maps
    each profile considered to why it was not leased, ``counts`` totals them, most common first.
    """

    def __init__(self, account_id: str, region: str | None, standing: Mapping[str, str]) -> None:
        self.account_id = account_id
        self.region = region
        self.standing = dict(sorted(standing.items()))
        self.counts = dict(Counter(self.standing.values()).most_common())
        super().__init__(
            Denial(
                profile_id=None,
                reason=DenialReason.NO_PROFILE_AVAILABLE,
                message=aggregated_reason(account_id, region, self.counts),
                remediation=_remediation(account_id, self.counts),
            )
        )


def checkout_for(
    ledger: Ledger,
    *,
    worker_id: str,
    run_id: str,
    task_type: str,
    account_id: str,
    region: str | None = None,
    ttl_seconds: int = 300,
    proxy_id: str | None = None,
    rng: random.Random | None = None,
) -> Lease:
    """Lease one available profile registered for ``account_id`` (in ``region``, and on
    ``proxy_id``, when given).

    Tries every candidate the availability rows show as available, in ``rng``'s random order;
    a candidate lost to another worker (``CheckoutDenied``) sends it to the next. Each attempt is
    an ordinary ``Ledger.checkout`` with the account (and proxy) named, so the aggregate checks
    them again. Raises ``NoProfileAvailable`` (a ``CheckoutDenied``) when no candidate could be
    leased, counting why for every profile of the account; a malformed argument raises
    ``InvalidInput`` from the first attempt (with no candidate, nothing checks it). Not
    idempotent: a caller that retries after a timeout may hold two leases, so it should release
    what it does not use.
    """
    rows = [
        r
        for r in ledger.availability()
        if r.account_id == account_id and (region is None or r.region == region)
    ]
    now = ledger.now()
    refused: dict[str, str] = {}
    for row in rows:
        why = _standing(row, proxy_id, now)
        if why is not None:
            refused[row.profile_id] = why
    candidates = sorted(r.profile_id for r in rows if r.profile_id not in refused)
    (rng or random.SystemRandom()).shuffle(candidates)
    for profile_id in candidates:
        try:
            return ledger.checkout(
                profile_id,
                worker_id=worker_id,
                run_id=run_id,
                task_type=task_type,
                ttl_seconds=ttl_seconds,
                account_id=account_id,
                proxy_id=proxy_id,
            )
        except CheckoutDenied as denied:  # lost the race, or the row was out of date
            refused[profile_id] = _LABELS.get(denied.reason, denied.reason.value)
        except UnknownProfile:  # a row left behind by no registered profile
            refused[profile_id] = "not registered"
    raise NoProfileAvailable(account_id, region, refused)


def _standing(row: Availability, proxy_id: str | None, now: datetime) -> str | None:
    """Why the row rules the profile out (None: a candidate). A profile on another proxy is
    counted as a mismatch whatever its state: freeing it would not make it fit."""
    if proxy_id is not None and row.proxy_id != proxy_id:
        return _LABELS[DenialReason.PROXY_MISMATCH]
    if row.state is ProfileState.AVAILABLE:
        return None
    if row.overdue_at(now):
        return _LABELS[DenialReason.STALE]
    return _LABELS[row.reason] if row.reason is not None else row.state.value


def aggregated_reason(account_id: str, region: str | None, counts: Mapping[str, int]) -> str:
    """ "0 of 12 profiles for account_shop: 7 leased, 3 quarantined, 2 proxy mismatch"."""
    where = f" in {region}" if region is not None else ""
    total = sum(counts.values())
    plural = "" if total == 1 else "s"
    why = ", ".join(f"{n} {label}" for label, n in counts.items()) or "none is registered"
    return f"0 of {total} profile{plural} for {account_id}{where}: {why}"


def _remediation(account_id: str, counts: Mapping[str, int]) -> str:
    if not counts:
        return f"register one: custody register PROFILE --account {account_id} --proxy PROXY"
    return (
        f"retry when a lease ends, or have a reviewer clear the blocked ones; "
        f"custody status --account {account_id} lists them"
    )
