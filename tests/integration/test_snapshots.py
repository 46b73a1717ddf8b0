"""Snapshots: written every SNAPSHOT_INTERVAL versions on every store, and a load (now or as of
a version) starts from the nearest one at or below it and gives the state every event gives."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import register

from ledger import Checkout, Heartbeat, Ledger, Release, StoreUnavailable, UnknownProfile, audit
from ledger._domain.profile import Profile, replay
from ledger._domain.state import ProfileStateMachine
from ledger._domain.view import availability_of
from ledger._stores.migrations import SCHEMA_VERSION
from ledger._stores.store import SNAPSHOT_INTERVAL
from reports import replay as replay_at


def _long_stream(ledger: Ledger, heartbeats: int) -> str:
    pid = register(ledger)
    lease = ledger.handle(
        Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="inventory_check")
    )
    for n in range(heartbeats):
        ledger.handle(
            Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{n}")
        )
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success")
    )
    return pid


def _state(p: ProfileStateMachine) -> tuple[Any, ...]:
    return (availability_of(p), p.lease, p.last_lease, p.block, p.version)


def _folded(ledger: Ledger, pid: str, version: int | None = None) -> Profile:
    events = ledger.history(pid)
    profile = replay(None, events if version is None else events[:version])
    assert profile is not None
    return profile


def test_snapshots_are_written_at_every_interval(store_url: str) -> None:
    """A stream of 2.5 intervals has snapshots at exactly the multiples of the interval."""
    with Ledger.open(store_url) as ledger:
        pid = _long_stream(ledger, SNAPSHOT_INTERVAL * 5 // 2)
        snapshots = ledger.store.app.snapshots
        assert snapshots is not None
        found = snapshots.get(Profile.create_id(pid))
        assert [s.originator_version for s in found] == [SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]


def _reads_after(ledger: Ledger) -> list[int | None]:
    """The version after which each read of a stream's events starts (None: from its first),
    appended as the ledger's event store is read."""
    read_after: list[int | None] = []
    events = ledger.store.app.repository.event_store
    real_get = events.get

    def counting_get(*args: Any, **kwargs: Any) -> Any:
        read_after.append(kwargs.get("gt"))
        return real_get(*args, **kwargs)

    events.get = counting_get  # type: ignore[method-assign]
    return read_after


@pytest.mark.parametrize("load", ["command", "read"])
def test_loads_from_a_snapshot_equal_the_fold_of_every_event(store_url: str, load: str) -> None:
    """A new process's load, and loads as of versions on both sides of a snapshot, start from
    the nearest snapshot (reading only the events after it) and give the folded state: a
    command's load of the aggregate, and a read's of the state alone (``Store.state``)."""
    with Ledger.open(store_url) as writer:
        pid = _long_stream(writer, SNAPSHOT_INTERVAL * 5 // 2)
    with Ledger.open(store_url) as ledger:
        read_after = _reads_after(ledger)
        starts = []
        for version in (SNAPSHOT_INTERVAL - 1, SNAPSHOT_INTERVAL, SNAPSHOT_INTERVAL + 7, None):
            read_after.clear()
            if load == "command":
                loaded: Any = ledger.uow.load(pid, version)
            else:
                loaded = ledger.store.state(pid, version)
                assert type(loaded) is ProfileStateMachine
            starts.append(read_after[0])
            assert _state(loaded) == _state(_folded(ledger, pid, version))
        assert starts == [None, SNAPSHOT_INTERVAL, SNAPSHOT_INTERVAL, 2 * SNAPSHOT_INTERVAL]


def test_commands_after_a_snapshot_load_keep_their_rules(store_url: str) -> None:
    """A profile loaded from a snapshot still replays a command id used before it (the store
    keeps the ids) and keeps its lease: the snapshot carries the lease."""
    with Ledger.open(store_url) as writer:
        pid = register(writer)
        lease = writer.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
        for n in range(SNAPSHOT_INTERVAL):
            writer.handle(
                Heartbeat(
                    lease_id=lease.lease_id, fencing_token=lease.fencing_token, command_id=f"hb{n}"
                )
            )
    with Ledger.open(store_url) as ledger:
        again = ledger.handle(
            Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, command_id="hb5")
        )
        assert again.lease_id == lease.lease_id
        assert len(ledger.history(pid)) == SNAPSHOT_INTERVAL + 2  # the resend appended nothing
        assert ledger.view(pid).lease == _folded(ledger, pid).lease


def test_a_snapshot_does_not_grow_with_the_commands_before_it(store_url: str) -> None:
    """Snapshots hold the profile's state, not the ids of the commands that made it, so a
    long stream's snapshot is as small as a short one's (its load, or a replay at a moment,
    costs the same whatever the stream's length)."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
        for n in range(SNAPSHOT_INTERVAL * 3):
            ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id, fencing_token=lease.fencing_token, command_id=f"b{n}"
                )
            )
        stored = ledger.store.app.snapshots.recorder.select_events(  # type: ignore[union-attr]
            Profile.create_id(pid)
        )
        sizes = [len(s.state) for s in stored]
        assert len(sizes) == 3
        assert max(sizes) - min(sizes) < 100, sizes


def test_a_store_without_the_snapshots_table_is_migrated_by_init(sql_store_url: str) -> None:
    """A store of schema 2 (made before snapshots) is refused until ``custody init`` adds the
    snapshots table; then long streams are snapshotted."""
    table = "custody_snapshots" if sql_store_url.startswith("postgresql") else "stored_snapshots"
    with Ledger.open(sql_store_url) as ledger:
        ledger.store.execute(f"DROP TABLE {table}")  # type: ignore[attr-defined]
        ledger.store.execute("UPDATE custody_schema SET version = 2")  # type: ignore[attr-defined]
    with (
        pytest.raises(StoreUnavailable, match="run custody init"),
        Ledger.open(sql_store_url) as old,
    ):
        old.profile_ids()
    Ledger.init(sql_store_url).close()
    with Ledger.open(sql_store_url) as ledger:
        pid = _long_stream(ledger, SNAPSHOT_INTERVAL)
        snapshots = ledger.store.app.snapshots
        assert snapshots is not None
        assert [s.originator_version for s in snapshots.get(Profile.create_id(pid))] == [
            SNAPSHOT_INTERVAL
        ]


@pytest.mark.parametrize("older", [14, 15])
def test_init_drops_the_snapshots_an_older_custody_wrote(sql_store_url: str, older: int) -> None:
    """Snapshots written before they carried the last event's time (schema 14, and 15 before
    ca2ce1b) are dropped by ``custody init``, and the store is refused until then: verify named
    each one a mismatch (``last_at None where the events say ...``) and a load from one forgot
    the time. A store of schema 15 is refused too (rev30: a custody of schema 15 cannot read a
    lease ended ``hard_limit_reached``, and went on writing snapshots of the older form)."""
    table = "custody_snapshots" if sql_store_url.startswith("postgresql") else "stored_snapshots"
    with Ledger.open(sql_store_url) as ledger:
        pid = _long_stream(ledger, SNAPSHOT_INTERVAL)
        store: Any = ledger.store
        rows = store.query(f"SELECT originator_id, originator_version, state FROM {table}")
        assert len(rows) == 1
        for row in rows:  # as the older custody wrote them: no last_at
            state = json.loads(bytes(row["state"]))
            del state["last_at"]
            store.execute(
                f"UPDATE {table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
                (json.dumps(state).encode(), row["originator_id"], row["originator_version"]),
            )
        store.execute(f"UPDATE custody_schema SET version = {older}")
    with (
        pytest.raises(
            StoreUnavailable, match=f"has schema {older}, this custody needs {SCHEMA_VERSION}"
        ),
        Ledger.open(sql_store_url) as old,
    ):
        old.profile_ids()
    with Ledger.init(sql_store_url) as migrated:  # rev30: it says so, which a no-op init does not
        assert [n.split(":")[0] for n in migrated.store.notes] == [
            f"migrated from schema {older} to {SCHEMA_VERSION}"
        ]
    with Ledger.init(sql_store_url) as again:
        assert again.store.notes == []
    with Ledger.open(sql_store_url) as ledger:
        assert audit.verify(ledger).problems == []
        assert ledger.store.query(f"SELECT count(*) AS n FROM {table}") == [{"n": 0}]  # type: ignore[attr-defined]
        assert _folded(ledger, pid).last_at == ledger.history(pid)[-1].at


def test_replay_at_a_moment_of_a_long_stream_is_the_fold_up_to_then(store_url: str) -> None:
    """``reports.replay`` at the moment of an event past a snapshot gives the state folded up
    to that event; a profile never registered is ``UnknownProfile``, before anything else."""
    with Ledger.open(store_url) as ledger:
        pid = _long_stream(ledger, SNAPSHOT_INTERVAL + 20)
        events = ledger.history(pid)
        target = events[SNAPSHOT_INTERVAL + 10]
        then = replay_at(pid, at=target.envelope.at, ledger=ledger)
        folded = _folded(ledger, pid, then.version)
        assert then.version >= target.originator_version
        assert (then.state, then.lease) == (folded.state, folded.lease)
        with pytest.raises(UnknownProfile):
            replay_at("never_registered", at=target.envelope.at, ledger=ledger)


def test_a_read_s_load_leaves_the_cache_to_the_commands(store_url: str) -> None:
    """A read folds a profile it does not hold into the state alone and keeps it apart from
    the repository's cache: the next command in the process still loads the aggregate (a bare
    state in that cache would have no commands), the next read fast-forwards the state it kept,
    and a read of a profile the process holds as an aggregate starts from that one."""
    with Ledger.open(store_url) as writer:
        pid = register(writer)
    with Ledger.open(store_url) as ledger:
        assert ledger.view(pid).version == 1
        assert ledger.store.cached(pid) is None
        read_after = _reads_after(ledger)
        assert ledger.view(pid).version == 1
        assert read_after == [1]  # only what came after the state it kept
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
        held = ledger.store.cached(pid)
        assert isinstance(held, Profile)
        assert ledger.view(pid).lease == lease
        assert type(ledger.store.state(pid)) is Profile  # a copy of the held one


def test_a_snapshot_the_store_fails_to_take_leaves_the_committed_command_done(
    sql_store_url: str,
) -> None:
    """The heartbeat whose version is due a snapshot, while another session holds the
    snapshots' table locked past the store's timeout: the snapshot, taken after the command's
    events committed, fails, and the heartbeat is still answered as done (it was: its event is
    stored), the next writer at an interval takes the next snapshot. Guard: the store failure
    suppressed in ``Store._snapshot_if_due`` (rev30: the committed heartbeat raised
    StoreUnavailable, which a caller without a command id takes for one that wrote nothing)."""
    url = sql_store_url + ("&" if "?" in sql_store_url else "?") + "timeout=1"
    with Ledger.open(url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
        snapshots = ledger.store.app.snapshots
        assert snapshots is not None
        table = snapshots.recorder.events_table_name  # type: ignore[attr-defined]
        real_put = snapshots.put

        def put_while_locked(*args: Any, **kwargs: Any) -> Any:
            if url.startswith("sqlite"):
                import sqlite3

                holder: Any = sqlite3.connect(url.removeprefix("sqlite:///").split("?")[0])
                holder.execute("BEGIN IMMEDIATE")
            else:
                import psycopg

                holder = psycopg.connect(sql_store_url)
                holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            try:
                return real_put(*args, **kwargs)
            finally:
                holder.rollback()
                holder.close()

        snapshots.put = put_while_locked  # type: ignore[method-assign]
        for n in range(SNAPSHOT_INTERVAL - 2):  # versions 3 to the interval: the last is due
            ledger.handle(
                Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{n}")
            )
        assert len(ledger.history(pid)) == SNAPSHOT_INTERVAL
        assert list(snapshots.get(Profile.create_id(pid))) == []
        snapshots.put = real_put  # type: ignore[method-assign]
        ledger.handle(
            Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success")
        )
    with Ledger.open(sql_store_url) as again:
        assert audit.verify(again).problems == []


def test_a_snapshot_without_the_fields_the_fold_keeps_is_passed_over(sql_store_url: str) -> None:
    """Workers wa and wb end runs unclean, the profile's v50 snapshot is then taken in the form
    a custody of schema 15 wrote before snapshots carried ``unclean_runs`` and ``last_at`` (an
    older process left running across ``custody init`` writes it too), and wc's unclean end
    quarantines the profile listing all three runs. A fresh process loads it from its events,
    not from that snapshot: wa may not review the quarantine of its own run, and verify names
    the snapshot as of an older form, which no load uses (a custody of schema 16 never writes
    one). Guard: ``CurrentSnapshots`` and ``OlderSnapshot`` (rev30: verify named the snapshot
    a mismatch, and wa's review returned the profile to the pool)."""
    from raw_log import RawLog

    from ledger import NotAllowed, Review

    with Ledger.open(sql_store_url) as ledger:
        pid = register(ledger)
        for worker in ("wa", "wb", "wc"):
            lease = ledger.handle(
                Checkout(profile_id=pid, worker_id=worker, run_id=f"run-{worker}", task_type="t")
            )
            for n in range(20):
                ledger.handle(
                    Heartbeat(
                        lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{n}"
                    )
                )
            if worker == "wc":  # past v50: its snapshot is written in the older form
                log = RawLog(sql_store_url)
                older = log.snapshot(pid, SNAPSHOT_INTERVAL)
                assert older["unclean_runs"], older  # wa's and wb's
                del older["unclean_runs"]  # the form ca2ce1b's schema 15 wrote had last_at
                log.put_snapshot(log.stream_id(pid), SNAPSHOT_INTERVAL, older)
            ledger.handle(
                Release(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    outcome="failure",
                    reason=f"broke by {worker}",
                )
            )
            if worker != "wc":
                ledger.handle(Review(profile_id=pid, reviewer="rev", decision="return", note="ok"))
    with Ledger.open(sql_store_url) as fresh:
        (said,) = audit.verify(fresh).problems
        older_form = "its snapshot is of an older form (a snapshot without unclean_runs)"
        assert said.startswith(f"{pid} v{SNAPSHOT_INTERVAL}: {older_form}")  # rev30: and last_at
        assert "which no load starts from" in said
        with pytest.raises(NotAllowed, match="wa ran one of the runs this quarantine lists"):
            fresh.handle(Review(profile_id=pid, reviewer="wa", decision="return", note="mine"))
        profile = fresh.store.load(pid)
        assert profile is not None
        assert [w for _, w in profile.unclean_runs] == ["wa", "wb", "wc"]


def test_the_snapshots_a_load_reads_pass_over_older_forms_for_earlier_ones(
    sql_store_url: str,
) -> None:
    """Snapshots at v50, v100 and v150, the two latest of an older form: a load's read of the
    latest (``desc``, ``limit=1``) reads on to v50; every other read leaves them out alone."""
    from raw_log import RawLog

    with Ledger.open(sql_store_url) as ledger:
        pid = _long_stream(ledger, 3 * SNAPSHOT_INTERVAL)
        log = RawLog(sql_store_url)
        for version in (2 * SNAPSHOT_INTERVAL, 3 * SNAPSHOT_INTERVAL):
            older = log.snapshot(pid, version)
            del older["unclean_runs"]
            log.put_snapshot(log.stream_id(pid), version, older)
        snapshots = ledger.store.app.snapshots
        assert snapshots is not None
        stream = Profile.create_id(pid)

        def versions(**kwargs: Any) -> list[int]:
            return [s.originator_version for s in snapshots.get(stream, **kwargs)]

        assert versions(desc=True, limit=1) == [SNAPSHOT_INTERVAL]
        assert versions(desc=True, limit=2) == [SNAPSHOT_INTERVAL]
        assert versions() == [SNAPSHOT_INTERVAL]
        assert versions(limit=1, gt=SNAPSHOT_INTERVAL) == []
        loaded = ledger.store.load(pid, version=3 * SNAPSHOT_INTERVAL + 1)
        assert loaded is not None
        assert _state(loaded) == _state(_folded(ledger, pid, loaded.version))


@pytest.mark.parametrize("held", [True, False])
def test_a_snapshot_inside_a_save_of_several_events_is_the_fold_up_to_it(
    store_url: str, held: bool
) -> None:
    """A release's first event lands on a multiple of the interval: its snapshot is the state
    folded up to that event, not the release's last. Taken from the profile the process held
    before the save with the saved events folded on, it reads nothing from the store (a fold
    from the store was most of a checkout+release cycle's snapshot cost); without a cache it
    still folds the stream."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
        while ledger.view(pid).version < SNAPSHOT_INTERVAL - 1:
            ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1))
        if not held:
            ledger.store.app.repository.cache = None
        read_after = _reads_after(ledger)
        ledger.handle(Release(lease_id=lease.lease_id, fencing_token=1, outcome="success"))
        reads = list(read_after)
        saved = [e.originator_version for e in ledger.history(pid)][SNAPSHOT_INTERVAL - 1 :]
        assert saved[0] == SNAPSHOT_INTERVAL
        assert len(saved) > 1  # the snapshot's version is not the save's last
        assert (reads == []) is held
        snapshots = ledger.store.app.snapshots
        assert snapshots is not None
        (snapshot,) = snapshots.get(Profile.create_id(pid))
        assert snapshot.originator_version == SNAPSHOT_INTERVAL
    with Ledger.open(store_url) as fresh:
        read_after = _reads_after(fresh)
        loaded = fresh.uow.load(pid, SNAPSHOT_INTERVAL)
        assert read_after == [SNAPSHOT_INTERVAL]  # from the snapshot
        assert _state(loaded) == _state(_folded(fresh, pid, SNAPSHOT_INTERVAL))
        checked = audit.verify(fresh)
        assert checked.problems == []
        assert checked.snapshots == 1
