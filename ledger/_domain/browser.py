"""Facts about a profile's browser, and the rules the ledger applies to them.

Whether a Chromium still runs on a profile directory is a fact only the host that ran it can
observe (``workers._inspector`` reads ``SingletonLock`` and ``/proc``). The ledger never observes
it: a caller passes a ``BrowserCheck`` in, and the rules here judge it. So the aggregate stays
pure (replay reads no disk) while the rules stay in the domain, one place for every caller.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from ledger._domain.model import Frozen, Lease, LeaseStatus, ReviewDecision, one_part


class BrowserStatus(StrEnum):
    """What an inspection of a profile directory found."""

    ALIVE = "alive"  # a Chromium on the inspecting host runs on exactly this directory
    NOT_RUNNING = "not_running"  # no SingletonLock: no browser has the directory open
    STALE_LOCK = "stale_lock"  # the lock names this host, but its browser is gone
    UNKNOWN = "unknown"  # cannot tell from here (the lock names another host, or is unreadable)


class StopSignal(StrEnum):
    """The signal that ended a stopped browser: the gentle stop, or the process group's kill."""

    SIGHUP = "SIGHUP"
    SIGKILL = "SIGKILL"


class BrowserCheck(Frozen):
    """One inspection of a profile directory, as the inspecting host saw it.

    ``host`` is the host that looked; ``lock_host`` and ``pid`` are what the lock named (None
    without a readable lock); ``detail`` is one sentence for a person.
    """

    user_data_dir: str
    status: BrowserStatus
    host: str
    lock_host: str | None = None
    pid: int | None = None
    detail: str

    @property
    def alive(self) -> bool:
        return self.status is BrowserStatus.ALIVE


def stop_hint(profile_id: str) -> str:
    return f"custody inspect {profile_id} --stop-orphan --actor NAME"


def review_refusal(
    profile_id: str, decision: ReviewDecision, browser: BrowserCheck | None
) -> str | None:
    """Why a review may not decide so now, or None.

    Returning a profile to the pool while a browser still runs on its directory would hand the
    next worker a profile that Chromium already holds (its launch fails, or, if that browser is
    hung, silently takes it over). Keeping it quarantined or disabling it is always allowed.
    ``None`` means the caller did not look (no directory registered, or an API caller): the rule
    cannot judge what it was not given.
    """
    if decision is not ReviewDecision.RETURN or browser is None or not browser.alive:
        return None
    return (
        f"a browser still runs on {profile_id}'s directory ({browser.detail}): it cannot return "
        f"to the pool until that browser stops; once no lease holds it: {stop_hint(profile_id)}"
    )


def stop_refusal(profile_id: str, lease: Lease | None, now: datetime | None = None) -> str | None:
    """Why the browser on a profile's directory may not be stopped now, or None.

    A browser may be stopped only when the ledger shows no current holder: a live or stale lease
    means a worker may still be driving it (or about to find out its lease is lost on its own).
    The way to end the lease depends on whether it is past its deadline at ``now`` (rev29: a
    live lease was told "custody sweep", which settles only an overdue one, and an overdue
    one was called active).
    """
    if lease is None:
        return None
    overdue = now is not None and lease.lease_status is LeaseStatus.ACTIVE and lease.overdue_at(now)
    status = "overdue" if overdue else lease.lease_status.value
    if overdue or lease.lease_status is not LeaseStatus.ACTIVE:
        end = "custody sweep settles it, or custody force-release"
    else:
        end = (
            "its worker ends it (a browser of its own cannot start while this one holds the "
            "directory), or custody force-release (which sends the profile to review)"
        )
    return (
        f"{profile_id} is held by worker {one_part(lease.worker_id)} under {lease.lease_id} "
        f"({status}): a browser is stopped only when no lease holds the profile; end the "
        f"lease first: {end}"
    )


def blocking_note(
    profile_id: str, browser: BrowserCheck | None, held: bool, available: bool = False
) -> str | None:
    """What ``why`` adds when a browser still runs on the directory: for a held profile it is
    the holder's (nothing to do); for a blocked one it keeps it out of the pool (a review may
    not return it); an available one (its worker released with its browser still open) is
    granted to a checkout, whose browser then cannot start there (Chromium's lock)."""
    if browser is None or not browser.alive or held:
        return None
    if available:
        return (
            f"a browser still runs on the profile's directory ({browser.detail}); a checkout "
            "is granted, but its browser cannot start there until this one stops: "
            f"{stop_hint(profile_id)}"
        )
    return (
        f"a browser still runs on the profile's directory ({browser.detail}); the profile stays "
        f"blocked until it stops: {stop_hint(profile_id)}"
    )
