"""The availability row is written in the events' transaction, on every store.

The recorders upsert a profile's row inside the transaction that inserts its events: a row is
there exactly when its events are, a losing writer's row rolls back with its events, and an
upsert carrying an older version never moves a row back in time. These tests drive the
recorder itself (no `Ledger`), with real events and rows made by the domain.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from ledger_recorders import availability_rows, open_recorder

from ledger._domain.model import ProfileRecord, Role
from ledger._domain.policies import DEFAULT_RELEASE_POLICY
from ledger._domain.profile import CheckoutRequest, Context, Profile
from ledger._domain.view import Availability, availability_of
from ledger._stores.mapper import ProfileEventMapper
from ledger._stores.recorders import AVAILABILITY_COLUMNS, availability_params

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
MAPPER = ProfileEventMapper()


@pytest.fixture(params=["sqlite", "postgresql"])
def recorder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Our recorder on a fresh store of each kind, as the store builds it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'custody.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    factory, opened = open_recorder(url)
    try:
        yield opened
    finally:
        factory.close()


def _ctx(actor: str, n: int, role: Role = Role.WORKER) -> Context:
    return Context(
        actor_id=actor,
        role=role,
        now=T0 + timedelta(seconds=n),
        command_id=f"cmd-{actor}-{n}",
        correlation_id=f"corr-{actor}-{n}",
        causation_id=f"cause-{actor}-{n}",
    )


def _registered(profile_id: str) -> Profile:
    record = ProfileRecord(
        profile_id=profile_id,
        account_id=f"acct-{profile_id}",
        proxy_id="proxy-de-3",
        release_policy=DEFAULT_RELEASE_POLICY,
        unclean_limit=3,
        unclean_window_seconds=86_400,
    )
    return Profile.register(record, _ctx("ops-olga", 0, Role.OPERATOR))


def _checked_out(profile: Profile, worker: str) -> Profile:
    """A copy of ``profile`` (as another process would load it) that ``worker`` checked out."""
    copied = copy.deepcopy(profile)
    request = CheckoutRequest(
        worker_id=worker, run_id=f"run-{worker}", task_type="t", ttl_seconds=60
    )
    copied.checkout(request, _ctx(worker, 1))
    return copied


def _pending(profile: Profile) -> list[StoredEvent]:
    """The profile's events that are not yet saved, as the store would write them."""
    return [MAPPER.to_stored_event(e) for e in profile.collect_events()]


def _as_stored(row: Availability) -> dict[str, Any]:
    """The availability row as the database holds it."""
    return dict(zip(AVAILABILITY_COLUMNS, availability_params(row), strict=True))


def _versions(recorder: Any, profile: Profile) -> list[tuple[int, str]]:
    """(version, topic) of every stored event of the profile."""
    return [(e.originator_version, e.topic) for e in recorder.select_events(profile.id)]


def test_events_and_their_row_are_written_together(recorder: Any) -> None:
    """Inserting events with an availability row stores both, and the next insert's row
    replaces it."""
    profile = _registered("p-alpha")
    recorder.insert_events(_pending(profile), availability=[availability_of(profile)])
    assert availability_rows(recorder) == {"p-alpha": _as_stored(availability_of(profile))}

    profile = _checked_out(profile, "worker-a")
    recorder.insert_events(_pending(profile), availability=[availability_of(profile)])
    rows = availability_rows(recorder)
    assert rows == {"p-alpha": _as_stored(availability_of(profile))}
    assert (rows["p-alpha"]["state"], rows["p-alpha"]["holder_worker"]) == ("leased", "worker-a")
    assert rows["p-alpha"]["version"] == 2
    assert _versions(recorder, profile) == [(1, "profile_registered"), (2, "lease_acquired")]


def test_a_losing_writer_leaves_the_winners_row_unchanged(recorder: Any) -> None:
    """Two writers check out the same profile at version 2: the second insert raises
    IntegrityError, and the row still names the first writer as holder."""
    profile = _registered("p-alpha")
    recorder.insert_events(_pending(profile), availability=[availability_of(profile)])
    winner, loser = _checked_out(profile, "worker-a"), _checked_out(profile, "worker-b")
    recorder.insert_events(_pending(winner), availability=[availability_of(winner)])

    with pytest.raises(IntegrityError):
        recorder.insert_events(_pending(loser), availability=[availability_of(loser)])

    rows = availability_rows(recorder)
    assert rows == {"p-alpha": _as_stored(availability_of(winner))}
    assert rows["p-alpha"]["holder_worker"] == "worker-a"
    stored = recorder.select_events(profile.id)
    assert [e.originator_version for e in stored] == [1, 2]
    assert MAPPER.to_domain_event(stored[1]).lease.worker_id == "worker-a"


def test_a_failed_save_writes_no_row_for_any_of_its_profiles(recorder: Any) -> None:
    """One insert holding a new profile's events and another profile's taken version fails
    whole: the new profile gets neither events nor row, the other keeps its row."""
    taken = _registered("p-taken")
    recorder.insert_events(_pending(taken), availability=[availability_of(taken)])
    before = availability_rows(recorder)
    fresh = _registered("p-fresh")
    again = _registered("p-taken")  # a second registration of p-taken: version 1 is taken

    with pytest.raises(IntegrityError):
        recorder.insert_events(
            _pending(fresh) + _pending(again),
            availability=[availability_of(fresh), availability_of(again)],
        )

    assert availability_rows(recorder) == before
    assert set(before) == {"p-taken"}
    assert recorder.select_events(fresh.id) == []


def test_the_row_saved_with_new_events_replaces_whatever_the_table_held(recorder: Any) -> None:
    """Events appended at version N prove their row is the latest (writers of one stream
    commit in version order), so it replaces the stored row even if that row was damaged by
    hand to claim a higher version; a rebuild's guarded replace, not the writer, is what must
    never move a row back (tests/integration/test_races.py and test_availability.py)."""
    registered = _registered("p-alpha")
    recorder.insert_events(_pending(registered), availability=[availability_of(registered)])
    damaged = availability_of(registered).model_copy(update={"version": 999})
    recorder.insert_events([], availability=[damaged])
    assert availability_rows(recorder) == {"p-alpha": _as_stored(damaged)}

    leased = _checked_out(registered, "worker-a")
    recorder.insert_events(_pending(leased), availability=[availability_of(leased)])
    assert availability_rows(recorder) == {"p-alpha": _as_stored(availability_of(leased))}
    assert [v for v, _ in _versions(recorder, leased)] == [1, 2]
