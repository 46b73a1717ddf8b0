"""One directory, one profile: how profile directories are compared.

Two profiles on one Chromium directory share its cookies, its lock and its lease marker: one
profile's browser looks like the other's orphan, and a token of one is compared with the
other's. A directory also overlaps every directory inside it and every one containing it (a
browser on ``/p`` writes into ``/p/a``). Directories are compared as absolute paths,
normalised by their text alone (``.``, ``..``, repeated and trailing slashes), component by
component: ``/a/b`` overlaps ``/a/b/c`` and ``/a``, never ``/a/bc``. Nothing here reads the
disk: a registration is judged the same on every host.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable


def normalised(directory: str) -> str:
    """The absolute ``directory`` as it is compared: ``/a/./b//c/`` is ``/a/b/c``."""
    path = posixpath.normpath(directory)
    return "/" + path.lstrip("/")  # POSIX keeps a leading '//' apart; Linux does not


def ancestors(directory: str) -> list[str]:
    """Every directory containing the normalised ``directory``, the root first."""
    parts = directory.strip("/").split("/") if directory != "/" else []
    return ["/" + "/".join(parts[:n]) for n in range(len(parts))]


def inside_prefix(directory: str) -> str:
    """What every directory inside the normalised ``directory`` starts with."""
    return directory if directory.endswith("/") else directory + "/"


def overlap(a: str, b: str) -> bool:
    """Whether two normalised directories are one, or one lies inside the other."""
    return a == b or a.startswith(inside_prefix(b)) or b.startswith(inside_prefix(a))


def first_overlap(directory: str, recorded: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The first (profile, directory) of ``recorded`` that overlaps the normalised
    ``directory``, or None."""
    return next(((pid, d) for pid, d in recorded if overlap(directory, d)), None)


def refusal(profile_id: str, directory: str, holder: str, theirs: str) -> str:
    """Why ``profile_id`` may not be registered on ``directory``: ``holder`` has ``theirs``."""
    how = "is" if directory == theirs else "overlaps"
    return (
        f"{directory!r} {how} {theirs!r}, the directory of profile {holder}: one directory "
        f"(and everything inside it) belongs to one profile; give {profile_id} its own"
    )
