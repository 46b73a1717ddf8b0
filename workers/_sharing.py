"""Whose browser is it: other profiles on a profile's directory, and the marker left there.

Since schema 5 a registration overlapping another profile's directory is refused, but a store
an older custody wrote may still hold two profiles on one directory, or one inside another's.
A browser found there may then be the other profile's, perhaps under a live lease: it is never
called this profile's orphan, nor stopped from here, while any overlapping profile holds a
lease (live or stale), while the directory's ``.custody-lease`` names another profile, or
while the directory is shared and no marker says whose the browser is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ledger import Ledger, ProfileView
from workers import _profile_dir as profile_dir


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
class Sharing(NamedTuple):
    """What a person should know about who else uses the profile's directory (``said``), and
    whether that keeps a browser there from being this profile's orphan (``blocks``)."""

    said: str | None = None
    blocks: bool = False


def sharing(ledger: Ledger, view: ProfileView) -> Sharing:
    """Who else may be using the profile's registered directory (nobody: ``Sharing()``)."""
    profile_id, directory = view.record.profile_id, view.record.user_data_dir
    if directory is None:
        return Sharing()
    others = ledger.overlapping_profiles(view)
    held = _held_by_another(ledger, others, directory, profile_id)
    if held is not None:
        return held
    marker = (profile_dir.read(Path(directory)) if os.path.isdir(directory) else None) or {}
    owner = marker.get("profile_id")
    if isinstance(owner, str) and owner != profile_id:
        return Sharing(
            f"{directory} carries the lease marker of profile {owner} (lease "
            f"{marker.get('lease_id')}): the browser there is {owner}'s, not {profile_id}'s "
            f"orphan; inspect {owner}",
            blocks=True,
        )
    return _legacy_overlap(others, directory, profile_id, marked=owner == profile_id)


def _held_by_another(
    ledger: Ledger, others: list[str], directory: str, profile_id: str
) -> Sharing | None:
    """The first overlapping profile a lease (live or stale) holds, blocking; else None."""
    for other in others:
        lease = ledger.view(other).lease
        if lease is not None:
            return Sharing(
                f"{directory} overlaps the directory of profile {other}, held by worker "
                f"{lease.worker_id} under {lease.lease_id} ({lease.lease_status.value}): a "
                f"browser there may be {other}'s and is never stopped from {profile_id}",
                blocks=True,
            )
    return None


def _legacy_overlap(others: list[str], directory: str, profile_id: str, *, marked: bool) -> Sharing:
    """Profiles an older custody let share the directory, none holding a lease: a browser there
    is this profile's only when its own marker (``marked``) says so."""
    if not others:
        return Sharing()
    listed = ", ".join(others)
    legacy = f"{directory} overlaps the directory of profile {listed} (registered before custody"
    if marked:
        return Sharing(f"{legacy} refused that); its lease marker names {profile_id}")
    return Sharing(
        f"{legacy} refused that): whose browser runs there cannot be told, as no lease marker "
        "names a profile",
        blocks=True,
    )
