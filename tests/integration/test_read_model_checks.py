"""Read models that check themselves: ``projections status`` compares each read model with the
events (rows deleted, edited, inserted; a position ahead of the log or behind its own rows)
and names what differs; a dropped table is named by reads and re-created by a rebuild; a rebuild
that died leaves nothing that says one is under way; an older layout is rebuilt by init; and
status beside writer, runner and rebuild processes finds no damage where there is none."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import StepClock, register
from log_checks import assert_exact
from runner_processes import WORKER, backlog, custody

from ledger import (
    Checkout,
    ForceRelease,
    Heartbeat,
    Ledger,
    RegisterProfile,
    Release,
    StoreUnavailable,
)
from ledger.feed import CHECKPOINTS_TABLE, ReadModelDamaged
from projections import (
    LEASES_READ_MODEL,
    READ_MODELS,
    TIMELINE_READ_MODEL,
    ReadModel,
    catch_up,
    read_model_status,
    rebuild,
    run as keep_current,
    timeline,
    upgrade,
)
from projections._leases import LEASES
from projections._timeline import TIMELINE
from reports import usage


def _scene(ledger: Ledger, clock: StepClock) -> None:
    """Three profiles, a few leases each with heartbeats, every read model current."""
    for pid in ("p1", "p2", "p3"):
        register(ledger, pid)
        for run in range(3):
            lease = ledger.handle(
                Checkout(profile_id=pid, worker_id="w", run_id=f"r{run}", task_type="t")
            )
            for step in range(2):
                clock.advance(1)
                ledger.handle(
                    Heartbeat(
                        lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{step}"
                    )
                )
            ledger.handle(
                Release(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    outcome="success",
                    final_url="https://x/done",
                )
            )
    for model in READ_MODELS.values():
        catch_up(ledger, model)


def _problems(ledger: Ledger, model: ReadModel) -> list[str]:
    (found,) = read_model_status(ledger, [model])
    return found.problems


def _sql(ledger: Ledger, statement: str, params: tuple[Any, ...] = ()) -> None:
    with ledger.feed.transaction() as tx:
        tx.execute(statement, params)


def _one(ledger: Ledger, statement: str, params: tuple[Any, ...] = ()) -> Any:
    return next(iter(ledger.feed.query(statement, params)[0].values()))


# A value unlike the stored one, for each column type (a row is edited in one column); a
# negative number is never another row's position or version.
def _other(kind: str, value: Any) -> Any:
    if kind.startswith("BIGINT"):
        return -(value or 0) - 1
    if kind.startswith("DOUBLE"):
        return (value or 0.0) + 0.5
    return f"{value}x"


def _edit(table: str, key: str, column: str, kind: str) -> Callable[[Ledger], None]:
    def edit(ledger: Ledger) -> None:
        row = ledger.feed.query(f"SELECT {key}, {column} FROM {table} WHERE profile_id = 'p2' "
                                f"ORDER BY {key} LIMIT 1 OFFSET 1")[0]  # fmt: skip
        _sql(ledger, f"UPDATE {table} SET {column} = ? WHERE {key} = ?",
             (_other(kind, row[column]), row[key]))  # fmt: skip

    return edit


def _delete(table: str, key: str) -> Callable[[Ledger], None]:
    def delete(ledger: Ledger) -> None:
        found = _one(ledger, f"SELECT max({key}) FROM {table} WHERE profile_id = 'p2'")
        _sql(ledger, f"DELETE FROM {table} WHERE {key} = ?", (found,))

    return delete


def _insert_timeline(ledger: Ledger) -> None:
    columns = ", ".join(c for c in TIMELINE.column_names if c != "position")
    _sql(ledger, f"INSERT INTO {TIMELINE.name} (position, {columns}, digest) SELECT -1, "
                 f"{columns.replace('version', '99 AS version')}, digest FROM {TIMELINE.name} "
                 "WHERE profile_id = 'p2' AND version = 1")  # fmt: skip


def _insert_lease(ledger: Ledger) -> None:
    columns = ", ".join(c for c in LEASES.column_names if c != "lease_id")
    _sql(ledger, f"INSERT INTO {LEASES.name} (lease_id, {columns}, digest) SELECT "
                 f"'lease-9@p2', {columns}, digest FROM {LEASES.name} "
                 "WHERE lease_id = 'lease-1@p2'")  # fmt: skip


def _position(name: str, move: Callable[[int, int], int]) -> Callable[[Ledger], None]:
    def set_position(ledger: Ledger) -> None:
        at = _one(ledger, f"SELECT position FROM {CHECKPOINTS_TABLE} WHERE name = ?", (name,))
        _sql(ledger, f"UPDATE {CHECKPOINTS_TABLE} SET position = ? WHERE name = ?",
             (move(at, ledger.feed.head()), name))  # fmt: skip

    return set_position


_DAMAGE: dict[str, tuple[ReadModel, Callable[[Ledger], None], str | None, str]] = {
    "timeline-deleted": (TIMELINE_READ_MODEL, _delete(TIMELINE.name, "position"), "p2", "missing"),
    "timeline-inserted": (TIMELINE_READ_MODEL, _insert_timeline, "p2", "too many"),
    "timeline-ahead": (TIMELINE_READ_MODEL, _position("timeline", lambda p, h: h + 5), None,
                       "ahead of the log's head"),
    "timeline-behind": (TIMELINE_READ_MODEL, _position("timeline", lambda p, h: p - 4), None,
                        "behind rows already written"),
    "leases-deleted": (LEASES_READ_MODEL, _delete(LEASES.name, "lease_id"), "p2", "missing"),
    "leases-inserted": (LEASES_READ_MODEL, _insert_lease, "p2", "too many"),
    "leases-ahead": (LEASES_READ_MODEL, _position("leases", lambda p, h: h + 5), None,
                     "ahead of the log's head"),
    "leases-behind": (LEASES_READ_MODEL, _position("leases", lambda p, h: p - 4), None,
                      "behind rows already written"),
}  # fmt: skip
for _model, _key in ((TIMELINE_READ_MODEL, "position"), (LEASES_READ_MODEL, "lease_id")):
    for _column, _kind in (*_model.table.columns, ("digest", "BIGINT")):
        _DAMAGE[f"{_model.name}-edited-{_column}"] = (
            _model, _edit(_model.table.name, _key, _column, _kind), "p2", "edited"
        )  # fmt: skip


@pytest.mark.parametrize("damage", sorted(_DAMAGE))
def test_status_names_each_damage_and_a_rebuild_repairs_it(
    ledger: Ledger, clock: StepClock, damage: str
) -> None:
    """Rows deleted, edited in any column, or inserted, and a position set ahead of the log or
    behind its own rows: status names the read model, the profile where it applies and the
    command that repairs it (positions alone said 'lag 0' to all of these); that command
    repairs it; the other read model is not blamed."""
    model, damage_it, profile, said = _DAMAGE[damage]
    _scene(ledger, clock)
    assert [s.problems for s in read_model_status(ledger, READ_MODELS.values())] == [[], []]
    damage_it(ledger)
    problems = _problems(ledger, model)
    assert problems, f"{damage} went unnoticed"
    # rev36: an edit that leaves a cell no read can take (a time made "...x") is said by its
    # column and value, not as an edit alone.
    junk = said == "edited" and any("which no row it writes holds" in p for p in problems)
    assert junk or any(said in p for p in problems), problems
    if profile is not None:
        assert any(f"profile {profile}:" in p for p in problems), problems
    for problem in problems:
        assert problem.endswith(f"custody projections rebuild {model.name}"), problem
    others = [p for p in READ_MODELS.values() if p is not model]
    assert [s.problems for s in read_model_status(ledger, others)] == [[]]
    rebuild(ledger, model)
    assert _problems(ledger, model) == []
    assert_exact(ledger)


def test_status_counts_the_rows_and_is_clean_after_more_commands(
    ledger: Ledger, clock: StepClock
) -> None:
    """An honest read model, caught up or lagging, has no problem: lag is not damage."""
    _scene(ledger, clock)
    register(ledger, "p4")
    ledger.handle(Checkout(profile_id="p4", worker_id="w", run_id="r", task_type="t"))
    timeline_status, leases_status = read_model_status(ledger, [TIMELINE_READ_MODEL,
                                                                LEASES_READ_MODEL])  # fmt: skip
    assert (timeline_status.lag, timeline_status.problems) == (2, [])
    assert (leases_status.rows, leases_status.problems) == (9, [])


@pytest.mark.parametrize("model", [TIMELINE_READ_MODEL, LEASES_READ_MODEL], ids=str)
def test_a_dropped_table_is_named_by_reads_and_recreated_by_rebuild(
    ledger: Ledger, clock: StepClock, model: ReadModel
) -> None:
    """With a read model's table dropped, a read names the read model and the command that
    repairs it (not 'store unavailable'), status names it, and the rebuild re-creates the
    table exactly, leaving no rebuild said to be under way."""
    _scene(ledger, clock)
    read = {
        "timeline": lambda: timeline(ledger, "p1"),
        "leases": lambda: usage("account_shop_17", ledger=ledger),
    }[model.name]
    read()  # this process has seen the table whole: the drop comes after
    _sql(ledger, f"DROP TABLE {model.table.name}")
    with pytest.raises(ReadModelDamaged) as damaged:
        read()
    assert not isinstance(damaged.value, StoreUnavailable)
    assert f"read model {model.name}" in str(damaged.value)
    assert str(damaged.value).endswith(f"custody projections rebuild {model.name}")
    assert damaged.value.exit_code == 1
    assert any("is missing" in p for p in _problems(ledger, model))
    rebuild(ledger, model)
    (status,) = read_model_status(ledger, [model])
    assert (status.problems, status.rebuilding) == ([], False)
    assert_exact(ledger)
    read()


def test_a_rebuild_that_fails_leaves_none_under_way(
    ledger: Ledger, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild that fails half-way drops what it made: no shadow position is left to say
    that a rebuild is under way, and the live read model is as it was."""
    _scene(ledger, clock)

    def fail(*args: object) -> None:
        raise RuntimeError("the rebuild died")

    with monkeypatch.context() as broken:
        broken.setattr(TIMELINE_READ_MODEL, "fold", fail)
        with pytest.raises(RuntimeError, match="died"):
            rebuild(ledger, TIMELINE_READ_MODEL)
    assert "timeline__next" not in ledger.feed.checkpoints()
    (status,) = read_model_status(ledger, [TIMELINE_READ_MODEL])
    assert (status.rebuilding, status.problems) == (False, [])


def test_a_rebuild_left_by_a_dead_process_is_said_so(ledger: Ledger, clock: StepClock) -> None:
    """A shadow position whose rebuild holds no lock (its process was killed) is not 'a
    rebuild under way': status names it as unfinished, with the command that finishes it."""
    _scene(ledger, clock)
    with ledger.feed.transaction() as tx:
        tx.reset_checkpoint("timeline__next", 3)
    (status,) = read_model_status(ledger, [TIMELINE_READ_MODEL])
    assert status.rebuilding is False
    assert status.problems == [
        "timeline: a rebuild was left unfinished (its position timeline__next remains): "
        "custody projections rebuild timeline"
    ]
    rebuild(ledger, TIMELINE_READ_MODEL)
    assert "timeline__next" not in ledger.feed.checkpoints()


def test_a_runner_drops_what_a_rebuild_left_when_its_clean_up_failed_too(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev25: a rebuild refused by a full disk or a server gone could not drop its copy on the
    store that had just failed, and `projections status` called the read models damaged through
    every runner until a new rebuild. A runner drops such a copy (and its position) where no
    rebuild holds the lock, says so, and status is clean; one a rebuild holds is left."""
    _scene(ledger, clock)
    with ledger.feed.transaction() as tx:
        tx.reset_checkpoint("timeline__next", 3)
        tx.execute(f"CREATE TABLE {TIMELINE.name}__next AS SELECT * FROM {TIMELINE.name}")
    said: list[str] = []
    with ledger.feed.exclusive("rebuild-timeline"):  # a rebuild under way: left alone
        keep_current(ledger, READ_MODELS.values(), rounds=1, announce=said.append)
    assert "timeline__next" in ledger.feed.checkpoints()
    keep_current(ledger, READ_MODELS.values(), rounds=1, announce=said.append)
    dropped = [line for line in said if line.startswith("dropped")]
    assert dropped == ["dropped the copy an unfinished rebuild of timeline left"], said
    assert "timeline__next" not in ledger.feed.checkpoints()
    assert ledger.feed.columns(f"{TIMELINE.name}__next") == []
    assert [s.problems for s in read_model_status(ledger, READ_MODELS.values())] == [[], []]


def test_a_read_model_of_an_older_layout_is_named_then_rebuilt_by_upgrade(
    sql_store_url: str, clock: StepClock
) -> None:
    """A table made before a column was added (the digest) is named on the first read with
    its repair; the upgrade that init runs rebuilds it (and leaves a current one alone)."""
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        _scene(ledger, clock)
        _sql(ledger, f"ALTER TABLE {TIMELINE.name} DROP COLUMN digest")
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        with pytest.raises(ReadModelDamaged, match="digest"):
            timeline(ledger, "p1")
        rebuilt = upgrade(ledger, READ_MODELS.values())
        assert [r.name for r in rebuilt] == ["timeline"]
        assert upgrade(ledger, READ_MODELS.values()) == []
        assert [s.problems for s in read_model_status(ledger, READ_MODELS.values())] == [[], []]
        assert len(timeline(ledger, "p1")) == len(ledger.history("p1"))


def test_a_read_model_made_before_an_index_changed_is_rebuilt_by_upgrade(
    sql_store_url: str, clock: StepClock
) -> None:
    """A timeline table made by a custody that indexed a lease's rows by ``lease_id`` alone
    (before ``lease_event``: its catch-up slowed with every lease's history) is rebuilt by
    the upgrade that init runs, and gets the index; a current one is left alone. Guard: the
    index check in ``upgrade`` (columns alone: the table kept its old index)."""
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        _scene(ledger, clock)
        (made,) = [n for n in ledger.feed.indexes(TIMELINE.name) if n.endswith("_lease_event")]
        _sql(ledger, f"DROP INDEX {made}")
        _sql(ledger, f"CREATE INDEX {TIMELINE.name}_a_lease ON {TIMELINE.name} (lease_id)")
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        assert len(timeline(ledger, "p1")) == len(ledger.history("p1"))  # not damaged: slower
        rebuilt = upgrade(ledger, READ_MODELS.values())
        assert [r.name for r in rebuilt] == ["timeline"]
        assert upgrade(ledger, READ_MODELS.values()) == []
        assert [n for n in ledger.feed.indexes(TIMELINE.name) if n.endswith("_lease_event")]
        assert [s.problems for s in read_model_status(ledger, READ_MODELS.values())] == [[], []]


_RACED = ["race_a", "race_b", "race_c"]


@pytest.mark.slow
def test_status_beside_live_writers_runners_and_rebuilds_finds_no_damage(
    sql_store_url: str,
) -> None:
    """Writer processes append, a `projections run` process catches up in small batches and a
    `projections rebuild` swaps tables in, while status checks both read models again and
    again: an honest read model is never reported damaged (each check reads rows, position
    and log at one moment), and `custody projections status` exits 0."""
    with Ledger.open(sql_store_url) as ledger:
        for pid in _RACED:
            register(ledger, pid)
        backlog(ledger, 200)
    start_at = time.time() + 2.0
    argv = [str(WORKER), sql_store_url, "", "24", ",".join(_RACED), str(start_at), "0.3"]
    writers = [
        subprocess.Popen([sys.executable, *argv[:2], f"w{n}", *argv[3:]], stdout=subprocess.PIPE)
        for n in range(3)
    ]
    runner = custody(sql_store_url, "projections", "run", "--interval", "0.05", "--batch", "7")
    checks, problems = 0, []
    try:
        with Ledger.open(sql_store_url) as ledger:
            time.sleep(max(0.0, start_at - time.time()))
            while any(w.poll() is None for w in writers):
                rebuilding = checks % 4 == 3
                if rebuilding:
                    rebuild = custody(sql_store_url, "projections", "rebuild", "timeline")
                for status in read_model_status(ledger, READ_MODELS.values()):
                    problems += status.problems
                if rebuilding:
                    _, err = rebuild.communicate(timeout=120)
                    assert rebuild.returncode == 0, err
                checks += 1
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.communicate(timeout=60)
    for writer in writers:
        writer.communicate()
        assert writer.returncode == 0
    assert checks >= 4, f"only {checks} checks ran beside the writers"
    assert problems == []
    status = custody(sql_store_url, "projections", "status")
    _, err = status.communicate(timeout=60)
    assert status.returncode == 0, err


def test_a_leases_position_set_back_by_one_event_is_named_once_and_no_row_missing(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev28: with the leases checkpoint set back by one event (the force-release that ended
    p2's lease), status said "profile p2: 1 row(s) missing (0 for 1 leases)" beside the right
    line: the row is there, it records that last event, and the events up to the position
    count its lease from its acquisition. The position's line alone names it."""
    for pid in ("p1", "p2"):
        ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))
        ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    ledger.handle(ForceRelease(profile_id="p2", actor="op", reason="stuck"))
    catch_up(ledger, LEASES_READ_MODEL)
    _position("leases", lambda p, h: p - 1)(ledger)
    head = ledger.feed.head()
    assert _problems(ledger, LEASES_READ_MODEL) == [
        f"leases: its position {head - 1} is behind rows already written (1 row(s) up to "
        f"position {head}): custody projections rebuild leases"
    ]
