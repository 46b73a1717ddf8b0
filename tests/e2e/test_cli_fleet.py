"""End to end: the fleet commands on SQLite (fleet, status with its summary, health,
checklist, report), what a program reads from them, and their bad input."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from cli_process import custody, error_line, ok, on_a_terminal
from fleet_store import scripted_store


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The scripted fleet, shared by the module's tests (which only read, except report,
    which writes its page beside the store)."""
    cwd = tmp_path_factory.mktemp("fleet")
    store, _ = scripted_store(cwd)
    return cwd, store


def test_status_in_a_pipe_is_the_table_alone_and_summary_adds_the_fleet(
    fleet: tuple[Path, str],
) -> None:
    """In a pipe status is one line per profile, as scripts read it; --summary adds a blank
    line and the fleet summary; on a terminal the summary comes unasked, never to a pipe
    because FORCE_COLOR is set."""
    cwd, store = fleet
    piped = ok(custody("status", cwd=cwd, store=store)).out.splitlines()
    assert len(piped) == 8
    assert piped[0].split()[0] == "PROFILE"
    summary = ok(custody("status", "--summary", cwd=cwd, store=store)).out.splitlines()
    assert summary[:8] == piped
    assert summary[8] == ""
    assert summary[9].startswith("fleet: 7 profiles: available 2, leased 1, review_required 3")
    assert summary[9].endswith("overdue 1")
    terminal = on_a_terminal("status", cwd=cwd, store=store, env={"COLUMNS": "200"})
    assert "fleet: 7 profiles" in ok(terminal).out
    forced = custody("status", cwd=cwd, store=store, env={"FORCE_COLOR": "1"})
    assert "fleet" not in ok(forced).out  # colour asked for is no terminal


def test_status_json_stays_a_list_and_summary_makes_it_an_object(
    fleet: tuple[Path, str],
) -> None:
    """``--json status`` is the list of rows it always was; with --summary it is an object
    holding those rows and the fleet."""
    cwd, store = fleet
    rows = ok(custody("--json", "status", cwd=cwd, store=store)).json()
    assert isinstance(rows, list)
    assert len(rows) == 7
    both = ok(custody("--json", "status", "--summary", cwd=cwd, store=store)).json()
    assert both["profiles"] == rows
    assert both["fleet"]["by_state"]["review_required"] == 3


def test_fleet_prints_the_summary_and_json_for_a_program(fleet: tuple[Path, str]) -> None:
    """``fleet`` prints counts, the stuck profiles longest first and time in review;
    ``--json fleet`` the same as an object, and --account narrows it."""
    cwd, store = fleet
    lines = ok(custody("fleet", cwd=cwd, store=store)).out.splitlines()
    assert lines[0].startswith("fleet: 7 profiles")
    stuck = lines.index("stuck the longest:")
    assert [line.split(":")[0].strip() for line in lines[stuck + 1 : stuck + 6]] == [
        "a2", "a3", "a4", "b2", "b1"
    ]  # fmt: skip
    body = ok(custody("--json", "fleet", "--account", "acct_b", cwd=cwd, store=store)).json()
    assert (body["profiles"], body["overdue"], body["review"]["waiting"]) == (3, 1, 1)


def test_health_as_csv_json_and_tables(fleet: tuple[Path, str]) -> None:
    """csv is one table with a ``table`` column naming each row's table; json an object of
    tables; the table format a heading per table. w4's lease on b1, past its deadline and
    not swept, is overdue and unclean, not live (rev42)."""
    cwd, store = fleet
    text = ok(custody("health", "--format", "csv", cwd=cwd, store=store)).out
    rows = list(csv.DictReader(io.StringIO(text)))
    by_worker = [r for r in rows if r["table"] == "endings_by_worker"]
    assert [(r["worker_id"], r["unclean"], r["overdue"], r["live"]) for r in by_worker] == [
        ("w2", "2", "0", "0"), ("w3", "2", "0", "0"), ("w4", "2", "1", "0"), ("w1", "0", "0", "0")
    ]  # fmt: skip
    body = ok(custody("health", "--format", "json", cwd=cwd, store=store)).json()
    assert [r["profile_id"] for r in body["failing"]] == ["a2"]
    tables = ok(custody("health", cwd=cwd, store=store)).out
    assert "endings by worker:" in tables
    assert "heartbeat gaps:" in tables


def test_health_csv_has_the_same_columns_on_a_quiet_day(
    fleet: tuple[Path, str], tmp_path: Path
) -> None:
    """rev28: the header held only the columns of tables with rows: before the first lease no
    ``worker_id``, ``profile_id`` or ``account_id``, and ``causes`` and ``failing`` only on a
    day with rows in them, so a script reading columns by name failed on a quiet day. A store
    with one profile and no lease gives the busy fleet's header."""
    cwd, store = fleet
    busy = ok(custody("health", "--format", "csv", cwd=cwd, store=store)).out.splitlines()[0]
    quiet = f"sqlite:///{tmp_path / 'quiet.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=quiet))
    header = ok(custody("health", "--format", "csv", cwd=tmp_path, store=quiet)).out
    assert header.splitlines()[0] == busy
    assert {"worker_id", "profile_id", "account_id", "cause", "unclean_leases"} <= set(
        busy.split(",")
    )


def test_health_refuses_a_failing_threshold_above_the_window(fleet: tuple[Path, str]) -> None:
    """--failing-at more than --last can never be met: bad input, one line, exit 2."""
    cwd, store = fleet
    run = custody("health", "--last", "2", "--failing-at", "3", cwd=cwd, store=store)
    assert run.code == 2
    assert "--failing-at" in error_line(run)


def test_checklist_exits_0_and_5_under_strict_when_answers_need_attention(
    fleet: tuple[Path, str],
) -> None:
    """The checklist prints eleven answers and exits 0 whatever they say; under --strict an
    answer needing attention makes it exit 5 with one line naming them."""
    cwd, store = fleet
    run = ok(custody("checklist", cwd=cwd, store=store))
    assert run.out.splitlines()[-1] == "9 ok, 2 need attention"
    assert " 4. [attention] Does the worker send heartbeat updates?" in run.out
    strict = custody("checklist", "--strict", cwd=cwd, store=store)
    assert strict.code == 5
    assert error_line(strict) == "custody: checklist: 2 answer(s) need attention (4, 5)"
    body = ok(custody("--json", "checklist", cwd=cwd, store=store)).json()
    assert (len(body["checks"]), body["attention"]) == (11, 2)


def test_report_writes_one_page_and_replaces_an_old_one(fleet: tuple[Path, str]) -> None:
    """report --html writes the page (replacing one there) with the mode any new file gets,
    says what it drew, and leaves no temporary file beside it."""
    cwd, store = fleet
    target = cwd / "out" / "fleet.html"
    target.parent.mkdir()
    target.write_text("old page")
    said = ok(custody("--json", "report", "--html", str(target), cwd=cwd, store=store)).json()
    assert (said["leases"], said["leases_drawn"], said["attention"]) == (8, 8, 2)
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["fleet.html"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file, not 0600


@pytest.mark.parametrize(
    ("where", "words"),
    [("missing/dir/fleet.html", "does not exist"), (".", "is a directory")],
)
def test_report_to_a_missing_directory_or_a_directory_is_one_line(
    fleet: tuple[Path, str], where: str, words: str
) -> None:
    """A page whose directory is missing, or a directory as the page: exit 2, one line naming
    --html, and nothing written."""
    cwd, store = fleet
    before = sorted(p.name for p in cwd.iterdir())
    run = custody("report", "--html", where, cwd=cwd, store=store)
    assert run.code == 2
    line = error_line(run)
    assert "--html" in line
    assert words in line
    assert sorted(p.name for p in cwd.iterdir()) == before


def test_fleet_commands_on_a_missing_store_create_nothing(tmp_path: Path) -> None:
    """fleet, health, checklist and report on a path with no store say so and create no
    store file."""
    for args in (["fleet"], ["health"], ["checklist"], ["report", "--html", "r.html"]):
        run = custody(*args, cwd=tmp_path)
        assert run.code != 0, args
        error_line(run)
    assert list(tmp_path.iterdir()) == []
