"""Stored events are pinned bytes: every event type decodes from them and encodes back to them.

`tests/fixtures/stored_events/<event_type>.v<class_version>.json` holds the exact state bytes the
mapper wrote for one representative event of each type (made once by
`tests/fixtures/make_stored_events.py`, never rewritten). The values below are written by hand,
independently of that script: a field renamed, retyped or dropped in an event class, a changed
JSON layout, or a new event type without a fixture fails here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from ledger._domain.browser import StopSignal
from ledger._domain.events import EVENT_CLASSES, ProfileEvent
from ledger._domain.model import (
    Cause,
    Envelope,
    Lease,
    LeaseStatus,
    Outcome,
    ProfileState,
    ReviewDecision,
    Role,
)
from ledger._stores.mapper import ProfileEventMapper, decode

FIXTURES = Path(__file__).parent.parent / "fixtures" / "stored_events"
_NAME = re.compile(r"^(?P<event_type>[a-z_]+)\.v(?P<version>[1-9][0-9]*)\.json$")

ORIGINATOR_ID = UUID("4d6fdd5f-8809-5c82-bdeb-c99c9fa07f0c")
PROFILE_ID = "profile_shop_17"
LEASE_ID = "lease-3@profile_shop_17"
T0 = datetime(2024, 5, 1, 9, 0, 0, 123456, tzinfo=UTC)


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _envelope(n: int, actor: str, role: Role, reason: str = "") -> Envelope:
    return Envelope(
        actor_id=actor,
        actor_role=role,
        reason=reason,
        correlation_id=f"corr-{n}",
        causation_id=f"cause-{n}",
        command_id=f"cmd-{n}",
        command=f"fingerprint-{n}",
        at=_at(n),
    )


def _lease(hard_limit_at: datetime | None) -> Lease:
    """The lease the lease_acquired fixtures carry (version 1 had no hard limit)."""
    return Lease(
        lease_id=LEASE_ID,
        profile_id=PROFILE_ID,
        account_id="acct-shop-17",
        worker_id="worker-a",
        run_id="run-42",
        task_type="place_order",
        proxy_id="proxy-de-3",
        lease_status=LeaseStatus.ACTIVE,
        lease_started_at=_at(2),
        heartbeat_at=_at(2),
        expires_at=_at(302),
        ttl_seconds=300,
        last_safe_step="cart",
        release_policy="manual_review_on_unknown_state",
        fencing_token=3,
        last_step="cart",
        last_url="https://shop.example/cart",
        mutating_step="submit_order",
        ending="released",
        ended_at=_at(299),
        hard_limit_at=hard_limit_at,
    )


_WORKER = ("worker-a", Role.WORKER)
_SWEEPER = ("sweeper", Role.SCHEDULER)
_OPS = ("ops-olga", Role.OPERATOR)
_RITA = ("rita", Role.REVIEWER)

# Per fixture (file name without .json): its place in the stream, its envelope, and the value
# of every field its class declares beyond originator_id, originator_version, profile_id and
# envelope (checked for all of them).
EXPECTED: dict[str, tuple[int, Envelope, dict[str, Any]]] = {
    "profile_registered.v1": (
        1,
        _envelope(1, *_OPS, "new shop account, Zürich team"),
        {
            "account_id": "acct-shop-17",
            "proxy_id": "proxy-de-3",
            "region": "eu-central",
            "user_data_dir": "/profiles/profile_shop_17",
            "release_policy": "manual_review_on_unknown_state",
            "unclean_limit": 3,
            "unclean_window_seconds": 86_400,
            "max_lease_seconds": None,  # version 1 set no hard limit
        },
    ),
    "profile_registered.v2": (
        1,
        _envelope(1, *_OPS, "new shop account, Zürich team"),
        {
            "account_id": "acct-shop-17",
            "proxy_id": "proxy-de-3",
            "region": "eu-central",
            "user_data_dir": "/profiles/profile_shop_17",
            "release_policy": "manual_review_on_unknown_state",
            "unclean_limit": 3,
            "unclean_window_seconds": 86_400,
            "max_lease_seconds": 3600,
        },
    ),
    "lease_acquired.v1": (2, _envelope(2, *_WORKER), {"lease": _lease(hard_limit_at=None)}),
    # Version 2: the lease carries its hard limit.
    "lease_acquired.v2": (2, _envelope(2, *_WORKER), {"lease": _lease(hard_limit_at=_at(3602))}),
    "lease_heartbeat.v1": (
        3,
        _envelope(3, *_WORKER),
        {
            "lease_id": LEASE_ID,
            "fencing_token": 3,
            "step": "login",
            "url": "https://shop.example/login",
            "safe": True,
            "mutating": False,
            "expires_at": _at(303),
        },
    ),
    "lease_extended.v1": (
        4,
        _envelope(4, *_WORKER),
        {"lease_id": LEASE_ID, "fencing_token": 3, "ttl_seconds": 600, "expires_at": _at(604)},
    ),
    "lease_release_requested.v1": (
        5,
        _envelope(5, *_WORKER),
        {
            "lease_id": LEASE_ID,
            "fencing_token": 3,
            "outcome": Outcome.EXPECTED_FAILURE,
            "final_url": "https://shop.example/orders/done",
            "screenshot": "/shots/run-42/final.png",
            # Version 1 had no digest: its upcaster says unknown, never a guess.
            "screenshot_sha256": None,
            "evidence_problem": None,  # nor could it say its evidence failed (version 3)
            "prompt_seen": True,
            "observed_proxy": "proxy-de-3",
            "observed_account": "acct-shop-17",
        },
    ),
    "lease_release_requested.v2": (
        5,
        _envelope(5, *_WORKER),
        {
            "lease_id": LEASE_ID,
            "fencing_token": 3,
            "outcome": Outcome.EXPECTED_FAILURE,
            "final_url": "https://shop.example/orders/done",
            "screenshot": "/shots/run-42/final.png",
            "screenshot_sha256": (
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            ),
            "evidence_problem": None,  # version 2 could not say its evidence failed
            "prompt_seen": True,
            "observed_proxy": "proxy-de-3",
            "observed_account": "acct-shop-17",
        },
    ),
    "lease_release_requested.v3": (
        5,
        _envelope(5, *_WORKER),
        {
            "lease_id": LEASE_ID,
            "fencing_token": 3,
            "outcome": Outcome.EXPECTED_FAILURE,
            "final_url": "https://shop.example/orders/done",
            "screenshot": "/shots/run-42/final.png",
            "screenshot_sha256": (
                "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
            ),
            "evidence_problem": "screenshot failed: Timeout 5000ms exceeded",
            "prompt_seen": True,
            "observed_proxy": "proxy-de-3",
            "observed_account": "acct-shop-17",
        },
    ),
    "lease_released_cleanly.v1": (
        6,
        _envelope(6, *_WORKER),
        {"lease_id": LEASE_ID, "outcome": Outcome.SUCCESS},
    ),
    "lease_marked_stale.v1": (
        7,
        _envelope(7, *_SWEEPER, "renewal deadline missed"),
        {
            "lease_id": LEASE_ID,
            "expires_at": _at(302),
            "last_heartbeat_at": _at(3),
            "last_step": "submit_order",
            "last_url": "https://shop.example/checkout",
            "last_safe_step": "cart",
            "mutating_step": "submit_order",
        },
    ),
    "lease_revoked.v1": (
        8,
        _envelope(8, *_OPS, "browser hung"),
        {"lease_id": LEASE_ID, "cause": Cause.FORCE_RELEASE},
    ),
    "review_requested.v1": (
        9,
        _envelope(9, *_SWEEPER),
        {"cause": Cause.MUTATION_UNCONFIRMED, "lease_id": LEASE_ID},
    ),
    "profile_quarantined.v1": (
        10,
        _envelope(10, *_SWEEPER),
        {
            "cause": Cause.REPEATED_UNCLEAN_ENDINGS,
            "lease_id": LEASE_ID,
            "unclean_leases": ["lease-1@profile_shop_17", "lease-2@profile_shop_17", LEASE_ID],
            "trigger": Cause.LEASE_EXPIRED,
        },
    ),
    "profile_reviewed.v1": (
        11,
        _envelope(11, *_RITA),
        {"decision": ReviewDecision.RETURN, "note": "checked the account"},
    ),
    "profile_returned_to_pool.v1": (12, _envelope(12, *_RITA), {}),
    "profile_disabled.v1": (
        13,
        _envelope(13, *_OPS, "account closed"),
        {"previous_state": ProfileState.AVAILABLE},
    ),
    "profile_enabled.v1": (
        14,
        _envelope(14, *_OPS, "account reopened"),
        {"state": ProfileState.AVAILABLE},
    ),
    "browser_stopped.v1": (
        15,
        _envelope(15, *_OPS, "orphaned browser: SIGKILL"),
        {
            "host": "worker-host-7",
            "pid": 48213,
            "user_data_dir": "/profiles/profile_shop_17",
            "signal": StopSignal.SIGKILL,
        },
    ),
}

_BASE_FIELDS = {"originator_id", "originator_version", "profile_id", "envelope", "chain"}


def _fixture_names() -> list[str]:
    return sorted(p.name[: -len(".json")] for p in FIXTURES.glob("*.json"))


def _parse(name: str) -> tuple[str, int]:
    match = _NAME.match(f"{name}.json")
    assert match is not None, f"fixture {name}.json is not named <event_type>.v<version>.json"
    return match["event_type"], int(match["version"])


def _decoded(name: str) -> tuple[ProfileEvent, bytes]:
    event_type, _ = _parse(name)
    state = (FIXTURES / f"{name}.json").read_bytes()
    return decode(event_type, state, ORIGINATOR_ID, EXPECTED[name][0]), state


def _is_current(name: str) -> bool:
    event_type, version = _parse(name)
    return EVENT_CLASSES[event_type].class_version == version


def test_every_event_type_has_a_fixture_at_its_current_class_version() -> None:
    """Adding an event type, or raising a class_version, without pinning its bytes fails."""
    missing = [
        f"{event_type}.v{cls.class_version}.json"
        for event_type, cls in EVENT_CLASSES.items()
        if not (FIXTURES / f"{event_type}.v{cls.class_version}.json").is_file()
    ]
    assert missing == [], f"run tests/fixtures/make_stored_events.py for: {missing}"


def test_every_fixture_is_a_known_event_at_a_shipped_version_with_expected_values() -> None:
    """No fixture names an unknown type or a version newer than its class, and each has its
    hand-written expected values (and each expectation its fixture)."""
    names = _fixture_names()
    for name in names:
        event_type, version = _parse(name)
        assert event_type in EVENT_CLASSES, name
        assert 1 <= version <= EVENT_CLASSES[event_type].class_version, name
    assert set(names) == set(EXPECTED)


@pytest.mark.parametrize("name", _fixture_names())
def test_a_fixture_decodes_to_its_pinned_values(name: str) -> None:
    """The stored bytes decode, through any upcasters, into the event class of their topic
    with every field at its expected value and Python type (enums, aware UTC datetimes)."""
    event_type, version = _parse(name)
    event, state = _decoded(name)
    position, envelope, fields = EXPECTED[name]
    assert json.loads(state)["class_version"] == version
    assert type(event) is EVENT_CLASSES[event_type]
    assert event.event_type == event_type
    assert (event.originator_id, event.originator_version) == (ORIGINATOR_ID, position)
    assert event.profile_id == PROFILE_ID
    assert event.envelope == envelope
    assert event.envelope.at.utcoffset() == timedelta(0)
    assert type(event.envelope.actor_role) is Role
    assert set(type(event).model_fields) == _BASE_FIELDS | set(fields)
    for field, value in fields.items():
        got = getattr(event, field)
        assert (field, got) == (field, value)
        assert (field, type(got)) == (field, type(value))


@pytest.mark.parametrize("name", [n for n in _fixture_names() if _is_current(n)])
def test_re_encoding_a_decoded_fixture_reproduces_its_bytes(name: str) -> None:
    """Decoding then encoding a fixture at its class's current version gives back the very
    bytes and topic that were stored: the format is stable to the byte."""
    event_type, _ = _parse(name)
    event, state = _decoded(name)
    stored = ProfileEventMapper().to_stored_event(event)
    assert stored.topic == event_type
    assert stored.state == state
    assert (stored.originator_id, stored.originator_version) == (ORIGINATOR_ID, EXPECTED[name][0])
