"""End to end: how the command line looks (tables in a pipe and on a terminal) and what it
imports to start, on the embedded SQLite store."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
from cli_process import custody, custody_all, error_line, ok, on_a_terminal

# The longest profile id the ledger accepts (128 characters), ending in a mark of its own so a
# cut or a wrap shows.
LONG_ID = "p" + "x" * 126 + "Z"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the longest possible profile id (available) and a short one leased by a
    worker whose name looks like rich markup."""
    cwd = tmp_path_factory.mktemp("looks")
    ok(custody("register", LONG_ID, "--account", "a", "--proxy", "x", cwd=cwd))
    ok(custody("register", "short", "--account", "a", "--proxy", "x", cwd=cwd))
    checkout = ["checkout", "short", "--worker", "w[bold]1", "--run", "r", "--task", "t"]
    ok(custody(*checkout, cwd=cwd))
    return cwd


def test_piped_status_keeps_a_128_character_id_whole_on_one_line(fleet: Path) -> None:
    """In a pipe, status is plain text, one line per profile however long the id: the full
    128-character id, then its state, never wrapped, cut or coloured."""
    run = ok(custody("status", cwd=fleet))
    lines = run.out.splitlines()
    assert "\x1b" not in run.out
    assert len(lines) == 3, run.out
    assert lines[0].split()[0] == "PROFILE"
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[LONG_ID][1] == "available"
    assert rows["short"][1:4] == ["leased", "already_leased", "w[bold]1"]
    assert all(line == line.rstrip() for line in lines)


@pytest.mark.parametrize("looks", ["FORCE_COLOR=1", "TTY_COMPATIBLE=1"])
def test_forced_colour_in_a_pipe_colours_the_table_and_changes_nothing_else(
    fleet: Path, looks: str
) -> None:
    """rev29: with FORCE_COLOR or TTY_COMPATIBLE set (as CI runners set them), a piped
    status was rich's 80-column table, the 128-character id wrapped over several lines (grep
    found none) and the fleet summary added unasked. Now it is the pipe's lines, coloured:
    once the colour is taken out, exactly what a plain pipe gets."""
    name, value = looks.split("=")
    plain = ok(custody("status", cwd=fleet)).out
    forced = ok(custody("status", cwd=fleet, env={name: value, "TERM": "xterm-256color"})).out
    assert "\x1b[" in forced
    assert ANSI.sub("", forced) == plain


def test_status_on_a_terminal_is_coloured_and_folds_without_cutting(fleet: Path) -> None:
    """On a terminal 60 columns wide, status is coloured and fits the width; the long id folds
    inside its column, every character kept, and nothing is cut with an ellipsis."""
    run = ok(on_a_terminal("status", cwd=fleet, env={"COLUMNS": "60"}))
    assert "\x1b[" in run.out
    lines = ANSI.sub("", run.out).splitlines()
    assert all(len(line) <= 60 for line in lines), lines
    assert "…" not in run.out
    first_column = "".join(line.split()[0] for line in lines if line and not line[0].isspace())
    assert LONG_ID in first_column


def test_status_on_a_terminal_too_narrow_for_its_columns_still_shows_every_row(
    fleet: Path,
) -> None:
    """rev22: on a terminal narrower than about 12 columns (COLUMNS=10, or 0) status drew its
    header rule and no row at all, exit 0. Each column keeps a few cells and the lines wrap:
    every profile and its state are there."""
    for width in ("10", "0"):
        run = ok(on_a_terminal("status", cwd=fleet, env={"COLUMNS": width}))
        shown = ANSI.sub("", run.out)
        first_column = "".join(line.split()[0] for line in shown.splitlines() if line[:1].strip())
        assert LONG_ID in first_column, shown
        assert "short" in first_column, shown


def test_every_command_listed_by_help_has_its_own_help(tmp_path: Path) -> None:
    """Each command ``custody --help`` lists answers ``--help`` with its usage line, and the
    choices the ledger defines show in it."""
    top = ok(custody("--help", cwd=tmp_path)).out
    listed = top.split("Commands:\n", 1)[1].splitlines()
    commands = [line.split()[0] for line in listed if line.strip()]
    assert commands[:3] == ["init", "register", "checkout"], commands
    runs = custody_all([[command, "--help"] for command in commands], cwd=tmp_path)
    for command, run in zip(commands, runs, strict=True):
        assert ok(run).out.startswith(f"usage: custody {command} "), run.out
    helps = dict(zip(commands, (run.out for run in runs), strict=True))
    assert "[success|expected_failure|failure]" in helps["release"]
    assert "[return|quarantine|disable]" in helps["review"]
    assert "strict_evidence" in helps["register"]
    assert list(tmp_path.iterdir()) == []


# What a command may not import at start-up: reported by a probe that runs custody's main in
# the process and then lists the top-level modules loaded.
PROBE = """
import json, sys
from custody.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
HEAVY = {"ledger", "projections", "pydantic", "eventsourcing", "rich", "psycopg", "psycopg_pool"}


def loaded(*args: str, cwd: Path) -> set[str]:
    """The top-level modules ``custody ARGS`` imported (the command must exit 0)."""
    return {m.split(".")[0] for m in modules_of(*args, cwd=cwd)}


def modules_of(*args: str, cwd: Path) -> set[str]:
    """Every module ``custody ARGS`` imported, submodules too (the command must exit 0)."""
    run = custody(*args, cwd=cwd, program=(sys.executable, "-c", PROBE))
    report = json.loads(run.out.splitlines()[-1])
    assert report["code"] == 0, run.err
    return set(report["modules"])


# Reports, after a command, whether the collector runs and whether the ledger's classes (made
# by its first import, with most of the start-up's objects) are left out of its collections.
COLLECTOR_PROBE = """
import gc, json, sys
from custody.cli import main
code = main(sys.argv[1:])
from ledger import Availability, Ledger
made = [Ledger, Availability]  # both made by every command's first import of the ledger
collected = {id(o) for o in gc.get_objects()}
frozen = all(gc.is_tracked(c) and id(c) not in collected for c in made)
print(json.dumps({"code": code, "collecting": gc.isenabled(), "frozen": frozen}))
"""


@pytest.mark.parametrize(
    "args", [["status"], ["usage", "--account", "a", "--since", "2020-01-01"]], ids=" ".join
)
def test_the_ledger_s_first_import_is_left_out_of_collections_which_then_resume(
    fleet: Path, args: list[str]
) -> None:
    """What the ledger's first import makes in a command's process, most of its start-up and
    all of it for good, is left out of every collection (``gc.freeze``), whether the ledger is
    first imported to read a time (``usage --since``) or to open the store; and the collector
    runs again after it, so a command that runs for hours still collects."""
    run = custody(*args, cwd=fleet, program=(sys.executable, "-c", COLLECTOR_PROBE))
    report = json.loads(run.out.splitlines()[-1])
    assert report["code"] == 0, run.err
    assert report == {"code": 0, "collecting": True, "frozen": True}


def test_help_imports_neither_the_ledger_nor_rich(tmp_path: Path) -> None:
    """``custody --help`` imports click alone: no ledger, pydantic, eventsourcing, rich or
    psycopg."""
    modules = loaded("--help", cwd=tmp_path)
    assert "click" in modules
    assert modules.isdisjoint(HEAVY), modules & HEAVY


def test_status_on_sqlite_never_imports_psycopg_nor_playwright(fleet: Path) -> None:
    """``custody status`` on an SQLite store reads the ledger and draws its table without
    importing psycopg, its pool, or Playwright (about 140 ms of start-up), nor the workers'
    side at all: the renderer checks an answer's class only once its module was imported."""
    modules = loaded("status", cwd=fleet)
    assert {"ledger", "projections", "rich"} <= modules
    assert modules.isdisjoint({"psycopg", "psycopg_pool", "playwright", "workers"}), modules


def test_each_command_is_found_in_the_module_the_group_names() -> None:
    """The group's map of where each command lives (``custody._commands.HOMES``) names every
    command defined outside ``custody._commands``, each in the module that defines it, in the
    order ``--help`` lists them."""
    from custody._commands import HOMES, cli

    listed = cli.list_commands(cli.make_context("custody", []))
    home = {name: cli.commands[name].callback.__module__ for name in listed}
    assert {n: m for n, m in home.items() if m != "custody._commands"} == HOMES
    assert [n for n in listed if n in HOMES] == list(HOMES)


def test_a_command_imports_its_own_module_alone(fleet: Path) -> None:
    """``status`` imports the module of the commands that say where profiles stand, and none of
    the other command modules (the fleet's, the reports', the audit's, the operators')."""
    modules = modules_of("status", cwd=fleet)
    assert "custody._profiles" in modules
    others = {
        "custody._operating",
        "custody._demo_command",
        "custody._fleet_commands",
        "custody._reading",
        "custody._audit_commands",
    }
    assert modules.isdisjoint(others), modules & others


# Modules only a command that writes, or a read model's upkeep, needs: the command models and
# their handlers (``ledger/__init__`` and ``Ledger.handle`` import them when asked), and the
# leases read model (``projections/__init__`` likewise).
WRITE_SIDE = {"ledger._commands", "ledger._handlers", "projections._leases"}


@pytest.mark.parametrize(
    "args",
    [["status"], ["why", "short"], ["who", "short"], ["timeline", "short"]],
    ids=" ".join,
)
def test_reading_commands_build_no_command_model(fleet: Path, args: list[str]) -> None:
    """A command that only reads imports none of the command models or their handlers (about a
    third of the ledger's start-up), nor a read model it does not read."""
    modules = modules_of(*args, cwd=fleet)
    assert "ledger._application" in modules
    assert modules.isdisjoint(WRITE_SIDE), modules & WRITE_SIDE


# The read models fed from the event log and their catch-up: what a report brings up to date
# before it reads, never what the availability table (written with the events) needs.
CATCH_UP = {"projections._timeline", "projections._runner", "projections._base"}


def test_status_brings_no_read_model_up_to_date(fleet: Path) -> None:
    """``status`` reads the availability table alone: it imports neither the timeline nor the
    read models' catch-up, which only ``status --account`` of an account without a row reads
    (to tell an unknown account from one whose row is missing)."""
    modules = modules_of("status", cwd=fleet)
    assert "projections._availability" in modules
    assert modules.isdisjoint(CATCH_UP), modules & CATCH_UP
    unknown = custody("status", "--account", "nobody", cwd=fleet)
    assert unknown.code == 2, unknown.err
    assert error_line(unknown).endswith("no profile was ever registered under account 'nobody'")


# The aggregate, its events and its state machine: what a command loading a profile, or folding
# new events into a read model, needs; never what a read of tables alone does.
AGGREGATE = {"ledger._domain.events", "ledger._domain.state", "ledger._domain.profile"}


@pytest.mark.parametrize(
    "args",
    [["status"], ["timeline", "short"], ["usage", "--account", "a", "--since", "2020-01-01"]],
    ids=" ".join,
)
def test_reading_tables_imports_neither_the_aggregate_nor_its_events(
    fleet: Path, args: list[str]
) -> None:
    """A command that reads tables alone (the availability table; read models with no new
    event to fold) imports neither the aggregate nor its events (about 15 ms of its imports):
    each row it reads is still checked by the row's model, which imports neither."""
    ok(custody(*args, cwd=fleet))  # folds whatever its read models had not seen
    modules = modules_of(*args, cwd=fleet)
    assert "ledger._stores.recorders" in modules  # the store was opened, its rows read
    assert modules.isdisjoint(AGGREGATE), modules & AGGREGATE


# The aggregate's commands and the rules only they run (leases granted and renewed, release
# policies, who may record what): what a command that writes needs, never a read of a profile.
COMMANDS_OF_THE_AGGREGATE = {
    "ledger._domain.profile",
    "ledger._domain.aggregate",
    "ledger._domain.leasing",
    "ledger._domain.policies",
    "ledger._domain.authority",
}


@pytest.mark.parametrize("args", [["why", "short"], ["who", "short"]], ids=" ".join)
def test_reading_a_profile_folds_its_events_without_the_aggregate_s_commands(
    fleet: Path, args: list[str]
) -> None:
    """A command that reads a profile (``why``, ``who``) folds its events into the state
    machine alone (``Store.state``): it imports the events and the state machine, never the
    aggregate's commands and the rules only they run (about 5 ms of its imports), nor, for a
    stream with no snapshot yet (these are short), the snapshot's model."""
    modules = modules_of(*args, cwd=fleet)
    assert {"ledger._domain.events", "ledger._domain.state"} <= modules
    assert modules.isdisjoint(COMMANDS_OF_THE_AGGREGATE), modules & COMMANDS_OF_THE_AGGREGATE
    assert "ledger._domain.snapshot" not in modules


@pytest.mark.parametrize(
    "args",
    [
        ["why", "short"],
        ["who", "short"],
        ["timeline", "short"],
        ["usage", "--account", "a", "--since", "2020-01-01"],
    ],
    ids=" ".join,
)
def test_a_read_s_catch_up_imports_no_check_of_the_read_models(
    fleet: Path, args: list[str]
) -> None:
    """A read brings the timeline (or the leases) up to date through the catch-up, without
    importing the check of a read model's rows against the log (``projections._verify``),
    which only ``projections status`` runs."""
    modules = modules_of(*args, cwd=fleet)
    assert "projections._runner" in modules
    assert "projections._verify" not in modules


# Reports which of the domain's patterns (ids, control characters, lone surrogates) a command
# compiled with ``re.compile``, as an import would: each is compiled on its first match instead.
COMPILED_PROBE = """
import json, re, sys
compiled, real = [], re.compile
def counted(pattern, flags=0):
    compiled.append(pattern)
    return real(pattern, flags)
re.compile = counted
from custody.cli import main
code = main(sys.argv[1:])
from ledger._domain import model
ours = [model.PROFILE_ID_PATTERN, model._LEASE_ID, model._CONTROL, model._SURROGATE]
print(json.dumps({"code": code, "compiled": [ours.index(p) for p in ours if p in compiled]}))
"""


@pytest.mark.parametrize("args", [["status"], ["why", "short"]], ids=" ".join)
def test_the_domain_compiles_no_pattern_at_import(fleet: Path, args: list[str]) -> None:
    """Importing the domain compiles none of its regular expressions (about 0.7 ms): each is
    compiled by ``re`` on its first match and kept, so a read that checks no lease id and no
    name never compiles theirs."""
    run = custody(*args, cwd=fleet, program=(sys.executable, "-c", COMPILED_PROBE))
    report = json.loads(run.out.splitlines()[-1])
    assert report == {"code": 0, "compiled": []}, run.err


def test_why_inspects_without_importing_what_stops_a_browser(fleet: Path) -> None:
    """``why`` inspects the profile's directory (``workers._inspector``) without importing
    ``signal``, which only stopping an orphaned browser sends (``inspect --stop-orphan``), nor
    ``socket``: the host's name, which Chromium writes into its lock, is read from ``uname``."""
    modules = modules_of("why", "short", cwd=fleet)
    assert "workers._inspector" in modules
    assert "signal" not in modules
    assert "socket" not in modules


@pytest.mark.parametrize("args", [["status"], ["why", "short"], ["who", "short"]], ids=" ".join)
def test_a_read_looks_for_pydantic_s_plugins_without_importlib_metadata(
    fleet: Path, args: list[str]
) -> None:
    """Where no pydantic plugin is installed, a command learns so without importing
    ``importlib.metadata`` (11 to 14 ms of its start-up; ``custody._pydantic_plugins``)."""
    modules = modules_of(*args, cwd=fleet)
    assert "pydantic" in modules
    assert "importlib.metadata" not in modules


# A pydantic plugin, as a distribution installs one: its module and its entry point.
PLUGIN = """
import sys

class Plugin:
    def new_schema_validator(self, schema, schema_type, path, kind, config, settings):
        sys.stderr.write(f"plugin saw {path.name}\\n")
        return None, None, None

plugin = Plugin()
"""


@pytest.mark.parametrize(
    ("entry_points", "disabled", "seen"),
    [
        ("[pydantic]\nseeing = seeing_plugin:plugin\n", None, True),
        ("[console_scripts]\nx = y:z\n\n [pydantic] \nseeing = seeing_plugin:plugin\n", None, True),
        ("[pydantic]\nseeing = seeing_plugin:plugin\n", "seeing", False),
        ("[pydantic]\nseeing = seeing_plugin:plugin\n", "__all__", False),
        ("[console_scripts]\nseeing = seeing_plugin:plugin\n", None, False),
    ],
    ids=["declared", "declared-after-another-group", "disabled-by-name", "all-disabled", "none"],
)
def test_a_pydantic_plugin_installed_beside_custody_is_loaded_as_pydantic_loads_it(
    fleet: Path, tmp_path: Path, entry_points: str, disabled: str | None, seen: bool
) -> None:
    """The cheap look for pydantic's plugins hands a plugin that is there to pydantic's own
    loader: the plugin sees the ledger's models built, and ``PYDANTIC_DISABLE_PLUGINS`` still
    turns it off."""
    (tmp_path / "seeing_plugin.py").write_text(PLUGIN)
    metadata = tmp_path / "seeing_plugin-1.0.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: seeing-plugin\nVersion: 1.0\n")
    (metadata / "entry_points.txt").write_text(entry_points)
    env = {"PYTHONPATH": str(tmp_path)}
    if disabled is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = disabled
    run = ok(custody("status", cwd=fleet, env=env))
    assert ("plugin saw StoreSettings" in run.err) is seen, run.err


# Reports every value model (``ledger._domain.model.Frozen``'s subclasses) a command defined.
DEFINED_PROBE = """
import json, sys
from custody.cli import main
code = main(sys.argv[1:])
from ledger._domain.model import Frozen
def every(cls):
    for sub in cls.__subclasses__():
        yield sub.__name__
        yield from every(sub)
print(json.dumps({"code": code, "defined": sorted(set(every(Frozen)))}))
"""
ANSWERS_OF_COMMANDS = {"ReleaseResult", "SweepResult", "SweepFailure", "SweepReport"}


@pytest.mark.parametrize("args", [["status"], ["why", "short"], ["who", "short"]], ids=" ".join)
def test_a_read_defines_none_of_the_answers_of_commands(fleet: Path, args: list[str]) -> None:
    """The answers of the commands that end leases (``ledger._domain.results``) are defined
    with what makes them, not with the vocabulary every command imports: a read defines none
    of them (about 0.7 ms), though it defines the lease, the denial and the view."""
    run = custody(*args, cwd=fleet, program=(sys.executable, "-c", DEFINED_PROBE))
    report = json.loads(run.out.splitlines()[-1])
    assert report["code"] == 0, run.err
    assert "Lease" in report["defined"]
    assert ANSWERS_OF_COMMANDS.isdisjoint(report["defined"]), report["defined"]


DRAWING = {"pandas", "pyarrow", "matplotlib"}  # for what draws or exports, never for lines
ELSEWHERE = {"psycopg", "psycopg_pool", "playwright"}  # another store's driver, a browser


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["why", "short"],
        ["who", "short"],
        ["timeline", "short"],
        ["timeline", "--account", "a", "--since", "2020-01-01", "--until", "2999-12-31"],
        ["usage", "--account", "a", "--since", "2020-01-01"],
    ],
    ids=" ".join,
)
def test_answers_for_a_person_import_neither_pandas_nor_matplotlib(
    fleet: Path, args: list[str]
) -> None:
    """The commands typed at a prompt read the ledger on SQLite without importing pandas,
    pyarrow or matplotlib (the reports' DataFrames and chart), psycopg or Playwright: each of
    those costs more than the whole command should take."""
    modules = loaded(*args, cwd=fleet)
    assert "ledger" in modules
    assert modules.isdisjoint(DRAWING | ELSEWHERE), modules & (DRAWING | ELSEWHERE)


def test_usage_as_csv_imports_pandas_for_its_frame_but_never_the_chart(fleet: Path) -> None:
    """``usage --format csv`` reads its leases as a DataFrame (``reports.usage``), but the
    reports package imports each report when asked: not matplotlib, which only the HTML
    report's chart draws with. (As a table for a person, usage imports no pandas at all.)"""
    args = ["usage", "--account", "a", "--since", "2020-01-01", "--format", "csv"]
    modules = loaded(*args, cwd=fleet)
    assert "pandas" in modules
    assert modules.isdisjoint({"matplotlib"} | ELSEWHERE), modules & ({"matplotlib"} | ELSEWHERE)


@pytest.mark.parametrize(
    "args", [["status"], ["usage", "--account", "a", "--since", "2020-01-01"]], ids=" ".join
)
def test_a_table_in_a_pipe_is_laid_out_without_rich_s_console(fleet: Path, args: list[str]) -> None:
    """In a pipe a table is laid out by rich's measure of a character's width alone: rich's
    console and table (about 25 ms of start-up) are imported only to draw on a terminal."""
    modules = modules_of(*args, cwd=fleet)
    assert "rich.cells" in modules
    drawing = {"rich.console", "rich.table", "rich.text"}
    assert modules.isdisjoint(drawing), modules & drawing


def test_json_and_empty_answers_never_import_rich(tmp_path: Path) -> None:
    """rich is imported only to draw a table: not for ``--json status``, nor for the status of
    a store with no profile."""
    ok(custody("init", cwd=tmp_path))
    for args in (["--json", "status"], ["status"]):
        modules = loaded(*args, cwd=tmp_path)
        assert "ledger" in modules
        assert "rich" not in modules, args


# Failures from inside a running command: the probe replaces the read side's status with one
# that raises, as a Ctrl-C or a bug of ours would.
RAISING = """
import sys, projections
from custody.cli import main
def status(*args, **kwargs):
    raise {error}
projections.status = status
sys.exit(main(["status"]))
"""


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        ("KeyboardInterrupt", 130, "custody: interrupted"),
        ("RuntimeError('boom\\nsecond line')", 1, "custody: internal error: RuntimeError: boom"),
    ],
)
def test_interrupt_and_internal_error_are_one_line(
    fleet: Path, error: str, code: int, line: str
) -> None:
    """A Ctrl-C while a command runs exits 130 and a bug of ours exits 1, each with one line on
    stderr and no traceback."""
    run = custody(cwd=fleet, program=(sys.executable, "-c", RAISING.format(error=error)))
    assert run.code == code, run.err
    assert error_line(run).startswith(line)


def test_an_internal_error_under_json_is_a_json_object_too(fleet: Path) -> None:
    """The cli review: under ``--json`` every other error is an object on stdout, as the docs
    promise a program; a bug of ours printed nothing there, so a caller parsing stdout failed on
    an empty string. It is an object like the others now, with exit code 1."""
    program = RAISING.replace('main(["status"])', 'main(["--json", "status"])')
    run = custody(cwd=fleet, program=(sys.executable, "-c", program.format(error="KeyError('x')")))
    assert run.code == 1, run.err
    assert error_line(run).startswith("custody: internal error: KeyError: 'x'")
    body = json.loads(run.out)
    assert body == {
        "error": "InternalError",
        "exit_code": 1,
        "message": "internal error: KeyError: 'x'",
    }


def test_forced_colour_gives_a_pipe_the_fleet_log_not_the_live_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rev29: with FORCE_COLOR set, the fleet demo drew its live table (cursor moves, redrawn
    frames) into a pipe. A pipe gets the log, one plain line per thing that happened."""
    from custody._fleet.display import Display, Progress

    monkeypatch.setenv("FORCE_COLOR", "1")
    piped = io.StringIO()
    with Display(piped, Progress()) as display:
        display.log("worker_1 run_1 granted p")
    assert "\x1b" not in piped.getvalue()
    assert piped.getvalue().endswith("s worker_1 run_1 granted p\n"), piped.getvalue()
