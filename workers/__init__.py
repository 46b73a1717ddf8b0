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
    from workers._evidence import Evidence as Evidence
    from workers._inspector import (
        Host as Host,
        Inspection as Inspection,
        LocalHost as LocalHost,
        inspect as inspect,
        inspect_here as inspect_here,
        inspect_profile as inspect_profile,
        inspect_view as inspect_view,
        stop_orphan as stop_orphan,
    )
    from workers._leases import ProfileLeases as ProfileLeases, WorkerLease as WorkerLease
    from workers._routing import (
        NoProfileAvailable as NoProfileAvailable,
        checkout_for as checkout_for,
    )
    from workers._settings import (
        DIRECT as DIRECT,
        BrowserSettings as BrowserSettings,
        LaunchRefused as LaunchRefused,
    )
    from workers._sweeper import watch as watch
    from workers._termination import Terminated as Terminated
    from workers._timing import RenewalTiming as RenewalTiming

# Where each public name lives. A name is imported when first asked for, so a command that
# never drives a browser (``custody status``) does not pay for importing Playwright.
_HOMES = {
    "Evidence": "workers._evidence",
    **dict.fromkeys(
        (
            "Host",
            "Inspection",
            "LocalHost",
            "inspect",
            "inspect_here",
            "inspect_profile",
            "inspect_view",
            "stop_orphan",
        ),
        "workers._inspector",
    ),
    **dict.fromkeys(("ProfileLeases", "WorkerLease"), "workers._leases"),
    **dict.fromkeys(("NoProfileAvailable", "checkout_for"), "workers._routing"),
    **dict.fromkeys(("DIRECT", "BrowserSettings", "LaunchRefused"), "workers._settings"),
    "watch": "workers._sweeper",
    "Terminated": "workers._termination",
    "RenewalTiming": "workers._timing",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'workers' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = ["CheckoutDenied", "LeaseLost", *_HOMES]
