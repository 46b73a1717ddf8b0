"""The write side's port, one contract: the same cases run unchanged against the fake the
service layer's unit tests use, SQLite and PostgreSQL. A fake that drifted from the stores
would make those unit tests prove nothing; this suite is what keeps it honest."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fakes import FakeRepository
from pg_cluster import PostgresCluster, database_url, drop_database

from ledger import InvalidInput, Ledger, ProfileRecord, Role
from ledger._domain.profile import CheckoutRequest, Context, Profile
from ledger._domain.view import availability_of
from ledger.ports import LateSave, Repository, StreamConflict

NOW = datetime(2026, 12, 2, 9, 45, tzinfo=UTC)


@pytest.fixture(params=["fake", "sqlite", "postgresql"])
def repository(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Repository]:
    """A new, empty repository of each kind."""
    if request.param == "fake":
        yield FakeRepository(lambda: NOW)
        return
    url = (
        f"sqlite:///{tmp_path / 'custody.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    with Ledger.init(url) as ledger:
        yield ledger.store


def _ctx(actor: str = "op", role: Role = Role.OPERATOR, command: str = "c") -> Context:
    return Context(actor, role, NOW, command, command, command)


def _record(profile_id: str = "p1", directory: str | None = None) -> ProfileRecord:
    return ProfileRecord(
        profile_id=profile_id,
        account_id="a",
        proxy_id="x",
        user_data_dir=directory,
        release_policy="manual_review_on_unknown_state",
        unclean_limit=3,
        unclean_window_seconds=86400,
    )


def _save(repo: Repository, profile: Profile, command: tuple[str, str] | None = None) -> None:
    repo.save(profile, availability_of(profile), command)


def _registered(repo: Repository, profile_id: str = "p1", directory: str | None = None) -> None:
    _save(repo, Profile.register(_record(profile_id, directory), _ctx()))


def _leased(repo: Repository, profile_id: str = "p1", ttl: int = 60) -> Profile:
    profile = repo.load(profile_id)
    assert profile is not None
    request = CheckoutRequest(worker_id="w", run_id="r", task_type="t", ttl_seconds=ttl)
    profile.checkout(request, _ctx("w", Role.WORKER, "c2"))
    return profile


def test_an_unknown_profile_loads_as_none_with_no_history(repository: Repository) -> None:
    """Nothing registered: load is None, history is empty, no command is recorded."""
    assert repository.load("ghost") is None
    assert repository.history("ghost") == []
    assert repository.event_at("ghost", 1) is None
    assert repository.command_record("c-1") is None


def test_a_saved_profile_loads_as_its_events_left_it(repository: Repository) -> None:
    """Register and check out: load gives the same state, as of any version, and the history
    holds the events in order."""
    _registered(repository)
    _save(repository, _leased(repository))
    loaded = repository.load("p1")
    assert loaded is not None
    assert (loaded.version, loaded.state.value, loaded.last_token) == (2, "leased", 1)
    then = repository.load("p1", 1)
    assert then is not None
    assert (then.version, then.state.value) == (1, "available")
    assert [e.event_type for e in repository.history("p1")] == [
        "profile_registered",
        "lease_acquired",
    ]
    at = [repository.event_at("p1", v) for v in (1, 2, 3)]
    assert [None if e is None else e.event_type for e in at] == [
        "profile_registered",
        "lease_acquired",
        None,
    ]


def test_a_save_on_a_version_another_writer_took_conflicts_and_keeps_nothing(
    repository: Repository,
) -> None:
    """Two writers load version 1 and both decide; the second save is StreamConflict, and
    none of its events, its row or its command id were kept."""
    _registered(repository)
    first, second = _leased(repository), _leased(repository)
    _save(repository, first)
    with pytest.raises(StreamConflict):
        _save(repository, second, ("c-late", "checkout:abc"))
    assert len(repository.history("p1")) == 2
    assert repository.command_record("c-late") is None


def test_a_save_past_its_time_is_late_and_keeps_nothing(repository: Repository) -> None:
    """A save whose ``in_time`` has passed when it would hold the store's locks is
    ``LateSave`` (a ``StreamConflict``), and keeps nothing: the unit of work tells it from a
    version race, to decide again as the lease then stands, never to call it contention
    (rev37: a clock frozen at a lease's deadline met 30 of them and was answered "busy")."""
    _registered(repository)
    leased = _leased(repository)
    with pytest.raises(LateSave):
        repository.save(leased, availability_of(leased), None, in_time=time.monotonic() - 0.001)
    assert len(repository.history("p1")) == 1


def test_a_command_id_is_recorded_once_in_the_whole_store(repository: Repository) -> None:
    """The id a caller gave is recorded with its profile, the version its events reached and
    its fingerprint; a second save under the same id conflicts, even on another profile."""
    _registered(repository, "p1")
    _registered(repository, "p2")
    _save(repository, _leased(repository, "p1"), ("c-1", "checkout:abc"))
    record = repository.command_record("c-1")
    assert record is not None
    assert (record.profile_id, record.version, record.command) == ("p1", 2, "checkout:abc")
    with pytest.raises(StreamConflict):
        _save(repository, _leased(repository, "p2"), ("c-1", "checkout:abc"))
    assert len(repository.history("p2")) == 1


def test_a_directory_overlapping_another_profiles_is_refused(repository: Repository) -> None:
    """A registration whose directory is, contains or lies inside another profile's is
    InvalidInput naming user_data_dir and that profile; nothing of it is kept."""
    _registered(repository, "p1", "/srv/profiles/p1")
    with pytest.raises(InvalidInput) as refused:
        _registered(repository, "p2", "/srv/profiles/p1/inner")
    assert refused.value.field == "user_data_dir"
    assert "p1" in str(refused.value)
    assert repository.load("p2") is None
    _registered(repository, "p3", "/srv/profiles/p10")  # a sibling, not an overlap


def test_a_batch_judges_each_save_against_the_saves_before_it(repository: Repository) -> None:
    """save_together (group commit), all or nothing: one command id given twice in a batch
    conflicts and keeps neither save, as a command id given twice across saves does; so does
    one profile's version saved twice (rev36: the fake kept both, the command id pointing at
    the second profile, and a stream whose versions read 1, 1)."""
    for profile_id in ("p1", "p2"):
        _registered(repository, profile_id)
    one, two = _leased(repository, "p1"), _leased(repository, "p2")
    with pytest.raises(StreamConflict):
        repository.save_together(
            [(p, availability_of(p), ("SAME", "heartbeat:x")) for p in (one, two)]
        )
    assert repository.command_record("SAME") is None
    assert [len(repository.history(p)) for p in ("p1", "p2")] == [1, 1]
    first, again = _leased(repository, "p1"), _leased(repository, "p1")
    with pytest.raises(StreamConflict):
        repository.save_together([(p, availability_of(p), None) for p in (first, again)])
    assert [e.originator_version for e in repository.history("p1")] == [1]


def test_a_save_without_events_records_its_command_id(repository: Repository) -> None:
    """A decision that made no event (nothing to change) still records the id it was made
    under, at the profile's version, so that a resend is answered from it."""
    _registered(repository, "p1")
    profile = repository.load("p1")
    assert profile is not None
    _save(repository, profile, ("c-none", "enable:x"))
    record = repository.command_record("c-none")
    assert record is not None
    assert (record.profile_id, record.version, record.command) == ("p1", 1, "enable:x")
    assert len(repository.history("p1")) == 1


def test_an_overlap_names_the_first_holder_by_directory(repository: Repository) -> None:
    """Of several recorded directories a registration overlaps, the refusal names the first
    by directory (by code point), then profile, whichever was registered first (rev36: the
    fake named the first registered); two registrations in one batch that overlap: the later
    by profile id is refused, naming the other, and neither is kept."""
    _registered(repository, "p1", "/s/b")
    _registered(repository, "p2", "/s/a")
    _registered(repository, "p4", "/s/B")
    with pytest.raises(InvalidInput) as refused:
        _registered(repository, "p3", "/s")
    assert "'/s/B', the directory of profile p4" in str(refused.value)
    first = Profile.register(_record("q2", "/t/a"), _ctx())
    second = Profile.register(_record("q1", "/t"), _ctx(command="c9"))
    with pytest.raises(InvalidInput) as refused:
        repository.save_together([(p, availability_of(p), None) for p in (first, second)])
    assert "'/t/a' overlaps '/t', the directory of profile q1" in str(refused.value)
    assert repository.load("q1") is None
    assert repository.load("q2") is None


def test_an_icu_collation_changes_no_order_and_no_refusal(pg_cluster: PostgresCluster) -> None:
    """A PostgreSQL database whose collation is ICU's en-US (which custody accepts: UTF8)
    orders 'a' before 'B'; the directories, the availability rows and which holder an
    overlap names still follow the code points, as on SQLite (rev36: they followed the
    collation)."""
    name = f"icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
        assert conn.execute("SELECT 'a' < 'B' COLLATE \"en-US-x-icu\"").fetchone() == (True,)
    try:
        with Ledger.init(database_url(pg_cluster.admin_url, name)) as ledger:
            store = ledger.store
            _registered(store, "a1", "/s/a")
            _registered(store, "B2", "/s/B")
            assert [d.profile_id for d in store.directories()] == ["B2", "a1"]
            assert [row.profile_id for row in store.availability()] == ["B2", "a1"]
            with pytest.raises(InvalidInput) as refused:
                _registered(store, "p3", "/s")
            assert "'/s/B', the directory of profile B2" in str(refused.value)
    finally:
        drop_database(pg_cluster.admin_url, name)


def test_sweep_candidates_are_overdue_rows(repository: Repository) -> None:
    """A lease past its deadline is a candidate at a later moment, not before it."""
    _registered(repository, "idle")
    _registered(repository, "held")
    _save(repository, _leased(repository, "held", ttl=60))
    assert repository.sweep_candidates(NOW + timedelta(seconds=30)) == []
    assert repository.sweep_candidates(NOW + timedelta(seconds=61)) == ["held"]
