"""custody's write side: profile leases as event streams.

The public API is what this module exports; everything else is private to the package.
"""

from ledger.application import Ledger
from ledger.availability import rebuild_availability, verify_availability
from ledger.domain.denials import state_denial
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
    Denial,
    DenialReason,
    Frozen,
    Holder,
    Lease,
    LeaseStatus,
    Outcome,
    ProfileRecord,
    ProfileState,
    ReleaseResult,
    ReviewDecision,
    Role,
    SweepResult,
)
from ledger.domain.policies import RELEASE_POLICIES
from ledger.domain.profile import Profile
from ledger.domain.view import Availability, availability_of

__all__ = [
    "EVENT_CLASSES",
    "RELEASE_POLICIES",
    "Availability",
    "CheckoutDenied",
    "Denial",
    "DenialReason",
    "Frozen",
    "Holder",
    "InvalidInput",
    "Lease",
    "LeaseLost",
    "LeaseStatus",
    "Ledger",
    "LedgerError",
    "NotAllowed",
    "Outcome",
    "Profile",
    "ProfileEvent",
    "ProfileRecord",
    "ProfileState",
    "ReleaseResult",
    "ReviewDecision",
    "Role",
    "StoreUnavailable",
    "SweepResult",
    "UnknownProfile",
    "availability_of",
    "rebuild_availability",
    "state_denial",
    "verify_availability",
]
