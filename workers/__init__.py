"""custody's worker side: what runs beside the browsers.

The public API is what this module exports; everything else is private to the package.
"""

# -- routing, the sweeper and the inspector (workers/routing.py, sweeper.py, inspector.py) ---
from workers.inspector import (
    Host,
    Inspection,
    LocalHost,
    inspect,
    inspect_profile,
    stop_orphan,
)
from workers.routing import NoProfileAvailable, checkout_for
from workers.sweeper import watch

__all__ = [
    "Host",
    "Inspection",
    "LocalHost",
    "NoProfileAvailable",
    "checkout_for",
    "inspect",
    "inspect_profile",
    "stop_orphan",
    "watch",
]
