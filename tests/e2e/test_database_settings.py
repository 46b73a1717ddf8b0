"""A database's or a role's settings (``ALTER DATABASE/ROLE ... SET``) that change how a session
parses, isolates or talks: custody's sessions set their own (``session_options``), which win
over those, so each command behaves as written whatever the DBA set (rev39)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from cli_process import custody, custody_all, ok
from owned_store import granted, owned_store
from pg_cluster import PostgresCluster

from ledger import Ledger
from ledger._stores.connections import postgres_connection

pytestmark = pytest.mark.postgres

CHECKOUT_DENIED = 3
WORKERS = 4
ROUNDS = 3


def _set(cluster: PostgresCluster, url: str, setting: str) -> None:
    """``ALTER DATABASE <url's database> SET setting``, as the cluster's superuser."""
    database = urlsplit(url).path.lstrip("/")
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {database} SET {setting}")


def test_an_operator_registers_where_strings_are_not_standard_conforming(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """``standard_conforming_strings`` off made the backslashes of the bytea literals in
    custody's PL/pgSQL function an escape: every register by an operator's login failed "invalid
    byte sequence for encoding UTF8", exit 6."""
    with owned_store(pg_cluster, tmp_path) as owner:
        _set(pg_cluster, owner, "standard_conforming_strings = off")
        operator = granted(owner, "operator", tmp_path)
        register = ["register", "p1", "--account", "a1", "--proxy", "x1"]
        ok(custody("--store", operator, *register, cwd=tmp_path))
        ok(
            custody(
                "--store", owner, "register", "p2", "--account", "a1", "--proxy", "x2", cwd=tmp_path
            )
        )
        listed = ok(custody("--store", owner, "access", "list", cwd=tmp_path))
        assert urlsplit(operator).username in listed.out
        ok(custody("--store", owner, "verify", cwd=tmp_path))


def test_concurrent_checkouts_where_transactions_default_to_serializable(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """``default_transaction_isolation`` serializable made concurrent commands fail "could not
    serialize access" (said as the store unavailable, exit 6). Each session is READ COMMITTED,
    as custody's statements are written for: of the workers racing for one profile each round,
    one is granted it and the others are denied, never an error."""
    with owned_store(pg_cluster, tmp_path) as owner:
        _set(pg_cluster, owner, "default_transaction_isolation = 'serializable'")
        with Ledger.open(owner) as ledger, postgres_connection(ledger.settings) as direct:
            shown = direct.execute("SHOW default_transaction_isolation").fetchone()
            assert shown == ("read committed",)
            assert ledger.feed.query("SELECT current_setting('transaction_isolation') AS i") == [
                {"i": "read committed"}
            ]
        worker = granted(owner, "worker", tmp_path)
        profiles = ["shared", *(f"own{n}" for n in range(WORKERS))]
        for profile in profiles:
            register = ["register", profile, "--account", "a1", "--proxy", f"x-{profile}"]
            ok(custody("--store", owner, *register, cwd=tmp_path))
        for round_ in range(ROUNDS):
            # All race for one profile: one is granted it, the others denied.
            raced = custody_all(
                [_checkout(worker, "shared", n, round_) for n in range(WORKERS)], cwd=tmp_path
            )
            assert sorted(run.code for run in raced) == [0] + [CHECKOUT_DENIED] * (WORKERS - 1), [
                run.err for run in raced
            ]
            # Each its own profile at the same time: checkout, heartbeats, release.
            own = custody_all(
                [_checkout(worker, f"own{n}", n, round_) for n in range(WORKERS)], cwd=tmp_path
            )
            leases = [ok(run).json() for run in own] + [
                next(run for run in raced if run.code == 0).json()
            ]
            for step in ("s1", "s2"):
                beats = custody_all(
                    [
                        ["--store", worker, "heartbeat", *_lease(lease), "--step", step]
                        for lease in leases
                    ],
                    cwd=tmp_path,
                )
                for run in beats:
                    ok(run)
            releases = custody_all(
                [
                    [
                        "--store",
                        worker,
                        "release",
                        *_lease(lease),
                        "--outcome",
                        "success",
                        "--final-url",
                        "https://x.example/",
                    ]
                    for lease in leases
                ],
                cwd=tmp_path,
            )
            for run in releases:
                ok(run)
        ok(custody("--store", owner, "verify", cwd=tmp_path))


def test_a_report_prints_no_server_messages_where_the_database_sends_its_log(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """``client_min_messages`` debug5 sent the server's DEBUG and LOG lines, SQL text among
    them, to every session: ``usage --format csv`` (read through ADBC) printed them on its
    standard error."""
    with owned_store(pg_cluster, tmp_path) as owner:
        ok(
            custody(
                "--store", owner, "register", "p1", "--account", "a1", "--proxy", "x1", cwd=tmp_path
            )
        )
        _set(pg_cluster, owner, "client_min_messages = debug5")
        for command in (["usage", "--account", "a1", "--format", "csv"], ["status"], ["fleet"]):
            run = ok(custody("--store", owner, *command, cwd=tmp_path))
            assert run.err == "", (command, run.err)


def _checkout(store: str, profile: str, worker: int, round_: int) -> list[str]:
    run = ["--run", f"r{round_}", "--task", "t"]
    return ["--store", store, "--json", "checkout", profile, "--worker", f"w{worker}", *run]


def _lease(lease: dict[str, object]) -> list[str]:
    return [str(lease["lease_id"]), "--token", str(lease["fencing_token"])]
