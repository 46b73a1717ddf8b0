"""The lease's mark on the profile directory: a launch guard that Chromium's own lock is not.

Before a browser opens a profile, the worker writes its profile and fencing token into
``.custody-lease`` in the profile directory. Tokens rise within one profile only, so they are
compared only there: a launch presenting a lower token than its own profile's mark belongs to a
lease that has since been superseded (a worker that woke up late) and is refused with
``LeaseLost``. A mark written by another profile means the directory is that profile's (two
profiles on one directory are refused at registration since schema 5; an older store may still
hold some): the launch is refused with ``LaunchRefused`` naming it, whatever the tokens. The
read-compare-write holds an exclusive ``flock`` on the file, so of two racing launches the
lower token always loses.
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
    ``LaunchRefused`` if another profile marked the directory; ``LeaseLost`` if this profile's
    mark holds a higher fencing token, or the mark cannot be read; the marker is then left as
    it was. The same token again (a relaunch under the same lease) is allowed."""
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
        _judge(user_data_dir, _mark_in(file.read()), lease)
        file.seek(0)
        file.truncate()
        file.write(json.dumps(marker, sort_keys=True))
        file.flush()
        os.fsync(file.fileno())
    return marker


def _judge(user_data_dir: Path, held: tuple[int, str | None] | None, lease: Lease) -> None:
    """Refuse the launch unless the directory's mark (token, profile) allows it."""
    if held is None:
        why = f"{user_data_dir / MARKER} cannot be read: check the directory, then remove it"
        raise LeaseLost(lease.lease_id, why)
    token, owner = held
    if owner is not None and owner != lease.profile_id:
        # Imported here: the settings import Playwright, and the inspector reads markers.
        from workers._settings import LaunchRefused

        raise LaunchRefused(
            f"{user_data_dir} carries the lease marker of profile {owner} (fencing token "
            f"{token}): it is {owner}'s directory, not {lease.profile_id}'s, and one directory "
            f"never serves two profiles; once {owner} no longer uses it, remove "
            f"{user_data_dir / MARKER}"
        )
    if token > lease.fencing_token:
        why = f"{user_data_dir} was already opened under fencing token {token}"
        raise LeaseLost(lease.lease_id, f"{why}; this lease holds {lease.fencing_token}")


def read(user_data_dir: Path) -> dict[str, Any] | None:
    """The marker in ``user_data_dir``, or None if there is none (or it cannot be parsed)."""
    try:
        loaded = json.loads((user_data_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _mark_in(text: str) -> tuple[int, str | None] | None:
    """The (token, profile) a marker holds; (0, None) for an empty (new) file; None when it
    cannot be read: a directory whose guard is damaged is not opened on a guess."""
    if not text.strip():
        return 0, None
    try:
        loaded = json.loads(text)
        token, owner = loaded["fencing_token"], loaded["profile_id"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(token, int) or isinstance(token, bool) or not isinstance(owner, str):
        return None
    return token, owner
