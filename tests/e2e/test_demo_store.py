"""The store ``custody demo --db FILE`` makes, story and fleet, as a person's shell runs it:
only a file the demo made itself is ever removed, and never one whose story was told; a demo
cut short by SIGTERM removes its own and says so; a file it may not make is refused before a
line of the story (rev39)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_process import MODULE, custody, error_line, finish, ok, start

FLEET = ["--workers", "2", "--tasks", "1"]
BAD_INPUT, INTERRUPTED = 2, 130


@pytest.mark.parametrize(("fleet", "lines"), [([], 1), (FLEET, 2)])
def test_a_reader_that_leaves_early_leaves_the_store_it_was_told_of(
    tmp_path: Path, fleet: list[str], lines: int
) -> None:
    """rev39: ``demo --db a.db | head -1`` exited 0 and removed a.db, the store its first line
    named: the closed output (BrokenPipeError) was taken for a failed demo. A closed output is
    no failure: the store stays, readable, and a rerun on the name is refused as existing."""
    line = f"{' '.join(MODULE)} demo --db a.db {' '.join(fleet)} | head -{lines}"
    shell = subprocess.run(
        ["bash", "-c", f"{line}; echo rc=${{PIPESTATUS[0]}}"], cwd=tmp_path, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    assert shell.stdout.splitlines()[-1] == "rc=0", shell
    assert (tmp_path / "a.db").is_file(), shell
    ok(custody("status", cwd=tmp_path, store="sqlite:///a.db"))
    assert "already exists" in error_line(custody("demo", "--db", "a.db", cwd=tmp_path))


def test_two_demos_on_one_name_at_once_leave_the_winners_store(tmp_path: Path) -> None:
    """rev39: two demos started together on one --db: the one refused ("already exists")
    removed the other's finished store, which it took for its own (not there when it looked,
    made by SQLite after). The file is made by one of them alone (O_EXCL): the other is
    refused and removes nothing; the store stays whole. Rounds of three, since the window is
    a race."""
    for n in range(6):
        here = tmp_path / str(n)
        here.mkdir()
        runs = [finish(p) for p in [start("demo", "--db", "s.db", cwd=here) for _ in range(3)]]
        assert sorted(r.code for r in runs) == [0, BAD_INPUT, BAD_INPUT], [r.err for r in runs]
        for run in runs:
            if run.code:
                assert "s.db already exists: give the demo a new file" in error_line(run)
        assert (here / "s.db").is_file(), [r.err for r in runs]
        timeline = ok(custody("timeline", "profile_shop_17", cwd=here, store="sqlite:///s.db"))
        assert len(timeline.out.splitlines()) == 10


@pytest.mark.parametrize("fleet", [[], FLEET])
def test_a_symbolic_link_is_refused_as_there(tmp_path: Path, fleet: list[str]) -> None:
    """rev39: --db a dangling link played into its target, and a demo cut short left the
    target store and its -wal and -shm behind (the link had been counted as there). A link,
    dangling or not, is a name already there: refused, nothing made."""
    (tmp_path / "target").mkdir()
    (tmp_path / "d.db").symlink_to("target/real.db")
    run = custody("demo", "--db", "d.db", *fleet, cwd=tmp_path)
    assert run.code == BAD_INPUT, run.err
    assert "d.db (a symbolic link) already exists" in error_line(run)
    assert run.out == ""
    assert list((tmp_path / "target").iterdir()) == []
    assert os.readlink(tmp_path / "d.db") == "target/real.db"


@pytest.mark.parametrize("fleet", [[], FLEET])
def test_sigterm_mid_demo_removes_its_store_and_says_so(tmp_path: Path, fleet: list[str]) -> None:
    """rev39: ``timeout 0.45 custody demo --db s.db`` died of the SIGTERM with no line, left
    half a store, and the rerun was refused as existing. SIGTERM is Ctrl-C: the store made
    is removed (no fleet worker writes on), one line, exit 130; the rerun plays."""
    demo = start("demo", "--db", "s.db", *fleet, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "s.db").exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(0.01 if not fleet else 1)  # the story is done about 50 ms after its store is
    demo.send_signal(signal.SIGTERM)
    run = finish(demo)
    assert run.code == INTERRUPTED, run
    assert "interrupted" in error_line(run)
    time.sleep(1)  # a fleet worker left running would write (or make) the store again
    assert list(tmp_path.iterdir()) == []
    ok(custody("demo", "--db", "s.db", cwd=tmp_path))


def test_a_refused_fleet_leaves_no_work_directory(tmp_path: Path) -> None:
    """rev39: each ``demo --db EXISTING --workers 2`` refused (exit 2) left a new empty
    custody-fleet-* directory in the temporary directory. The work directory is made only
    once the store is: a refused fleet makes none."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "d.db").write_bytes(b"")
    run = custody("demo", "--db", "d.db", *FLEET, cwd=tmp_path, env={"TMPDIR": str(temp)})
    assert run.code == BAD_INPUT, run.err
    assert "d.db already exists" in error_line(run)
    assert list(temp.iterdir()) == []


@pytest.mark.parametrize("db", [["--db", "s.db"], []])
def test_a_fleet_cut_short_leaves_no_work_directory(tmp_path: Path, db: list[str]) -> None:
    """rev39: a fleet demo stopped by SIGTERM removed its store but left its custody-fleet-*
    directory, the workers' stderr and evidence of a store no longer there, named nowhere.
    It goes with the store (the store in it too, when no --db was given)."""
    temp, here = tmp_path / "tmp", tmp_path / "here"
    temp.mkdir()
    here.mkdir()
    demo = start("demo", *db, *FLEET, cwd=here, env={"TMPDIR": str(temp)})
    deadline = time.monotonic() + 60
    while not list(temp.glob("custody-fleet-*/*.stderr")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1)
    demo.send_signal(signal.SIGTERM)
    run = finish(demo)
    assert run.code == INTERRUPTED, run
    assert "interrupted" in error_line(run)
    time.sleep(1)  # a fleet worker left running would write in it again
    assert list(temp.glob("custody-fleet-*")) == []
    assert list(here.iterdir()) == []


@pytest.mark.parametrize("fleet", [[], FLEET])
def test_a_directory_this_user_may_not_write_is_refused_before_a_line(
    tmp_path: Path, fleet: list[str]
) -> None:
    """rev39: --db in a directory this user may not write printed the story's first line,
    then failed (exit 7). It is bad input naming --db, before a line, as ``report --html``
    refuses a file it may not write there (exit 2). As root, as a user the bits bind."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    bound = ("--bounding-set=-dac_override,-dac_read_search,-fowner",
             "--inh-caps=-dac_override,-dac_read_search,-fowner")  # fmt: skip
    program = ("setpriv", *bound, *MODULE) if os.geteuid() == 0 else MODULE
    try:
        run = custody("demo", "--db", "ro/x.db", *fleet, cwd=tmp_path, program=program)
    finally:
        ro.chmod(0o755)
    assert run.code == BAD_INPUT, run.err
    assert run.out == ""
    said = error_line(run)
    assert "invalid db: cannot write '" in said, said
    assert said.endswith("ro/x.db': Permission denied"), said
    assert list(ro.iterdir()) == []
