"""Stored events are appended, never rewritten: on SQLite, triggers abort any UPDATE or DELETE
of ``stored_events``; on PostgreSQL, triggers refuse UPDATE, DELETE and TRUNCATE of
``custody_events`` even for a superuser (the test cluster's own login)."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from ledger import Ledger, RegisterProfile, StoreUnavailable
from ledger._stores.sql import SCHEMA_VERSION


def _rewrites(store_url: str) -> list[tuple[str, str]]:
    table = "custody_events" if store_url.startswith("postgresql") else "stored_events"
    done = [
        (f"UPDATE {table} SET topic = topic", "UPDATE"),
        (f"DELETE FROM {table} WHERE originator_version = 1", "DELETE"),
        (f"DELETE FROM {table}", "DELETE"),
    ]
    if store_url.startswith("postgresql"):
        done.append((f"TRUNCATE {table}", "TRUNCATE"))
    return done


def _count(store_url: str) -> int:
    if store_url.startswith("postgresql"):
        with psycopg.connect(store_url) as conn:
            row = conn.execute("SELECT count(*) FROM custody_events").fetchone()
    else:
        with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as conn:
            row = conn.execute("SELECT count(*) FROM stored_events").fetchone()
    assert row is not None
    return int(row[0])


def test_no_statement_rewrites_a_stored_event(sql_store_url: str) -> None:
    with Ledger.open(sql_store_url) as ledger:
        for n in range(3):
            ledger.handle(RegisterProfile(profile_id=f"p{n}", account_id="a", proxy_id="x"))
    for statement, op in _rewrites(sql_store_url):
        if sql_store_url.startswith("postgresql"):
            with (
                psycopg.connect(sql_store_url, autocommit=True) as conn,
                pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"{op} refused"),
            ):
                conn.execute(statement)
        else:
            with (
                closing(sqlite3.connect(sql_store_url.removeprefix("sqlite:///"))) as conn,
                pytest.raises(sqlite3.IntegrityError, match=f"{op} refused"),
            ):
                conn.execute(statement)
        assert _count(sql_store_url) == 3, statement


def test_init_again_keeps_the_guards(sql_store_url: str) -> None:
    """``custody init`` reinstalls the triggers idempotently: a second init leaves one set."""
    Ledger.init(sql_store_url).close()
    Ledger.init(sql_store_url).close()
    if sql_store_url.startswith("postgresql"):
        with psycopg.connect(sql_store_url) as conn:
            rows = conn.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'custody_events'::regclass "
                "AND NOT tgisinternal ORDER BY tgname"
            ).fetchall()
        names = [r[0] for r in rows]
        assert names == [
            "custody_events_by_role",
            "custody_events_no_rewrite",
            "custody_events_no_truncate",
            "custody_events_xid_first",
        ]
    else:
        with closing(sqlite3.connect(sql_store_url.removeprefix("sqlite:///"))) as conn:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
            ).fetchall()
        assert [r[0] for r in rows] == [
            "custody_events_no_delete",
            "custody_events_no_replace",
            "custody_events_no_update",
        ]


def _sqlite(store_url: str) -> sqlite3.Connection:
    return sqlite3.connect(store_url.removeprefix("sqlite:///"))


def _rows(store_url: str) -> list[tuple[object, ...]]:
    with closing(_sqlite(store_url)) as conn:
        return conn.execute("SELECT rowid, * FROM stored_events ORDER BY rowid").fetchall()


@pytest.mark.parametrize(
    "statement",
    [
        # p1 v1 replaced where it stands: its position and its stream and version
        "INSERT OR REPLACE INTO stored_events (rowid, originator_id, originator_version, topic, "
        "state) SELECT rowid, originator_id, originator_version, topic, CAST('{}' AS BLOB) "
        "FROM stored_events WHERE rowid = 1",
        # its stream and version, at a new position
        "INSERT OR REPLACE INTO stored_events (originator_id, originator_version, topic, state) "
        "SELECT originator_id, originator_version, topic, CAST('{}' AS BLOB) "
        "FROM stored_events WHERE rowid = 1",
        # its position, under another stream
        "INSERT OR REPLACE INTO stored_events (rowid, originator_id, originator_version, topic, "
        "state) VALUES (2, 'ffffffffffffffffffffffffffffffff', 1, 'x', CAST('{}' AS BLOB))",
    ],
    ids=["same-place", "same-version", "same-position"],
)
def test_insert_or_replace_rewrites_no_stored_event_on_sqlite(
    tmp_path: Path, statement: str
) -> None:
    """INSERT OR REPLACE deletes the row in its way without firing the DELETE trigger: an
    insert over a stored event's stream and version, or its position, is refused, and the
    log is as it was."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        for n in range(3):
            ledger.handle(RegisterProfile(profile_id=f"p{n}", account_id="a", proxy_id="x"))
    before = _rows(url)
    with closing(_sqlite(url)) as conn, pytest.raises(sqlite3.IntegrityError, match="INSERT over"):
        conn.execute(statement)
    assert _rows(url) == before


def test_init_gives_an_older_sqlite_store_the_insert_guard(tmp_path: Path) -> None:
    """A store made before the guard (schema 13, its trigger missing) is refused until its
    next init, which installs the trigger: no process appends to it unguarded meanwhile."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    with closing(_sqlite(url)) as conn:
        conn.execute("DROP TRIGGER custody_events_no_replace")
        conn.execute("UPDATE custody_schema SET version = 13")
        conn.commit()
    register = RegisterProfile(profile_id="p1", account_id="a", proxy_id="x")
    with (
        Ledger.open(url) as ledger,
        pytest.raises(
            StoreUnavailable, match=f"has schema 13, this custody needs {SCHEMA_VERSION}"
        ),
    ):
        ledger.handle(register)
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        ledger.handle(register)
    with closing(_sqlite(url)) as conn:
        found = conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'custody_events_no_replace'"
        ).fetchone()
    assert found == (1,)


def test_a_version_another_writer_took_is_still_a_conflict_decided_again(tmp_path: Path) -> None:
    """The guard refuses an append on a version another writer took before the key does: the
    ledger still takes it as a conflict, reloads the profile and decides again (the
    heartbeat of a lease force-released meanwhile is LeaseLost, never a store error)."""
    from ledger import Checkout, ForceRelease, Heartbeat, LeaseLost

    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    with Ledger.open(url) as mine, Ledger.open(url) as other:
        mine.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
        lease = mine.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r", task_type="t"))
        other.handle(ForceRelease(profile_id="p1", actor="op", reason="stop"))
        with pytest.raises(LeaseLost):
            mine.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
        assert mine.conflicts == 1


def test_an_owner_s_insert_takes_its_transaction_id_first_and_calls_no_check(pg_url: str) -> None:
    """PostgreSQL: an insert into the events has its transaction id before its row is made
    (when the row draws its notification id: ``ledger._stores.settled`` relies on it), asked for
    in the statement trigger's ``WHEN``; the owner's insert (the test cluster's superuser is a
    member of every role) calls neither trigger function, a stranger's is checked."""
    Ledger.init(pg_url).close()
    insert = (
        "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
        "SELECT gen_random_uuid(), 1, "
        "coalesce(pg_current_xact_id_if_assigned()::text, 'no transaction id'), '\\x7b7d'"
    )
    calls = (
        "SELECT coalesce(pg_stat_get_xact_function_calls(to_regproc(f)), 0) "
        "FROM unnest(ARRAY['custody_append_xid_first', 'custody_check_append']) f"
    )
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET track_functions = 'pl'")
        conn.execute(insert)
        row = conn.execute(
            "SELECT topic, pg_current_xact_id()::text FROM custody_events"
        ).fetchone()
        assert row is not None
        assert row[0] == row[1]  # the id the row saw as it was made is its transaction's
        assert [r[0] for r in conn.execute(calls)] == [0, 0]
        conn.rollback()
        stranger = f"t_stranger_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE ROLE {stranger}")
        conn.execute(f"GRANT INSERT ON custody_events TO {stranger}")
        conn.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {stranger}")
        conn.commit()
        try:
            conn.execute(f"SET ROLE {stranger}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="as no role"):
                conn.execute(insert)
        finally:
            conn.rollback()
            conn.execute(f"DROP OWNED BY {stranger}")
            conn.execute(f"DROP ROLE {stranger}")
            conn.commit()


def test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back(
    sql_store_url: str,
) -> None:
    """``custody verify`` checks the guards themselves, not only the events they kept: a
    trigger dropped or disabled, or on PostgreSQL a check function of another body (an older
    custody's init puts back its own), is exit 5 naming it, and ``custody init`` installs it
    again (rev32: after an older init, verify and projections status passed while a worker's
    login could append past a stream's head and every worker's heartbeat was refused)."""
    from audit_scene import custody

    with Ledger.open(sql_store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
    if sql_store_url.startswith("postgresql"):
        named = [
            "function custody_check_append() is not",
            "custody_events_no_rewrite on custody_events is disabled",
            "function custody_check_beside() is not",  # its pinned search path reset
            "custody_events_by_role on custody_events is not",  # WHEN (false)
            "function custody_refuse_directory_change() is not",  # SECURITY DEFINER
            "custody_events_no_truncate on custody_events is not",  # another schema's function
        ]
        with psycopg.connect(sql_store_url, autocommit=True) as conn:
            conn.execute(
                "CREATE OR REPLACE FUNCTION custody_check_append() RETURNS trigger "
                "LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$"
            )  # and pinned again as custody pins it: only its body differs
            conn.execute(
                "ALTER FUNCTION custody_check_append() "
                "SET search_path = pg_catalog, public, pg_temp"
            )
            conn.execute("ALTER TABLE custody_events DISABLE TRIGGER custody_events_no_rewrite")
            conn.execute("ALTER FUNCTION custody_check_beside() RESET search_path")
            conn.execute(
                "CREATE OR REPLACE TRIGGER custody_events_by_role BEFORE INSERT ON custody_events "
                "FOR EACH ROW WHEN (false) EXECUTE FUNCTION custody_check_append()"
            )
            conn.execute("ALTER FUNCTION custody_refuse_directory_change() SECURITY DEFINER")
            conn.execute("CREATE SCHEMA elsewhere")
            conn.execute(
                "CREATE FUNCTION elsewhere.custody_refuse_rewrite() RETURNS trigger "
                "LANGUAGE plpgsql AS $f$ BEGIN RETURN OLD; END $f$"
            )
            conn.execute(
                "CREATE OR REPLACE TRIGGER custody_events_no_truncate BEFORE TRUNCATE "
                "ON custody_events FOR EACH STATEMENT "
                "EXECUTE FUNCTION elsewhere.custody_refuse_rewrite()"
            )
    else:
        named = [
            "custody_events_no_update on stored_events is missing",
            "custody_events_no_delete on stored_events is not",  # another body, same name
        ]
        with closing(sqlite3.connect(sql_store_url.removeprefix("sqlite:///"))) as conn:
            conn.execute("DROP TRIGGER custody_events_no_update")
            conn.execute("DROP TRIGGER custody_events_no_delete")
            conn.execute(
                "CREATE TRIGGER custody_events_no_delete BEFORE DELETE ON stored_events "
                "BEGIN SELECT 1; END"
            )
    said = custody(sql_store_url, "verify")
    assert said.code == 5, said
    for name in named:
        assert any(name in line for line in said.lines()), said
    # digest refuses what verify names (rev35: it signed the store its guards were gone from)
    digest = custody(sql_store_url, "digest")
    assert digest.code == 5, digest
    assert digest.err.startswith("custody: the log does not verify, so no digest was made"), digest
    assert any(name in digest.err for name in named), digest
    assert custody(sql_store_url, "init").code == 0
    again = custody(sql_store_url, "verify")
    assert again.code == 0, again
    assert custody(sql_store_url, "digest").code == 0


@pytest.mark.postgres
def test_verify_names_a_guard_trigger_not_enabled_always_and_init_enables_it(pg_url: str) -> None:
    """Every guard trigger is enabled ALWAYS (``tgenabled`` 'A'): an ordinary one is passed
    over by a session whose ``session_replication_role`` is ``replica``, which a superuser may
    set for a login (rev39: a worker's login then appended a reviewer's verdict and verify
    passed). A guard put back to origin-only or replica-only (as a store made before stays
    until its next init) is exit 5 naming it; ``custody init`` enables it ALWAYS again.
    PostgreSQL alone: SQLite has no replication role."""
    from audit_scene import custody

    with Ledger.init(pg_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
    enabled = "SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        made = dict(conn.execute(enabled).fetchall())
        assert len(made) >= 7, made
        assert set(made.values()) == {"A"}, made
        conn.execute("ALTER TABLE custody_events ENABLE TRIGGER custody_events_by_role")
        conn.execute(
            "ALTER TABLE custody_availability ENABLE REPLICA TRIGGER custody_availability_beside"
        )
    said = custody(pg_url, "verify")
    assert said.code == 5, said
    assert sorted(said.lines()) == [
        "the store's guard trigger custody_availability_beside on custody_availability is "
        "fired only where session_replication_role is replica, not ALWAYS: custody init, as "
        "the owner, enables it ALWAYS",
        "the store's guard trigger custody_events_by_role on custody_events is passed over "
        "where session_replication_role is replica, not ALWAYS: custody init, as the owner, "
        "enables it ALWAYS",
    ], said
    assert custody(pg_url, "init").code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert dict(conn.execute(enabled).fetchall()) == made
    again = custody(pg_url, "verify")
    assert again.code == 0, again


def test_an_availability_table_dropped_is_named_and_init_writes_its_rows_again(
    sql_store_url: str,
) -> None:
    """The availability table dropped by hand: every read and the sweep say the store is
    damaged and that init repairs it (exit 1), and init makes it again with every profile's
    row written from the events (rev32 crash review: exit 6 'no such table', as if the store
    were down, then an init that made it empty: status '(none)', fleet '0 profiles')."""
    from audit_scene import custody

    with Ledger.open(sql_store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
    _run_raw(sql_store_url, "DROP TABLE custody_availability")
    for args in (["status"], ["sweep"]):
        said = custody(sql_store_url, *args)
        assert said.code == 1, said
        assert "custody_availability is missing (dropped?); custody init makes it again" in said.err
    init = custody(sql_store_url, "init")
    assert init.code == 0, init
    assert "missed the rows of 2 registered profile(s): written again" in init.out, init.out
    status = custody(sql_store_url, "--json", "status")
    assert status.code == 0, status
    assert [row["profile_id"] for row in json.loads(status.out)] == ["p1", "p2"]
    # A restore cut short leaves the rows missing (they are one transaction), and a live
    # writer may have written another's meanwhile: the next init restores what is missing (a
    # review: an init Ctrl-C'd in its restore left 88 of 1,500 rows for good).
    _run_raw(sql_store_url, "DELETE FROM custody_availability WHERE profile_id = 'p2'")
    again = custody(sql_store_url, "init")
    assert "missed the rows of 1 registered profile(s): written again" in again.out, again.out
    whole = custody(sql_store_url, "init")
    assert "missed the rows" not in whole.out, whole.out


def _run_raw(store_url: str, statement: str) -> None:
    """``statement`` as a hand at the database runs it, committed."""
    if store_url.startswith("postgresql"):
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # a test's own text
        return
    with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as conn:
        conn.execute(statement)
        conn.commit()


def test_init_restores_the_rows_it_can_and_names_a_profile_it_cannot_read(
    sql_store_url: str,
) -> None:
    """A profile whose events no read can decode, and whose row is gone with the others:
    init writes the other rows and names it, rather than fail for every profile (a review:
    one damaged profile without a row made every init fail, 'custody init cannot migrate').
    status, which shows a registered profile without a row from its events (rev36: it left
    such a profile out without a word), refuses in one line naming the event it cannot read,
    as it does for a damaged row whose events cannot be read, rather than leave p2 out."""
    from audit_scene import custody
    from raw_log import RawLog

    with Ledger.open(sql_store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
    log = RawLog(sql_store_url)
    log.run(
        f"UPDATE {log.table} SET state = ? WHERE originator_id = ?",
        b'{"profile_id": "p2"}',  # its id still read, the rest of it gone
        log.stream_id("p2"),
    )
    _run_raw(sql_store_url, "DELETE FROM custody_availability")
    init = custody(sql_store_url, "init")
    assert init.code == 0, init
    assert "but for 1 whose events cannot be read (p2)" in init.out, init.out
    status = custody(sql_store_url, "--json", "status")
    assert status.code == 1, status
    refused = json.loads(status.out)
    assert refused["error"] == "UnreadableEvent", refused
    assert "of profile 'p2' cannot be read" in refused["message"], refused
    assert "custody verify names it" in refused["message"], refused
