"""custody's write side: profile leases as event streams.

The public API is what this module exports; everything else is private to the package.
"""

from ledger.application import Ledger
from ledger.availability import (
    RebuildReport,
    RowDifference,
    availability_differences,
    rebuild_availability,
    row_problem,
    verify_availability,
)
from ledger.domain.browser import (
    BrowserCheck,
    BrowserStatus,
    StopSignal,
    blocking_note,
    review_refusal,
    stop_refusal,
)
from ledger.domain.denials import holder_of
from ledger.domain.endings import (
    ENDED_UNKNOWN,
    EXPLAINABLE_ENDINGS,
    UNCLEAN_ENDINGS,
    Ended,
    LeaseEnding,
    ending_text,
    lease_ending,
)
from ledger.domain.errors import (
    CheckoutDenied,
    InvalidInput,
    LeaseLost,
    LedgerError,
    NotAllowed,
    StoreUnavailable,
    UnknownProfile,
)
from ledger.domain.events import EVENT_CLASSES, ProfileEvent
from ledger.domain.model import (
    Cause,
    Denial,
    DenialReason,
    Holder,
    Lease,
    LeaseStatus,
    Outcome,
    ProfileRecord,
    ProfileState,
    ReleaseResult,
    ReviewDecision,
    Role,
    SweepFailure,
    SweepReport,
    SweepResult,
)
from ledger.domain.policies import RELEASE_POLICIES
from ledger.domain.state import Block, Disabled, Review
from ledger.domain.view import Availability, LeaseCheck, ProfileView
from ledger.feed import Feed, FeedSnapshot, FeedTransaction, LoggedEvent, ReadModelDamaged
from ledger.stores.wakeups import Wakeups

__all__ = [
    "ENDED_UNKNOWN",
    "EVENT_CLASSES",
    "EXPLAINABLE_ENDINGS",
    "RELEASE_POLICIES",
    "UNCLEAN_ENDINGS",
    "Availability",
    "Block",
    "BrowserCheck",
    "BrowserStatus",
    "Cause",
    "CheckoutDenied",
    "Denial",
    "DenialReason",
    "Disabled",
    "Ended",
    "Feed",
    "FeedSnapshot",
    "FeedTransaction",
    "Holder",
    "InvalidInput",
    "Lease",
    "LeaseCheck",
    "LeaseEnding",
    "LeaseLost",
    "LeaseStatus",
    "Ledger",
    "LedgerError",
    "LoggedEvent",
    "NotAllowed",
    "Outcome",
    "ProfileEvent",
    "ProfileRecord",
    "ProfileState",
    "ProfileView",
    "ReadModelDamaged",
    "RebuildReport",
    "ReleaseResult",
    "Review",
    "ReviewDecision",
    "Role",
    "RowDifference",
    "StopSignal",
    "StoreUnavailable",
    "SweepFailure",
    "SweepReport",
    "SweepResult",
    "UnknownProfile",
    "Wakeups",
    "availability_differences",
    "blocking_note",
    "ending_text",
    "holder_of",
    "lease_ending",
    "rebuild_availability",
    "review_refusal",
    "row_problem",
    "stop_refusal",
    "verify_availability",
]
