"""End to end: the ``custody`` command line as a subprocess, on the embedded SQLite store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_process import (
    MODULE,
    SCRIPT,
    Run,
    custody,
    custody_all,
    error_line,
    event_types,
    finish,
    ok,
    start,
)

PROFILE = "profile_shop_17"
ACCOUNT = "account_shop_17"
PROXY = "proxy_us_east_12"
REGISTER = ["register", PROFILE, "--account", ACCOUNT, "--proxy", PROXY]


def checkout_args(profile: str, worker: str = "worker_03") -> list[str]:
    return ["checkout", profile, "--worker", worker, "--run", f"run_{worker}", "--task", "t"]


def states(cwd: Path) -> dict[str, str]:
    """Each profile's state, as ``status --json`` reports it."""
    rows = ok(custody("--json", "status", cwd=cwd)).json()
    return {row["profile_id"]: row["state"] for row in rows}


def is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    rest = iter(seen)
    return all(any(s == w for s in rest) for w in wanted)


# -- the lifecycle -------------------------------------------------------------------------------


def test_lifecycle_on_default_sqlite_file(tmp_path: Path) -> None:
    """With no --store and no init, the first command creates ./custody.db and a lease runs
    from checkout to clean release, then status, who, timeline and why report it."""
    assert not (tmp_path / "custody.db").exists()
    ok(custody(*REGISTER, cwd=tmp_path))
    assert (tmp_path / "custody.db").is_file()

    lease = ok(custody("--json", *checkout_args(PROFILE), cwd=tmp_path)).json()
    assert lease["lease_id"] == f"lease-1@{PROFILE}"
    assert lease["fencing_token"] == 1
    assert lease["worker_id"] == "worker_03"
    lease_id = lease["lease_id"]

    beat = custody(
        *("heartbeat", lease_id, "--token", "1", "--step", "dashboard_loaded"),
        *("--url", "https://shop.example/dashboard", "--safe"),
        cwd=tmp_path,
    )
    assert "last step dashboard_loaded" in ok(beat).out
    released = custody(
        *("release", lease_id, "--token", "1", "--outcome", "success"),
        *("--final-url", "https://shop.example/done"),
        cwd=tmp_path,
    )
    assert "released cleanly" in ok(released).out

    status, who, timeline, why = (
        ok(run)
        for run in custody_all(
            [["status"], ["who", PROFILE], ["timeline", PROFILE], ["why", PROFILE]], cwd=tmp_path
        )
    )
    row = next(line.split() for line in status.out.splitlines() if line.startswith(PROFILE))
    assert row[1] == "available"
    assert "last used by worker worker_03" in who.out
    assert "released_cleanly" in who.out
    types = [line.split()[2] for line in timeline.out.splitlines()]
    assert is_subsequence(
        ["profile_registered", "lease_acquired", "lease_heartbeat", "lease_released_cleanly"],
        types,
    ), types
    assert why.out.splitlines()[0] == f"{PROFILE}: available"
    assert "last safe step: dashboard_loaded" in why.out


# -- refusals: exit codes, one line, JSON, nothing written ---------------------------------------

HOLDER = "worker_a"
W_B = ["--worker", "worker_b", "--run", "run_b", "--task", "t"]
REGISTER_X = ["--account", "account_x", "--proxy", "proxy_x"]
RELEASE_LIVE = ["release", "lease-1@p_live", "--token", "1", "--outcome", "success"]

# name: (argv, exit code, what the one line must mention)
REFUSALS: dict[str, tuple[list[str], int, list[str]]] = {
    "negative_ttl": (["checkout", "p_done", *W_B, "--ttl", "-5"], 2, ["ttl_seconds"]),
    "negative_max_duration": (
        ["checkout", "p_done", *W_B, "--max-duration", "-5"],
        2,
        ["max_duration_seconds"],
    ),
    "zero_max_lease": (
        ["register", "p_new", "--account", "a", "--proxy", "x", "--max-lease", "0"],
        2,
        ["max_lease_seconds"],
    ),
    "malformed_lease_id": (["heartbeat", "p_live", "--token", "1"], 2, ["lease_id"]),
    "unknown_profile": (["checkout", "p_nobody", *W_B], 2, ["p_nobody"]),
    "missing_required_option": (
        ["checkout", "p_done", "--worker", "worker_b", "--run", "run_b"],
        2,
        ["--task"],
    ),
    "bogus_outcome": (
        ["release", "lease-1@p_live", "--token", "1", "--outcome", "bogus"],
        2,
        ["--outcome"],
    ),
    "missing_screenshot": (
        [*RELEASE_LIVE, "--screenshot", "no_such_shot.png"],
        2,
        ["screenshot", "no_such_shot.png"],
    ),
    "screenshot_path_with_newline": (
        [*RELEASE_LIVE, "--screenshot", "shot\n.png"],
        2,
        ["screenshot"],
    ),
    "denied_checkout": (["checkout", "p_live", *W_B], 3, [HOLDER, "to unblock"]),
    "wrong_token": (["heartbeat", "lease-1@p_live", "--token", "2"], 4, ["lease lost"]),
    "ended_lease": (["heartbeat", "lease-1@p_done", "--token", "1"], 4, ["lease lost"]),
    "review_of_available_profile": (
        ["review", "p_done", "--reviewer", "alice", "--decision", "return", "--note", "ok"],
        1,
        ["p_done"],
    ),
    "register_differently": (
        ["register", "p_live", "--account", "account_other", "--proxy", "proxy_x"],
        1,
        ["already registered"],
    ),
    "unknown_option": (["status", "--colour"], 2, ["--colour", "custody status --help"]),
    "missing_argument": (["why"], 2, ["PROFILE"]),
    "unknown_command": (["checkin", "p_live"], 2, ["checkin"]),
    "no_command": (["--store", "sqlite:///custody.db"], 2, ["missing command"]),
    "bad_state_choice": (["status", "--state", "asleep"], 2, ["--state", "asleep"]),
    "token_not_a_number": (["heartbeat", "lease-1@p_live", "--token", "one"], 2, ["--token"]),
    "unreachable_postgres": (
        ["--store", "postgresql://nobody@127.0.0.1:1/x", "status"],
        6,
        ["unavailable"],
    ),
    # A writing command, so the refusal comes from the directory check itself (a read
    # command stops earlier, at "no store").
    "sqlite_in_missing_directory": (
        ["--store", "sqlite:///no_such_dir/custody.db", "register", "p_x", *REGISTER_X],
        6,
        ["no_such_dir", "does not exist"],
    ),
}
JSON_REFUSALS = [  # one of each exit code, and bad usage caught by the argument parser
    "negative_ttl",
    "bogus_outcome",
    "unknown_option",
    "denied_checkout",
    "wrong_token",
    "review_of_available_profile",
    "sqlite_in_missing_directory",
]


class Fleet:
    """A store where p_live is leased to worker_a and p_done was released cleanly, with every
    refusal above run against it (text and --json), and snapshots before and after."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.text: dict[str, Run] = {}
        self.json: dict[str, Run] = {}
        self.before: list[Run] = []
        self.after: list[Run] = []


SNAPSHOT = [
    ["--json", "timeline", "p_live"],
    ["--json", "timeline", "p_done"],
    ["--json", "status"],
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    """The refusal tests' shared store, with every refusal already run against it."""
    cwd = tmp_path_factory.mktemp("fleet")
    ok(custody("register", "p_live", "--account", "a", "--proxy", "x", cwd=cwd))
    for run in custody_all(
        [
            ["register", "p_done", "--account", "a", "--proxy", "x"],
            ["checkout", "p_live", "--worker", HOLDER, "--run", "run_a", "--task", "t"],
        ],
        cwd=cwd,
    ):
        ok(run)
    ok(custody("checkout", "p_done", "--worker", HOLDER, "--run", "run_a", "--task", "t", cwd=cwd))
    release = ["release", "lease-1@p_done", "--token", "1", "--outcome", "success"]
    ok(custody(*release, "--final-url", "https://shop.example/done", cwd=cwd))

    fleet = Fleet(cwd)
    fleet.before = [ok(run) for run in custody_all(SNAPSHOT, cwd=cwd)]
    names = list(REFUSALS)
    runs = custody_all(
        [REFUSALS[n][0] for n in names] + [["--json", *REFUSALS[n][0]] for n in JSON_REFUSALS],
        cwd=cwd,
    )
    fleet.text = dict(zip(names, runs[: len(names)], strict=True))
    fleet.json = dict(zip(JSON_REFUSALS, runs[len(names) :], strict=True))
    fleet.after = [ok(run) for run in custody_all(SNAPSHOT, cwd=cwd)]
    return fleet


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusal_exit_code_and_one_line(fleet: Fleet, name: str) -> None:
    """Each refusal exits with its code (2 bad input, 3 denied, 4 lease lost, 6 store
    unavailable, 1 a state that forbids the command) in one line naming the field or reason."""
    _, code, mentions = REFUSALS[name]
    run = fleet.text[name]
    assert run.code == code, run.err
    line = error_line(run)
    for word in mentions:
        assert word in line
    assert run.out == ""


@pytest.mark.parametrize("name", JSON_REFUSALS)
def test_refusal_with_json_prints_error_object(fleet: Fleet, name: str) -> None:
    """With --json a refusal prints an object with "error" and "exit_code" on stdout (and
    keeps its one line on stderr)."""
    _, code, _ = REFUSALS[name]
    run = fleet.json[name]
    assert run.code == code, run.err
    error_line(run)
    assert run.out.strip(), f"--json printed nothing on stdout (stderr: {run.err.strip()})"
    body = run.json()
    assert isinstance(body["error"], str)
    assert body["exit_code"] == code


def test_denied_checkout_json_carries_the_denial(fleet: Fleet) -> None:
    """A denied checkout's JSON names the reason, the holder and what unblocks it."""
    denial = fleet.json["denied_checkout"].json()["denial"]
    assert denial["reason"] == "already_leased"
    assert denial["holder"]["worker_id"] == HOLDER
    assert "force-release p_live" in denial["remediation"]


def test_refusals_leave_the_store_unchanged(fleet: Fleet) -> None:
    """Every refused command leaves the timelines and the availability as they were."""
    assert [run.json() for run in fleet.after] == [run.json() for run in fleet.before]


def test_store_in_missing_directory_is_not_created(fleet: Fleet) -> None:
    """An SQLite store in a missing directory is refused, not created."""
    assert not (fleet.cwd / "no_such_dir").exists()


def test_bad_input_in_empty_dir_creates_no_store(tmp_path: Path) -> None:
    """Bad input is refused before the store is touched: no custody.db appears."""
    runs = custody_all(
        [
            ["checkout", "p", "--worker", "w", "--run", "r", "--task", "t", "--ttl", "-5"],
            ["heartbeat", "not-a-lease", "--token", "1"],
        ],
        cwd=tmp_path,
    )
    for run in runs:
        assert run.code == 2, run.err
        error_line(run)
    assert list(tmp_path.iterdir()) == []


def test_read_commands_on_a_missing_store_create_nothing(tmp_path: Path) -> None:
    """A read (why, status, timeline) on a path with no store says so (exit 6) and does not
    make an empty ledger, so a mistyped --store never creates one."""
    runs = custody_all(
        [["why", "nope"], ["status"], ["--store", "sqlite:///custdy.db", "timeline", "p"]],
        cwd=tmp_path,
    )
    for run in runs:
        assert run.code == 6, run.err
        assert "no store at" in error_line(run)
    assert list(tmp_path.iterdir()) == []


def test_every_command_closes_its_store_before_the_process_exits(tmp_path: Path) -> None:
    """The process exits without finalising what is still alive (``custody.__main__``), so
    each command closes its store itself: after every one, writing or reading, granted or
    refused, the SQLite file stands alone, with no ``-wal`` or ``-shm`` file beside it (what
    a connection left open keeps)."""
    lease = f"lease-1@{PROFILE}"
    commands = [
        (REGISTER, 0),
        (checkout_args(PROFILE), 0),
        (checkout_args(PROFILE, "worker_04"), 3),
        (["heartbeat", lease, "--token", "1", "--step", "s"], 0),
        (["status"], 0),
        (["why", PROFILE], 0),
        (["who", PROFILE], 0),
        (["timeline", PROFILE], 0),
        (["usage", "--account", ACCOUNT, "--since", "2000-01-01"], 0),
        (["release", lease, "--token", "1", "--outcome", "success", "--final-url", "https://x"], 0),
    ]
    for args, code in commands:
        run = custody(*args, cwd=tmp_path)
        assert run.code == code, (args, run.err)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["custody.db"], args


def test_demo_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    """``custody demo --db FILE`` refuses a file that exists and leaves its ledger intact."""
    ok(custody(*REGISTER, cwd=tmp_path))
    run = custody("demo", "--db", "custody.db", cwd=tmp_path)
    assert run.code == 2
    assert "already exists" in error_line(run)
    assert states(tmp_path) == {PROFILE: "available"}


@pytest.mark.parametrize("fleet", [[], ["--workers", "1", "--tasks", "1"]])
def test_demo_into_a_directory_that_is_not_there_is_bad_input_before_a_line(
    tmp_path: Path, fleet: list[str]
) -> None:
    """rev39: ``demo --db missing/x.db`` printed "custody demo: a fresh ledger in ..." and
    then failed as the store unavailable (exit 6), two lines, success first. It is bad input
    naming --db's directory, in one line, with nothing printed before (as ``report --html``)."""
    (tmp_path / "a-file").write_text("")
    for db in ("missing/x.db", "a-file/x.db"):
        run = custody("demo", "--db", db, *fleet, cwd=tmp_path)
        assert run.code == 2, run.err
        assert run.out == ""
        assert f"'{db.split('/')[0]}' is no directory" in error_line(run)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("fleet", [[], ["--workers", "1", "--tasks", "1"]])
def test_a_demo_cut_short_leaves_no_half_of_its_store(tmp_path: Path, fleet: list[str]) -> None:
    """rev39: a demo whose writes failed part-way (here: a process that may write no file past
    20 KiB, RLIMIT_FSIZE) left its partial store and the ``-wal`` and ``-shm`` beside it, so
    that its rerun was refused ("already exists", exit 2). It removes the files it made, and
    only those: a file beside them stays; the rerun plays."""
    import resource

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20 * 1024, 20 * 1024))

    (tmp_path / "notes.txt").write_text("mine")
    args = [*MODULE, "demo", "--db", "demo.db", *fleet]
    cut = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        preexec_fn=small_files,
    )  # fmt: skip
    assert cut.returncode == 6, cut
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], cut.stderr
    ok(custody("demo", "--db", "demo.db", cwd=tmp_path))
    assert (tmp_path / "demo.db").exists()


def test_output_cut_short_by_the_reader_is_not_an_error(tmp_path: Path) -> None:
    """A reader that leaves before custody writes (``custody status | true``) is not an
    error of ours: exit 0 and nothing on stderr."""
    ok(custody(*REGISTER, cwd=tmp_path))
    command = f"{sys.executable} -m custody --json status | true"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


# -- resends, the sweep, operators ---------------------------------------------------------------


def test_a_hard_limit_from_register_and_checkout_is_the_tighter(tmp_path: Path) -> None:
    """register --max-lease 600 then checkout --max-duration 60: the lease's hard limit is
    60 s after its start, and its first deadline (TTL 300) is capped there."""
    ok(custody(*REGISTER, "--max-lease", "600", cwd=tmp_path))
    args = [*checkout_args(PROFILE), "--max-duration", "60"]
    lease = ok(custody("--json", *args, cwd=tmp_path)).json()
    started = datetime.fromisoformat(lease["lease_started_at"])
    limit = datetime.fromisoformat(lease["hard_limit_at"])
    assert (limit - started).total_seconds() == 60
    assert lease["expires_at"] == lease["hard_limit_at"]


def test_resent_checkout_with_same_command_id_is_applied_once(tmp_path: Path) -> None:
    """Resending a checkout with the same --command-id returns the same lease and appends
    nothing."""
    ok(custody(*REGISTER, cwd=tmp_path))
    resend = ["--json", *checkout_args(PROFILE), "--command-id", "cmd-0945"]
    first = ok(custody(*resend, cwd=tmp_path)).json()
    second = ok(custody(*resend, cwd=tmp_path)).json()
    assert second["lease_id"] == first["lease_id"]
    assert second["fencing_token"] == first["fencing_token"] == 1
    timeline = ok(custody("--json", "timeline", PROFILE, cwd=tmp_path)).json()
    assert event_types(timeline).count("lease_acquired") == 1


def test_sweep_sends_overdue_lease_to_review_then_reviewer_returns_it(tmp_path: Path) -> None:
    """A lease past its deadline is marked stale by sweep, the profile needs review
    (previous_run_unknown) and is denied until a reviewer returns it; the next lease gets
    fencing token 2."""
    ok(custody(*REGISTER, cwd=tmp_path))
    ok(custody(*checkout_args(PROFILE), "--ttl", "1", cwd=tmp_path))
    time.sleep(1.5)  # SQLite judges deadlines on the local clock

    swept = ok(custody("sweep", cwd=tmp_path))
    assert f"lease-1@{PROFILE}: marked stale" in swept.out
    why, denied = custody_all(
        [["--json", "why", PROFILE], checkout_args(PROFILE, "worker_04")], cwd=tmp_path
    )
    explanation = ok(why).json()
    assert explanation["state"] == "review_required"
    assert explanation["reason"] == "previous_run_unknown"
    assert denied.code == 3, denied.err
    assert "previous_run_unknown" in error_line(denied)

    review = ["review", PROFILE, "--reviewer", "alice", "--decision", "return", "--note", "ok"]
    ok(custody(*review, cwd=tmp_path))
    lease = ok(custody("--json", *checkout_args(PROFILE, "worker_04"), cwd=tmp_path)).json()
    assert lease["fencing_token"] == 2
    assert lease["worker_id"] == "worker_04"


def test_force_release_quarantine_disable_enable(tmp_path: Path) -> None:
    """Operator commands exit 0: force-release sends a leased profile to review (actor
    recorded), quarantine quarantines, disable disables and enable brings it back."""
    operator = ["--actor", "op_mia", "--reason", "checking"]
    ok(custody("register", "p_fr", "--account", "a", "--proxy", "x", cwd=tmp_path))
    for run in custody_all(
        [
            ["register", "p_qu", "--account", "a", "--proxy", "x"],
            ["register", "p_di", "--account", "a", "--proxy", "x"],
            checkout_args("p_fr"),
        ],
        cwd=tmp_path,
    ):
        ok(run)
    released, quarantined, disabled = (
        ok(run)
        for run in custody_all(
            [
                ["--json", "force-release", "p_fr", *operator],
                ["--json", "quarantine", "p_qu", *operator],
                ["--json", "disable", "p_di", *operator],
            ],
            cwd=tmp_path,
        )
    )
    assert released.json()["profile_state"] == "review_required"
    assert quarantined.json()["state"] == "quarantined"
    assert disabled.json()["state"] == "disabled"
    assert states(tmp_path) == {
        "p_fr": "review_required",
        "p_qu": "quarantined",
        "p_di": "disabled",
    }

    enabled, timeline = custody_all(
        [["--json", "enable", "p_di", *operator], ["--json", "timeline", "p_fr"]], cwd=tmp_path
    )
    assert ok(enabled).json()["state"] == "available"
    assert states(tmp_path)["p_di"] == "available"
    assert any(
        row["actor_id"] == "op_mia" and row["actor_role"] == "operator"
        for row in ok(timeline).json()
    ), timeline.out


# -- the demo and the entry points ---------------------------------------------------------------


def test_demo_narrates_the_story_and_leaves_an_inspectable_store(tmp_path: Path) -> None:
    """``custody demo`` narrates the article's story and its store holds the review and the
    return to the pool."""
    db = tmp_path / "demo.db"
    demo = ok(custody("demo", "--db", str(db), cwd=tmp_path))
    for phrase in (
        "denied: already_leased",
        "denied: stale",
        "quarantined",
        "lease lost",
        "lease-2@profile_shop_17",
    ):
        assert phrase in demo.out
    timeline = custody("--store", f"sqlite:///{db}", "--json", "timeline", PROFILE, cwd=tmp_path)
    rows = ok(timeline).json()
    types = event_types(rows)
    assert "profile_reviewed" in types
    assert "profile_returned_to_pool" in types
    # The story ends now, not in the future: a moment of it can be replayed (an event dated
    # ahead of the store's time was refused as "after the store's time").
    times = [datetime.fromisoformat(r["at"]) for r in rows]
    assert datetime.now(UTC) - timedelta(minutes=1) < times[-1] <= datetime.now(UTC)
    swept = next(r["at"] for r in rows if r["event_type"] == "lease_marked_stale")
    replay = custody("--store", f"sqlite:///{db}", "replay", PROFILE, "--at", swept, cwd=tmp_path)
    assert "quarantined" in ok(replay).out


def test_demo_with_json_gives_the_story_events_on_stdout(tmp_path: Path) -> None:
    """Under ``--json`` the demo narrates on stderr and prints its timeline as JSON."""
    demo = ok(custody("--json", "demo", "--db", str(tmp_path / "demo.db"), cwd=tmp_path))
    played = demo.json()
    assert "worker_04 denied" in demo.err
    assert played["store"] == f"sqlite:///{tmp_path / 'demo.db'}"
    last = played["timeline"][-1]
    assert (last["event_type"], last["actor_id"], last["fencing_token"]) == (
        "lease_acquired",
        "worker_04",
        2,
    )


def test_help_from_console_script_and_module(tmp_path: Path) -> None:
    """``custody --help`` and ``python -m custody --help`` both exit 0 and list the commands."""
    with_script = start("--help", cwd=tmp_path, program=SCRIPT)
    with_module = custody("--help", cwd=tmp_path)
    for run in (finish(with_script), with_module):
        assert ok(run).out.startswith("usage: custody")
        assert "checkout" in run.out


def test_a_store_under_a_name_that_is_not_utf8_is_read_as_it_was_written(tmp_path: Path) -> None:
    """rev22: a store in a directory whose name is not UTF-8 (Latin-1 ``M\\xfcller``, as a
    Latin-1 locale spells it) was created by ``register`` and then every read opened another
    file (its name quoted as UTF-8 in SQLite's URI): exit 6, or an internal error under the C
    locale. The name's bytes are quoted as they are: every command reads the same file."""
    where = Path(os.fsdecode(bytes(tmp_path) + b"/M\xfcller"))
    where.mkdir()
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=where))
    assert "available" in ok(custody("status", cwd=where)).out
    ok(custody("checkout", "p", "--worker", "w", "--run", "r", "--task", "t", cwd=where))
    assert ok(custody("verify", cwd=where)).out.startswith("checked 2 events of 1 profiles")
    assert sorted(p.name for p in where.iterdir() if p.suffix == ".db") == ["custody.db"]
    # Named in a URL, the bytes are percent-escaped: %FF is the byte 0xFF, as the OS spells
    # it (it was U+FFFD, another file).
    ok(custody("--store", "sqlite:///%FF.db", "register", "p", "--account", "a", "--proxy", "x",
               cwd=where))  # fmt: skip
    assert (where / os.fsdecode(b"\xff.db")).exists()


def test_with_standard_error_or_input_closed_the_exit_codes_stay(tmp_path: Path) -> None:
    """rev22: with standard error closed (``2>&-``) every refusal exited 1, failing on its own
    error line (a denied checkout, a lost lease, bad input), and ``--json`` printed nothing;
    ``--password-stdin <&-`` was an internal error (test_grant_passwords.py: SQLite has no
    logins). Each keeps its exit code and answer."""
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path))
    ok(custody("checkout", "p", "--worker", "w", "--run", "r", "--task", "t", cwd=tmp_path))

    def closed(line: str) -> subprocess.CompletedProcess[str]:
        shell = f'"$0" -m custody {line}'
        run = ["bash", "-c", shell, sys.executable]
        return subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, check=False)

    asked = {
        "checkout p --worker w2 --run r2 --task t 2>&-": 3,
        "heartbeat lease-1@p --token 9 2>&-": 4,
        "why nosuch 2>&-": 2,
        "status --state bogus 2>&-": 2,
    }
    assert {line: closed(line).returncode for line in asked} == asked
    answer = closed("--json why nosuch 2>&-")
    assert (answer.returncode, json.loads(answer.stdout)["error"]) == (2, "UnknownProfile")
    # rev23: the demo with standard output closed died on its first line, the story half
    # played: it is played whole, untold, and says so.
    told = closed(f"demo --db {tmp_path / 'demo.db'} >&-")
    assert (told.returncode, told.stderr) == (
        0,
        "custody: standard output is closed: the demo runs untold\n",
    )
    story = custody("--store", f"sqlite:///{tmp_path / 'demo.db'}", "--json", "timeline", PROFILE,
                    cwd=tmp_path)  # fmt: skip
    assert event_types(ok(story).json())[-1] == "lease_acquired"


def test_work_done_before_its_output_failed_exits_0_and_says_what_to_do(tmp_path: Path) -> None:
    """rev22: with standard output full, ``access token`` issued a live token nobody saw and
    exited 1 ("could not write the output"), as keygen and digest did with their files made.
    Each was carried out: exit 0, and stderr says so; for the token, which to revoke."""
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path))

    def full(*args: str) -> subprocess.CompletedProcess[str]:
        with open("/dev/full", "w") as out:
            run = [sys.executable, "-m", "custody", *args]
            return subprocess.run(run, cwd=tmp_path, stdout=out, stderr=subprocess.PIPE,
                                  text=True, check=False)  # fmt: skip

    token = full("access", "token", "carol", "--role", "reviewer")
    assert token.returncode == 0, token.stderr
    (row,) = ok(custody("--json", "access", "tokens", cwd=tmp_path)).json()
    assert f"token {row['token_id']} is live and nobody saw it" in token.stderr
    assert f"custody access revoke --token-id {row['token_id']}" in token.stderr
    made = full("keygen", "k")
    assert (made.returncode, (tmp_path / "k").exists()) == (0, True), made.stderr
    assert "keygen was carried out, but its output could not be written" in made.stderr
    # Its result is in its files: running it again would be refused, a key never overwritten
    # (rev48: it said "run it again to see it"); a digest again would follow the first.
    assert "its result is in k and k.pub" in made.stderr, made
    digest = full("digest", "--out", "d.json")
    assert digest.returncode == 0, digest.stderr
    assert "its result is in d.json" in digest.stderr, digest.stderr
    assert "run it again" not in made.stderr + digest.stderr


def test_a_watching_sweeper_whose_output_fails_sweeps_on(tmp_path: Path) -> None:
    """rev22: ``sweep --watch`` with standard output full died of an internal error (exit 1)
    on its first transition, and nothing swept any more. It says once that it no longer
    prints, sweeps on, and stops cleanly on SIGTERM (exit 0)."""
    for p in ("p1", "p2"):
        ok(custody("register", p, "--account", "a", "--proxy", "x", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w", "--run", "r", "--task", "t", "--ttl", "1",
               cwd=tmp_path))  # fmt: skip
    with open("/dev/full", "w") as out:
        run = [sys.executable, "-m", "custody", "sweep", "--watch", "--interval", "0.2"]
        watcher = subprocess.Popen(run, cwd=tmp_path, stdout=out, stderr=subprocess.PIPE,
                                   text=True)  # fmt: skip
    try:
        time.sleep(1.5)  # p1's deadline passes: the first transition, not printed
        ok(custody("checkout", "p2", "--worker", "w", "--run", "r", "--task", "t", "--ttl", "1",
                   cwd=tmp_path))  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = ok(custody("--json", "status", cwd=tmp_path)).json()
            if all(r["state"] == "review_required" for r in rows):
                break
            time.sleep(0.3)
    finally:
        watcher.terminate()
        _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert [r["state"] for r in rows] == ["review_required"] * 2, "the second was not swept"
    assert err.count("transitions are no longer printed ([Errno 28]") == 1, err


def test_a_reader_that_went_away_is_not_an_internal_error(tmp_path: Path) -> None:
    """rev22: ``custody --help | true`` and ``custody demo | head -1`` said "internal error:
    BrokenPipeError" and exited 1 (the reader, gone before Python has started, is never there
    when custody writes). Exit 0, nothing on stderr."""
    for line in ("--help", "timeline --help", f"demo --db {tmp_path / 'demo.db'}"):
        shell = f'"$0" -m custody {line} | true; exit "${{PIPESTATUS[0]}}"'
        run = subprocess.run(["bash", "-c", shell, sys.executable], cwd=tmp_path,
                             capture_output=True, text=True, check=False)  # fmt: skip
        assert (run.returncode, run.stderr) == (0, ""), line


def test_the_demo_plays_into_the_file_named_whatever_its_name_holds(tmp_path: Path) -> None:
    """rev22: ``demo --db "custody.db?timeout=5"`` passed the check that the file is new, then
    the name was spliced into a URL whose options hid the "?": the story was played into the
    user's existing custody.db. The file of that name gets it, and the hint can be pasted."""
    ok(custody("register", "mine", "--account", "a", "--proxy", "x", cwd=tmp_path))
    for name in ("custody.db?timeout=5", "my demo#1.db", os.fsdecode(b"d\xff.db")):
        hint = ok(custody("demo", "--db", name, cwd=tmp_path)).out.splitlines()[-1]
        store = hint.split("--store ", 1)[1].split(" ")[0]
        timeline = ok(custody("--store", store, "--json", "timeline", PROFILE, cwd=tmp_path))
        assert "profile_reviewed" in event_types(timeline.json())
        assert (tmp_path / name).exists()
    status = ok(custody("--json", "status", cwd=tmp_path)).json()
    assert [row["profile_id"] for row in status] == ["mine"], "the demo wrote into custody.db"


def test_utf8_arguments_are_taken_in_a_locale_that_is_not(tmp_path: Path) -> None:
    """rev22: under LC_ALL=C with PYTHONUTF8=0 Python hands each byte past ASCII over as a
    surrogate, and ``--account acc_é`` was refused as bytes that were not UTF-8. UTF-8 bytes
    are read as UTF-8; bytes that are not are still refused, naming the field."""
    env = {"LC_ALL": "C", "PYTHONUTF8": "0", "LANG": "C"}
    ok(custody("register", "p1", "--account", "acc_é", "--proxy", "x", cwd=tmp_path, env=env))
    (row,) = ok(custody("--json", "status", cwd=tmp_path)).json()
    assert row["account_id"] == "acc_é"
    bad = os.fsdecode(b"acc_\xe9")  # Latin-1's é: not UTF-8
    run = custody("register", "p2", "--account", bad, "--proxy", "x", cwd=tmp_path, env=env)
    assert run.code == 2
    assert "invalid account_id: must be valid Unicode text" in error_line(run)


def test_access_grant_on_sqlite_says_so_before_it_reads_a_password(tmp_path: Path) -> None:
    """The cli review: ``access grant --password-stdin`` on SQLite waited for a password on
    standard input (a person typed it) and only then said SQLite has no logins. It says so at
    once: the test's standard input stays open and silent, and the answer comes anyway."""
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path))
    with subprocess.Popen(
        [sys.executable, "-m", "custody", "access", "grant", "bob", "--role", "worker",
         "--password-stdin"],
        cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    ) as child:  # fmt: skip
        try:
            child.wait(timeout=30)  # stdin is left open and silent (communicate would close it)
        except subprocess.TimeoutExpired:
            child.kill()
            pytest.fail("access grant waited for a password on SQLite")
        assert child.stderr is not None
        err = child.stderr.read()
    assert (child.returncode, err) == (
        2,
        "custody: invalid store: logins and roles are PostgreSQL's; on SQLite the file's "
        "permissions are the boundary\n",
    )


def test_init_names_the_store_by_a_url_that_pasted_back_opens_it(tmp_path: Path) -> None:
    """rev38: ``init`` on ``sqlite:///up.db%3Ftimeout=1`` (the file ``up.db?timeout=1``)
    answered "initialised": "sqlite:///up.db?timeout=1", which pasted back opened ``up.db``
    with a timeout of 1 s, another store; its error lines named it so too. The answer is the
    URL as it reads back; a plain path is named as given."""
    store = "sqlite:///up.db%3Ftimeout=1"
    done = ok(custody("--json", "--store", store, "init", cwd=tmp_path)).json()
    assert done["initialised"] == store
    ok(custody("--store", done["initialised"], *REGISTER, cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["up.db?timeout=1"]
    missing = custody("--store", "sqlite:///gone.db%3Fx", "status", cwd=tmp_path)
    assert missing.code == 6, missing.err
    assert error_line(missing).startswith("custody: store sqlite:///gone.db%3Fx unavailable")
    plain = ok(custody("--json", "--store", "sqlite:///plain.db", "init", cwd=tmp_path)).json()
    assert plain["initialised"] == "sqlite:///plain.db"
