"""custody's worker side: lease a profile, drive its browser under the lease, release it with
evidence.

``ProfileLeases`` is the sync SDK (Playwright's sync API); ``workers.aio`` has the same names on
asyncio. The rest is configuration (``BrowserSettings``) and what a lease ends with.
"""

from ledger import CheckoutDenied, LeaseLost
from workers.evidence import Evidence
from workers.leases import ProfileLeases, WorkerLease
from workers.settings import DIRECT, BrowserSettings, LaunchRefused
from workers.timing import RenewalTiming

__all__ = [
    "DIRECT",
    "BrowserSettings",
    "CheckoutDenied",
    "Evidence",
    "LaunchRefused",
    "LeaseLost",
    "ProfileLeases",
    "RenewalTiming",
    "WorkerLease",
]
