"""custody's write side: profile leases as event streams.

The user's API: open a ``Ledger``, build commands and ``handle`` them, read what it answers::

    with Ledger.open("sqlite:///custody.db") as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        lease = ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))

Errors form one hierarchy rooted in ``LedgerError``. What the read side and the workers share
with the ledger beyond this (the notification log for read models, the rules they apply to what
they read) lives in the namespaces ``ledger.feed`` and ``ledger.rules``; everything else is
private to the package.
"""

from ledger._application import Ledger
from ledger._availability import (
    RebuildReport,
    RowDifference,
    availability_differences,
    rebuild_availability,
    verify_availability,
)
from ledger._commands import (
    Checkout,
    Command,
    Disable,
    Enable,
    Extend,
    ForceRelease,
    Heartbeat,
    Quarantine,
    RecordBrowserStop,
    RegisterProfile,
    Release,
    Review,
    Sweep,
)
from ledger._domain.authority import Forbidden
from ledger._domain.browser import BrowserCheck, BrowserStatus, StopSignal
from ledger._domain.errors import (
    CheckoutDenied,
    InvalidInput,
    LeaseLost,
    LedgerError,
    NotAllowed,
    StoreUnavailable,
    UnknownProfile,
)
from ledger._domain.events import EVENT_CLASSES, ProfileEvent
from ledger._domain.model import (
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
from ledger._domain.policies import RELEASE_POLICIES
from ledger._domain.state import Block, Disabled, LastReview
from ledger._domain.view import Availability, LeaseCheck, ProfileView
from ledger.feed import ReadModelDamaged

__all__ = [
    "EVENT_CLASSES",
    "RELEASE_POLICIES",
    "Availability",
    "Block",
    "BrowserCheck",
    "BrowserStatus",
    "Cause",
    "Checkout",
    "CheckoutDenied",
    "Command",
    "Denial",
    "DenialReason",
    "Disable",
    "Disabled",
    "Enable",
    "Extend",
    "Forbidden",
    "ForceRelease",
    "Heartbeat",
    "Holder",
    "InvalidInput",
    "LastReview",
    "Lease",
    "LeaseCheck",
    "LeaseLost",
    "LeaseStatus",
    "Ledger",
    "LedgerError",
    "NotAllowed",
    "Outcome",
    "ProfileEvent",
    "ProfileRecord",
    "ProfileState",
    "ProfileView",
    "Quarantine",
    "ReadModelDamaged",
    "RebuildReport",
    "RecordBrowserStop",
    "RegisterProfile",
    "Release",
    "ReleaseResult",
    "Review",
    "ReviewDecision",
    "Role",
    "RowDifference",
    "StopSignal",
    "StoreUnavailable",
    "Sweep",
    "SweepFailure",
    "SweepReport",
    "SweepResult",
    "UnknownProfile",
    "availability_differences",
    "rebuild_availability",
    "verify_availability",
]
