"""What the review console shows, read on a reader thread: the queue of profiles waiting for a
reviewer, and one profile's page (why it is blocked, its last run, its evidence, its timeline).

Everything here is data; the templates escape every text they are given (a worker wrote the
steps, URLs and reasons, and a worker is not trusted with the reviewer's page).
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from datetime import datetime

from ledger import DenialReason, Lease, Ledger, ProfileState
from projections import Explanation, StatusRow, TimelineRow

# The states a reviewer acts on (a stale profile is one a sweep has not settled yet: it is
# shown so the reviewer sees it coming, and the ledger says why it cannot be reviewed yet).
WAITING = (ProfileState.STALE, ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED)
QUEUE_SHOWN = 200
TIMELINE_SHOWN = 200
STEPS_SHOWN = 500
# A screenshot larger than this is not one the worker's SDK wrote: it is not read.
SCREENSHOT_MAX_BYTES = 20 * 1024 * 1024
_IMAGES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


@dataclass(frozen=True)
class Waiting:
    """One profile of the queue, and why it is blocked, in the ledger's words."""

    row: StatusRow
    why: str

    @property
    def state(self) -> str:
        """The profile's state as ``custody status`` names it: ``leased (overdue)`` for a lease
        past its deadline that no sweep has marked yet."""
        return state_named(self.row.state, overdue=self.row.overdue)


@dataclass(frozen=True)
class Queue:
    """The waiting profiles, oldest first (at most ``QUEUE_SHOWN``), and how many wait."""

    rows: list[Waiting]
    total: int
    at: datetime


@dataclass(frozen=True)
class Evidence:
    """What the last run's release filed: its final URL and screenshot path, and whether the
    service can show that screenshot (``shown``) or why not (``problem``)."""

    lease_id: str
    outcome: str | None = None
    final_url: str | None = None
    screenshot: str | None = None
    sha256: str | None = None
    problem: str | None = None
    evidence_problem: str | None = None

    @property
    def shown(self) -> bool:
        return self.screenshot is not None and self.problem is None


@dataclass(frozen=True)
class ProfilePage:
    explanation: Explanation
    lease: Lease | None
    steps: list[TimelineRow]
    evidence: Evidence | None
    timeline: list[TimelineRow]
    at: datetime
    version: int  # the profile's version the page shows: its verdict form sends it back
    reviewable: bool = field(default=False)
    steps_left_out: int = 0  # the run's earliest steps, not shown (STEPS_SHOWN at most are)

    @property
    def state(self) -> str:
        """The profile's state as ``custody status`` and ``why`` name it: ``leased (overdue)``
        when its lease missed its deadline (the reason a checkout is denied for is then
        ``stale``) and no sweep has marked it yet."""
        why = self.explanation
        overdue = why.state is ProfileState.LEASED and why.reason is DenialReason.STALE
        return state_named(why.state, overdue=overdue)


def state_named(state: ProfileState, *, overdue: bool) -> str:
    """A state as the command line shows it: rev41, the console showed an overdue lease as
    plain ``leased``, where ``custody status`` says ``leased (overdue)``."""
    return f"{state.value} (overdue)" if overdue else state.value


def queue(ledger: Ledger) -> Queue:
    """Stale, review and quarantined profiles, the longest waiting first. A lease past its
    deadline makes its profile stale before a sweep marks it (as ``custody status --state
    stale`` lists it), waiting since the deadline: without a sweeper running, the queue
    stayed empty while such profiles were stuck (rev26)."""
    from projections import status

    now = ledger.now()
    rows = [r for r in status(ledger) if r.state in WAITING or r.overdue]
    rows.sort(key=lambda r: (r.since is None, r.since or now, r.profile_id))
    shown = [Waiting(r, _why(ledger, r)) for r in rows[:QUEUE_SHOWN]]
    return Queue(rows=shown, total=len(rows), at=now)


def _why(ledger: Ledger, row: StatusRow) -> str:
    denial = ledger.view(row.profile_id).denial
    return denial.message if denial else row.state.value


def profile_page(ledger: Ledger, profile_id: str) -> ProfilePage:
    """One profile: ``UnknownProfile`` (or ``InvalidInput``) for an id the ledger refuses."""
    from projections import explain_view, timeline

    view, problem = ledger.checked_view(profile_id)
    explanation = explain_view(ledger, view, problem)
    lease = view.lease or view.last_lease
    steps: list[TimelineRow] = []
    steps_left_out = 0
    evidence = None
    if lease is not None:
        since = timeline(ledger, profile_id, since=lease.lease_started_at)
        reported = [r for r in since if r.lease_id == lease.lease_id and r.step]
        steps_left_out = max(0, len(reported) - STEPS_SHOWN)
        steps = reported[steps_left_out:]  # the last: what the run did before it stopped
        evidence = last_evidence(ledger, profile_id, lease.lease_id)
    return ProfilePage(
        explanation=explanation,
        lease=lease,
        steps=steps,
        evidence=evidence,
        timeline=timeline(ledger, profile_id, last=TIMELINE_SHOWN),
        at=ledger.now(),
        version=view.version,
        reviewable=view.state in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED),
        steps_left_out=steps_left_out,
    )


def last_evidence(ledger: Ledger, profile_id: str, lease_id: str) -> Evidence:
    """What the lease's release filed (its last release request), judged against the file."""
    for event in reversed(ledger.history(profile_id)):
        if event.event_type == "lease_release_requested" and _lease_of(event) == lease_id:
            path: str | None = getattr(event, "screenshot", None)
            digest: str | None = getattr(event, "screenshot_sha256", None)
            return Evidence(
                lease_id=lease_id,
                outcome=str(getattr(event, "outcome", "")) or None,
                final_url=getattr(event, "final_url", None),
                screenshot=path,
                sha256=digest,
                problem=None if path is None else screenshot_problem(path, digest)[0],
                evidence_problem=getattr(event, "evidence_problem", None),
            )
    return Evidence(
        lease_id=lease_id, problem="the run filed no release: no final URL, no screenshot"
    )


def _lease_of(event: object) -> str | None:
    lease_id: str | None = getattr(event, "lease_id", None)
    return lease_id


def screenshot_problem(path: str, digest: str | None) -> tuple[str | None, bytes, str]:
    """Why the service will not show the screenshot at ``path`` (None: it will), with its
    bytes and media type. Only an absolute path to a PNG or JPEG this process can read, no
    larger than ``SCREENSHOT_MAX_BYTES`` and matching the digest the release recorded, is
    shown: the path is a worker's word, and a worker must not make the console read out
    any other file."""
    if not os.path.isabs(path):
        return "the path is not absolute, so it names no file here", b"", ""
    if digest is None:
        return "the release recorded no sha256 to check the file against", b"", ""
    try:
        # Only a regular file is opened: opening a FIFO wakes its writer (a worker would learn
        # when a reviewer looks) and opening a device may act on it.
        if not stat.S_ISREG(os.stat(path).st_mode):
            return "the path is not a regular file", b"", ""
        # Never blocking: the path may have been swapped for a FIFO or a terminal since the
        # look, whose open or read would hold a reader thread for ever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as error:
        return f"the service cannot read it here ({error.strerror or error})", b"", ""
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return "the path is not a regular file", b"", ""
        try:
            content = file.read(SCREENSHOT_MAX_BYTES + 1)
        except OSError as error:
            return f"the service cannot read it here ({error.strerror or error})", b"", ""
    if len(content) > SCREENSHOT_MAX_BYTES:
        return "the file is larger than any screenshot the worker writes", b"", ""
    media = next((m for magic, m in _IMAGES.items() if content.startswith(magic)), None)
    if media is None:
        return "the file is not a PNG or JPEG image", b"", ""
    if hashlib.sha256(content).hexdigest() != digest:
        return "the file's sha256 differs from the one the release recorded", b"", ""
    return None, content, media
