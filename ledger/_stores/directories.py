"""Schema 5's migration: record the directories of a store's registrations, overlaps and all.

Before schema 5 a registration's ``user_data_dir`` was not compared with the others', so an
older store may hold two profiles on one directory, or one inside another's. Their events
cannot change, and the migration must not fail on them: every directory is recorded (the
inspector needs to see them all), and each registration that overlaps an earlier one is named
in a note, the first registered keeping the directory. New registrations overlapping any of
them are refused from then on.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from ledger._domain.directories import ancestors, inside_prefix, normalised


class Recorded:
    """Directories recorded so far: who registered each first, and all of them in order, so
    that those inside a directory are one binary search away (a fleet has thousands)."""

    def __init__(self) -> None:
        self._first: dict[str, str] = {}
        self._sorted: list[str] = []

    def first_overlap(self, directory: str) -> tuple[str, str] | None:
        for candidate in (directory, *ancestors(directory)):
            if candidate in self._first:
                return self._first[candidate], candidate
        prefix = inside_prefix(directory)
        at = bisect.bisect_left(self._sorted, prefix)
        if at < len(self._sorted) and self._sorted[at].startswith(prefix):
            inner = self._sorted[at]
            return self._first[inner], inner
        return None

    def add(self, profile_id: str, directory: str) -> None:
        if directory not in self._first:
            self._first[directory] = profile_id
            bisect.insort(self._sorted, directory)


def legacy_directories(
    registrations: Iterable[tuple[str, str | None]],
) -> tuple[list[tuple[str, str]], list[str]]:
    """From (profile id, user_data_dir) registrations in log order: the (profile id,
    normalised directory) rows to record, and one note per registration that overlaps a
    directory registered before it."""
    recorded = Recorded()
    rows: list[tuple[str, str]] = []
    notes: list[str] = []
    for profile_id, given in registrations:
        if given is None:
            continue
        directory = normalised(given)
        found = recorded.first_overlap(directory)
        if found is not None:
            first, theirs = found
            how = "is" if theirs == directory else "overlaps"
            notes.append(
                f"profile {profile_id}'s user_data_dir {directory!r} {how} {theirs!r} of "
                f"profile {first}, registered first: both stay registered (their events "
                "cannot change), no browser there is stopped while either holds a lease, and "
                f"a launch of one is refused over the other's marker; give {profile_id} a "
                "directory of its own (a new profile) and disable this one"
            )
        recorded.add(profile_id, directory)
        rows.append((profile_id, directory))
    return rows, notes
