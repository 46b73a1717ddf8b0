"""custody's write side: profile leases as event streams.

The user's API: open a ``Ledger``, build commands and ``handle`` them, read what it answers::

    with Ledger.open("sqlite:///custody.db") as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        lease = ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))

Errors form one hierarchy rooted in ``LedgerError``. What the read side and the workers share
with the ledger beyond this (the notification log for read models, the rules they apply to what
they read, files written whole) lives in the namespaces ``ledger.feed``, ``ledger.rules`` and
``ledger.files``; everything else is private to the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger._application import Ledger as Ledger
    from ledger._availability import (
        RebuildReport as RebuildReport,
        RowDifference as RowDifference,
        availability_differences as availability_differences,
        rebuild_availability as rebuild_availability,
        verify_availability as verify_availability,
    )
    from ledger._commands import (
        Checkout as Checkout,
        Disable as Disable,
        Enable as Enable,
        Extend as Extend,
        ForceRelease as ForceRelease,
        Heartbeat as Heartbeat,
        Quarantine as Quarantine,
        RecordBrowserStop as RecordBrowserStop,
        RegisterProfile as RegisterProfile,
        Release as Release,
        Review as Review,
        Sweep as Sweep,
    )
    from ledger._domain.acting import Forbidden as Forbidden
    from ledger._domain.browser import (
        BrowserCheck as BrowserCheck,
        BrowserStatus as BrowserStatus,
        StopSignal as StopSignal,
    )
    from ledger._domain.errors import (
        CheckoutDenied as CheckoutDenied,
        InvalidInput as InvalidInput,
        LeaseLost as LeaseLost,
        LedgerError as LedgerError,
        NotAllowed as NotAllowed,
        StoreUnavailable as StoreUnavailable,
        UnknownProfile as UnknownProfile,
        UnreadableEvent as UnreadableEvent,
    )
    from ledger._domain.events import (
        EVENT_CLASSES as EVENT_CLASSES,
        ProfileEvent as ProfileEvent,
    )
    from ledger._domain.model import (
        Cause as Cause,
        Denial as Denial,
        DenialReason as DenialReason,
        Holder as Holder,
        Lease as Lease,
        LeaseStatus as LeaseStatus,
        Outcome as Outcome,
        ProfileRecord as ProfileRecord,
        ProfileState as ProfileState,
        ReviewDecision as ReviewDecision,
        Role as Role,
    )
    from ledger._domain.policies import RELEASE_POLICIES as RELEASE_POLICIES
    from ledger._domain.results import (
        ReleaseResult as ReleaseResult,
        SweepFailure as SweepFailure,
        SweepReport as SweepReport,
        SweepResult as SweepResult,
    )
    from ledger._domain.row import Availability as Availability, LeaseCheck as LeaseCheck
    from ledger._domain.state import (
        Block as Block,
        Disabled as Disabled,
        LastReview as LastReview,
    )
    from ledger._domain.view import ProfileView as ProfileView
    from ledger._door import Command as Command
    from ledger.feed import ReadModelDamaged as ReadModelDamaged

# Where each public name lives. A name is imported when first asked for, so a command that
# only reads (``custody status``) pays for neither the command models nor their handlers, and
# one that catches a ``LedgerError`` pays for no store.
_HOMES = {
    "Ledger": "ledger._application",
    **dict.fromkeys(
        (
            "RebuildReport",
            "RowDifference",
            "availability_differences",
            "rebuild_availability",
            "verify_availability",
        ),
        "ledger._availability",
    ),
    **dict.fromkeys(
        (
            "Checkout",
            "Disable",
            "Enable",
            "Extend",
            "ForceRelease",
            "Heartbeat",
            "Quarantine",
            "RecordBrowserStop",
            "RegisterProfile",
            "Release",
            "Review",
            "Sweep",
        ),
        "ledger._commands",
    ),
    "Forbidden": "ledger._domain.acting",
    "Command": "ledger._door",
    **dict.fromkeys(
        (
            "BrowserCheck",
            "BrowserStatus",
            "StopSignal",
        ),
        "ledger._domain.browser",
    ),
    **dict.fromkeys(
        (
            "CheckoutDenied",
            "InvalidInput",
            "LeaseLost",
            "LedgerError",
            "NotAllowed",
            "StoreUnavailable",
            "UnknownProfile",
            "UnreadableEvent",
        ),
        "ledger._domain.errors",
    ),
    **dict.fromkeys(
        (
            "EVENT_CLASSES",
            "ProfileEvent",
        ),
        "ledger._domain.events",
    ),
    **dict.fromkeys(
        (
            "Cause",
            "Denial",
            "DenialReason",
            "Holder",
            "Lease",
            "LeaseStatus",
            "Outcome",
            "ProfileRecord",
            "ProfileState",
            "ReviewDecision",
            "Role",
        ),
        "ledger._domain.model",
    ),
    "RELEASE_POLICIES": "ledger._domain.policies",
    **dict.fromkeys(
        ("ReleaseResult", "SweepFailure", "SweepReport", "SweepResult"), "ledger._domain.results"
    ),
    **dict.fromkeys(
        (
            "Block",
            "Disabled",
            "LastReview",
        ),
        "ledger._domain.state",
    ),
    **dict.fromkeys(("Availability", "LeaseCheck"), "ledger._domain.row"),
    "ProfileView": "ledger._domain.view",
    "ReadModelDamaged": "ledger.feed",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
    "UnreadableEvent",
    "availability_differences",
    "rebuild_availability",
    "verify_availability",
]
