"""What the stores promise: their clock, their schema step, and failing with one clear error."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from conftest import register

from ledger import (
    Checkout,
    Heartbeat,
    InvalidInput,
    Ledger,
    RegisterProfile,
    StoreUnavailable,
    Sweep,
)
from ledger._stores import sql as store_module
from ledger._stores.clock import MAX_ERROR_S, SAMPLES, OffsetClock
from ledger._stores.settings import StoreSettings
from ledger._stores.sql import SqlStore

HOUR = 3600.0


def _fast_wall() -> float:
    return time.time() + HOUR


class _SkewedDatetime(datetime):
    """A local clock one hour fast, as on a worker host with a broken NTP."""

    @classmethod
    def now(cls, tz: object = None) -> _SkewedDatetime:  # type: ignore[override]
        real = datetime.now(UTC) + timedelta(hours=1)
        return cls.fromtimestamp(real.timestamp(), tz=UTC)


def test_deadlines_use_the_store_clock_not_the_worker_clock(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a lease starts on the server's clock even if the local clock is an hour
    fast; on SQLite (embedded, one host) the local clock is the store's clock."""
    monkeypatch.setattr(store_module, "datetime", _SkewedDatetime)
    with Ledger.open(sql_store_url) as ledger:
        ledger.store.clock = OffsetClock(ledger.store.server_time, wall=_fast_wall)
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=60)
        )
    offset = lease.lease_started_at - datetime.now(UTC)
    if sql_store_url.startswith("postgresql"):
        assert abs(offset) < timedelta(minutes=5)
    else:
        assert offset > timedelta(minutes=55)
    assert lease.expires_at - lease.lease_started_at == timedelta(seconds=60)


def test_postgres_time_is_the_servers_within_the_bound_without_a_query_per_command(
    pg_url: str,
) -> None:
    """With the worker's clock an hour fast, the store's time stays the server's, within the
    clock's error bound (checked against the server's clock read between two of its times),
    and a run of commands measures the offset once instead of querying the clock each time."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        store = ledger.store
        asked: list[datetime] = []

        def server_time() -> datetime:
            asked.append(store.server_time())
            return asked[-1]

        store.clock = OffsetClock(server_time, wall=_fast_wall)
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=60)
        )
        for _ in range(5):
            ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
        # Measured on the first command (a sample or, on a busy machine, up to SAMPLES), never
        # again: no query per command.
        assert store.clock.measurements == 1
        assert 1 <= len(asked) <= SAMPLES
        before = store.now()
        server = store.server_time()
        after = store.now()
        bound = timedelta(seconds=store.clock.error_bound())
    assert before - bound <= server <= after + bound
    assert bound < timedelta(milliseconds=50)
    assert abs(lease.lease_started_at - asked[0]) < timedelta(seconds=5)
    assert lease.expires_at - lease.lease_started_at == timedelta(seconds=60)


def test_a_clock_sample_held_on_its_way_to_postgres_is_not_kept(pg_url: str) -> None:
    """A sweeper whose clock samples reach PostgreSQL a second late, their answers back at once
    (asymmetric latency: the midpoint is half a second before the server read its clock), keeps
    no offset from them: its event is dated on the server's clock as read, not ahead of it, and
    once the path is fast again a sweep a quarter second before a lease's deadline leaves the
    lease live. Kept, that offset gave times half a second ahead for 30 s (rev46 review: a
    3 s one-way delay, a live lease marked stale 1.9 s before its deadline)."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as admin, Ledger.open(pg_url) as sweeper:
        store = sweeper.store
        held = [1.0]

        def held_on_its_way() -> datetime:
            time.sleep(held[0])  # the query held on its way to the server, answered at once
            return store.server_time()

        store.clock = OffsetClock(held_on_its_way)
        register(sweeper, "p_dated")
        server = store.server_time()
        assert sweeper.history("p_dated")[-1].envelope.at <= server
        held[0] = 0.0  # the path is fast again
        pid = register(admin)
        lease = admin.handle(
            Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=2)
        )
        time.sleep((lease.expires_at - store.server_time()).total_seconds() - 0.25)
        report = sweeper.handle(Sweep())
        assert store.server_time() < lease.expires_at  # the sweep ran before the deadline
        assert report.settled == []
        assert store.clock.error_bound() <= MAX_ERROR_S
        assert admin.view(pid).state == "leased"
        admin.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))


def test_unreachable_postgres_is_one_clear_error() -> None:
    """A store nobody listens on raises StoreUnavailable naming the store, not a driver error."""
    with (
        Ledger.open("postgresql://custody@127.0.0.1:1/custody") as ledger,
        pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1/custody unavailable"),
    ):
        ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))


def test_uninitialised_postgres_says_run_init_and_creates_nothing(pg_url: str) -> None:
    """Commands on a PostgreSQL database without the schema ask for custody init; no table
    appears, because workers never race to create tables."""
    with Ledger.open(pg_url) as ledger, pytest.raises(StoreUnavailable, match="custody init"):
        ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_init_is_idempotent(store_url: str) -> None:
    """Running init on an initialised store keeps its events."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
    Ledger.init(store_url).close()
    with Ledger.open(store_url) as ledger:
        assert [e.event_type for e in ledger.history(pid)] == ["profile_registered"]


def test_malformed_store_urls_are_bad_input() -> None:
    """A store URL that is neither sqlite:/// nor postgresql:// is named as invalid input."""
    for url in ("mysql://x/y", "sqlite://relative.db", "postgresql://host-without-user/db"):
        with pytest.raises(InvalidInput, match="store"):
            Ledger.open(url)


def test_sqlite_file_in_missing_directory_is_unavailable(tmp_path: object) -> None:
    """An SQLite path whose directory does not exist is reported, and not created: a
    registration (which may make a new store) names the directory; any other command says
    there is no store."""
    url = f"sqlite:///{tmp_path}/missing/custody.db"
    with Ledger.open(url) as ledger, pytest.raises(StoreUnavailable, match="does not exist"):
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    with Ledger.open(url) as ledger, pytest.raises(StoreUnavailable, match="no store at"):
        ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))
    assert not (Path(str(tmp_path)) / "missing").exists()


def test_a_symlink_into_a_missing_directory_names_the_directory(tmp_path: Path) -> None:
    """rev29: a store path that is a symlink into a missing directory was called "read-only
    here (the file or its directory)" (Forbidden, exit 7): a registration names the target's
    missing directory and the link, as for a plain path in a missing directory."""
    link = tmp_path / "custody.db"
    link.symlink_to(tmp_path / "nowhere" / "x.db")
    with Ledger.open(f"sqlite:///{link}") as ledger, pytest.raises(StoreUnavailable) as failed:
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    said = str(failed.value)
    assert f"directory {tmp_path / 'nowhere'} does not exist" in said
    assert f"({link} is a symlink to {tmp_path / 'nowhere' / 'x.db'})" in said
    assert not (tmp_path / "nowhere").exists()


def test_only_a_registration_makes_a_new_store(tmp_path: Path) -> None:
    """A checkout, heartbeat or read on a path with no store creates nothing (exit-2 or not);
    a registration there makes the store."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.open(url) as ledger:
        with pytest.raises(StoreUnavailable, match="no store at"):
            ledger.handle(Heartbeat(lease_id="lease-1@p", fencing_token=1))
        with pytest.raises(StoreUnavailable, match="no store at"):
            ledger.availability()
        assert list(tmp_path.iterdir()) == []
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
        assert ledger.view("p").state == "available"


@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("writing", [True, False])
@pytest.mark.parametrize("ours", ["writable", "read-only"])
def test_another_applications_sqlite_file_is_never_written(
    tmp_path: Path, writing: bool, journal: str, ours: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pointed at another application's SQLite file, custody refuses as bad input and leaves
    the file byte for byte as it was (no tables, no journal mode), and nothing beside it: a
    file in WAL mode gets no ``-wal`` or ``-shm`` left behind (a read-only connection, which
    cannot remove them, left both), whether or not this user may write the file; so does
    init. The tests run as root, who may write anything: for a file this user may not write
    (a 0444 file of another user's), the permission check is told so."""
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"PRAGMA journal_mode = {journal}")
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]
    if ours == "read-only":
        path.chmod(0o444)
        real = os.access

        def access(where: object, mode: int, **kwargs: object) -> bool:
            if mode == os.W_OK and Path(str(where)) == path:
                return False
            return real(where, mode, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "access", access)
    before = path.read_bytes()
    with Ledger.open(f"sqlite:///{path}") as ledger:
        command = (
            partial(ledger.handle, RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
            if writing
            else ledger.availability
        )
        with pytest.raises(InvalidInput, match="invoices"):
            command()
    with pytest.raises(InvalidInput, match="not a custody store"):
        Ledger.init(f"sqlite:///{path}")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_another_applications_file_with_its_tables_in_a_hot_wal_is_refused(tmp_path: Path) -> None:
    """Another application died in WAL mode: its file and its ``-wal``, whose committed pages
    (here its only table) were never checkpointed. Custody reads those pages too (a read-only
    connection, as any SQLite reader), so it refuses the file instead of taking it for an empty
    one and writing its schema there, and it leaves the file and the ``-wal`` byte for byte; a
    ``-shm``, missing beside them, is made as any reader makes it (``_sqlite_tables``)."""
    made, app = tmp_path / "made", tmp_path / "app"
    made.mkdir()
    app.mkdir()
    with closing(sqlite3.connect(made / "other.db")) as conn:
        conn.execute("PRAGMA journal_mode = wal")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        with conn:
            conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        for name in ("other.db", "other.db-wal"):  # copied while its connection is open
            (app / name).write_bytes((made / name).read_bytes())
    path = app / "other.db"
    before = {name: (app / name).read_bytes() for name in ("other.db", "other.db-wal")}
    with Ledger.open(f"sqlite:///{path}") as ledger, pytest.raises(InvalidInput, match="invoices"):
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    with pytest.raises(InvalidInput, match="not a custody store"):
        Ledger.init(f"sqlite:///{path}")
    assert {name: (app / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in app.iterdir()) == ["other.db", "other.db-shm", "other.db-wal"]


def test_another_applications_table_of_custodys_name_is_refused_on_sqlite(tmp_path: Path) -> None:
    """rev20: a file whose only table was another application's ``custody_availability``
    was taken for an older custody store: init added custody's tables to it, then failed on
    the foreign table with the driver's words (exit 6), and failed so again on every run.
    It is refused as not a custody store, naming the table, and left byte for byte."""
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE custody_availability (id INTEGER PRIMARY KEY, note TEXT)")
    before = path.read_bytes()
    with pytest.raises(InvalidInput, match="custody_availability, not custody's"):
        Ledger.init(f"sqlite:///{path}")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


@pytest.mark.parametrize("table", ["custody_availability", "custody_events"])
def test_another_applications_table_of_custodys_name_is_refused_on_postgresql(
    pg_url: str, table: str
) -> None:
    """rev20: the same on PostgreSQL, which checked nothing: init created custody's tables
    beside another application's ``custody_availability`` and failed on it (exit 6), or on
    a foreign ``custody_events`` with the driver's words. Refused as bad input naming the
    table, no table made; other applications' tables of other names may share the
    database, as before."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, note text)")
        conn.execute("CREATE TABLE invoices (id integer PRIMARY KEY)")
    listed = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    with pytest.raises(InvalidInput, match=f"holds a table {table} that is not custody's"):
        Ledger.init(pg_url)
    with psycopg.connect(pg_url) as conn:
        assert sorted(t for (t,) in conn.execute(listed).fetchall()) == sorted([table, "invoices"])
        conn.execute(f"DROP TABLE {table}")
    Ledger.init(pg_url).close()  # beside invoices


def test_a_table_of_custodys_name_the_login_may_not_read_is_refused_on_postgresql(
    pg_url: str,
) -> None:
    """rev21: the check read information_schema, which shows a login only the tables it has
    a privilege on: another application's ``custody_availability``, owned by its own role,
    was not seen, and init created custody's tables beside it before failing on it ("must
    be owner"). The catalog shows every table: refused as bad input, nothing made."""
    login = f"app_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE custody_availability (id integer PRIMARY KEY)")
        conn.execute(f"CREATE ROLE {login} LOGIN")
        conn.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {login}")
    parts = urlsplit(pg_url)
    as_login = urlunsplit(parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port}"))
    try:
        with pytest.raises(InvalidInput, match="custody_availability that is not custody's"):
            Ledger.init(as_login)
        with psycopg.connect(pg_url) as conn:
            made = conn.execute("SELECT to_regclass('public.custody_events')").fetchone()
        assert made == (None,)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TABLE custody_availability")
            conn.execute(f"REVOKE ALL ON SCHEMA public FROM {login}")
            conn.execute(f"DROP ROLE {login}")


def test_an_init_cut_short_is_finished_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev21: the library's recorders make their tables before custody's own; an init cut
    short between the two (a kill, a lock timeout, a full disk) left a file every later init
    refused as another application's ("it holds other tables: stored_events, ..."). While
    those tables are empty, the next init finishes the store."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"

    def cut_short(store: object) -> None:
        raise KeyboardInterrupt("killed during init")

    monkeypatch.setattr(store_module, "create_schema", cut_short)
    with pytest.raises(KeyboardInterrupt):
        Ledger.init(url)
    monkeypatch.undo()
    with closing(sqlite3.connect(tmp_path / "custody.db")) as conn:
        left = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert left == {"stored_events", "stored_snapshots"}
    with Ledger.init(url) as ledger:
        register(ledger, "p1")
    with Ledger.open(url) as ledger:
        assert ledger.view("p1").version == 1


def test_an_empty_file_becomes_a_store_only_by_a_registration(tmp_path: Path) -> None:
    """An empty file is not a store for a read; a registration may make it one."""
    path = tmp_path / "empty.db"
    path.touch()
    with Ledger.open(f"sqlite:///{path}") as ledger:
        with pytest.raises(StoreUnavailable, match="no store at"):
            ledger.availability()
        assert path.stat().st_size == 0
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
        assert [r.profile_id for r in ledger.availability()] == ["p"]


def test_schema_version_is_checked_and_init_migrates(sql_store_url: str) -> None:
    """A store from an older custody is refused until init migrates it; one from a newer
    custody is refused with a word to upgrade; the events survive both."""
    with Ledger.open(sql_store_url) as ledger:
        pid = register(ledger)
        ledger.store.execute("UPDATE custody_schema SET version = 0")
    with Ledger.open(sql_store_url) as ledger, pytest.raises(StoreUnavailable, match="to migrate"):
        ledger.view(pid)
    Ledger.init(sql_store_url).close()
    with Ledger.open(sql_store_url) as ledger:
        assert ledger.view(pid).record.profile_id == pid
        ledger.store.execute("UPDATE custody_schema SET version = 99")
    with Ledger.open(sql_store_url) as ledger, pytest.raises(StoreUnavailable, match="upgrade"):
        ledger.view(pid)


def test_init_writes_nothing_to_a_store_a_newer_custody_migrated(sql_store_url: str) -> None:
    """``custody init`` of an older custody refuses a newer store as every command does,
    before the library's recorder or a migration writes to it: a trigger the newer custody
    dropped is not made again (init rewrote the newer store's tables into its own layout)."""
    with Ledger.open(sql_store_url) as ledger:
        register(ledger)
        postgres = sql_store_url.startswith("postgresql")
        dropped = "custody_events_no_rewrite" if postgres else "custody_events_no_update"
        on = f" ON {ledger.store.tables.events}" if postgres else ""
        ledger.store.execute(f"DROP TRIGGER {dropped}{on}")
        ledger.store.execute("UPDATE custody_schema SET version = 99")
        if postgres:
            named = "SELECT tgname AS name FROM pg_trigger WHERE NOT tgisinternal"
        else:
            named = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        triggers = {r["name"] for r in ledger.store.query(named)}
    assert dropped not in triggers
    with pytest.raises(StoreUnavailable, match=r"newer than this custody's .*upgrade custody"):
        Ledger.init(sql_store_url)
    store = SqlStore.open(StoreSettings.from_url(sql_store_url))  # the version left unchecked
    try:
        assert {r["name"] for r in store.query(named)} == triggers
        assert store.schema_version() == 99
    finally:
        store.close()


@pytest.mark.slow
def test_concurrent_inits_on_a_fresh_postgres_all_succeed(pg_url: str) -> None:
    """Eight processes run init at once on a new database: every one succeeds (one lock
    around schema creation), and the store then works."""
    # Every process imports first, then all of them call init at the same instant.
    script = (
        "import sys, time; from ledger import Ledger; "
        "time.sleep(max(0, float(sys.argv[2]) - time.time())); Ledger.init(sys.argv[1]).close()"
    )
    start_at = str(time.time() + 2.0)
    argv = [sys.executable, "-c", script, pg_url, start_at]
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    errors = [
        err for proc in procs for err in [proc.communicate(timeout=120)[1]] if proc.returncode
    ]
    assert errors == []
    with Ledger.open(pg_url) as ledger:
        register(ledger)
        assert ledger.profile_ids() == ["profile_shop_17"]


def test_init_migrates_a_version_1_store_and_binds_its_command_ids(sql_store_url: str) -> None:
    """A store of schema 1 (no command table) is refused until init migrates it; the
    migration records the command ids already used, so they stay bound to their profile."""
    with Ledger.open(sql_store_url) as ledger:
        register(ledger, "p1")
        register(ledger, "p2")
        ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", command_id="old-id")
        )
        ledger.store.execute("DROP TABLE custody_commands")  # type: ignore[attr-defined]
        ledger.store.execute("UPDATE custody_schema SET version = 1")  # type: ignore[attr-defined]
    with Ledger.open(sql_store_url) as ledger, pytest.raises(StoreUnavailable, match="migrate"):
        ledger.view("p1")
    Ledger.init(sql_store_url).close()
    with Ledger.open(sql_store_url) as ledger:
        with pytest.raises(InvalidInput, match="already used on profile p1"):
            ledger.handle(
                Checkout(
                    profile_id="p2", worker_id="w", run_id="r", task_type="t", command_id="old-id"
                )
            )
        assert ledger.view("p1").state == "leased"


def test_init_migrates_a_version_3_store_so_its_command_ids_still_replay(
    sql_store_url: str,
) -> None:
    """Schema 3 kept only each id's profile (the profile remembered the rest). The migration
    fills in each id's version and fingerprint from the events, so a command resent after
    the upgrade is answered as it was, appends nothing, and a reused id is still refused.
    Guard: the backfill of ``_backfill_commands``."""
    with Ledger.open(sql_store_url) as ledger:
        register(ledger, "p1")
        register(ledger, "p2")
        lease = ledger.handle(
            Checkout(
                profile_id="p1", worker_id="w", run_id="r", task_type="t", command_id="old-checkout"
            )
        )
        beat = ledger.handle(
            Heartbeat(
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                step="s",
                command_id="old-beat",
            )
        )
        store = ledger.store
        store.execute("DROP TABLE custody_commands")  # type: ignore[attr-defined]
        store.execute(  # type: ignore[attr-defined]
            "CREATE TABLE custody_commands (command_id TEXT PRIMARY KEY, profile_id TEXT NOT NULL)"
        )
        for command_id in ("old-checkout", "old-beat"):
            store.execute(  # type: ignore[attr-defined]
                "INSERT INTO custody_commands VALUES (?, 'p1')", (command_id,)
            )
        store.execute("UPDATE custody_schema SET version = 3")  # type: ignore[attr-defined]
        events = len(ledger.history("p1"))
    Ledger.init(sql_store_url).close()
    with Ledger.open(sql_store_url) as ledger:
        again = ledger.handle(
            Checkout(
                profile_id="p1", worker_id="w", run_id="r", task_type="t", command_id="old-checkout"
            )
        )
        assert (again.lease_id, again.fencing_token) == (lease.lease_id, lease.fencing_token)
        assert (
            ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    step="s",
                    command_id="old-beat",
                )
            )
            == beat
        )
        assert len(ledger.history("p1")) == events
        with pytest.raises(
            InvalidInput, match="already used on p1 for a heartbeat with other arguments"
        ):
            ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    step="t",
                    command_id="old-beat",
                )
            )
        with pytest.raises(InvalidInput, match="already used on profile p1"):
            ledger.handle(
                Checkout(
                    profile_id="p2",
                    worker_id="w",
                    run_id="r",
                    task_type="t",
                    command_id="old-checkout",
                )
            )
        rows = ledger.store.query(  # type: ignore[attr-defined]
            "SELECT count(*) AS n FROM custody_commands WHERE version IS NULL OR command IS NULL"
        )
        assert rows[0]["n"] == 0


def _terminate_others(pg_url: str) -> int:
    """End every other backend on the test's database, as a server restart or an idle
    timeout does, and wait until they are gone; return how many there were."""
    others = (
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        pids = [pid for (pid,) in conn.execute(others).fetchall()]
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while conn.execute(others).fetchall() and time.monotonic() < deadline:
            time.sleep(0.05)
    return len(pids)


def test_pooled_connections_ended_by_the_server_are_replaced_before_a_command(
    pg_url: str,
) -> None:
    """The pool's connections die (a restart, an idle timeout, an operator's kill): the next
    commands and reads succeed on new connections, without a failed call. Guard: the pool's
    check before lending (``check_before_lending``); without it the first call fails.
    rev20: with every idle connection dead, the pool was handed them one at a time, waiting
    0, 1, 2 s between: the first command took 3 s, or failed under a timeout of 2. The
    first dead one found has the others checked at once."""
    Ledger.init(pg_url).close()
    with Ledger.open(f"{pg_url}?timeout=2") as ledger:
        pid = register(ledger)
        for _ in range(3):  # every connection of the pool has been lent at least once
            ledger.view(pid)
        assert _terminate_others(pg_url) >= 1
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=60)
        )
        assert ledger.view(pid).lease == lease
        assert _terminate_others(pg_url) >= 1
        assert ledger.store.availability_row(pid) is not None
        assert [e.event_type for e in ledger.history(pid)][-1] == "lease_acquired"


def test_a_saved_profile_is_not_read_back_by_the_next_command(store_url: str) -> None:
    """After a save the process keeps the profile as saved, so the next command's load reads
    none of its own events back; an event another process appended is still read."""
    with Ledger.open(store_url) as ledger, Ledger.open(store_url) as other:
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=600)
        )
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token)
        recorder: Any = ledger.store.app.recorder
        read_back: list[Any] = []
        select = recorder.select_events

        def counting(*args: Any, **kwargs: Any) -> Any:
            found = select(*args, **kwargs)
            read_back.extend(found)
            return found

        recorder.select_events = counting
        for _ in range(3):
            ledger.handle(beat)
        assert read_back == []
        other.handle(beat)
        ledger.handle(beat)
        assert [e.originator_version for e in read_back] == [6]
        assert len(ledger.history(pid)) == 7


def test_the_sqlite_store_prepares_a_command_s_statements_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library opens SQLite connections with ``cached_statements=True``, a cache of one
    statement: every statement of every command was compiled again (``StatementKeepingPool``).
    SQLite asks a connection's authorizer while it compiles a statement, never when it runs a
    compiled one, so after a first heartbeat the next ones compile nothing but the ends of
    transactions (``sqlite3``'s ``commit()`` and ``rollback()`` compile theirs every call)."""
    compiled: list[tuple[object, ...]] = []
    connect = sqlite3.connect

    def watched(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)

        def authorize(*asked: object) -> int:
            compiled.append(asked)
            return sqlite3.SQLITE_OK

        conn.set_authorizer(authorize)
        return conn

    monkeypatch.setattr(sqlite3, "connect", watched)
    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}") as ledger:
        pid = register(ledger)
        lease = ledger.handle(
            Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=600)
        )
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token)
        ledger.handle(beat)
        compiled.clear()
        for _ in range(5):
            ledger.handle(beat)
        assert len(ledger.history(pid)) == 8
    ends = {(sqlite3.SQLITE_TRANSACTION, "COMMIT"), (sqlite3.SQLITE_TRANSACTION, "ROLLBACK")}
    assert [asked for asked in compiled if asked[:2] not in ends] == []


def test_a_damaged_sqlite_store_is_unavailable_wherever_the_damage_is(tmp_path: Path) -> None:
    """rev29: a custody store cut short (a crash, a copy) was "invalid store: ... is not an
    SQLite database: database disk image is malformed", exit 2 (bad input), while the same
    store with one damaged page was "unavailable", exit 6. Both are a damaged SQLite file,
    unavailable, saying so; a file that is no SQLite database at all is still bad input."""
    whole = tmp_path / "whole.db"
    with Ledger.open(f"sqlite:///{whole}", create=True) as ledger:
        for n in range(300):
            ledger.handle(RegisterProfile(profile_id=f"p{n}", account_id="a", proxy_id="x"))
    cut = tmp_path / "cut.db"
    cut.write_bytes(whole.read_bytes()[:100_000])
    with pytest.raises(StoreUnavailable, match=r"malformed \(the file is damaged: restore it"):
        Ledger.open(f"sqlite:///{cut}").store.event_count()
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all\n" * 10)
    with pytest.raises(InvalidInput, match="is not an SQLite database"):
        Ledger.open(f"sqlite:///{junk}").store.event_count()


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE stored_events (id INTEGER PRIMARY KEY, payload BLOB)",
        "CREATE TABLE stored_snapshots (id INTEGER PRIMARY KEY, payload BLOB)",
        "CREATE TABLE custody_schema (id INTEGER PRIMARY KEY, note TEXT)",
    ],
    ids=["events", "snapshots", "schema"],
)
def test_another_applications_empty_table_of_the_librarys_name_is_refused_on_sqlite(
    tmp_path: Path, ddl: str
) -> None:
    """rev38: a file whose only table was another application's empty ``stored_events`` (of
    other columns) was taken for what an init cut short had left: init added custody's tables,
    answered "initialised", and every command after failed ("no such column"); a foreign
    ``custody_schema`` failed every command with "no such column: version", exit 6. Both are
    refused as not a custody store, by init as by every command, naming the table, and the file
    is left byte for byte (docs/operations/upgrades.md)."""
    path = tmp_path / "other.db"
    table = ddl.split()[2]
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(ddl)
    before = path.read_bytes()
    said = f"is not a custody store (it holds other tables: {table}, not custody's)"
    with pytest.raises(InvalidInput, match=re.escape(said)):
        Ledger.init(f"sqlite:///{path}")
    with Ledger.open(f"sqlite:///{path}") as ledger, pytest.raises(InvalidInput, match="not a"):
        ledger.availability()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.db"]


def test_another_applications_schema_table_is_refused_on_postgresql(pg_url: str) -> None:
    """rev38: the same on PostgreSQL, where init read the version of a foreign
    ``custody_schema`` and failed with the driver's words ("column version does not exist",
    exit 6). Refused as bad input naming the table, nothing made."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE custody_schema (id integer PRIMARY KEY, note text)")
    listed = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    with pytest.raises(InvalidInput, match="holds a table custody_schema that is not custody's"):
        Ledger.init(pg_url)
    with psycopg.connect(pg_url) as conn:
        assert [t for (t,) in conn.execute(listed).fetchall()] == ["custody_schema"]
