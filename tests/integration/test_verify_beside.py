"""verify's snapshot check in a process of its own (``ledger._audit.beside``): it runs this very
custody, whatever directory verify runs in, and it ends with verify, however verify ends; and
the snapshot check names damage it cannot decode instead of crashing, in either process.

Found by a hostile review of the second process (review4): a ``ledger`` package in the working
directory answered for the child, and a verify killed by SIGTERM left its child reading the
store; the crash on junk was older than the child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from audit_scene import custody, long_ledger
from pg_cluster import PostgresCluster, create_database
from raw_log import RawLog
from test_tamper import _edit_snapshot

from ledger import Ledger, StoreUnavailable, audit


@pytest.fixture
def store(tmp_path: Path) -> str:
    """An SQLite store holding p1's snapshot at v50 (``long_ledger``)."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    long_ledger(url)
    return url


def test_the_child_runs_this_custody_whatever_the_working_directory(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify run from a directory that holds another ``ledger`` package (another checkout,
    or a planted one whose snapshot check finds nothing) still names a forged snapshot: the
    child never imports from the working directory (``-P``), and an answer from another
    ledger than verify's is not taken. Guard: ``-P`` and the ``ledger`` check in ``result``
    (without both, verify exited 0 with the forged snapshot unnamed)."""
    _edit_snapshot(RawLog(store))
    with Ledger.open(store) as ledger:
        alone = audit.verify(ledger, beside=False)
    assert [p.split(":")[0] for p in alone.problems] == ["p1 v50"]
    other = tmp_path / "somewhere"
    (other / "ledger" / "_audit").mkdir(parents=True)
    (other / "ledger" / "__init__.py").write_text("")
    (other / "ledger" / "_audit" / "__init__.py").write_text("")
    (other / "ledger" / "_audit" / "beside.py").write_text(
        'import sys\nsys.stdout.write(\'{"ledger": "", "checked": 1, "problems": []}\')\n'
    )
    monkeypatch.chdir(other)
    monkeypatch.setattr(audit, "BESIDE_FROM", 0)  # stands in for a log of 20,000 events
    said = custody(store, "verify")
    assert said.code == 5, said
    assert "p1 v50: its snapshot does not match its events" in said.out
    with Ledger.open(store) as ledger:
        assert audit.verify(ledger, beside=True).problems == alone.problems


def test_the_child_checks_the_file_a_relative_path_opened_after_a_change_of_directory(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger opened on a relative SQLite path, whose process then works in another directory
    holding a clean copy of the same name: the child checks the file the ledger opened, not the
    copy, and the forged snapshot is named as without the child. Guard: the absolute path the
    store was opened at (``SqlStore.settings_for_another_process``; rev30: the child opened
    the relative path in the new directory and answered for the clean copy)."""
    here, elsewhere = Path(store.removeprefix("sqlite:///")).parent, tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "custody.db").write_bytes((here / "custody.db").read_bytes())
    _edit_snapshot(RawLog(store))
    monkeypatch.chdir(here)
    with Ledger.open("sqlite:///custody.db") as ledger:
        alone = audit.verify(ledger, beside=False)
        assert [p.split(":")[0] for p in alone.problems] == ["p1 v50"]
        monkeypatch.chdir(elsewhere)
        monkeypatch.setattr(audit, "share", lambda extents, events: None)  # the child checks all
        assert audit.verify(ledger, beside=True).problems == alone.problems
    # Through a symlink and "..", which the system resolves link first (a lexical absolute
    # path named elsewhere/custody.db, the clean copy: rev30's second reading).
    (elsewhere / "link").symlink_to(here / "sub", target_is_directory=True)
    (here / "sub").mkdir()
    with Ledger.open("sqlite:///link/../custody.db") as ledger:
        assert audit.verify(ledger, beside=True).problems == alone.problems


def test_the_child_ends_with_a_verify_that_is_killed(store: str, tmp_path: Path) -> None:
    """verify killed by SIGTERM (``timeout``, systemd, a closed terminal's SIGHUP) runs no
    ``finally``: the child, in a session of its own, would go on reading the store. It ends
    when its stdin, which verify holds open, closes. A ``sitecustomize`` makes the child's
    check take 30 s, standing in for a large log. Guard: ``_end_with_the_parent`` (without it,
    the child was still running a second after verify ended)."""
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(
        textwrap.dedent("""
        import os
        if os.environ.get("CUSTODY_TEST_SLOW_CHECK"):
            import time
            from ledger._audit import snapshots
            checking = snapshots.SnapshotCheck.run
            def slowly(self):
                time.sleep(30)
                return checking(self)
            snapshots.SnapshotCheck.run = slowly
        """)
    )
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(f"""
        import os
        os.environ["CUSTODY_TEST_SLOW_CHECK"] = "1"  # for the child: this one has started
        import ledger.audit
        from custody.cli import main
        ledger.audit.BESIDE_FROM = 0  # stands in for a log of 20,000 events or more
        raise SystemExit(main(["--store", {store!r}, "verify"]))
        """)
    )
    path = os.pathsep.join(p for p in (str(slow), os.environ.get("PYTHONPATH")) if p)
    parent = subprocess.Popen(
        [sys.executable, str(driver)], env={**os.environ, "PYTHONPATH": path}, cwd=tmp_path
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while not children and time.monotonic() < deadline:
            time.sleep(0.2)
            found = subprocess.run(
                ["pgrep", "-P", str(parent.pid)], capture_output=True, text=True, check=False
            )
            children = [int(p) for p in found.stdout.split()]
        assert children, "verify started no child"
        time.sleep(1)  # the child is in its check by now
        parent.send_signal(signal.SIGTERM)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_running(pid) for pid in children):
            time.sleep(0.1)
        assert not [pid for pid in children if _running(pid)], "verify ended, its child runs"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in children:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return status != "Z"


@pytest.mark.parametrize(
    "junk", [b'{"envelope":[],"profile_id":"p1"}', b"\x00 not JSON"], ids=["envelope", "bytes"]
)
def test_junk_in_a_stream_with_snapshots_is_named_not_a_crash(store: str, junk: bytes) -> None:
    """Junk bytes in an event of a profile with snapshots: the walk names the position, and
    the snapshot check, which decodes the profile's events to fold them, says its snapshot
    cannot be checked instead of crashing verify (exit 1, an internal error), in verify's own
    process and in the child alike. Guard: the decode inside ``_Fold.to``'s ``try``."""
    log = RawLog(store)
    log.set_state(log.row("p1", 3).position, junk)
    said = custody(store, "verify")
    assert said.code == 5, said
    assert "p1 v50: its snapshot cannot be checked" in said.out
    with Ledger.open(store) as ledger:
        assert audit.verify(ledger, beside=True) == audit.verify(ledger, beside=False)


def test_a_postgresql_not_answering_while_snapshots_are_checked_is_its_trouble_not_the_log_s(
    cluster: PostgresCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev41: a PostgreSQL restart while the snapshot check folded a profile's events was
    named as one problem per later snapshot of that profile ("its snapshot cannot be checked:
    ... server closed the connection"), and verify and digest answered exit 5, a tampered log,
    for a log that holds. A real server that does not answer the check's first read of a
    stream in the store's time (another session holds the events table; every later read is
    answered) is the store's trouble: it goes up as itself (exit 6), and SQLite's undecodable
    text is still named (test_tamper's ``state-text``). Guard: ``_undecodable`` in
    ``_Fold.to``. (Ending the server's sessions instead was no test: the pool's other
    connection, made after them, answered the read in CI.)"""
    base = create_database(cluster.admin_url, "gone")
    Ledger.init(base).close()
    long_ledger(base)
    with Ledger.open(f"{base}?timeout=1") as ledger:
        read = ledger.store.stream_events

        def read_while_the_events_are_held(*args: object) -> object:
            with psycopg.connect(base) as holder:
                holder.execute("LOCK TABLE custody_events IN ACCESS EXCLUSIVE MODE")
                try:
                    return read(*args)  # type: ignore[arg-type]
                finally:
                    holder.rollback()

        monkeypatch.setattr(ledger.store, "stream_events", read_while_the_events_are_held)
        with pytest.raises(StoreUnavailable, match="busy"):
            audit.verify(ledger, beside=False)
