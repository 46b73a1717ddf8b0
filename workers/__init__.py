"""custody's worker side: the SDK a worker leases, drives and releases a profile with, and
what runs beside the browsers (routing, the sweeper, the inspector).

``ProfileLeases`` is the sync SDK (Playwright's sync API); ``workers.aio`` has the same names on
asyncio. The public API is what this module exports; everything else is private to the package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ledger import CheckoutDenied, LeaseLost

if TYPE_CHECKING:
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
    from workers.termination import Terminated
    from workers.timing import RenewalTiming

# Where each public name lives. A name is imported when first asked for, so a command that
# never drives a browser (``custody status``) does not pay for importing Playwright.
_HOMES = {
    "Evidence": "workers.evidence",
    **dict.fromkeys(
        ("Host", "Inspection", "LocalHost", "inspect", "inspect_profile", "stop_orphan"),
        "workers.inspector",
    ),
    **dict.fromkeys(("ProfileLeases", "WorkerLease"), "workers.leases"),
    **dict.fromkeys(("NoProfileAvailable", "checkout_for"), "workers.routing"),
    **dict.fromkeys(("DIRECT", "BrowserSettings", "LaunchRefused"), "workers.settings"),
    "watch": "workers.sweeper",
    "Terminated": "workers.termination",
    "RenewalTiming": "workers.timing",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'workers' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
    "Terminated",
    "WorkerLease",
    "checkout_for",
    "inspect",
    "inspect_profile",
    "stop_orphan",
    "watch",
]
