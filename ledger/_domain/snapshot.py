"""A profile's whole state at one version, typed, so loading it starts there instead of at
version 1.

A snapshot is a cache of a fold, never a fact: it is taken from the state the events gave (every
``SNAPSHOT_INTERVAL`` versions, by the store, after the events were saved), and restoring it then
applying the later events gives exactly the state folding every event gives. Every value is a
typed field (pydantic rebuilds ``Lease``, ``Block``, times and enums, not dicts and strings), and
taking or restoring one reads no clock and makes no id.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID

from ledger._domain.model import Frozen, Lease, ProfileState
from ledger._domain.state import Block, Disabled, LastReview, ProfileStateMachine

# The fields of the state machine a snapshot carries: all of them but its id and version.
_STATE_FIELDS = (
    "profile_id",
    "account_id",
    "proxy_id",
    "region",
    "user_data_dir",
    "release_policy",
    "unclean_limit",
    "unclean_window_seconds",
    "max_lease_seconds",
    "state",
    "since",
    "lease",
    "last_lease",
    "last_token",
    "block",
    "disabled",
    "last_review",
    "unclean_endings",
    "unclean_runs",
    "head",
    "last_at",
)


class ProfileSnapshot(Frozen):
    """The state of profile ``originator_id`` after its event ``originator_version``."""

    # 4: the leases it carries name their ending in one word, with its cause beside
    # (``ledger._domain.endings``); older ones held other words, so schema 6 deletes them. It
    # also carries the profile's max_lease_seconds and each lease's hard_limit_at.
    # 3: no command ids (the store's custody_commands table answers a resent command);
    # 2 held them packed in one string, 1 as a dict. Older snapshots load without them.
    # 5: the hash of the profile's last event (``head``), where the next event's link starts;
    # older ones lack it, so schema 7 deletes them.
    class_version: ClassVar[int] = 5

    originator_id: UUID
    originator_version: int
    profile_id: str
    account_id: str
    proxy_id: str
    region: str | None
    user_data_dir: str | None
    release_policy: str
    unclean_limit: int
    unclean_window_seconds: int
    max_lease_seconds: int | None = None
    state: ProfileState
    since: datetime | None
    lease: Lease | None
    last_lease: Lease | None
    last_token: int
    block: Block | None
    disabled: Disabled | None
    last_review: LastReview | None
    unclean_endings: tuple[tuple[str, datetime], ...]
    unclean_runs: tuple[tuple[str, str], ...] = ()
    head: str
    # Snapshots taken before it was carried lack it: the next event sets it.
    last_at: datetime | None = None

    @classmethod
    def take(cls, profile: ProfileStateMachine) -> ProfileSnapshot:
        """The profile's state as it stands (the library calls this after a save)."""
        fields = {name: getattr(profile, name) for name in _STATE_FIELDS}
        return cls(
            originator_id=profile.id,
            originator_version=profile.version,
            **fields,
        )

    def restore(self, profile: ProfileStateMachine) -> None:
        """Put this state into ``profile``, a new one with this snapshot's id."""
        assert profile.id == self.originator_id
        assert profile.version == 0
        for name in _STATE_FIELDS:
            setattr(profile, name, getattr(self, name))
        profile.version = self.originator_version
