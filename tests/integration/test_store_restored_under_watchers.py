"""The long-running readers of a SQLite store whose file is deleted or replaced under them
(rev41): ``custody sweep --watch``, ``custody projections run`` and ``custody serve``, as real
processes.

Found by a review: each went on reading the file it had opened, said nothing, and never saw
the file now at the path (a watcher swept a restored store's overdue lease never, a projector
said "no such table" every second for good, the service answered from the old file).
Guarantee: at its next pass, wake-up or request each opens the file now at the path, as a
process started then would, and says so once on stderr.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from serving import serve

from ledger import Checkout, Ledger, RegisterProfile, Role

pytestmark = pytest.mark.slow

REOPENED = "its file was deleted or replaced since this process opened it"


def _register(url: str, *profiles: str) -> None:
    with Ledger.open(url) as ledger:
        for pid in profiles:
            ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))


def _backup(path: Path, to: Path) -> None:
    with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(to)) as copy:
        source.backup(copy)


def _restore(backup: Path, path: Path) -> None:
    """The backup moved over the store, with no log of the file it replaces beside it (as
    docs/operations/upgrades.md says to)."""
    for kind in ("-wal", "-shm"):
        Path(f"{path}{kind}").unlink(missing_ok=True)
    os.replace(backup, path)


def _custody(url: str, *args: str, out: Path, err: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "custody", "--store", url, *args],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )


def _wait_for(what: str, done: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _stopped(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def _store_and_a_backup_leasing_sp(path: Path, backup: Path) -> str:
    """A store at ``path`` where sp was never leased, and a backup of it where sp's lease of
    1 s soon runs out; the store's URL."""
    url = f"sqlite:///{path}"
    _register(url, "sp")
    _backup(path, backup)
    with Ledger.open(f"sqlite:///{backup}") as ledger:
        ledger.handle(Checkout(profile_id="sp", worker_id="w", run_id="r", task_type="t",
                               ttl_seconds=1))  # fmt: skip
    return url


def test_sweep_watch_sweeps_the_file_restored_under_it(tmp_path: Path) -> None:
    """A watcher running when a backup holding an overdue lease is moved over its store
    settles that lease at its next pass, and says once on stderr that it reads the new file
    (without the check it swept the old file, where the profile was never leased, for good)."""
    path, backup = tmp_path / "custody.db", tmp_path / "backup.db"
    url = _store_and_a_backup_leasing_sp(path, backup)
    out, err = tmp_path / "out", tmp_path / "err"
    watcher = _custody(url, "sweep", "--watch", "--interval", "0.3", out=out, err=err)
    try:
        _wait_for("the watcher's start", lambda: "sweeping" in err.read_text())
        time.sleep(1.5)  # passes on the file it opened, with nothing to sweep
        assert out.read_text() == ""
        _restore(backup, path)
        _wait_for("the restored lease swept", lambda: "lease-1@sp: marked stale" in out.read_text())
    finally:
        assert _stopped(watcher) == 0
    said = err.read_text()
    assert said.count(REOPENED) == 1, said
    with Ledger.open(url) as ledger:
        assert ledger.view("sp").state.value == "review_required"


def test_sweep_watch_waits_out_a_foreign_file_moved_over_its_store(tmp_path: Path) -> None:
    """A file that is no custody store moved over the store of a running watcher is trouble
    it waits out, pass after pass, as a file not there yet: once the good store is moved back
    the watcher sweeps it (a review of the fix: the watcher exited 2, "is not a custody store",
    and never saw the store come back; the projector alike). Guard: the ``InvalidInput`` of
    the store turned ``StoreUnavailable`` in ``Ledger._open`` after a reopen."""
    path, backup, foreign = tmp_path / "custody.db", tmp_path / "backup.db", tmp_path / "f.db"
    url = _store_and_a_backup_leasing_sp(path, backup)
    with closing(sqlite3.connect(foreign)) as other:
        other.execute("CREATE TABLE foo (x)")
        other.commit()
    out, err = tmp_path / "out", tmp_path / "err"
    watcher = _custody(url, "sweep", "--watch", "--interval", "0.3", out=out, err=err)
    try:
        _wait_for("the watcher's start", lambda: "sweeping" in err.read_text())
        _restore(foreign, path)
        _wait_for("the foreign file said", lambda: "not a custody store" in err.read_text())
        time.sleep(1)  # passes on the foreign file
        assert watcher.poll() is None, err.read_text()
        _restore(backup, path)
        _wait_for("the restored lease swept", lambda: "lease-1@sp: marked stale" in out.read_text())
    finally:
        assert _stopped(watcher) == 0, err.read_text()


def test_projections_run_catches_up_on_a_store_made_again_at_its_path(tmp_path: Path) -> None:
    """A projector running when its store's directory is deleted and a new store is made at
    the same path folds the new store's events (without the check it said "no such table"
    at every wake-up, for good, where a fresh process worked at once)."""
    from projections import READ_MODELS, read_model_status as read_models

    here = tmp_path / "stores"
    here.mkdir()
    url = f"sqlite:///{here / 'custody.db'}"
    _register(url, "p1")
    out, err = tmp_path / "out", tmp_path / "err"
    projector = _custody(url, "projections", "run", "--interval", "0.3", out=out, err=err)
    try:
        time.sleep(2)  # caught up on the first store, waiting
        shutil.rmtree(here)
        here.mkdir()
        _register(url, "p2", "p3")

        def caught_up() -> bool:
            with Ledger.open(url) as ledger:
                found = read_models(ledger, READ_MODELS.values())
            return all(m.position is not None and m.lag == 0 for m in found)

        _wait_for("the new store's read models caught up", caught_up)
    finally:
        assert _stopped(projector) == 0
    said = err.read_text()
    assert said.count(REOPENED) == 1, said
    assert "no such table" not in said, said


def test_serve_reads_the_file_restored_under_it_and_refuses_writes_until_restarted(
    tmp_path: Path,
) -> None:
    """A service running when a backup is moved over its store answers every read thread's
    reads from the file now at the path, saying so in its log (without the check its threads
    answered from the old file). Its writes stay refused, as a worker's own ledger's are, until
    it is restarted: the restored file hands out again the lease ids and fencing tokens of
    leases the earlier file granted after the backup (a review of the first fix, whose writer
    opened the restored file too: a run's heartbeats renewed, and its release ended, the lease
    the restored file then granted another run under the same id and token)."""
    path, backup = tmp_path / "custody.db", tmp_path / "backup.db"
    url = f"sqlite:///{path}"
    _register(url, "sp")
    served = serve(url)
    try:
        with served.client(Role.WORKER) as worker:
            lease = worker.post("/v1/profiles/sp/checkout", json={"run_id": "r", "task_type": "t"})
            assert lease.status_code == 201, lease.text
            _backup(path, backup)  # the tokens in it, and the lease
            _register(f"sqlite:///{backup}", "sz")
            for _ in range(12):  # each read thread's ledger opened on the first file
                assert [p["profile_id"] for p in worker.get("/v1/profiles").json()] == ["sp"]
            _restore(backup, path)
            for _ in range(12):
                found = [p["profile_id"] for p in worker.get("/v1/profiles").json()]
                assert found == ["sp", "sz"], found
            taken = worker.post("/v1/profiles/sz/checkout", json={"run_id": "b", "task_type": "t"})
            assert taken.status_code != 201, taken.text  # decided on the file it opened
            held = lease.json()
            beat = worker.post(
                f"/v1/leases/{held['lease_id']}/heartbeat",
                json={"fencing_token": held["fencing_token"], "step": "s"},
            )
            assert beat.status_code == 503, beat.text
            assert "no longer the one this process opened" in beat.text, beat.text
    finally:
        assert served.stop() == 0
    with Ledger.open(url) as ledger:
        assert [e.event_type for e in ledger.history("sp")][-1] == "lease_acquired"  # untouched
        assert ledger.view("sz").state.value == "available"
    assert any(REOPENED in line for line in served.said), served.said
