"""The lease's mark on the profile directory: a launch guard that Chromium's own lock is not.

Before a browser opens a profile, the worker writes its fencing token into ``.custody-lease``
in the profile directory. A launch presenting a lower token than the one already written
belongs to a lease that has since been superseded (a worker that woke up late): it is refused
with ``LeaseLost``. The read-compare-write holds an exclusive ``flock`` on the file, so of two
racing launches the lower token always loses.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import Lease, LeaseLost

MARKER = ".custody-lease"


def claim(user_data_dir: Path, lease: Lease) -> dict[str, Any]:
    """Write the lease's marker into ``user_data_dir`` (made if missing) and return it.
    ``LeaseLost`` if the directory already carries a higher fencing token; the marker is then
    left as it was. The same token again (a relaunch under the same lease) is allowed."""
    user_data_dir.mkdir(parents=True, exist_ok=True)
    marker = {
        "fencing_token": lease.fencing_token,
        "lease_id": lease.lease_id,
        "profile_id": lease.profile_id,
        "worker_id": lease.worker_id,
        "run_id": lease.run_id,
        "written_at": datetime.now(UTC).isoformat(),
    }
    fd = os.open(user_data_dir / MARKER, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)  # released when the file closes
        held = _token_in(file.read())
        if held is None:
            why = f"{user_data_dir / MARKER} cannot be read: check the directory, then remove it"
            raise LeaseLost(lease.lease_id, why)
        if held > lease.fencing_token:
            why = f"{user_data_dir} was already opened under fencing token {held}"
            raise LeaseLost(lease.lease_id, f"{why}; this lease holds {lease.fencing_token}")
        file.seek(0)
        file.truncate()
        file.write(json.dumps(marker, sort_keys=True))
        file.flush()
        os.fsync(file.fileno())
    return marker


def read(user_data_dir: Path) -> dict[str, Any] | None:
    """The marker in ``user_data_dir``, or None if there is none (or it cannot be parsed)."""
    try:
        loaded = json.loads((user_data_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _token_in(text: str) -> int | None:
    """The token a marker holds; 0 for an empty (new) file; None when it cannot be read: a
    directory whose guard is damaged is not opened on a guess."""
    if not text.strip():
        return 0
    try:
        token = json.loads(text)["fencing_token"]
    except (ValueError, KeyError, TypeError):
        return None
    return token if isinstance(token, int) and not isinstance(token, bool) else None
