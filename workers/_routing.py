"""Account-aware routing: lease any available profile of an account, not one named profile.

The availability rows (the read model) say which profiles look free; the lease itself is taken
on each profile's own stream, where the aggregate decides, so a row that is out of date can cost
an attempt but never a second holder. Candidates are tried in random order: workers that route
at the same instant then mostly pick different profiles instead of all racing for the first.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from ledger import (
    Availability,
    Checkout,
    CheckoutDenied,
    Denial,
    DenialReason,
    Holder,
    Lease,
    Ledger,
    ProfileState,
    UnknownProfile,
)
from ledger.rules import checked_identity, checked_text, in_line

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


class Standing(BaseModel):
    """Why one profile of the pool was not leased, as a checkout of that profile alone is
    told (its ``Denial``: reason, message, since, until, holder, what unblocks it), and how
    the aggregated reason counts it (``label``). A row of a profile never registered has no
    denial: ``reason`` is None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_id: str
    label: str
    reason: DenialReason | None
    message: str
    since: datetime | None = None
    until: datetime | None = None
    holder: Holder | None = None
    remediation: str


class NoProfileAvailable(CheckoutDenied):
    """No profile of the account (and region) could be leased.

    ``reason`` is ``no_profile_available`` and ``message`` the aggregated count ("0 of 12
    profiles for account_shop: 7 leased, 3 quarantined, 2 proxy mismatch"); ``standing`` maps
    each profile considered to its ``Standing``, ``counts`` totals their labels, most common
    first.
    """

    def __init__(
        self, account_id: str, region: str | None, standing: Mapping[str, Standing]
    ) -> None:
        self.account_id = account_id
        self.region = region
        self.standing = dict(sorted(standing.items()))
        self.counts = dict(Counter(s.label for s in self.standing.values()).most_common())
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
    them again. When none could be leased, asks the ledger what a checkout of each profile the
    rows ruled out would be told (``Ledger.checkout_denial``; one freed since the rows were
    read is tried too) and raises ``NoProfileAvailable`` (a ``CheckoutDenied``) with every
    profile's standing. A worker, run, task type, account, region or proxy id the ledger
    refuses raises ``InvalidInput`` naming it before anything is read (rev48: with no
    candidate, a region of 5 was a ``NoProfileAvailable``, a denial, for bad input); a region,
    only compared with the rows, is checked to be text (one stored before the ids' rule is
    found by its exact text, and one no row holds is shown escaped); a malformed TTL, from the
    first attempt. Not idempotent: a caller that retries after a
    timeout may hold two leases, so it should release what it does not use.
    """
    for name, given in (
        ("worker_id", worker_id),
        ("run_id", run_id),
        ("task_type", task_type),
        ("account_id", account_id),
        ("region", region),
        ("proxy_id", proxy_id),
    ):
        if name == "region" and given is not None:
            # Only compared with the rows, never recorded: a region stored before the rule for
            # ids (" eu") is still found by its exact text (fixrev 292); its type is checked.
            checked_text(name, given)
        elif given is not None or name not in _OPTIONAL:
            checked_identity(name, given)
    candidates, ruled_out = _pool(ledger.availability(), account_id, region, proxy_id)
    (rng or random.SystemRandom()).shuffle(candidates)
    attempt = _Attempt(ledger, worker_id, run_id, task_type, account_id, ttl_seconds, proxy_id)
    lease = attempt.first_of(candidates, ruled_out)
    if lease is None:
        raise NoProfileAvailable(account_id, region, attempt.standing)
    return lease


# What ``checkout_for`` may be given as None.
_OPTIONAL = frozenset({"region", "proxy_id"})


def _pool(
    rows: Iterable[Availability], account_id: str, region: str | None, proxy_id: str | None
) -> tuple[list[str], list[str]]:
    """The account's profiles (in ``region``, when given) as their rows show them: those that
    look free to lease, and those the rows rule out (``_ruled_out``), each sorted."""
    ours = [
        r for r in rows if r.account_id == account_id and (region is None or r.region == region)
    ]
    ruled_out = sorted(r.profile_id for r in ours if _ruled_out(r, proxy_id))
    candidates = sorted(r.profile_id for r in ours if r.profile_id not in ruled_out)
    return candidates, ruled_out


@dataclass
class _Attempt:
    """One routed checkout's tries, and the standing of each profile it could not lease."""

    ledger: Ledger
    worker_id: str
    run_id: str
    task_type: str
    account_id: str
    ttl_seconds: int
    proxy_id: str | None
    standing: dict[str, Standing] = field(default_factory=dict)

    def first_of(self, candidates: Iterable[str], ruled_out: Iterable[str]) -> Lease | None:
        """The first lease granted: of the candidates, in their order, then of the profiles
        the rows ruled out that turn out free; None when none was."""
        for profile_id in candidates:
            if (lease := self.lease(profile_id)) is not None:
                return lease
        for profile_id in ruled_out:
            if (lease := self.lease_if_free(profile_id)) is not None:
                return lease
        return None

    def lease(self, profile_id: str) -> Lease | None:
        """The lease, or None with the profile's standing recorded (a race lost, a row out
        of date, a row of no registered profile)."""
        try:
            return self.ledger.handle(
                Checkout(
                    profile_id=profile_id,
                    worker_id=self.worker_id,
                    run_id=self.run_id,
                    task_type=self.task_type,
                    ttl_seconds=self.ttl_seconds,
                    account_id=self.account_id,
                    proxy_id=self.proxy_id,
                )
            )
        except CheckoutDenied as denied:
            self.standing[profile_id] = _stood(profile_id, denied.denial)
        except UnknownProfile:
            self.standing[profile_id] = _unregistered(profile_id)
        return None

    def lease_if_free(self, profile_id: str) -> Lease | None:
        """For a profile its row ruled out: record what a checkout of it would be told now;
        if it would be granted (it was freed since the row was read), try it."""
        try:
            denial = self.ledger.checkout_denial(
                profile_id, account_id=self.account_id, proxy_id=self.proxy_id
            )
        except UnknownProfile:
            self.standing[profile_id] = _unregistered(profile_id)
            return None
        if denial is None:
            return self.lease(profile_id)
        self.standing[profile_id] = _stood(profile_id, denial)
        return None


def _stood(profile_id: str, denial: Denial) -> Standing:
    label = _LABELS.get(denial.reason, denial.reason.value)
    told = denial.model_dump(exclude={"profile_id"})
    return Standing(profile_id=profile_id, label=label, **told)


def _unregistered(profile_id: str) -> Standing:
    return Standing(
        profile_id=profile_id,
        label="not registered",
        reason=None,
        message=f"no profile {profile_id!r} is registered: its availability row is left over",
        remediation="custody rebuild drops the rows of profiles never registered",
    )


def _ruled_out(row: Availability, proxy_id: str | None) -> bool:
    """The row rules the profile out: another proxy (a mismatch whatever its state: freeing
    it would not make it fit), or not available (a lease overdue is not free either)."""
    if proxy_id is not None and row.proxy_id != proxy_id:
        return True
    return row.state is not ProfileState.AVAILABLE


def aggregated_reason(account_id: str, region: str | None, counts: Mapping[str, int]) -> str:
    """ "0 of 12 profiles for account_shop: 7 leased, 3 quarantined, 2 proxy mismatch"."""
    where = f" in {in_line(region)}" if region is not None else ""
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
