"""What this host's disk adds to a registration: a directory reached through a symbolic link.

``ledger._domain.directories`` compares directories by their text alone, so that a
registration is judged the same on every host, inside the write. On the host that registers
a profile, a new directory may still reach another profile's through a symbolic link
(``/link/a`` where ``/link`` is ``/prof``): two profiles would launch Chromium on one
directory, sharing its cookies and account. Where this host's disk tells, the registration
is refused here, before its command runs: the new directory is resolved (one
``os.path.realpath``) and looked up in the store's index of directories (one query), so a
registration costs the same in a fleet of any size.

What it cannot see: a directory recorded earlier through a link (the recorded directories are
compared by their text: resolving each on every registration cost seconds in a large fleet),
a link made later or on another host, and a registration of the same place under another
spelling written at the same moment by another process (the check runs before the write).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ledger._domain.directories import normalised, overlap
from ledger._domain.errors import InvalidInput
from ledger.ports import DirectoryRecord


def refuse_aliases(
    profile_id: str, directory: str, overlapping: Callable[[str], list[DirectoryRecord]]
) -> None:
    """``InvalidInput`` naming ``user_data_dir`` if ``directory``, its symbolic links resolved
    on this host, is, contains or lies inside another profile's recorded directory that its
    spelling alone does not overlap (the store's own check says so then, on every host).
    ``overlapping`` is the store's lookup of the recorded directories overlapping one."""
    spelled = normalised(directory)
    real = os.path.realpath(spelled)
    if real == spelled:
        return  # no link on the way: the text is the place, and the store judges it
    for record in overlapping(real):
        if record.profile_id == profile_id or overlap(spelled, record.user_data_dir):
            continue
        how = "is" if real == record.user_data_dir else "overlaps"
        msg = (
            f"{directory!r} is {real!r} on this host (through a symbolic link), which {how} "
            f"{record.user_data_dir!r}, the directory of profile {record.profile_id}: one "
            f"directory (and everything inside it) belongs to one profile; give {profile_id} "
            "its own"
        )
        raise InvalidInput("user_data_dir", msg)
