"""The facts on a profile's event stream. Events are contracts: frozen, past tense, versioned.

Every event carries the profile's ``originator_id`` and ``originator_version`` (its place in the
stream) and one audit ``envelope``. An event's ``event_type`` is the name it has in every export,
timeline and report, and the topic it is stored under; change a shipped event only by raising its
``class_version`` and adding an upcaster to ``UPCASTERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, get_args
from uuid import UUID

from pydantic import AwareDatetime, Field
from pydantic_core import SchemaValidator

from ledger._domain.browser import StopSignal
from ledger._domain.chain import Link, body_bytes, header_bytes, link
from ledger._domain.model import (
    Cause,
    Envelope,
    Frozen,
    Lease,
    Outcome,
    ProfileState,
    ReviewDecision,
    TtlSeconds,
)


class ProfileEvent(Frozen):
    """Base of every event on a profile's stream."""

    event_type: ClassVar[str] = ""
    class_version: ClassVar[int] = 1

    originator_id: UUID
    originator_version: int
    profile_id: str
    envelope: Envelope
    # Its place in the profile's hash chain (``ledger._domain.chain``): stored beside the
    # event's body, never part of it; None only for an event stored before hash chains.
    chain: Link | None = Field(default=None, exclude=True)

    # What is cached about the event's bytes, in slots of its own rather than pydantic private
    # attributes: a model with private attributes runs a Python post-init for each instance
    # built, about a tenth of what decoding a stored event costs (every load, fold and verify
    # builds one per event), and a private attribute's read takes ``BaseModel.__getattr__``'s
    # slow path. Never part of what the event says (``__eq__`` compares fields). ``_canon``:
    # the canonical body and header, once made (a copy makes its own: ``linked`` hands its
    # copy the ones it made). ``_stored``: for an event read back that was stored without a
    # link, the body and header it was stored with (an event stored before hash chains, at
    # an older class_version, hashes as it was stored, not as upcast); every copy keeps it.
    __slots__ = ("_canon", "_stored")

    def __eq__(self, other: object) -> bool:
        """Events are equal by their fields: what was cached about their bytes is not part of
        what they say."""
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = Frozen.__hash__

    def body(self) -> bytes:
        """The event's canonical body (``ledger._domain.chain.body_bytes``): what a store
        keeps and what its link hashes."""
        return self._bytes()[0]

    def header(self) -> bytes:
        """The event's canonical header (``ledger._domain.chain.header_bytes``)."""
        return self._bytes()[1]

    def _bytes(self) -> tuple[bytes, bytes]:
        try:
            canon: tuple[bytes, bytes] = _CANON.__get__(self)
        except AttributeError:  # not made yet
            canon = self._canonical()
            _CANON.__set__(self, canon)
        return canon

    def _canonical(self) -> tuple[bytes, bytes]:
        """The body and the header from one JSON dump of the event (the header's profile,
        class version and envelope are the body's)."""
        dumped = self.model_dump(mode="json", exclude={"originator_id", "originator_version"})
        dumped["class_version"] = type(self).class_version
        return body_bytes(dumped), header_bytes(dumped, self.originator_version, self.event_type)

    def as_stored(self, body: bytes, header: bytes) -> None:
        """Remember the body and header this event, stored without a link, was read back from
        (what it hashes)."""
        _STORED.__set__(self, (body, header))

    def linked(self, prev: str) -> ProfileEvent:
        """This event with its link, following the event that hashed ``prev``."""
        body, header = canon = self._bytes()
        event = self.model_copy(update={"chain": link(prev, header, body)})
        _CANON.__set__(event, canon)  # the link is no part of the body or the header
        return event

    def link_after(self, prev: str) -> ProfileEvent:
        """``linked`` for an event nobody else holds yet (the one a command just made): its
        link set on the event itself rather than on a copy, which cost a heartbeat about 4%
        of its CPU (pydantic's ``model_copy``). The same fields and fields set as ``linked``
        gives; the link is no part of the canonical body or header made first. Where a
        pydantic plugin is installed, the event was handed to it when it was made (a plugin
        may keep what it validates): it is linked on a copy, and what the plugin holds stays
        as it was handed."""
        if type(type(self).__pydantic_validator__) is not SchemaValidator:
            return self.linked(prev)
        body, header = self._bytes()
        self.__dict__["chain"] = link(prev, header, body)
        self.__pydantic_fields_set__.add("chain")
        return self

    def hash_after(self, prev: str) -> str:
        """The event's hash: its link's; for an event stored before hash chains, the hash its
        link would have had after the event that hashed ``prev``."""
        if self.chain is not None:
            return self.chain.hash
        body, header = _stored_bytes(self) or self._bytes()
        return link(prev, header, body).hash

    # What an event read back without a link was stored with is part of what it hashes: a
    # copy (``copy``, ``deepcopy``, ``model_copy``, pickle) keeps it, as it kept the private
    # attribute before (pydantic carries only its own state). The canonical bytes are not
    # carried: a copy with changed fields makes its own.
    def __copy__(self) -> ProfileEvent:
        return _carried(self, super().__copy__())

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> ProfileEvent:
        return _carried(self, super().__deepcopy__(memo))

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        stored = _stored_bytes(self)
        return state if stored is None else {**state, "_stored": stored}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state)
        stored = state.pop("_stored", None)
        super().__setstate__(state)
        if stored is not None:
            _STORED.__set__(self, stored)

    @property
    def event_id(self) -> str:
        """A stable id for causation links: the profile and the event's place in its stream."""
        return f"{self.profile_id}#{self.originator_version}"

    @property
    def at(self) -> datetime:
        return self.envelope.at


# The slots' own descriptors: read and written through them, a slot costs no attribute lookup
# through the model's class (and an empty one raises AttributeError at once).
_CANON = ProfileEvent.__dict__["_canon"]
_STORED = ProfileEvent.__dict__["_stored"]


def _stored_bytes(event: ProfileEvent) -> tuple[bytes, bytes] | None:
    """The body and header ``event`` was read back from, stored without a link (None: it was
    made here, or read back linked)."""
    try:
        stored: tuple[bytes, bytes] = _STORED.__get__(event)
    except AttributeError:
        return None
    return stored


def _carried(event: ProfileEvent, copied: ProfileEvent) -> ProfileEvent:
    """``copied``, given the stored bytes ``event`` was read back with, if any."""
    if (stored := _stored_bytes(event)) is not None:
        _STORED.__set__(copied, stored)
    return copied


class ProfileRegistered(ProfileEvent):
    """Version 2 added ``max_lease_seconds``: the hard limit of every lease of the profile
    (None: no limit, as for every profile registered before version 2)."""

    event_type = "profile_registered"
    class_version = 2
    account_id: str
    proxy_id: str
    region: str | None
    user_data_dir: str | None
    release_policy: str
    unclean_limit: int
    unclean_window_seconds: int
    max_lease_seconds: int | None = None


class LeaseAcquired(ProfileEvent):
    """Version 2: the lease carries ``hard_limit_at`` (None before: no limit)."""

    event_type = "lease_acquired"
    class_version = 2
    lease: Lease


class LeaseHeartbeat(ProfileEvent):
    event_type = "lease_heartbeat"
    lease_id: str
    fencing_token: int
    step: str | None
    url: str | None
    safe: bool
    mutating: bool
    expires_at: AwareDatetime


class LeaseExtended(ProfileEvent):
    event_type = "lease_extended"
    lease_id: str
    fencing_token: int
    ttl_seconds: TtlSeconds  # rev34 review: 10**9 s held a profile until 2058
    expires_at: AwareDatetime


class LeaseReleaseRequested(ProfileEvent):
    """Version 2 added ``screenshot_sha256``: the digest of the screenshot's bytes, so the
    evidence a worker filed can later be checked against the file (None before version 2).
    Version 3 added ``evidence_problem``: why the worker could not collect its evidence (a
    screenshot the browser did not answer, a driver gone), None when nothing went wrong and
    for every release stored before version 3."""

    event_type = "lease_release_requested"
    class_version = 3
    lease_id: str
    fencing_token: int
    outcome: Outcome
    final_url: str | None
    screenshot: str | None
    screenshot_sha256: str | None = None
    evidence_problem: str | None = None
    prompt_seen: bool
    observed_proxy: str | None
    observed_account: str | None


class LeaseReleasedCleanly(ProfileEvent):
    event_type = "lease_released_cleanly"
    lease_id: str
    outcome: Outcome


class LeaseMarkedStale(ProfileEvent):
    event_type = "lease_marked_stale"
    lease_id: str
    expires_at: AwareDatetime
    last_heartbeat_at: AwareDatetime
    last_step: str | None
    last_url: str | None
    last_safe_step: str | None
    mutating_step: str | None


class LeaseRevoked(ProfileEvent):
    """An operator ended a live lease (force release, quarantine or disable)."""

    event_type = "lease_revoked"
    lease_id: str
    cause: Cause


class ReviewRequested(ProfileEvent):
    event_type = "review_requested"
    cause: Cause
    lease_id: str | None


class ProfileQuarantined(ProfileEvent):
    """``trigger`` is the ending that made the count: set when the cause is repeated endings."""

    event_type = "profile_quarantined"
    cause: Cause
    lease_id: str | None
    unclean_leases: list[str]
    trigger: Cause | None = None


class ProfileReviewed(ProfileEvent):
    event_type = "profile_reviewed"
    decision: ReviewDecision
    note: str


class ProfileReturnedToPool(ProfileEvent):
    event_type = "profile_returned_to_pool"


class ProfileDisabled(ProfileEvent):
    event_type = "profile_disabled"
    previous_state: ProfileState


class ProfileEnabled(ProfileEvent):
    """Enabling decides where the profile goes: the pool only if it was disabled while idle."""

    event_type = "profile_enabled"
    state: ProfileState


class BrowserStopped(ProfileEvent):
    """An orphaned browser on the profile's directory was stopped while no lease held it.

    Recorded after the stop, so it says what happened: which process on which host, and the
    signal that ended it (SIGHUP when the gentle stop sufficed, else SIGKILL of its group).
    """

    event_type = "browser_stopped"
    host: str
    pid: int
    user_data_dir: str
    signal: StopSignal


EVENT_CLASSES: dict[str, type[ProfileEvent]] = {
    cls.event_type: cls
    for cls in (
        ProfileRegistered,
        LeaseAcquired,
        LeaseHeartbeat,
        LeaseExtended,
        LeaseReleaseRequested,
        LeaseReleasedCleanly,
        LeaseMarkedStale,
        LeaseRevoked,
        ReviewRequested,
        ProfileQuarantined,
        ProfileReviewed,
        ProfileReturnedToPool,
        ProfileDisabled,
        ProfileEnabled,
        BrowserStopped,
    )
}

# (event_type, from_version) -> function that rewrites the stored dict to from_version + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _release_requested_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """Version 1 recorded a screenshot's path only: its digest is unknown, never guessed."""
    return {**state, "screenshot_sha256": None}


def _release_requested_v2_to_v3(state: dict[str, Any]) -> dict[str, Any]:
    """Version 2 could not say its evidence failed: nothing is known to have gone wrong."""
    return {**state, "evidence_problem": None}


def _registered_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """Before version 2 a profile's leases had no hard limit."""
    return {**state, "max_lease_seconds": None}


def _acquired_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """Before version 2 a lease had no hard limit."""
    return {**state, "lease": {**state["lease"], "hard_limit_at": None}}


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("profile_registered", 1): _registered_v1_to_v2,
    ("lease_acquired", 1): _acquired_v1_to_v2,
    ("lease_release_requested", 1): _release_requested_v1_to_v2,
    ("lease_release_requested", 2): _release_requested_v2_to_v3,
}


def upcast(event_type: str, state: dict[str, Any], from_version: int) -> dict[str, Any]:
    """Bring a stored event's state up to its class's current ``class_version``."""
    target = EVENT_CLASSES[event_type].class_version
    while from_version < target:
        state = UPCASTERS[(event_type, from_version)](state)
        from_version += 1
    return state


# The one form custody writes a time in: pydantic's JSON of a UTC time, to the second, or with
# six digits of its microseconds (``ledger._unit_of_work``: every time given is in UTC). What
# the database's insert check takes of a login's event, and its reading of a lease's deadline
# takes no other (``ledger._stores.access``); ``custody verify`` names any other (rev37: a
# worker's login wrote a deadline "+00:00", which the fold took, and every sweep's stale mark
# of that lease was refused). Anchor it where it is used.
TIME_FORM = (
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{6})?Z"
)


def times_held() -> dict[str, tuple[tuple[str, ...], ...]]:
    """Where each event type's body holds a time besides its envelope's: the paths of its
    time fields, and of its lease's (``lease_acquired``: ``("lease", "expires_at")``, ...).
    Types with none are left out."""
    found = {}
    for event_type, cls in EVENT_CLASSES.items():
        paths = tuple(_time_paths(cls))
        if paths:
            found[event_type] = paths
    return found


def _time_paths(model: type[Frozen]) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, info in model.model_fields.items():
        kinds = {info.annotation, *get_args(info.annotation)}
        if AwareDatetime in kinds:
            paths.append((name,))
        elif Lease in kinds:
            paths += [(name, *inner) for inner in _time_paths(Lease)]
    return paths
