"""The read models at the command line: ``projections status`` names damage and exits 1, a
dropped table is named by reads (exit 1, not 'store unavailable') and re-made by its rebuild,
and ``init`` rebuilds a read model of an older layout."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_process import Run, custody, custody_all, error_line, ok


def _cli(store: str, cwd: Path, *args: str) -> Run:
    return custody("--store", store, *args, cwd=cwd)


@pytest.fixture
def store(tmp_path: Path) -> str:
    """A SQLite store with a profile that had a lease with heartbeats, its read models
    current."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(_cli(url, tmp_path, "register", "p", "--account", "a", "--proxy", "x"))
    lease = ok(_cli(url, tmp_path, "--json", "checkout", "p", "--worker", "w", "--run", "r",
                    "--task", "t")).json()["lease_id"]  # fmt: skip
    for step in ("one", "two"):
        ok(_cli(url, tmp_path, "heartbeat", lease, "--token", "1", "--step", step))
    ok(_cli(url, tmp_path, "projections", "run", "--rounds", "1"))
    return url


def _sql(tmp_path: Path, statement: str) -> None:
    with sqlite3.connect(tmp_path / "custody.db") as conn:
        conn.execute(statement)


def test_projections_status_names_the_damage_and_exits_1(store: str, tmp_path: Path) -> None:
    """A timeline row deleted by hand: status prints one line naming the read model, the
    profile and the repair, exits 1 (also with --json, which lists the problems); the
    rebuild it names repairs it, and status exits 0 again."""
    assert "lag 0" in ok(_cli(store, tmp_path, "projections", "status")).out
    _sql(tmp_path, "DELETE FROM custody_timeline WHERE version = 2")
    run = _cli(store, tmp_path, "projections", "status")
    assert run.code == 1, run.err
    assert (
        "  timeline: profile p: 1 row(s) missing (3 for 4 events): "
        "custody projections rebuild timeline"
    ) in run.out.splitlines()
    assert "damaged" in error_line(run)
    shown = _cli(store, tmp_path, "--json", "projections", "status")
    assert shown.code == 1
    problems = {s["name"]: s["problems"] for s in shown.json()}
    assert (len(problems["timeline"]), problems["leases"]) == (1, [])
    ok(_cli(store, tmp_path, "projections", "rebuild", "timeline"))
    ok(_cli(store, tmp_path, "projections", "status"))


def test_a_dropped_read_model_is_named_and_its_rebuild_makes_it_again(
    store: str, tmp_path: Path
) -> None:
    """With custody_timeline dropped: timeline and why exit 1 (not 6) with one line naming
    the read model and its repair; status says the table is missing; the rebuild makes it
    again and nothing says a rebuild is under way."""
    _sql(tmp_path, "DROP TABLE custody_timeline")
    for args in (("timeline", "p"), ("why", "p")):
        run = _cli(store, tmp_path, *args)
        assert run.code == 1, run.err
        line = error_line(run)
        assert "read model timeline is damaged: its table custody_timeline is missing" in line
        assert line.endswith("custody projections rebuild timeline")
    status = _cli(store, tmp_path, "projections", "status")
    assert status.code == 1
    assert "custody_timeline is missing" in status.out
    ok(_cli(store, tmp_path, "projections", "rebuild", "timeline"))
    status = ok(_cli(store, tmp_path, "projections", "status")).out
    assert "rebuild is under way" not in status
    assert len(ok(_cli(store, tmp_path, "--json", "timeline", "p")).json()) == 4


def test_init_rebuilds_a_read_model_of_an_older_layout(store: str, tmp_path: Path) -> None:
    """A timeline table without the digest column (an older custody's): reads name it and
    say custody init repairs it; init rebuilds it and says so; reads work again."""
    _sql(tmp_path, "ALTER TABLE custody_timeline DROP COLUMN digest")
    run = _cli(store, tmp_path, "timeline", "p")
    assert run.code == 1
    assert "lacks digest" in error_line(run)
    said = ok(_cli(store, tmp_path, "init")).out
    assert "rebuilt: timeline (4 rows)" in said
    assert len(ok(_cli(store, tmp_path, "--json", "timeline", "p")).json()) == 4
    assert "rebuilt" not in ok(_cli(store, tmp_path, "init")).out


def test_lost_checkpoints_are_named_at_the_command_line_and_init_repairs_them(
    store: str, tmp_path: Path
) -> None:
    """Every read model's checkpoint deleted beside its table: status said 'not installed
    yet' and exited 0 while reads, rebuild and init all failed with exit 6 'table ... already
    exists'. Now status names each as damage with its rebuild (exit 1), a read names it
    (exit 1), and init repairs both."""
    _sql(tmp_path, "DELETE FROM custody_projection_positions")
    run = _cli(store, tmp_path, "projections", "status")
    assert run.code == 1, run.err
    assert "timeline: no position, 4 events in the log" in run.out.splitlines()
    assert (
        "  leases: its position is lost (no row in custody_projection_positions) while its "
        "table custody_leases remains: custody projections rebuild leases"
    ) in run.out.splitlines()
    read = _cli(store, tmp_path, "timeline", "p")
    assert read.code == 1, read.err
    assert error_line(read).endswith("repair it with custody projections rebuild timeline")
    ok(_cli(store, tmp_path, "init"))
    ok(_cli(store, tmp_path, "projections", "status"))
    assert len(ok(_cli(store, tmp_path, "timeline", "p")).out.splitlines()) == 4


_HEARTBEAT_ROW = (
    "rowid = (SELECT min(rowid) FROM custody_timeline WHERE event_type = 'lease_heartbeat')"
)
_TIMELINE_READS = (("timeline", "p"),)
_LEASES_READS = (("usage", "--account", "a"), ("fleet",))
# What a hand put in one row's cell (SQLite keeps any value in any column), the row, the value
# as the one line quotes it and the reads that meet it.
_JUNK_CELLS = {
    "timeline-version-fraction": (
        "timeline", "version", "2.5", _HEARTBEAT_ROW, "'2.5'", _TIMELINE_READS,
    ),
    "timeline-detail-blob": (
        "timeline", "detail", "x'ff00'", _HEARTBEAT_ROW, "\"b'\\\\xff\\\\x00'\"", _TIMELINE_READS,
    ),
    "leases-heartbeats-1e30": ("leases", "heartbeats", "1e30", "1 = 1", "'1e+30'", _LEASES_READS),
    "leases-heartbeats-infinity": (
        "leases", "heartbeats", "9e999", "1 = 1", "'inf'", _LEASES_READS,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_JUNK_CELLS))
def test_a_junk_cell_is_named_alike_as_rows_and_as_json(
    store: str, tmp_path: Path, case: str
) -> None:
    """rev45: a cell no row holds, read as rows and with --json (a DataFrame): --json named
    another row's detail or 'None' where the rows read named the cell, and a heartbeat count
    of 1e30 printed pandas' "RuntimeWarning: invalid value encountered in cast" and its
    source line above the one line (infinity: 'internal error: OverflowError'). Every read
    now prints the same one line naming the cell's value and exits 1. Guard: ``_unreadable``
    and ``_integers``'s check before the cast in ``reports._frames``."""
    table, column, value, row, shown, reads = _JUNK_CELLS[case]
    _sql(tmp_path, f"UPDATE custody_{table} SET {column} = {value} WHERE {row}")
    commands = [(*flag, *args) for args in reads for flag in ((), ("--json",))]
    runs = custody_all([("--store", store, *c) for c in commands], cwd=tmp_path)
    said = (
        f"custody: read model {table} is damaged: a row's {column} cannot be read ({shown}: "
        f"written there by hand?); repair it with custody projections rebuild {table}"
    )
    for command, run in zip(commands, runs, strict=True):
        assert (command, run.code, error_line(run)) == (command, 1, said)
