"""custody's worker side: what runs beside the browsers.

The public API is what this module exports; everything else is private to the package.
"""

# -- routing, the sweeper and the inspector (workers/routing.py, sweeper.py, inspector.py) ---
from workers.routing import NoProfileAvailable, checkout_for

__all__ = [
    "NoProfileAvailable",
    "checkout_for",
]
