"""A SQLite store's file deleted or replaced under a process that has it open (rev33).

Found by a review: a worker's heartbeats went on landing in the file it had opened, deleted
from the directory or replaced by a backup moved over it, so its lease never ran out while the
store at the path gave the profile to a second worker. Guarantee: once the path names another
file (or none), every write of that process is refused in one line (exit 6), nothing is
written to either file, and the store opened again takes commands.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import register

from ledger import Checkout, Heartbeat, Ledger, NotAllowed, StoreUnavailable, UnknownProfile
from ledger._domain.profile import Profile


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("how", ["replaced", "deleted"])
def test_a_write_to_a_file_no_longer_at_the_store_s_path_is_refused(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "custody.db"
    url = f"sqlite:///{path}"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        pid = register(ledger)
        backup = tmp_path / "backup.db"  # a consistent copy, taken before the lease
        with closing(sqlite3.connect(path)) as source, closing(sqlite3.connect(backup)) as copy:
            source.backup(copy)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step="s1")
        ledger.handle(beat)
        for kind in ("-wal", "-shm") if how == "replaced" else ("", "-wal", "-shm"):
            os.remove(f"{path}{kind}")  # a restore leaves no log of the file it replaces
        if how == "replaced":
            os.replace(backup, path)
            before = _sha(path)
        with pytest.raises(StoreUnavailable, match="no longer the one this process opened"):
            ledger.handle(beat)
    if how == "deleted":
        assert not path.exists()
        return
    assert _sha(path) == before  # the restored file: nothing written to it
    with Ledger.open(url) as again:  # the backup, opened again: the profile was never leased
        again.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))


def test_a_store_opened_by_a_relative_path_is_still_written_after_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store opened as ``sqlite:///custody.db`` (the default, relative to the working
    directory) takes writes after the process changes directory, and they land in the file
    it opened (rev33 review: the check looked the relative path up again from the new
    directory, and refused every heartbeat as to a replaced file)."""
    monkeypatch.chdir(tmp_path)
    Ledger.init("sqlite:///custody.db").close()
    with Ledger.open("sqlite:///custody.db") as ledger:
        pid = register(ledger)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        for _ in range(3):  # the pool's connections in turn
            ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s"))
    assert not (elsewhere / "custody.db").exists()
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}") as again:
        assert len(list(again.store.app.recorder.select_events(Profile.create_id(pid)))) == 5


def test_a_store_path_with_dot_dot_after_a_symlinked_directory_is_one_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///l/../x.db`` where ``l`` is a symlinked directory names the file the system
    opens there (``real/x.db``) for writes as for reads (rev33 review: a lexical absolute
    path wrote ``work/x.db``, and every read then said there was no store)."""
    (tmp_path / "real" / "sub").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / "l").symlink_to("../real/sub")
    monkeypatch.chdir(work)
    Ledger.init("sqlite:///l/../x.db").close()
    with Ledger.open("sqlite:///l/../x.db") as ledger:
        register(ledger)
    with Ledger.open("sqlite:///l/../x.db") as again:
        assert again.view("profile_shop_17") is not None
    assert (tmp_path / "real" / "x.db").exists()
    assert not (work / "x.db").exists()


def test_a_symlinked_directory_swapped_to_another_store_is_seen(tmp_path: Path) -> None:
    """``current -> d1`` swapped to ``d2`` (a deploy, or a backup restored beside) under a
    process that opened ``current/x.db``: its next write is refused, as for a replaced file
    (rev33 review: with the directory resolved once at the open, its heartbeats went on into
    d1 while a second worker was granted the profile in d2)."""
    for name in ("d1", "d2"):
        (tmp_path / name).mkdir()
    (tmp_path / "current").symlink_to("d1")
    url = f"sqlite:///{tmp_path / 'current' / 'x.db'}"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        pid = register(ledger)
        with (
            closing(sqlite3.connect(tmp_path / "d1" / "x.db")) as source,
            closing(sqlite3.connect(tmp_path / "d2" / "x.db")) as copy,
        ):
            source.backup(copy)  # before the lease
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
        swapped = tmp_path / "swapped"
        swapped.symlink_to("d2")
        os.replace(swapped, tmp_path / "current")
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s")
        with pytest.raises(StoreUnavailable, match="no longer the one this process opened"):
            ledger.handle(beat)


def test_reads_and_digests_after_a_change_of_directory_name_the_store_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger opened as ``sqlite:///custody.db`` in one directory reads that file after the
    process moves to another directory holding a ``custody.db`` of its own: the pandas
    reports (which open the path anew) and a digest's record of the store (rev33 review:
    ``Feed.read_frame`` opened the relative path from the new directory, another store)."""
    import reports
    from ledger import audit

    opened, elsewhere = tmp_path / "opened", tmp_path / "elsewhere"
    for directory in (opened, elsewhere):
        directory.mkdir()
        monkeypatch.chdir(directory)
        Ledger.init("sqlite:///custody.db").close()
    with Ledger.open(f"sqlite:///{elsewhere / 'custody.db'}") as other:
        register(other, "profile_elsewhere")
    monkeypatch.chdir(opened)
    with Ledger.open("sqlite:///custody.db") as ledger:
        pid = register(ledger)
        ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
        monkeypatch.chdir(elsewhere)
        frame = reports.timeline(pid, ledger=ledger)
        assert list(frame["event_type"]) == ["profile_registered", "lease_acquired"]
        with pytest.raises(UnknownProfile):  # the other directory's store's profile
            reports.timeline("profile_elsewhere", ledger=ledger)
        made = audit.digest(ledger)
    assert made.store == f"sqlite:///{opened / 'custody.db'}"


def test_one_store_named_through_a_symlink_and_its_real_path_shares_one_lock(
    tmp_path: Path,
) -> None:
    """rev34: a sweep's command-id exclusivity (and a rebuild's) named its lock file after the
    path as given, so ``sqlite:///link.db`` and ``sqlite:///real.db`` locked two files and two
    sweeps under one id ran at once. The lock is named after the file the path resolves to when
    it is taken: while one spelling holds it, the other is refused."""
    real = tmp_path / "real.db"
    (tmp_path / "link.db").symlink_to(real)
    Ledger.init(f"sqlite:///{real}").close()
    with (
        Ledger.open(f"sqlite:///{real}") as by_real,
        Ledger.open(f"sqlite:///{tmp_path / 'link.db'}") as by_link,
    ):
        for holder, other in ((by_link, by_real), (by_real, by_link)):
            with holder.feed.exclusive("sweep-S1"), pytest.raises(NotAllowed, match="already"):
                other.feed.exclusive("sweep-S1").__enter__()
        with by_link.feed.exclusive("sweep-S1"):  # released: taken again
            pass


def test_a_worker_that_changes_directory_renews_its_lease_in_the_store_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker SDK opened on ``sqlite:///custody.db`` in one directory renews and releases
    its lease there after the process moves to another directory holding a ``custody.db`` of
    its own (rev34, a review of the fix above: its renewal thread opened the URL again from
    the new directory, was told the lease was revoked, and the lease went stale in the store
    it was taken from). ``Ledger.anchored_url``."""
    import time

    from workers import ProfileLeases

    opened, elsewhere = tmp_path / "opened", tmp_path / "elsewhere"
    for directory in (opened, elsewhere):
        directory.mkdir()
        monkeypatch.chdir(directory)
        with Ledger.open("sqlite:///custody.db") as ledger:
            register(ledger, "p1")
    monkeypatch.chdir(opened)
    leases = ProfileLeases.open("sqlite:///custody.db", worker_id="w1")
    monkeypatch.chdir(elsewhere)
    with leases.checkout("p1", run_id="r1", task_type="t", ttl_seconds=2) as held:
        time.sleep(3)  # past the first deadline: renewed, or lost
        assert not held.lost.is_set(), held.why_lost
    with Ledger.open(f"sqlite:///{opened / 'custody.db'}") as ledger:
        kinds = [e.event_type for e in ledger.history("p1")]
    assert "lease_heartbeat" in kinds, kinds
    assert "lease_release_requested" in kinds, kinds  # released there, never swept
    assert "lease_marked_stale" not in kinds, kinds
    with Ledger.open(f"sqlite:///{elsewhere / 'custody.db'}") as ledger:
        assert [e.event_type for e in ledger.history("p1")] == ["profile_registered"]


def test_a_relative_store_in_a_deleted_working_directory_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev34: a relative store named in a working directory deleted since was an internal
    error (FileNotFoundError from ``os.getcwd``), for every command."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(StoreUnavailable, match="working directory no longer exists"):
        Ledger.open("sqlite:///custody.db").profile_ids()
