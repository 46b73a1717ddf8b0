"""Answers for a person: *why* is this profile blocked, and *who* used it last."""

from __future__ import annotations

from datetime import datetime

from ledger import (
    BrowserCheck,
    Cause,
    DenialReason,
    Holder,
    Lease,
    Ledger,
    ProfileState,
    ProfileView,
)
from ledger.rules import blocking_note, holder_of, one_part
from projections._base import ReadResult
from projections._timeline import TimelineRow, at_moments


class Explanation(ReadResult):
    """The state, the reason and what unblocks it, with the lease and run that led there."""

    profile_id: str
    account_id: str
    proxy_id: str
    state: ProfileState
    reason: DenialReason | None
    message: str
    since: datetime | None
    until: datetime | None
    holder: Holder | None  # who holds a live (or stale) lease now
    last_user: Holder | None  # with no lease held, whose lease came last
    cause: str | None
    trigger: str | None
    blocked_by: str | None
    last_review: str | None
    lease: Lease | None
    unclean_leases: list[str]
    remediation: str | None
    row_problem: str | None = None  # the stored availability row disagrees: run custody rebuild
    browser: BrowserCheck | None = None  # what an inspection of its directory found, if made
    browser_note: str | None = None  # a browser still running keeps the profile blocked
    because: list[TimelineRow] = []  # the events that put it in this state (its command's)


class Usage(ReadResult):
    """The current holder, or the last one and how that lease ended (its ending and the cause
    beside it, in the words every report uses)."""

    profile_id: str
    current: bool
    lease: Lease | None
    ending: str | None
    cause: Cause | None = None
    ended_at: datetime | None
    # The current lease missed its deadline, on the store's clock: stale until the sweep.
    overdue: bool = False
    because: list[TimelineRow] = []  # the events that began (and ended) that lease


def explain(
    ledger: Ledger,
    profile_id: str,
    *,
    browser: BrowserCheck | None = None,
    not_ours: str | None = None,
) -> Explanation:
    """Why the profile is (or is not) available right now, judged on the store's clock.
    ``browser``, an inspection of its directory made by the caller, is shown beside; a browser
    still running with no lease holding the profile keeps it blocked until it stops.
    ``not_ours`` says why that browser may be another profile's (a directory an older store
    let profiles share): then it is not this profile's to stop, and no stop is suggested."""
    view, problem = ledger.checked_view(profile_id)
    return explain_view(ledger, view, problem, browser=browser, not_ours=not_ours)


def explain_view(
    ledger: Ledger,
    view: ProfileView,
    row_problem: str | None,
    *,
    browser: BrowserCheck | None = None,
    not_ours: str | None = None,
) -> Explanation:
    """``explain`` for a profile the caller has loaded already (``Ledger.checked_view``), so
    an answer that also inspects the profile's browser loads the profile once."""
    denial = view.denial
    block = view.block if view.state in _BLOCKED else None
    note, remediation = _browser_note(view, browser, not_ours)
    return Explanation(
        profile_id=view.record.profile_id,
        account_id=view.record.account_id,
        proxy_id=view.record.proxy_id,
        state=view.state,
        reason=denial.reason if denial else None,
        message=denial.message if denial else "available: a checkout will be granted",
        since=denial.since if denial else view.since,
        until=denial.until if denial else None,
        holder=holder_of(view.lease),
        last_user=None if view.lease else holder_of(view.last_lease),
        cause=block.cause.value if block else None,
        trigger=block.trigger.value if block and block.trigger else None,
        blocked_by=f"{one_part(block.actor_id)} ({block.actor_role.value})" if block else None,
        last_review=_review_line(view),
        lease=view.lease or view.last_lease,
        unclean_leases=list(block.unclean_leases) if block else [],
        remediation=remediation,
        row_problem=row_problem,
        browser=browser,
        browser_note=note,
        because=_entered(ledger, view),
    )


def _browser_note(
    view: ProfileView, browser: BrowserCheck | None, not_ours: str | None
) -> tuple[str | None, str | None]:
    """What a browser still running on the directory adds, and the remediation it changes:
    it keeps an unheld profile blocked, and must stop first (or, another profile's, be
    waited for)."""
    remediation = view.denial.remediation if view.denial else None
    available = view.state is ProfileState.AVAILABLE
    note = blocking_note(view.record.profile_id, browser, view.lease is not None, available)
    if note is None:
        return None, remediation
    if not_ours is not None:
        note = (
            f"a browser still runs on the profile's directory, not as its orphan: {not_ours}; "
            "the profile stays blocked until it stops"
        )
    if remediation is not None:
        first = "wait for that browser to stop" if not_ours else "stop the browser"
        remediation = f"first {first}, then {remediation}"
    return note, remediation


def _review_line(view: ProfileView) -> str | None:
    review = view.last_review
    if review is None:
        return None
    by = one_part(review.reviewer)
    return f"{review.decision} by {by} at {review.at.isoformat()}: {review.note}"


# The events that move a profile into each state (enabling returns it to any).
_ENTERING = {
    ProfileState.AVAILABLE: {
        "profile_registered",
        "lease_released_cleanly",
        "profile_returned_to_pool",
    },
    ProfileState.LEASED: {"lease_acquired"},
    ProfileState.STALE: {"lease_marked_stale"},
    ProfileState.REVIEW_REQUIRED: {"review_requested"},
    ProfileState.QUARANTINED: {"profile_quarantined"},
    ProfileState.DISABLED: {"profile_disabled"},
}
_RENEWALS = ("lease_heartbeat", "lease_extended")


def _entered(ledger: Ledger, view: ProfileView) -> list[TimelineRow]:
    """The events of the command that moved the profile into its state: among the events at
    the moment the state began, the last that enters it names the command (several commands
    may share a moment)."""
    rows = at_moments(ledger, view.record.profile_id, [view.since] if view.since else [])
    entering = _ENTERING[view.state] | {"profile_enabled"}
    commands = [r.command_id for r in rows if r.event_type in entering]
    entered = [r for r in rows if commands and r.command_id == commands[-1]]
    return entered + _renewed(ledger, view.lease)


def _renewed(ledger: Ledger, lease: Lease | None) -> list[TimelineRow]:
    """The renewal (heartbeat or extend) that set a live lease's deadline, if one came after
    its checkout: the deadline ``why`` and ``who`` speak of is its, not the checkout's."""
    if lease is None or lease.heartbeat_at <= lease.lease_started_at:
        return []
    rows = at_moments(ledger, lease.profile_id, [lease.heartbeat_at])
    renewals = [r for r in rows if r.lease_id == lease.lease_id and r.event_type in _RENEWALS]
    return renewals[-1:]


_BLOCKED = (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED, ProfileState.DISABLED)


def who(ledger: Ledger, profile_id: str) -> Usage:
    """Who holds the profile now, or who held it last and how that lease ended, with the
    events that began and ended that lease."""
    view = ledger.view(profile_id)
    last = view.lease or view.last_lease
    current = view.lease is not None
    moments = [] if last is None else [last.lease_started_at, last.ended_at]
    return Usage(
        profile_id=view.record.profile_id,
        current=current,
        lease=last,
        ending=None if current or last is None else last.ending,
        cause=None if current or last is None else last.ending_cause,
        ended_at=None if current or last is None else last.ended_at,
        overdue=view.lease is not None and view.lease.overdue_at(ledger.now()),
        because=[
            r
            for r in at_moments(ledger, profile_id, [m for m in moments if m is not None])
            if last is not None and r.lease_id == last.lease_id and r.event_type not in _RENEWALS
        ]
        + _renewed(ledger, view.lease),
    )
