"""Wake-ups for a long-running catch-up: when to look at the notification log again.

Every store polls: ``Wakeups.wait`` returns at the latest after the polling interval, so a
catch-up never waits longer than that, whatever happens to a push. PostgreSQL also pushes (see
``ledger._stores.listen``). SQLite only polls: its recorder cannot tell
another process that they appended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self

Announce = Callable[[str], None]


class Wakeups:
    """Tells a catch-up loop when events may have been committed. Open for one loop (a context
    manager); not shared across threads."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def wait(self, stop: threading.Event) -> bool:
        """Return when events may have been committed (True: a store said so), when the
        interval has passed (False), or soon after ``stop`` is set (False)."""
        stop.wait(self.interval)
        return False

    def close(self) -> None:
        """Release what the wake-ups hold (a connection, on PostgreSQL)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
