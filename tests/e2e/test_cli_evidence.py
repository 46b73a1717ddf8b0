"""The command line files a screenshot as evidence: its path and the sha256 of its bytes."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from cli_process import custody, error_line, ok

from ledger import Ledger
from ledger._domain.events import LeaseReleaseRequested


def test_release_with_a_screenshot_records_the_digest_of_its_bytes(tmp_path: Path) -> None:
    """``release --screenshot FILE`` hashes the file it names (the CLI computes the digest;
    there is no option to state one) and the release event carries path and digest."""
    shot = tmp_path / "final.png"
    shot.write_bytes(b"\x89PNG not really, but bytes all the same")
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w", "--run", "r", "--task", "t", cwd=tmp_path))
    release = ["release", "lease-1@p1", "--token", "1", "--outcome", "success"]
    ok(
        custody(
            *release, "--final-url", "https://x.example/", "--screenshot", str(shot), cwd=tmp_path
        )
    )

    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}", create=False) as ledger:
        (event,) = [e for e in ledger.history("p1") if isinstance(e, LeaseReleaseRequested)]
    assert event.screenshot == str(shot)
    assert event.screenshot_sha256 == hashlib.sha256(shot.read_bytes()).hexdigest()


def test_a_screenshot_named_from_here_is_recorded_where_it_is(tmp_path: Path) -> None:
    """rev26: ``--screenshot shot.png`` was recorded as typed, a path that names no file for
    the review console or anyone reading the log from another directory: it is recorded
    absolute."""
    (tmp_path / "shots").mkdir()
    shot = tmp_path / "shots" / "shot.png"
    shot.write_bytes(b"\x89PNG bytes")
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w", "--run", "r", "--task", "t", cwd=tmp_path))
    release = ["release", "lease-1@p1", "--token", "1", "--outcome", "success"]
    here = ["--final-url", "https://x.example/", "--screenshot", "shot.png"]
    store = ["--store", f"sqlite:///{tmp_path / 'custody.db'}"]
    ok(custody(*store, *release, *here, cwd=tmp_path / "shots"))
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}", create=False) as ledger:
        (event,) = [e for e in ledger.history("p1") if isinstance(e, LeaseReleaseRequested)]
    assert event.screenshot == str(shot)


def test_a_screenshot_this_user_may_not_read_is_bad_input(tmp_path: Path) -> None:
    """rev22: a screenshot file the user may not read was an internal error (PermissionError,
    exit 1); it is bad input naming the file (exit 2), as a missing one is, and nothing is
    written. As root the test drops the capabilities that read any file (setpriv)."""
    shot = tmp_path / "secret.png"
    shot.write_bytes(b"png")
    shot.chmod(0)
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w", "--run", "r", "--task", "t", cwd=tmp_path))
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}", create=False) as ledger:
        events = len(ledger.history("p1"))
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    release = ["release", "lease-1@p1", "--token", "1", "--outcome", "success",
               "--screenshot", "secret.png"]  # fmt: skip
    run = custody(*release, cwd=tmp_path, program=[*drop, sys.executable, "-m", "custody"])
    assert run.code == 2, run.err
    assert error_line(run) == (
        "custody: invalid screenshot: cannot read 'secret.png': Permission denied"
    )
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}", create=False) as ledger:
        assert len(ledger.history("p1")) == events


def test_a_screenshot_deep_in_a_directory_is_recorded_from_here(tmp_path: Path) -> None:
    """rev28: a screenshot whose absolute path is over the ledger's 200 characters was refused
    (exit 2) even named ``final.png`` from its own directory, quoting a path nobody typed: it
    is recorded from the current directory, as the SDK records one from its evidence
    directory; one too long even so is bad input naming what was typed, and writes nothing."""
    deep = tmp_path / ("d" * 70) / ("e" * 70) / ("f" * 70)
    deep.mkdir(parents=True)
    shot = deep / "final.png"
    shot.write_bytes(b"\x89PNG deep")
    store = ["--store", f"sqlite:///{tmp_path / 'custody.db'}"]
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w", "--run", "r", "--task", "t", cwd=tmp_path))
    release = ["release", "lease-1@p1", "--token", "1", "--outcome", "success",
               "--final-url", "https://x.example/"]  # fmt: skip
    typed = str(shot.relative_to(tmp_path))
    run = custody(*store, *release, "--screenshot", typed, cwd=tmp_path)
    assert run.code == 2, run.err
    assert error_line(run) == (
        f"custody: invalid screenshot: {typed!r} is {len(str(shot))} characters as an absolute"
        f" path and {len(typed)} from this directory; the ledger records at most 200: run the"
        " command nearer the file, or move it"
    )
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}", create=False) as ledger:
        assert not [e for e in ledger.history("p1") if isinstance(e, LeaseReleaseRequested)]

    ok(custody(*store, *release, "--screenshot", "final.png", cwd=deep))
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}", create=False) as ledger:
        (event,) = [e for e in ledger.history("p1") if isinstance(e, LeaseReleaseRequested)]
    assert event.screenshot == "final.png"
    assert event.screenshot_sha256 == hashlib.sha256(shot.read_bytes()).hexdigest()
