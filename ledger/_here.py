"""What this host's disk adds to a registration: a directory reached through a symbolic link.

``ledger._domain.directories`` compares directories by their text alone, so that a
registration is judged the same on every host. On the host that registers a profile, two
spellings may still be one directory (``/link/a`` where ``/link`` is ``/prof``): two profiles
would then launch Chromium on one directory, sharing its cookies and account. Where the disk
can tell, the registration is refused here, before its command runs; on another host, or for
a directory whose links are made later, nothing can be known.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ledger._domain.directories import normalised, overlap
from ledger._domain.errors import InvalidInput
from ledger.ports import DirectoryRecord


def refuse_aliases(profile_id: str, directory: str, recorded: Iterable[DirectoryRecord]) -> None:
    """``InvalidInput`` naming ``user_data_dir`` if ``directory``, its symbolic links resolved
    on this host, is, contains or lies inside another profile's recorded directory resolved
    the same way, where their spellings alone do not overlap (the store's own check says so
    then, on every host)."""
    spelled = normalised(directory)
    real = os.path.realpath(spelled)
    for record in recorded:
        if record.profile_id == profile_id or overlap(spelled, record.user_data_dir):
            continue
        theirs = os.path.realpath(record.user_data_dir)
        if overlap(real, theirs):
            how = "is" if real == theirs else "overlaps"
            seen = f"{directory!r} is {real!r} on this host (a symbolic link), which {how} "
            if theirs != record.user_data_dir:
                seen += f"{record.user_data_dir!r} ({theirs!r} here)"
            else:
                seen += repr(theirs)
            msg = (
                f"{seen}, the directory of profile {record.profile_id}: one directory (and "
                f"everything inside it) belongs to one profile; give {profile_id} its own"
            )
            raise InvalidInput("user_data_dir", msg)
