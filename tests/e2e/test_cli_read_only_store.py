"""A SQLite store this process may only read: a copy on read-only media, what an auditor gets.

Found by a review (review14): in a directory the process may not write, no command ran, not
even ``verify``, which writes nothing ("store ... unavailable: attempt to write a readonly
database", exit 6): the store was opened to be written, in WAL mode, which makes files beside
it. A read-only file in a writable directory was read, but left a read-only ``-wal`` and
``-shm`` behind.

Guarantee: reads run (verify, status, why, who, timeline), a command that would write is
refused at the door in one line (exit 7, naming the read-only store), a read model never
installed there is named in one line, and neither the file nor its directory changes.

As root the permission bits bind nobody, so the commands run without the capabilities that
override them (``setpriv``, util-linux), as any other user would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from pathlib import Path

from cli_process import MODULE, custody, error_line, ok

FORBIDDEN, UNAVAILABLE = 7, 6
_UNPRIVILEGED = (
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search,-fowner",
    "--inh-caps=-dac_override,-dac_read_search,-fowner",
)


def _on_read_only_media(store: Path, media: Path) -> tuple[Path, tuple[str, ...]]:
    """A copy of ``store`` in ``media``, neither of them writable (the caller makes ``media``
    writable again when done, so that pytest can remove it), and the program that runs custody
    as a user the permission bits bind."""
    media.mkdir()
    copy = media / "evidence.db"
    copy.write_bytes(store.read_bytes())
    copy.chmod(0o444)
    media.chmod(0o555)
    return copy, (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE


def test_a_store_on_read_only_media_is_read_and_never_written(tmp_path: Path) -> None:
    made = tmp_path / "made"
    made.mkdir()
    store = f"sqlite:///{made / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=made, store=store))
    args = ["checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t"]
    ok(custody(*args, cwd=made, store=store))
    ok(custody("timeline", "p1", cwd=made, store=store))  # installs the timeline read model
    ok(custody("access", "token", "alice", "--role", "worker", cwd=made, store=store))
    copy, program = _on_read_only_media(made / "custody.db", tmp_path / "media")
    media = copy.parent
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    ro = f"sqlite:///{copy}"
    try:
        verified = ok(custody("verify", cwd=tmp_path, store=ro, program=program))
        assert "every chain holds" in verified.out
        assert "w1" in ok(custody("status", cwd=tmp_path, store=ro, program=program)).out
        assert "w1" in ok(custody("who", "p1", cwd=tmp_path, store=ro, program=program)).out
        ok(custody("why", "p1", cwd=tmp_path, store=ro, program=program))
        shown = ok(custody("timeline", "p1", cwd=tmp_path, store=ro, program=program)).out
        assert "lease_acquired" in shown
        for refused in (
            ["register", "p2", "--account", "a1", "--proxy", "x1"],
            ["heartbeat", "lease-1@p1", "--token", "1", "--step", "s"],
            ["init"],  # rev20: exit 6 "attempt to write a readonly database"
            # rev47: exit 6 as init was, the store's tokens written as if it could be
            ["access", "token", "bob", "--role", "worker"],
            ["access", "revoke", "alice"],
            ["access", "revoke", "--token-id", "0123456789ab"],
        ):
            run = custody(*refused, cwd=tmp_path, store=ro, program=program)
            assert run.code == FORBIDDEN, run.err
            assert "read-only here" in error_line(run)
        never = custody("usage", "--account", "a1", cwd=tmp_path, store=ro, program=program)
        assert never.code == FORBIDDEN, never.err
        assert "leases read model was never installed" in error_line(never)
        assert sorted(p.name for p in media.iterdir()) == ["evidence.db"]
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    finally:
        media.chmod(0o755)


def test_a_store_whose_directory_alone_may_not_be_written_still_takes_commands(
    tmp_path: Path,
) -> None:
    """review15: a store this user may write, with the ``-wal`` and ``-shm`` files a write needs
    already beside it (another process holds it open, as the lease service would), in a
    directory it may not write, was taken for read-only: every command refused, exit 7. Only
    the files a write needs decide."""
    shared = tmp_path / "shared"
    shared.mkdir()
    store = f"sqlite:///{shared / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=store))
    holder = sqlite3.connect(shared / "custody.db")  # keeps the -wal and -shm beside it
    try:
        holder.execute("SELECT count(*) FROM stored_events").fetchone()
        for name in ("custody.db", "custody.db-wal", "custody.db-shm"):
            (shared / name).chmod(0o666)
        shared.chmod(0o555)
        program = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
        args = ["register", "p2", "--account", "a1", "--proxy", "x1"]
        ok(custody(*args, cwd=tmp_path, store=store, program=program))
        checkout = ["checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t"]
        ok(custody(*checkout, cwd=tmp_path, store=store, program=program))
    finally:
        shared.chmod(0o755)
        holder.close()
    assert "p2" in ok(custody("status", cwd=tmp_path, store=store)).out


def test_only_a_store_nobody_may_change_is_read_as_immutable(tmp_path: Path) -> None:
    """review15: a store its owner still writes, read by a user who may not write its
    directory, was opened immutable (no lock): the reader's later reads were stale and at odds
    with each other (39 rows of availability, 1 profile id). Immutable only when nobody but
    the superuser may change the file; read-only, as any SQLite reader, otherwise."""
    media = tmp_path / "media"
    media.mkdir()
    copy = media / "custody.db"
    sqlite3.connect(copy).close()
    program = (*_UNPRIVILEGED, MODULE[0]) if os.geteuid() == 0 else (MODULE[0],)
    asked = "from ledger._stores.settings import StoreSettings as S; import sys; "
    asked += "print(S.resolve(sys.argv[1]).sqlite_read_uri())"

    def read_uri() -> str:  # as the reader, who may not write the directory
        run = subprocess.run(
            [*program, "-c", asked, f"sqlite:///{copy}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return run.stdout.strip()

    try:
        copy.chmod(0o644)  # its owner may still write it
        media.chmod(0o555)
        assert read_uri().endswith("?mode=ro")
        copy.chmod(0o444)  # nobody may: an auditor's copy
        assert read_uri().endswith("?mode=ro&immutable=1")
    finally:
        media.chmod(0o755)


def test_a_store_its_owner_may_write_and_nobody_holds_open_says_how_to_read_it(
    tmp_path: Path,
) -> None:
    """rev22: another user's store (its owner may write it, in a directory this user may not
    write) with no process connected, so no ``-shm`` beside it: SQLite cannot read it here, and
    every read said "unavailable: attempt to write a readonly database" (exit 6, as if a retry
    could help), a write too, though audit-the-ledger.md said it is read. One line says why
    and what to do (exit 7); with its owner's process connected, it is read."""
    shared = tmp_path / "shared"
    shared.mkdir()
    store = f"sqlite:///{shared / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=store))
    program = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
    try:
        (shared / "custody.db").chmod(0o644)
        shared.chmod(0o555)
        for args in (["status"], ["verify"], ["checkout", "p1", "--worker", "w", "--run", "r",
                                                "--task", "t"]):  # fmt: skip
            run = custody(*args, cwd=tmp_path, store=store, program=program)
            assert run.code == FORBIDDEN, run.err
            assert "cannot be read by this user while no process has it open" in error_line(run)
            assert "read a copy" in run.err
        assert sorted(p.name for p in shared.iterdir()) == ["custody.db"]
        shared.chmod(0o755)
        # A backup made by VACUUM INTO (docs/operations/upgrades.md) is not in WAL mode and
        # needs no -shm: it is read there (rev23: the refusal took every file for WAL).
        with closing(sqlite3.connect(shared / "custody.db")) as source:
            source.execute(f"VACUUM INTO '{shared / 'backup.db'}'")
        (shared / "backup.db").chmod(0o644)
        shared.chmod(0o555)
        backup = f"sqlite:///{shared / 'backup.db'}"
        assert "p1" in ok(custody("status", cwd=tmp_path, store=backup, program=program)).out
        shared.chmod(0o755)
        holder = sqlite3.connect(shared / "custody.db")  # its owner's process, connected
        try:
            holder.execute("SELECT count(*) FROM stored_events").fetchone()
            shared.chmod(0o555)
            assert "p1" in ok(custody("status", cwd=tmp_path, store=store, program=program)).out
        finally:
            holder.close()
    finally:
        shared.chmod(0o755)


def test_a_lost_checkpoint_on_read_only_media_is_named_as_damage(tmp_path: Path) -> None:
    """A read-only copy whose timeline checkpoint was lost beside its table: the read said the
    read model was never installed (exit 7, 'run custody projections run where the store may
    be written'), which a rebuild, not an install, repairs. It now names the damage and the
    rebuild (exit 1), and the copy is not written."""
    made = tmp_path / "made"
    made.mkdir()
    store = f"sqlite:///{made / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=made, store=store))
    ok(custody("timeline", "p1", cwd=made, store=store))  # installs the timeline read model
    with sqlite3.connect(made / "custody.db") as conn:
        conn.execute("DELETE FROM custody_projection_positions WHERE name = 'timeline'")
    conn.close()
    copy, program = _on_read_only_media(made / "custody.db", tmp_path / "media")
    media = copy.parent
    try:
        run = custody("timeline", "p1", cwd=tmp_path, store=f"sqlite:///{copy}", program=program)
        assert run.code == 1, run.err
        said = error_line(run)
        assert "read model timeline is damaged: its position is lost" in said
        assert said.endswith("custody projections rebuild timeline")
        assert sorted(p.name for p in media.iterdir()) == ["evidence.db"]
    finally:
        media.chmod(0o755)


def test_a_read_model_behind_the_log_on_read_only_media_says_what_its_answer_leaves_out(
    tmp_path: Path,
) -> None:
    """Found by a review (rev16a M1): events written after the last catch-up of the copy's
    read models (a heartbeat and a release) were left out of ``timeline`` on the read-only
    copy, which may not fold them, with exit 0 and no word of it. The answer is what the read
    model holds, and stderr says how many events it leaves out and what to do; a writable
    copy catches up and says nothing."""
    made = tmp_path / "made"
    made.mkdir()
    store = f"sqlite:///{made / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=made, store=store))
    args = ["checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t"]
    ok(custody(*args, cwd=made, store=store))
    ok(custody("timeline", "p1", cwd=made, store=store))  # the read model caught up here
    ok(custody("heartbeat", "lease-1@p1", "--token", "1", "--step", "pay", cwd=made, store=store))
    ok(custody("release", "lease-1@p1", "--token", "1", "--outcome", "success",
               "--final-url", "https://shop.example/done", cwd=made, store=store))  # fmt: skip
    copy, program = _on_read_only_media(made / "custody.db", tmp_path / "media")
    media = copy.parent
    ro = f"sqlite:///{copy}"
    try:
        shown = ok(custody("timeline", "p1", cwd=tmp_path, store=ro, program=program))
        assert "lease_heartbeat" not in shown.out
        assert shown.err == (
            "custody: note: the timeline read model has 3 event(s) of the log still to fold, "
            "which this store login may not fold: the answer leaves them out (run custody "
            "projections run where the store may be written, or read a writable copy)\n"
        )
        # rev42: who and why read the read model twice and said the note twice; once an answer
        for asked in (["who", "p1"], ["why", "p1"], ["--json", "who", "p1"]):
            said = ok(custody(*asked, cwd=tmp_path, store=ro, program=program))
            assert said.err.count("custody: note:") == 1, (asked, said.err)
    finally:
        media.chmod(0o755)
    writable = ok(custody("timeline", "p1", cwd=made, store=store))
    assert "lease_heartbeat" in writable.out
    assert writable.err == ""


def test_a_new_store_in_a_directory_this_user_may_not_write_is_refused_as_init_is(
    tmp_path: Path,
) -> None:
    """rev22: ``register`` making a new store in a directory this user may not write said
    "unavailable: unable to open database file" (exit 6, as if a retry could help) where
    ``init`` said the store is read-only here (exit 7). Both say so, and make nothing."""
    where = tmp_path / "ro"
    where.mkdir()
    program = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
    store = f"sqlite:///{where / 'custody.db'}"
    try:
        where.chmod(0o555)
        for args in (["register", "p1", "--account", "a1", "--proxy", "x1"], ["init"]):
            run = custody(*args, cwd=tmp_path, store=store, program=program)
            assert run.code == FORBIDDEN, run.err
            said = error_line(run)
            assert "is read-only here (the file, its -wal or -shm, or its directory)" in said
        assert list(where.iterdir()) == []
    finally:
        where.chmod(0o755)


def test_replay_on_a_copy_whose_timeline_lags_lists_the_events_around_the_moment(
    tmp_path: Path,
) -> None:
    """rev28: ``replay`` on a read-only copy whose timeline had not folded the last lease
    folded the right state from the events, but listed the previous lease's events "up to
    then" and "(none)" after, exit 0, no note. The events past the read model's checkpoint are
    read from the log: the lists are those of a writable store that has caught up."""
    made = tmp_path / "made"
    made.mkdir()
    store = f"sqlite:///{made / 'custody.db'}"
    run = lambda *args: ok(custody(*args, cwd=made, store=store))  # noqa: E731
    run("register", "p1", "--account", "a1", "--proxy", "x1")
    run("checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t")
    run(
        "release", "lease-1@p1", "--token", "1", "--outcome", "success", "--final-url", "https://x/"
    )
    first = run("--json", "timeline", "p1").json()[-1]["at"]  # the read model caught up here
    run("checkout", "p1", "--worker", "w9", "--run", "r9", "--task", "t")
    run("release", "lease-2@p1", "--token", "2", "--outcome", "failure", "--reason", "boom")
    copy, program = _on_read_only_media(made / "custody.db", tmp_path / "media")
    ro = f"sqlite:///{copy}"
    last = run("--json", "timeline", "p1").json()[-1]["at"]  # the writable store catches up
    replays = {}
    try:
        for at in (first, last):
            args = ["--json", "replay", "p1", "--at", at, "--events", "2"]
            shown = ok(custody(*args, cwd=tmp_path, store=ro, program=program))
            assert shown.err == ""
            replays[at] = shown.json()
    finally:
        copy.parent.chmod(0o755)
    for at, on_copy in replays.items():
        writable = run("--json", "replay", "p1", "--at", at, "--events", "2").json()
        assert (on_copy["before"], on_copy["after"]) == (writable["before"], writable["after"])
    versions = {at: [[e["version"] for e in r[k]] for k in ("before", "after")]
                for at, r in replays.items()}  # fmt: skip
    assert versions == {first: [[3, 4], [5, 6]], last: [[6, 7], []]}
    assert replays[first]["after"][0]["worker_id"] == "w9"
    assert replays[first]["after"][0]["account_id"] == "a1"


def test_checklist_and_report_on_a_lagging_copy_say_each_note_once(tmp_path: Path) -> None:
    """rev28: on a read-only copy whose read models lag, the checklist printed the timeline's
    note once per blocked profile (4 times) and ``report --html`` 7 times, where fleet and
    health print it once: each explanation of a blocked profile read the timeline again. Each
    note is said once per answer."""
    made = tmp_path / "made"
    made.mkdir()
    store = f"sqlite:///{made / 'custody.db'}"
    run = lambda *args: ok(custody(*args, cwd=made, store=store))  # noqa: E731
    for pid in ("p1", "p2", "p3", "p4"):
        run("register", pid, "--account", "a1", "--proxy", "x1")
    for pid in ("p2", "p3", "p4"):
        run("quarantine", pid, "--actor", "op", "--reason", "odd")
    run("checklist")  # the read models caught up here
    run("checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t")
    run("release", "lease-1@p1", "--token", "1", "--outcome", "failure", "--reason", "boom")
    copy, program = _on_read_only_media(made / "custody.db", tmp_path / "media")
    ro = f"sqlite:///{copy}"
    said = {}
    try:
        for args in (["checklist"], ["report", "--html", str(tmp_path / "r.html")]):
            said[args[0]] = ok(custody(*args, cwd=tmp_path, store=ro, program=program)).err
    finally:
        copy.parent.chmod(0o755)
    for err in said.values():
        notes = err.splitlines()
        assert len(notes) == len(set(notes)) == 2, err
        assert {n.split(" read model ")[0] for n in notes} == {
            "custody: note: the leases", "custody: note: the timeline"
        }  # fmt: skip


def test_a_store_behind_a_directory_this_user_may_not_enter_is_unavailable(
    tmp_path: Path,
) -> None:
    """rev29: a store in another user's 0700 directory gave "internal error: PermissionError"
    (exit 1) from every command, a new store's too, and a bare ``PermissionError`` from the
    API: Python's ``Path.is_dir`` raises rather than answers there. One line names the path
    and why it cannot be reached (exit 6), and the API raises ``StoreUnavailable``."""
    home = tmp_path / "home"
    home.mkdir()
    store = f"sqlite:///{home / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=store))
    program = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
    asked = (
        "import sys; from ledger import Ledger, StoreUnavailable\n"
        "try:\n    Ledger.open(sys.argv[1]).profile_ids()\n"
        "except StoreUnavailable as e:\n    print('StoreUnavailable:', e)"
    )
    try:
        home.chmod(0)
        for url, args in (
            (store, ["status"]),
            (store, ["verify"]),
            (store, ["init"]),
            (store, ["checkout", "p1", "--worker", "w", "--run", "r", "--task", "t"]),
            (f"sqlite:///{home / 'new.db'}", ["register", "p2", "--account", "a", "--proxy", "x"]),
        ):
            run = custody(*args, cwd=tmp_path, store=url, program=program)
            assert run.code == UNAVAILABLE, run.err
            line = error_line(run)
            assert f"cannot reach {home}/" in line
            assert "permission denied: this user may not enter a directory on its path" in line
        api = subprocess.run(
            [*program[:-2], "-c", asked, store],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert api.stdout.startswith("StoreUnavailable: store "), api.stdout + api.stderr
    finally:
        home.chmod(0o755)
    assert sorted(p.name for p in home.iterdir()) == ["custody.db"]


def test_a_read_only_file_in_a_writable_directory_is_read_leaving_nothing_beside_it(
    tmp_path: Path,
) -> None:
    """rev29: a store its owner had made read-only (``chmod 444``), in a directory the reader
    may write, was read through ``-shm`` and ``-wal`` files SQLite made beside it with the
    file's read-only mode; once the file was writable again every write failed ("attempt to
    write a readonly database", exit 6). A file nobody may write is read as immutable, and
    nothing is made beside it."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=store))
    program = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
    (tmp_path / "custody.db").chmod(0o444)
    assert "p1" in ok(custody("status", cwd=tmp_path, store=store, program=program)).out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["custody.db"]
    (tmp_path / "custody.db").chmod(0o644)
    ok(custody("register", "p2", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=store))


def test_another_users_store_in_a_shared_directory_is_not_read_into_blocking_its_owner() -> None:
    """rev29: another user's store (its owner writes it) in a directory both may write (1777),
    with no process connected: a reader's ``status`` succeeded but left ``-shm`` and ``-wal``
    files of the reader's beside it, and every later write by the owner failed ("attempt to
    write a readonly database", exit 6), in a sticky directory for good. The read is refused
    in one line saying why and what to do (exit 7), nothing is made, and the owner writes on.
    Acts as two users: the owner (root) and nobody (65534), which may read the venv only
    through the capability to read any file."""
    assert os.geteuid() == 0, "this test acts as two users: run it as root, as CI does"
    # Where nobody may reach it: access(2), which custody asks, uses no capability.
    shared = Path(tempfile.mkdtemp(prefix="custody-shared-"))
    try:
        _refused_to_nobody(shared)
    finally:
        shutil.rmtree(shared)


def _refused_to_nobody(shared: Path) -> None:
    shared.chmod(0o1777)
    store = f"sqlite:///{shared / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=shared, store=store))
    (shared / "custody.db").chmod(0o644)
    nobody = (
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *MODULE,
    )  # fmt: skip
    run = custody("status", cwd=shared, store=store, program=nobody)
    assert run.code == FORBIDDEN, run.err
    assert "is another user's to write, and no process has it open" in error_line(run)
    assert "read a copy" in run.err
    assert sorted(p.name for p in shared.iterdir()) == ["custody.db"]
    ok(custody("register", "p2", "--account", "a1", "--proxy", "x1", cwd=shared, store=store))


def test_a_copy_with_its_wal_but_no_shm_and_a_file_nobody_may_read_say_what_is_wrong(
    tmp_path: Path,
) -> None:
    """rev29: an auditor's copy of a live store, its file and ``-wal`` (which holds committed
    pages) without the ``-shm``, none of it writable, and a store file this user may not read
    (mode 000) each printed only SQLite's "unable to open database file" (exit 6). The first
    says what is missing and how to read it (exit 7); the second that it may not be read."""
    live = tmp_path / "live"
    live.mkdir()
    store = f"sqlite:///{live / 'custody.db'}"
    ok(custody("register", "p0", "--account", "a1", "--proxy", "x1", cwd=live, store=store))
    reader = sqlite3.connect(live / "custody.db", isolation_level=None)
    try:  # a reader holds the log open, so the registrations stay in the -wal
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM stored_events").fetchone()
        for n in (1, 2):
            args = ("register", f"p{n}", "--account", "a1", "--proxy", "x1")
            ok(custody(*args, cwd=live, store=store))
        evidence = tmp_path / "evidence"
        evidence.mkdir()
        for name in ("custody.db", "custody.db-wal"):
            (evidence / name).write_bytes((live / name).read_bytes())
    finally:
        reader.close()
    program = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
    copy = f"sqlite:///{evidence / 'custody.db'}"
    try:
        for name in ("custody.db", "custody.db-wal"):
            (evidence / name).chmod(0o444)
        evidence.chmod(0o555)
        run = custody("verify", cwd=tmp_path, store=copy, program=program)
        assert run.code == FORBIDDEN, run.err
        assert "beside it is its custody.db-wal file without the custody.db-shm" in run.err
        assert sorted(p.name for p in evidence.iterdir()) == ["custody.db", "custody.db-wal"]
        evidence.chmod(0o755)
        for name in ("custody.db", "custody.db-wal"):
            (evidence / name).chmod(0o644)  # as the line says: a writable copy is read whole
        assert (
            "checked 3 events of 3 profiles" in ok(custody("verify", cwd=tmp_path, store=copy)).out
        )
        (evidence / "custody.db").chmod(0o000)
        run = custody("status", cwd=tmp_path, store=copy, program=program)
        assert run.code == UNAVAILABLE, run.err
        assert "cannot read" in error_line(run)
        assert "permission denied: this user may not read it" in error_line(run)
    finally:
        evidence.chmod(0o755)


def test_checklist_strict_on_a_copy_whose_read_models_lag_is_not_all_ok(tmp_path: Path) -> None:
    """A read-only copy whose read models were last folded before a quarantine: the checklist
    answers from them, leaving the quarantine out, and under ``--strict`` exits 5 saying so
    instead of '11 ok', exit 0 (rev32 crash review: a script trusting --strict saw a clean
    fleet while two profiles were quarantined)."""
    made = tmp_path / "made"
    made.mkdir()
    store = f"sqlite:///{made / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=made, store=store))
    ok(custody("checklist", "--strict", cwd=made, store=store))  # read models folded here
    ok(custody("quarantine", "p1", "--actor", "op1", "--reason", "r", cwd=made, store=store))
    copy, program = _on_read_only_media(made / "custody.db", tmp_path / "media")
    try:
        run = custody("checklist", "--strict", cwd=tmp_path, store=f"sqlite:///{copy}",
                      program=program)  # fmt: skip
    finally:
        copy.parent.chmod(0o755)
    assert run.code == 5, (run.code, run.out, run.err)
    assert "read model(s) had events this login may not fold" in run.err, run.err


def test_a_store_nobody_may_change_is_not_written_by_root_either(tmp_path: Path) -> None:
    """A chmod 444 copy in a directory this user may write, read by whoever runs the tests
    (root in CI, whose permission bits bind nobody): reads and writes leave it as it was, and
    a command that would write is refused in one line (rev33: as root, ``timeline`` installed
    its read model in it and ``heartbeat`` and ``register`` appended events, exit 0, where the
    docs call such a file one nobody may change)."""
    store = tmp_path / "custody.db"
    made = f"sqlite:///{store}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=made))
    args = ["checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t"]
    ok(custody(*args, cwd=tmp_path, store=made))
    copy = tmp_path / "evidence" / "copy.db"
    copy.parent.mkdir()
    copy.write_bytes(store.read_bytes())
    copy.chmod(0o444)
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    ro = f"sqlite:///{copy}"
    assert "w1" in ok(custody("status", cwd=tmp_path, store=ro)).out
    never = custody("timeline", "p1", cwd=tmp_path, store=ro)
    assert never.code == FORBIDDEN, never.err
    assert "never installed" in error_line(never)
    for refused in (
        ["register", "p2", "--account", "a1", "--proxy", "x1"],
        ["heartbeat", "lease-1@p1", "--token", "1", "--step", "s"],
    ):
        run = custody(*refused, cwd=tmp_path, store=ro)
        assert run.code == FORBIDDEN, run.err
        assert "read-only here" in error_line(run)
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.db"]


def test_rebuild_on_a_store_this_user_may_only_read_reports_then_is_refused(
    tmp_path: Path,
) -> None:
    """rev39: ``rebuild`` and ``projections rebuild`` on a chmod 444 copy, as whoever runs the
    tests and as a user the permission bits bind, failed as the store unavailable ("attempt to
    write a readonly database", exit 6, which tells a script to retry for ever), where every
    other command that writes is refused (exit 7); ``rebuild`` reported none of the rows it
    found wrong. It prints them, then is refused in one line; ``projections rebuild`` is
    refused before anything; the copy is left as it was."""
    store = tmp_path / "custody.db"
    made = f"sqlite:///{store}"
    for pid in ("p1", "p2"):
        ok(custody("register", pid, "--account", "a1", "--proxy", "x1", cwd=tmp_path, store=made))
    with closing(sqlite3.connect(store)) as conn, conn:
        conn.execute("DELETE FROM custody_availability")
    copy = tmp_path / "evidence" / "copy.db"
    copy.parent.mkdir()
    copy.write_bytes(store.read_bytes())
    copy.chmod(0o444)
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    ro = f"sqlite:///{copy}"
    unprivileged = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
    for program in (MODULE, unprivileged):
        run = custody("rebuild", cwd=tmp_path, store=ro, program=program)
        assert run.code == FORBIDDEN, run.err
        assert run.out.splitlines() == ["p1: missing", "p2: missing"]
        said = error_line(run)
        here = "(read-only here: the file, its -wal or -shm, or its directory)"
        assert f"{here} may write nothing" in said, said
        assert said.endswith("none of the 2 difference(s) above was repaired"), said
        answer = custody("--json", "rebuild", cwd=tmp_path, store=ro, program=program)
        assert answer.code == FORBIDDEN, answer.err
        body = answer.json()
        assert (body["error"], body["exit_code"]) == ("Forbidden", FORBIDDEN)
        assert [d["profile_id"] for d in body["differences"]] == ["p1", "p2"]
        for name in ([], ["availability"], ["leases"], ["timeline"]):
            run = custody("projections", "rebuild", *name, cwd=tmp_path, store=ro,
                          program=program)  # fmt: skip
            assert run.code == FORBIDDEN, (name, run.err)
            assert "may write nothing: a rebuild writes the" in error_line(run)
            assert run.out == ""
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.db"]
    repaired = ok(custody("--json", "rebuild", cwd=tmp_path, store=made)).json()
    assert repaired["rows_written"] == 2  # the writable store: repaired as before


def test_a_store_whose_wal_and_shm_are_another_users_is_refused_as_read_only() -> None:
    """rev39: a store file nobody (65534) may write, in a directory it may write (1777), while
    its owner (root) holds it open and made its ``-wal`` and ``-shm`` 0644: ``rebuild``,
    ``projections rebuild`` and ``register`` failed as the store unavailable ("attempt to
    write a readonly database", exit 6, which tells a script to retry for ever). A write
    needs to write them too: refused as read-only here (exit 7), the store unchanged."""
    assert os.geteuid() == 0, "this test acts as two users: run it as root, as CI does"
    shared = Path(tempfile.mkdtemp(prefix="custody-shared-"))
    try:
        _foreign_journals_refused(shared)
    finally:
        shutil.rmtree(shared)


def _foreign_journals_refused(shared: Path) -> None:
    shared.chmod(0o1777)
    db = shared / "custody.db"
    store = f"sqlite:///{db}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=shared, store=store))
    with closing(sqlite3.connect(db)) as conn, conn:  # a row for rebuild to repair
        conn.execute("DELETE FROM custody_availability")
    db.chmod(0o666)
    nobody = (
        "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
        "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", *MODULE,
    )  # fmt: skip
    with closing(sqlite3.connect(db)) as held:  # the owner's process, holding it open
        held.execute("SELECT count(*) FROM custody_availability").fetchone()
        for journal in ("-wal", "-shm"):
            Path(f"{db}{journal}").chmod(0o644)
        digest = hashlib.sha256(db.read_bytes()).hexdigest()
        for args in (["rebuild"], ["projections", "rebuild", "leases"],
                     ["register", "p2", "--account", "a2", "--proxy", "x2"]):  # fmt: skip
            run = custody(*args, cwd=shared, store=store, program=nobody)
            assert run.code == FORBIDDEN, (args, run.err)
            said = error_line(run)
            assert "the file, its -wal or -shm, or its directory)" in said, said
            if args[0] in ("rebuild", "projections"):
                assert "may write the store's file, its -wal and -shm, and its" in said, said
        assert hashlib.sha256(db.read_bytes()).hexdigest() == digest
        ok(custody("status", cwd=shared, store=store, program=nobody))  # reads run
    ok(custody("register", "p2", "--account", "a1", "--proxy", "x1", cwd=shared, store=store))
