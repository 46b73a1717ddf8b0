"""What a command answers, read from the profile's state right after it (or right after the
first time it ran, when a resent command id is recognised)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ledger._domain.endings import ENDED_UNKNOWN, ending_text
from ledger._domain.errors import LedgerError
from ledger._domain.model import Cause, Frozen, Lease, ProfileState

if TYPE_CHECKING:
    from ledger._domain.profile import Profile


# The answers of the commands that end leases: defined here, with what makes them, so that a
# read defines none of them.
class ReleaseResult(Frozen):
    """How a release ended: the lease's ending and its cause, as ``who`` gives them, and where
    the profile now stands."""

    lease_id: str
    profile_id: str
    ending: str
    profile_state: ProfileState
    cause: Cause | None = None
    message: str


class ResentReleaseResult(ReleaseResult):
    """The answer to a resent release or force-release (its command id recognised): the
    ending and the profile's state as recorded then (the profile may have moved on since),
    marked ``resent`` so that no reader takes it for the profile now (rev37: a worker's
    release resent said "rr is review_required" of a profile leased to another worker)."""

    resent: bool = True


class SweepResult(Frozen):
    """One stale lease the sweep found and what it decided, and when: ``at`` is its events'
    time, as the timeline shows them (None in the answer of a sweep recorded before custody
    recorded it, given again to a resend of its id)."""

    profile_id: str
    lease_id: str
    profile_state: ProfileState
    cause: Cause
    at: datetime | None = None


class SweepFailure(Frozen):
    """A profile the sweep could not settle, and why; the sweep went on with the others."""

    profile_id: str
    error: str


class SweepReport(Frozen):
    """What one sweep settled, and the profiles it could not."""

    settled: list[SweepResult]
    failed: list[SweepFailure]


def current_lease(profile: Profile, now: Lease | None = None) -> Lease:
    """The lease a lease command acted on: the live one, or the one it just ended; for a
    resent command id, ``now``: that lease as it stands now (so a worker that resends learns
    at once that its lease has ended since)."""
    if now is not None:
        return now
    lease = profile.lease or profile.last_lease
    if lease is None:
        raise LedgerError(f"profile {profile.profile_id} has never been leased")
    return lease


def release_result(profile: Profile, *, resent: bool = False) -> ReleaseResult:
    """How the lease ended and where that left the profile; ``resent``: the answer to a
    command id already recorded, as recorded then, which its message says (rev34: a resent
    force-release said "p1 is review_required" of a profile leased again since)."""
    lease = profile.last_lease
    if lease is None or lease.ending is None:
        raise LedgerError(f"profile {profile.profile_id} has no ended lease to report")
    # The lease's cause, not the block's (rev39: a force-release after a mutating step said
    # "mutation_unconfirmed", the quarantine's, where who and why say "forced (force_release)").
    cause, state, pid = lease.ending_cause, profile.state, profile.profile_id
    if state is ProfileState.AVAILABLE:
        # An expected failure is explainable too, but it is not a clean run (rev26: both read
        # "released cleanly", though the ending recorded said expected_failure).
        how = "cleanly" if lease.ending == "clean" else f"as an {lease.ending.replace('_', ' ')}"
        ended, where = f"released {how}", "back in the pool"
    else:
        # A worker's review or quarantine is said by the state after it; an ending no worker
        # reported (forced) in who's words, the block's own cause beside the state.
        said = ending_text(lease.ending, cause) if lease.ending in ENDED_UNKNOWN else f"({cause})"
        blocked = profile.block.cause if profile.block else None
        ended, where = f"ended {said}", state.value
        if blocked is not None and blocked != cause:
            where += f" ({blocked})"
    stands = f"is {where}"
    if resent:  # a worker's release too (rev37: "rr is back in the pool" of a leased profile)
        stands = (
            f"was {where} after it (resent: its answer as recorded, not the profile now; "
            f"custody why {pid} says where it stands)"
        )
    answer = ResentReleaseResult if resent else ReleaseResult
    message = f"{lease.lease_id} {ended}; {pid} {stands}"
    return answer(
        lease_id=lease.lease_id,
        profile_id=profile.profile_id,
        ending=lease.ending,
        profile_state=state,
        cause=cause,
        message=message,
    )
