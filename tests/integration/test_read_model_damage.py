"""Read models damaged beside their rows, on every store: a checkpoint moved back or ahead, a
row edited or put back as it was, the checkpoints lost. A read never serves the damage as an
answer (it folds each event once, or refuses naming the rebuild), ``projections status`` names
it, and ``projections rebuild`` repairs it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import StepClock, register
from log_checks import assert_exact, every_ending, rows, take_lease

import reports
from ledger import Disable, Heartbeat, Ledger, Quarantine, Release, StoreUnavailable
from ledger._stores.recorders import AVAILABILITY_COLUMNS
from ledger.feed import CHECKPOINTS_TABLE, ReadModelDamaged
from projections import (
    LEASES_READ_MODEL,
    READ_MODELS,
    TIMELINE_READ_MODEL,
    ReadModel,
    catch_up,
    catch_up_all,
    read_model_status,
    rebuild,
    run,
    timeline,
    upgrade,
    usage,
)
from projections._leases import LEASES


def _sql(ledger: Ledger, statement: str, params: tuple[Any, ...] = ()) -> None:
    with ledger.feed.transaction() as tx:
        tx.execute(statement, params)


def _move(ledger: Ledger, name: str, position: int) -> None:
    _sql(ledger, f"UPDATE {CHECKPOINTS_TABLE} SET position = ? WHERE name = ?", (position, name))


def _problems(ledger: Ledger, model: ReadModel) -> list[str]:
    (found,) = read_model_status(ledger, [model])
    return found.problems


def _lease_with_beats(ledger: Ledger, clock: StepClock, beats: int = 3) -> tuple[str, int]:
    """p1 registered, one lease with ``beats`` heartbeats and a clean release; returns the
    lease id and the position of its acquisition."""
    register(ledger, "p1")
    lid, token = take_lease(ledger, "p1")
    acquired = ledger.feed.head()
    for step in range(beats):
        clock.advance(1)
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=token, step=f"s{step}", safe=True))
    ledger.handle(
        Release(lease_id=lid, fencing_token=token, outcome="success", final_url="https://x/")
    )
    return lid, acquired


def _lease_row(ledger: Ledger, lid: str) -> dict[str, Any]:
    (row,) = ledger.feed.query(f"SELECT * FROM {LEASES.name} WHERE lease_id = ?", (lid,))
    return row


@pytest.mark.parametrize("back_to", ["before-acquisition", "after-acquisition"])
def test_a_leases_checkpoint_moved_back_folds_no_event_twice(
    ledger: Ledger, clock: StepClock, back_to: str
) -> None:
    """A leases checkpoint set back (a restored checkpoint row): the next catch-up reads the
    events again but folds none twice (each row knows the last version folded into it), so the
    heartbeats are counted once and the row is what the log gives. Guard: the version check in
    ``LeasesReadModel.fold`` (without it, 6 heartbeats for 3 and status saw nothing)."""
    lid, acquired = _lease_with_beats(ledger, clock)
    catch_up(ledger, LEASES_READ_MODEL)
    before = _lease_row(ledger, lid)
    _move(ledger, "leases", acquired - 1 if back_to == "before-acquisition" else acquired)
    assert catch_up(ledger, LEASES_READ_MODEL, batch=2) > 0
    assert _lease_row(ledger, lid) == before
    assert before["heartbeats"] == 3
    assert _problems(ledger, LEASES_READ_MODEL) == []


_EDITS = {
    "forged-worker": "worker_id = 'w9', heartbeats = 0",
    "junk-time": "last_renewal_at = 'garbage'",  # was 'internal error: ValueError'
}


@pytest.mark.parametrize("edit", sorted(_EDITS))
def test_a_fold_never_builds_on_an_edited_row(ledger: Ledger, edit: str) -> None:
    """A live lease's row edited by hand (another worker and count, or a junk time): the
    lease's next event is not folded onto it, which would write the edit again under a fresh
    digest and leave status nothing to find (or fail as an internal error); the read refuses,
    naming the read model and its rebuild, status still names the edit, and the rebuild puts
    back what the events say. Guard: the digest check in ``LeasesReadModel._load``."""
    register(ledger, "p1")
    lid, token = take_lease(ledger, "p1")
    catch_up(ledger, LEASES_READ_MODEL)
    _sql(ledger, f"UPDATE {LEASES.name} SET {_EDITS[edit]} WHERE lease_id = ?", (lid,))
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=token, step="s", safe=True))
    with pytest.raises(ReadModelDamaged) as damaged:
        catch_up(ledger, LEASES_READ_MODEL)
    said = str(damaged.value)
    assert f"the row of lease {lid} (profile p1) is unlike the digest" in said
    assert said.endswith("custody projections rebuild leases")
    assert damaged.value.exit_code == 1
    # rev36: a junk cell is named by its column and value, not only as an edit.
    said_in_status = "column last_renewal_at holds 'garbage'" if edit == "junk-time" else "edited"
    assert any(said_in_status in p for p in _problems(ledger, LEASES_READ_MODEL))
    rebuild(ledger, LEASES_READ_MODEL)
    row = _lease_row(ledger, lid)
    assert (row["worker_id"], row["heartbeats"]) == ("w-r", 1)
    assert _problems(ledger, LEASES_READ_MODEL) == []


@pytest.mark.parametrize("batch", [1, 500])
def test_a_disable_of_a_leased_profile_sends_it_to_disabled(ledger: Ledger, batch: int) -> None:
    """Disabling a leased profile revokes the lease, requests review and disables the
    profile in one command: the lease's row says the profile went to disabled, whether that
    last event is folded in the batch of the revocation or in a later one (``batch`` 1).
    Guard: ``profile_disabled`` in ``_AFTER``."""
    register(ledger, "p1")
    lid, _ = take_lease(ledger, "p1")
    ledger.handle(Disable(profile_id="p1", actor="op", reason="account banned"))
    catch_up(ledger, LEASES_READ_MODEL, batch=batch)
    row = _lease_row(ledger, lid)
    assert (row["ending"], row["profile_state_after"]) == ("forced", "disabled")
    assert [r["profile_state_after"] for r in rows(ledger, LEASES.name, "lease_id")] == ["disabled"]


def test_a_timeline_checkpoint_moved_back_is_named_not_an_internal_error(
    ledger: Ledger, clock: StepClock
) -> None:
    """A timeline checkpoint set back behind its rows: a read refuses in one line naming the
    read model and its rebuild (exit 1), not the driver's 'IntegrityError' as an internal
    error, and nothing is written; the rebuild repairs it. Guard: ``RowConflict`` in
    ``projections._runner._fold`` (and its translation in the store's cursor)."""
    _lease_with_beats(ledger, clock, beats=1)
    assert len(timeline(ledger, "p1")) == 5
    _move(ledger, "timeline", 1)
    with pytest.raises(ReadModelDamaged) as damaged:
        timeline(ledger, "p1")
    said = str(damaged.value)
    assert "a row it would write is there already" in said
    assert said.endswith("custody projections rebuild timeline")
    assert damaged.value.exit_code == 1
    rebuild(ledger, TIMELINE_READ_MODEL)
    assert len(timeline(ledger, "p1")) == 5
    catch_up(ledger, LEASES_READ_MODEL)
    assert_exact(ledger)


@pytest.mark.parametrize("model", [TIMELINE_READ_MODEL, LEASES_READ_MODEL], ids=str)
def test_a_checkpoint_ahead_of_the_log_is_refused_not_a_silent_skip(
    ledger: Ledger, clock: StepClock, model: ReadModel
) -> None:
    """A checkpoint set past the log's head: the events written next would never be folded,
    and reads answered without them (exit 0). A read now refuses, naming the read model and
    its rebuild, until the rebuild folds every event. Guard: ``_refuse_ahead`` in
    ``projections._runner._behind``."""
    catch_up(ledger, model)  # installed, at 0
    _move(ledger, model.name, 50)
    _lease_with_beats(ledger, clock, beats=1)
    with pytest.raises(ReadModelDamaged) as damaged:
        catch_up(ledger, model)
    assert "is ahead of the log's head" in str(damaged.value)
    assert str(damaged.value).endswith(f"custody projections rebuild {model.name}")
    rebuild(ledger, model)
    catch_up_all(ledger, READ_MODELS.values())
    assert_exact(ledger)


@pytest.mark.parametrize("repair", ["rebuild", "upgrade"])
def test_a_lost_checkpoint_beside_its_table_is_named_and_repaired(
    ledger: Ledger, clock: StepClock, repair: str
) -> None:
    """Every checkpoint deleted while the tables remain: status said 'not installed yet' and
    exited 0, while every read, the rebuild and init failed on 'table already exists' (exit
    6, blaming the store), so nothing could repair it. Now status names each read model and
    its rebuild, a read refuses naming them (exit 1, nothing made), and the rebuild, or the
    upgrade that init runs, makes table and checkpoint again. Guard: the table's presence in
    ``Feed.install``, and ``PositionLost`` in ``rebuild`` and ``upgrade``."""
    _lease_with_beats(ledger, clock)
    catch_up_all(ledger, READ_MODELS.values())
    _sql(ledger, f"DELETE FROM {CHECKPOINTS_TABLE}")
    statuses = read_model_status(ledger, READ_MODELS.values())
    for status in statuses:
        assert status.position is None
        assert status.problems == [
            f"{status.name}: its position is lost (no row in {CHECKPOINTS_TABLE}) while its "
            f"table custody_{status.name} remains: custody projections rebuild {status.name}"
        ]
    with pytest.raises(ReadModelDamaged) as damaged:
        timeline(ledger, "p1")
    assert not isinstance(damaged.value, StoreUnavailable)
    assert str(damaged.value).endswith("custody projections rebuild timeline")
    assert ledger.feed.checkpoints() == {}
    if repair == "rebuild":
        for model in READ_MODELS.values():
            rebuild(ledger, model)
    else:
        assert sorted(r.name for r in upgrade(ledger, READ_MODELS.values())) == sorted(READ_MODELS)
    assert [s.problems for s in read_model_status(ledger, READ_MODELS.values())] == [[], []]
    assert len(timeline(ledger, "p1")) == 7
    assert_exact(ledger)


def test_an_older_genuine_copy_of_a_lease_row_is_named(ledger: Ledger, clock: StepClock) -> None:
    """A lease's row put back as it was before its last events (the table restored from last
    night's backup): its digest is its own and the profile still has one row per lease, so
    status exited 0 while usage said the lease that ended in quarantine was live. Status now
    names the row behind its events (and finds nothing on honest rows of every ending); the
    rebuild repairs it. Guard: ``_behind_their_events`` in ``projections._verify``."""
    every_ending(ledger, clock)
    register(ledger, "p1")
    first, token = take_lease(ledger, "p1", "r1")  # the row restored is p1's second lease's
    ledger.handle(
        Release(lease_id=first, fencing_token=token, outcome="success", final_url="https://x/")
    )
    lid, token = take_lease(ledger, "p1", "r2")
    catch_up(ledger, LEASES_READ_MODEL)
    old = _lease_row(ledger, lid)
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=token, step="pay", mutating=True))
    ledger.handle(Release(lease_id=lid, fencing_token=token, outcome="failure"))
    catch_up(ledger, LEASES_READ_MODEL)
    assert _problems(ledger, LEASES_READ_MODEL) == []
    names = ", ".join(old)
    _sql(ledger, f"DELETE FROM {LEASES.name} WHERE lease_id = ?", (lid,))
    _sql(ledger, f"INSERT INTO {LEASES.name} ({names}) VALUES ({', '.join('?' * len(old))})",
         tuple(old.values()))  # fmt: skip
    problems = _problems(ledger, LEASES_READ_MODEL)
    assert problems == [
        f"leases: profile p1: 1 row(s) behind their events (lease {lid} at version "
        f"{old['version']}, its events at {old['version'] + 2}): custody projections rebuild "
        "leases"
    ]
    rebuild(ledger, LEASES_READ_MODEL)
    assert _problems(ledger, LEASES_READ_MODEL) == []
    assert _lease_row(ledger, lid)["ending"] == "quarantine"


_READS: dict[str, tuple[str, str, Callable[[Ledger], object]]] = {
    "usage-rows": ("leases", "last_renewal_at", lambda ledger: usage(ledger, "account_shop_17")),
    "usage-frame": (
        "leases",
        "last_renewal_at",
        lambda ledger: reports.usage("account_shop_17", ledger=ledger),
    ),
    "health": ("leases", "last_renewal_at", lambda ledger: reports.health(ledger=ledger)),
    "timeline-rows": ("timeline", "at", lambda ledger: timeline(ledger, "p1")),
    "timeline-frame": ("timeline", "at", lambda ledger: reports.timeline("p1", ledger=ledger)),
}


@pytest.mark.parametrize("read", sorted(_READS))
def test_a_junk_value_in_a_cell_is_named_by_reads_not_an_internal_error(
    ledger: Ledger, read: str
) -> None:
    """A cell of a read model set by hand to what no row holds (a time that is not a time):
    every read of it, as rows or as a DataFrame, said 'internal error: ValueError' (exit 1,
    no repair named). It now names the read model, the column, the value and the rebuild.
    Guard: ``validated_rows`` and ``typed``'s ``read_model``."""
    name, column, answer = _READS[read]
    register(ledger, "p1")
    take_lease(ledger, "p1")
    catch_up_all(ledger, READ_MODELS.values())
    _sql(ledger, f"UPDATE custody_{name} SET {column} = 'garbage'")
    with pytest.raises(ReadModelDamaged) as damaged:
        answer(ledger)
    said = str(damaged.value)
    assert f"read model {name} is damaged: a row's {column} cannot be read ('garbage'" in said
    assert said.endswith(f"custody projections rebuild {name}")


# A time Python reads (an ISO 8601 week date) but no read model row holds: either store keeps it.
_WEEK_TIME = "2026-W48-1T09:45Z"


@pytest.mark.parametrize("read", sorted(_READS))
def test_a_junk_cell_among_good_rows_is_named_by_its_own_value(
    ledger: Ledger, clock: StepClock, read: str
) -> None:
    """rev45: one row's cell edited by hand among good rows (a week date Python's
    ``fromisoformat`` reads, pandas' ISO 8601 parser does not): the rows read named it, the
    DataFrame read said ``('None': ...)``, having looked for the junk by another rule than its
    cast's. Both now name the cell's own value, on both stores. Guard: ``_unreadable`` finding
    the first value the column's cast refuses."""
    name, column, answer = _READS[read]
    _lease_with_beats(ledger, clock, beats=2)
    clock.advance(1)
    second, _ = take_lease(ledger, "p1", "r2")
    catch_up_all(ledger, READ_MODELS.values())
    where = ("lease_id = ?", (second,)) if name == "leases" else ("version = ?", (3,))
    _sql(
        ledger, f"UPDATE custody_{name} SET {column} = ? WHERE {where[0]}", (_WEEK_TIME, *where[1])
    )
    with pytest.raises(ReadModelDamaged) as damaged:
        answer(ledger)
    said = f"a row's {column} cannot be read ({_WEEK_TIME!r}: written there by hand?)"
    assert said in str(damaged.value)


@pytest.mark.parametrize("read", ["health", "fleet"])
def test_a_timeline_position_made_text_by_hand_is_named_by_the_fleet_reads(
    tmp_path: Any, read: str
) -> None:
    """Found by a review (rev17): the fleet reads cut the timeline at one moment with
    ``position <= ?``, which SQLite never holds for a text cell, so a timeline row whose
    position a hand made text vanished from health and fleet (exit 0, a cause missing) where
    every other read names the damage. Guard: the cast in ``reports._sources._where``."""
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}") as ledger:
        register(ledger, "p1")
        take_lease(ledger, "p1")
        catch_up_all(ledger, READ_MODELS.values())
        _sql(ledger, "UPDATE custody_timeline SET position = 'x' WHERE version = 2")
        with pytest.raises(ReadModelDamaged) as damaged:
            getattr(reports, read)(ledger=ledger)
        assert "read model timeline is damaged: a row's position cannot be read ('x'" in str(
            damaged.value
        )


def test_projections_run_keeps_the_others_current_beside_a_damaged_one(
    ledger: Ledger, clock: StepClock
) -> None:
    """``projections run`` beside a damaged read model (its checkpoint set past the head): it
    said nothing before (the events just vanished); a read model's damage now refuses its
    catch-up, which must neither stop the runner nor hold back the other read model. The
    damage is announced once, the timeline kept current, and after the rebuild the next
    round catches the leases up. Guard: ``_catch_up_each`` in ``projections._runner.run``.
    Its rounds ended with the leases damaged: raised at the end (rev45: a ``--rounds 1`` that
    caught nothing up returned as one that did, exit 0)."""
    catch_up_all(ledger, READ_MODELS.values())
    _move(ledger, "leases", 50)
    _lease_with_beats(ledger, clock, beats=1)
    heard: list[str] = []
    with pytest.raises(ReadModelDamaged, match="ended with it not caught up") as ended:
        run(ledger, READ_MODELS.values(), rounds=2, interval=0.01, announce=heard.append)
    assert ended.value.name == "leases"
    damage = [line for line in heard if "read model leases is damaged" in line]
    assert len(damage) == 1, heard
    assert ledger.feed.checkpoints()["timeline"] == ledger.feed.head()  # the runner's doing
    rebuild(ledger, LEASES_READ_MODEL)
    run(ledger, READ_MODELS.values(), rounds=1, interval=0.01)
    assert_exact(ledger)


@pytest.mark.parametrize("edit", ["account", "worker"])
def test_a_timeline_row_edited_by_hand_is_not_copied_into_later_rows(
    ledger: Ledger, edit: str
) -> None:
    """Later timeline rows copy the account from a profile's registration row and the run and
    worker from its lease's acquisition row: with either edited by hand, the next catch-up
    wrote the forged value into the new rows under fresh digests. It now refuses, naming the
    row and the rebuild, and the rebuild gives every row what its event says. Guard: the digest
    check in ``projections._timeline._copied``."""
    register(ledger, "p1")
    lid, token = take_lease(ledger, "p1")
    catch_up(ledger, TIMELINE_READ_MODEL)
    change = {"account": "account_id = 'a9' WHERE version = 1",
              "worker": "worker_id = 'w9' WHERE event_type = 'lease_acquired'"}[edit]  # fmt: skip
    _sql(ledger, f"UPDATE custody_timeline SET {change}")
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=token, step="s"))
    with pytest.raises(ReadModelDamaged) as damaged:
        catch_up(ledger, TIMELINE_READ_MODEL)
    said = str(damaged.value)
    assert "the row of profile p1 at version" in said
    assert "unlike the digest" in said
    assert said.endswith("custody projections rebuild timeline")
    rebuild(ledger, TIMELINE_READ_MODEL)
    last = timeline(ledger, "p1")[-1]
    assert (last.account_id, last.worker_id) == ("account_shop_17", "w-r")
    assert _problems(ledger, TIMELINE_READ_MODEL) == []


def test_a_deleted_availability_row_is_counted_from_the_events_and_named(ledger: Ledger) -> None:
    """An availability row deleted by hand: the fleet reads answer its profile from the events
    and name the row as damaged, so the checklist's last question needs attention (rev33: the
    checklist said "every profile has an account owner: 2 of 2" of 3 profiles, all ok, and
    the report and the fleet counted 2, without a word)."""
    for pid in ("d0", "d1", "d2"):
        register(ledger, pid)
    take_lease(ledger, "d1")
    _sql(ledger, "DELETE FROM custody_availability WHERE profile_id = 'd1'")
    checked = reports.checklist(ledger=ledger)
    first, last = checked.checks[0], checked.checks[-1]
    assert first.answer == "every profile has an account owner: 3 of 3"
    assert last.verdict == "attention"
    assert [e for e in last.evidence if e.startswith("d1: availability row damaged (missing")]
    fleet = reports.fleet(ledger=ledger)
    assert fleet.profiles == 3
    assert fleet.by_state["leased"] == 1


def test_a_profile_registered_during_a_fleet_read_is_not_named_damaged(ledger: Ledger) -> None:
    """A profile registered after a fleet read's snapshot began has no row in that snapshot,
    and is no damage: the read leaves it out, as registered after its moment (rev33 review:
    checklist --strict exited 5 in 13 of 15 passes beside a process registering profiles,
    naming the newest as rows 'missing')."""
    from datetime import UTC, datetime

    from projections._availability import status_at

    register(ledger, "d0")
    with ledger.feed.snapshot() as snapshot:
        snapshot.checkpoints()  # its first read: the snapshot's moment
        moment = ledger.feed.head()
        register(ledger, "d1")  # committed while the snapshot reads
        rows = status_at(ledger, snapshot, moment, datetime.now(UTC))
    assert [(r.profile_id, r.damaged) for r in rows] == [("d0", None)]


@pytest.mark.parametrize(
    ("profile", "column"),
    [("d1", "until"), ("d1", "heartbeat_at"), ("d1", "since"), ("d0", "last_ended_at")],
)
def test_an_availability_time_without_an_offset_is_a_damaged_row(
    ledger: Ledger, profile: str, column: str
) -> None:
    """A time of an availability row stored without its UTC offset (cut by hand) makes the row
    unreadable, like any junk value: status shows the profile from its events, marked damaged,
    the fleet reads answer and name it, and a lease check answers from the events (rev36: the
    row was read, and status, fleet, health, checklist, the report and ``check_lease`` failed
    comparing its naive time with the clock: "can't compare offset-naive and offset-aware")."""
    from projections import status

    for pid in ("d0", "d1"):
        register(ledger, pid)
    ended, token = take_lease(ledger, "d0")
    ledger.handle(
        Release(lease_id=ended, fencing_token=token, outcome="success", final_url="https://x/")
    )
    held, _ = take_lease(ledger, "d1")
    cut = f"substr({column}, 1, 26)"  # 2026-01-01T00:00:00.000000, the +00:00 dropped
    _sql(
        ledger, f"UPDATE custody_availability SET {column} = {cut} WHERE profile_id = ?", (profile,)
    )
    shown = {r.profile_id: r for r in status(ledger)}
    assert (shown[profile].damaged or "").startswith(f"{column}: Input should have timezone")
    assert (shown["d0"].state.value, shown["d1"].state.value) == ("available", "leased")
    assert [r.profile_id for r in status(ledger, state="stale")] == []
    assert reports.fleet(ledger=ledger).profiles == 2
    reports.health(ledger=ledger)
    last = reports.checklist(ledger=ledger).checks[-1]
    assert [e for e in last.evidence if e.startswith(f"{profile}: availability row damaged")]
    assert "<html" in reports.report_html(ledger=ledger).html
    assert ledger.check_lease(held).live
    assert not ledger.check_lease(ended).live


@pytest.mark.parametrize("written", ["+05:00", "Z", "space", "seconds"])
def test_an_availability_time_in_another_form_is_a_damaged_row_the_sweep_takes_up(
    ledger: Ledger, clock: StepClock, written: str
) -> None:
    """A lease's deadline rewritten by hand as the same instant in another form (another
    offset, Z, a space for the T, no fraction) is a damaged row: status shows the profile from
    its events, marked damaged, the sweep takes it up once the deadline passes, and the
    rebuild writes it again as custody does (rev36 review: at +05:00 it read as sound, while
    the sweep, comparing the text with the clock's, missed the overdue lease for five hours
    and a denied checkout's advice to sweep went round in a loop)."""
    from ledger import rebuild_availability
    from projections import status

    register(ledger, "d1")
    take_lease(ledger, "d1")
    (row,) = ledger.feed.query("SELECT until FROM custody_availability WHERE profile_id = 'd1'")
    until = datetime.fromisoformat(row["until"])
    other = {
        "+05:00": until.astimezone(timezone(timedelta(hours=5))).isoformat(),
        "Z": until.isoformat().replace("+00:00", "Z"),
        "space": until.isoformat(sep=" "),
        "seconds": until.isoformat(timespec="seconds"),
    }[written]
    _sql(ledger, "UPDATE custody_availability SET until = ? WHERE profile_id = 'd1'", (other,))
    (shown,) = status(ledger)
    assert (shown.damaged or "").startswith("until: not a time as custody writes it"), shown
    assert shown.state.value == "leased"
    assert ledger.store.sweep_candidates(until + timedelta(seconds=1)) == ["d1"]
    rebuild_availability(ledger)
    (row,) = ledger.feed.query("SELECT until FROM custody_availability WHERE profile_id = 'd1'")
    assert row["until"] == until.isoformat(timespec="microseconds")
    assert status(ledger)[0].damaged is None


def test_a_row_of_a_profile_never_registered_is_junk_to_every_read(ledger: Ledger) -> None:
    """A readable availability row made by hand for a profile never registered is junk, as
    read-models.md says: status and the fleet reads neither show nor count it, and the
    checklist names it as damage (rev36: fleet counted 3 profiles of 2 registered, and the
    checklist and the report failed with "no profile 'ghost' is registered", exit 2)."""
    from projections import status

    for pid in ("d0", "d1"):
        register(ledger, pid)
    ledger.handle(Quarantine(profile_id="d1", actor="op", reason="odd"))
    columns = ", ".join(c for c in AVAILABILITY_COLUMNS if c != "profile_id")
    _sql(
        ledger,
        f"INSERT INTO custody_availability (profile_id, {columns}) "
        f"SELECT 'ghost', {columns} FROM custody_availability WHERE profile_id = 'd1'",
    )
    assert [r.profile_id for r in status(ledger)] == ["d0", "d1"]
    fleet = reports.fleet(ledger=ledger)
    assert (fleet.profiles, fleet.by_state["quarantined"]) == (2, 1)
    last = reports.checklist(ledger=ledger).checks[-1]
    assert last.verdict == "attention"
    assert [e for e in last.evidence if e.startswith("ghost: availability row of no registered")]
    assert "ghost" not in [e.split(":")[0] for e in last.evidence if "damaged" in e]
    reports.report_html(ledger=ledger)


def test_a_made_up_leased_row_gives_the_heartbeat_lag_gauge_nothing(ledger: Ledger) -> None:
    """/metrics' heartbeat lag is of live leases of registered profiles: a leased row made by
    hand for a profile never registered, its heartbeat a year old, moves no quantile (rev36
    review: every quantile read its 29 million seconds, while custody_profiles and
    custody_leases in the same scrape left it out)."""
    from service._metrics import fleet_families

    register(ledger, "d1")
    take_lease(ledger, "d1")
    columns = ", ".join(c for c in AVAILABILITY_COLUMNS if c not in ("profile_id", "heartbeat_at"))
    _sql(
        ledger,
        f"INSERT INTO custody_availability (profile_id, heartbeat_at, {columns}) "
        f"SELECT 'ghost', '2025-01-01T00:00:00.000000+00:00', {columns} "
        "FROM custody_availability WHERE profile_id = 'd1'",
    )
    gauges = {f.name: f for f in fleet_families(ledger)}
    lags = [sample.value for sample in gauges["custody_heartbeat_lag_seconds"].samples]
    assert len(lags) == 3
    assert max(lags) < 3600, lags


def test_a_deleted_availability_row_is_shown_by_status_marked_missing(ledger: Ledger) -> None:
    """A registered profile whose availability row was deleted by hand is shown by status, as
    its events give it, marked as a missing row, and counted the same by the fleet (rev36:
    ``custody status --summary`` listed 1 profile above a summary counting 2)."""
    from projections import status
    from projections._availability import MISSING_ROW

    for pid in ("d0", "d1"):
        register(ledger, pid)
    take_lease(ledger, "d1")
    _sql(ledger, "DELETE FROM custody_availability WHERE profile_id = 'd1'")
    rows = status(ledger)
    assert [(r.profile_id, r.state.value, r.damaged) for r in rows] == [
        ("d0", "available", None),
        ("d1", "leased", MISSING_ROW),
    ]
    assert [r.profile_id for r in status(ledger, state="leased")] == ["d1"]
    assert reports.fleet(ledger=ledger).profiles == len(rows)


def test_the_fleet_names_the_rows_it_counts_from_events_and_the_junk_it_leaves_out(
    ledger: Ledger,
) -> None:
    """The fleet names each damaged or missing availability row (counted as its profile's
    events stand) and each row of no registered profile (counted nowhere), as the checklist
    does, in its answer and in its lines for a person (rev37: the closing note of rev36 left
    fleet counting them without a word)."""
    from custody._fleet_output import fleet_lines
    from ledger import rebuild_availability
    from projections._availability import MISSING_ROW

    for pid in ("d0", "d1", "d2"):
        register(ledger, pid)
    take_lease(ledger, "d1")
    columns = ", ".join(c for c in AVAILABILITY_COLUMNS if c != "profile_id")
    _sql(
        ledger,
        f"INSERT INTO custody_availability (profile_id, {columns}) "
        f"SELECT 'ghost', {columns} FROM custody_availability WHERE profile_id = 'd0'",
    )
    _sql(ledger, "DELETE FROM custody_availability WHERE profile_id = 'd1'")
    _sql(ledger, "UPDATE custody_availability SET until = 'garbage' WHERE profile_id = 'd2'")
    fleet = reports.fleet(ledger=ledger)
    assert (fleet.profiles, fleet.by_state["leased"], fleet.by_state["available"]) == (3, 1, 2)
    assert list(fleet.damaged_rows) == ["d1", "d2"]
    assert fleet.damaged_rows["d1"] == MISSING_ROW
    assert "until" in fleet.damaged_rows["d2"]
    assert fleet.junk_rows == ["ghost"]
    lines = fleet_lines(fleet)
    at = lines.index("availability rows damaged: 3")
    assert lines[at + 1] == f"  d1: availability row damaged ({MISSING_ROW})"
    assert lines[at + 2].startswith("  d2: availability row damaged (until")
    assert lines[at + 3].startswith("  ghost: availability row of no registered profile")
    rebuild_availability(ledger)
    mended = reports.fleet(ledger=ledger)
    assert (mended.damaged_rows, mended.junk_rows) == ({}, [])
    assert not [line for line in fleet_lines(mended) if "availability row" in line]


def test_the_ledger_writes_every_availability_time_with_its_offset(ledger: Ledger) -> None:
    """Every time of an availability row is stored as UTC ISO 8601 text with microseconds and
    its offset, whoever writes it (a command, the rebuild): the form a read takes as sound and
    the sweep compares as text (rev36: with the fields made AwareDatetime the row's times were
    no longer converted, and the driver wrote its own text)."""
    from ledger import rebuild_availability

    register(ledger, "d1")
    take_lease(ledger, "d1")
    times = "since, until, heartbeat_at"
    query = f"SELECT {times} FROM custody_availability WHERE profile_id = 'd1'"
    (written,) = ledger.feed.query(query)
    _sql(ledger, "DELETE FROM custody_availability WHERE profile_id = 'd1'")
    rebuild_availability(ledger)
    (rebuilt,) = ledger.feed.query(query)
    for row in (written, rebuilt):
        for value in row.values():
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", value), value


def _sqlite_ledger(tmp_path: Any) -> Ledger:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    return Ledger.open(url)


_JUNK = {
    "leases-float": ("leases", "longest_gap_seconds", "'x'", "'x'"),
    "leases-integer": ("leases", "heartbeats", "'many'", "'many'"),
    "leases-fraction": ("leases", "version", "2.5", "2.5"),
    "timeline-version": ("timeline", "version", "'v'", "'v'"),
    "timeline-position": ("timeline", "position", "'p'", "'p'"),
    "timeline-token": ("timeline", "fencing_token", "'t'", "'t'"),
    "timeline-digest": ("timeline", "digest", "'d'", "'d'"),  # no read's field: Table.junk's
}


@pytest.mark.parametrize("case", sorted(_JUNK))
def test_projections_status_names_a_junk_cell_of_another_type(tmp_path: Any, case: str) -> None:
    """rev36: a cell of a read model's number column set by hand to text (SQLite keeps it)
    made ``projections status`` itself an internal error (``float('x')`` in the digest,
    ``'v' > 1`` in the scan), where it is the tool that finds damage. It now names the table,
    the column, the value and the rebuild in one line; the rebuild repairs it. (PostgreSQL's
    typed columns refuse such an edit.) Guard: ``Table.junk``/``digest``, ``_verify._scan``."""
    name, column, value, shown = _JUNK[case]
    model = READ_MODELS[name]
    with _sqlite_ledger(tmp_path) as ledger:
        register(ledger, "p1")
        take_lease(ledger, "p1")
        catch_up_all(ledger, READ_MODELS.values())
        _sql(ledger, f"UPDATE custody_{name} SET {column} = {value} WHERE rowid = 1")
        problems = _problems(ledger, model)
        assert len(problems) == 1, problems
        assert problems[0] == (
            f"{name}: profile p1: its table custody_{name}'s column {column} holds {shown} in "
            f"1 row(s), which no row it writes holds (written there by hand?): "
            f"custody projections rebuild {name}"
        )
        rebuild(ledger, model)
        assert _problems(ledger, model) == []


def test_projections_status_names_a_time_that_is_no_time(sql_store_url: str) -> None:
    """rev36: a text cell no read can turn into an answer (a time that is not a time) is
    named by ``projections status`` with its column and value, as reads name it, on both
    stores (not only '1 row(s) edited'). Guard: ``ReadModel.unreadable``'s row model."""
    with Ledger.open(sql_store_url) as ledger:
        register(ledger, "p1")
        take_lease(ledger, "p1")
        catch_up_all(ledger, READ_MODELS.values())
        _sql(ledger, "UPDATE custody_leases SET started_at = 'garbage'")
        assert _problems(ledger, LEASES_READ_MODEL) == [
            "leases: profile p1: its table custody_leases's column started_at holds 'garbage' "
            "in 1 row(s), which no row it writes holds (written there by hand?): "
            "custody projections rebuild leases"
        ]


def test_postgresql_refuses_text_in_a_number_column(pg_url: str) -> None:
    """rev36: the junk of ``test_projections_status_names_a_junk_cell_of_another_type`` cannot
    reach a PostgreSQL store: its typed columns refuse the edit (what makes that test
    SQLite's alone)."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        register(ledger, "p1")
        catch_up_all(ledger, READ_MODELS.values())
        for statement in (
            "UPDATE custody_timeline SET version = 'v'",
            f"UPDATE {CHECKPOINTS_TABLE} SET position = 'abc'",
        ):
            with pytest.raises(Exception, match="invalid input syntax for type bigint"):
                _sql(ledger, statement)


def test_replay_at_a_moment_refuses_a_junk_version_naming_the_rebuild(tmp_path: Any) -> None:
    """rev36: ``custody replay --at`` over a timeline row whose version a hand made text was
    an internal error (SQLite's ``max`` of ``'v'`` and 1 is ``'v'``, then ``'v' < 1``). It
    now refuses in one line naming the column, the value and the rebuild. Guard:
    ``projections._timeline._version``."""
    from datetime import UTC, datetime

    from projections._timeline import version_at, versions_as_of

    with _sqlite_ledger(tmp_path) as ledger:
        register(ledger, "p1")
        take_lease(ledger, "p1")
        catch_up_all(ledger, READ_MODELS.values())
        _sql(ledger, "UPDATE custody_timeline SET version = 'v' || version")
        for read in (
            lambda: version_at(ledger, "p1", datetime.now(UTC)),
            lambda: versions_as_of(ledger, ["p1"], datetime(2000, 1, 1, tzinfo=UTC)),
        ):
            with pytest.raises(ReadModelDamaged) as damaged:
                read()
            said = str(damaged.value)
            assert "read model timeline is damaged: a row's version cannot be read ('v" in said
            assert said.endswith("custody projections rebuild timeline")


@pytest.mark.parametrize("junk", ["'abc'", "2.5"])
def test_a_junk_checkpoint_is_refused_by_reads_named_by_status_and_rebuilt(
    tmp_path: Any, junk: str
) -> None:
    """rev36: a checkpoint set by hand to what no position is (SQLite keeps text, or a
    fraction ``int`` cut to a position) made every read of its read model, ``projections
    status``, ``projections rebuild`` and ``custody init`` an internal error (``int('abc')``).
    Reads now refuse in one line naming the rebuild, status names it, the rebuild and init's
    ``upgrade`` repair it. Guard: ``ledger.feed._checkpoints``, ``unreadable_position``."""
    with _sqlite_ledger(tmp_path) as ledger:
        register(ledger, "p1")
        take_lease(ledger, "p1")
        catch_up_all(ledger, READ_MODELS.values())
        for repair in (
            lambda: rebuild(ledger, TIMELINE_READ_MODEL),
            lambda: upgrade(ledger, READ_MODELS.values()),
        ):
            _sql(
                ledger,
                f"UPDATE {CHECKPOINTS_TABLE} SET position = {junk} WHERE name = ?",
                ("timeline",),
            )
            with pytest.raises(ReadModelDamaged) as damaged:
                timeline(ledger, "p1")
            said = str(damaged.value)
            assert f"its position in {CHECKPOINTS_TABLE} holds {junk}, which is no position" in said
            assert said.endswith("custody projections rebuild timeline")
            assert _problems(ledger, TIMELINE_READ_MODEL) == [
                f"timeline: its position in {CHECKPOINTS_TABLE} holds {junk}, which is no "
                "position (written there by hand?): custody projections rebuild timeline"
            ]
            repair()
            assert _problems(ledger, TIMELINE_READ_MODEL) == []
            assert len(timeline(ledger, "p1")) == 2
