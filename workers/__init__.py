"""custody's worker side: the SDK a worker leases, drives and releases a profile with, and
what runs beside the browsers (routing, the sweeper, the inspector).

``ProfileLeases`` is the sync SDK (Playwright's sync API); ``workers.aio`` has the same names on
asyncio. The public API is what this module exports; everything else is private to the package.
"""

from ledger import CheckoutDenied, LeaseLost
from workers.evidence import Evidence
from workers.inspector import (
    Host,
    Inspection,
    LocalHost,
    inspect,
    inspect_profile,
    stop_orphan,
)
from workers.leases import ProfileLeases, WorkerLease
from workers.routing import NoProfileAvailable, checkout_for
from workers.settings import DIRECT, BrowserSettings, LaunchRefused
from workers.sweeper import watch
from workers.timing import RenewalTiming

__all__ = [
    "DIRECT",
    "BrowserSettings",
    "CheckoutDenied",
    "Evidence",
    "Host",
    "Inspection",
    "LaunchRefused",
    "LeaseLost",
    "LocalHost",
    "NoProfileAvailable",
    "ProfileLeases",
    "RenewalTiming",
    "WorkerLease",
    "checkout_for",
    "inspect",
    "inspect_profile",
    "stop_orphan",
    "watch",
]
