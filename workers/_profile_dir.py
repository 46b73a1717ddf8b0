"""The lease's mark on the profile directory: a launch guard that Chromium's own lock is not.

Before a browser opens a profile, the worker writes its profile and fencing token into
``.custody-lease`` in the profile directory. Tokens rise within one profile only, so they are
compared only there: a launch presenting a lower token than its own profile's mark is refused
with ``LaunchRefused`` naming the marker, its token and how to clear it. The lease itself is not
lost (the ledger renewed it just before): the directory was opened under a later lease than the
ledger knows of (copied or restored from another store, or the store was created anew), or, in a
race, by a later lease that the ledger's next answer will show. A mark written by another
profile means the directory is that profile's (two profiles on one directory are refused at
registration since schema 5; an older store may still hold some): the launch is refused with
``LaunchRefused`` naming it, whatever the tokens. A mark that cannot be read is refused alike.
The read-compare-write holds an exclusive ``flock`` on the file, so of two racing launches the
lower token always loses.
"""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import Lease

MARKER = ".custody-lease"


def claim(user_data_dir: Path, lease: Lease) -> dict[str, Any]:
    """Write the lease's marker into ``user_data_dir`` (made if missing) and return it.
    ``LaunchRefused`` if another profile marked the directory, this profile's mark holds a
    higher fencing token or the same for another worker or run, or the mark cannot be read;
    the marker is then left as it was. The same token again for the same worker and run (a
    relaunch under the same lease) is allowed."""
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


# A marker's fencing token, profile, and the worker and run it was written for (None: a mark
# of an earlier custody, which wrote none, or a new file).
Mark = tuple[int, str | None, tuple[str, str] | None]


def _judge(user_data_dir: Path, held: Mark | None, lease: Lease) -> None:
    """Refuse the launch (``LaunchRefused``) unless the directory's mark (token, profile,
    worker and run) allows it. The lease is not lost for that: the ledger has just renewed
    it."""
    # Imported here: the settings import Playwright, and the inspector reads markers.
    from workers._settings import LaunchRefused

    path = user_data_dir / MARKER
    if held is None:
        raise LaunchRefused(f"{path} cannot be read: check the directory, then remove it")
    token, owner, holder = held
    if owner is not None and owner != lease.profile_id:
        raise LaunchRefused(
            f"{user_data_dir} carries the lease marker of profile {owner} (fencing token "
            f"{token}): it is {owner}'s directory, not {lease.profile_id}'s, and one directory "
            f"never serves two profiles; once {owner} no longer uses it, remove {path}"
        )
    if token > lease.fencing_token:
        raise LaunchRefused(_ahead(path, token, lease))
    if token == lease.fencing_token and holder not in (None, (lease.worker_id, lease.run_id)):
        raise LaunchRefused(_twice(path, token, holder, lease))


def _ahead(path: Path, token: int, lease: Lease) -> str:
    """Why a mark holding a higher token than the lease's refuses the launch, and what to do."""
    return (
        f"{path} holds fencing token {token}, higher than lease {lease.lease_id}'s "
        f"{lease.fencing_token}, which the ledger has just renewed: the directory was opened "
        "under a lease this store never granted (copied or restored from another store, or "
        "the store was created anew), or by a later lease of this profile in a race. Once no "
        f"browser uses it (custody inspect {lease.profile_id}), remove {path}: the next launch "
        "writes its own"
    )


def _twice(path: Path, token: int, holder: tuple[str, str], lease: Lease) -> str:
    """Why a mark of this lease's token for another worker or run refuses the launch (rev33:
    a store created anew, or a backup moved over it, grants a token again, and the second
    lease's launch overwrote a live browser's mark, the equal token read as a relaunch)."""
    worker, run = holder
    return (
        f"{path} holds fencing token {token} for run {run} of worker {worker}, not for lease "
        f"{lease.lease_id}'s run {lease.run_id} of worker {lease.worker_id}: the store granted "
        "this token twice (it was created anew, or restored from a backup). Once no browser "
        f"uses the directory (custody inspect {lease.profile_id}), remove {path}: the next "
        "launch writes its own"
    )


def read(user_data_dir: Path) -> dict[str, Any] | None:
    """The marker in ``user_data_dir``, or None if there is none (or it cannot be parsed)."""
    try:
        loaded = json.loads((user_data_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _mark_in(text: str) -> Mark | None:
    """The (token, profile, (worker, run)) a marker holds; (0, None, None) for an empty (new)
    file; None when it cannot be read: a directory whose guard is damaged is not opened on a
    guess. A mark without a worker and a run (an earlier custody's) holds None for them."""
    if not text.strip():
        return 0, None, None
    try:
        loaded = json.loads(text)
        token, owner = loaded["fencing_token"], loaded["profile_id"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(token, int) or isinstance(token, bool) or not isinstance(owner, str):
        return None
    worker, run = loaded.get("worker_id"), loaded.get("run_id")
    holder = (worker, run) if isinstance(worker, str) and isinstance(run, str) else None
    return token, owner, holder
