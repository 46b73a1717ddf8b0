"""``custody access grant LOGIN --role worker`` on an existing login leaves it exactly a worker,
or refuses, changing nothing; ``custody access list`` says what a login holds beyond its role.

Guarantee (docs/operations/roles.md; ``ledger.access.grant``: "create or update ``login`` with
exactly the privileges of ``role``"). Observed: the grant only swapped custody's group roles, so
an existing login kept (a) its membership of the store owner's role: listed as "worker", it
registered and disabled profiles, the role check passing over the owner's members; (b) table
privileges granted to it directly: INSERT and DELETE on ``custody_snapshots``; (c) CREATEROLE
and CREATEDB: on PostgreSQL 15 it ran ``GRANT owner TO itself`` and acted as the owner.

Each attack connects as the login itself, on a real server, as a stolen credential would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cli_process import Run, custody, error_line, ok
from owned_store import as_login
from pg_cluster import PostgresCluster

pytestmark = pytest.mark.postgres

FORBIDDEN = 7
REGISTER = ["register", "p9", "--account", "a9", "--proxy", "x9"]


class Store:
    """The owner's store, the cluster's superuser on its database, and fresh logins."""

    def __init__(self, cluster: PostgresCluster, owner_url: str, tmp: Path) -> None:
        self.url, self.tmp = owner_url, tmp
        self.owner = str(urlsplit(owner_url).username)
        parts = urlsplit(cluster.admin_url)
        self.admin = urlunsplit(parts._replace(path=urlsplit(owner_url).path))
        ok(self.cli(self.url, "register", "p1", "--account", "a1", "--proxy", "x1"))

    def cli(self, url: str, *args: str) -> Run:
        return custody("--store", url, *args, cwd=self.tmp)

    def sql(self, *statements: str) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.format(owner=self.owner))

    def new_login(self, attributes: str = "") -> str:
        name = f"l_{uuid.uuid4().hex[:8]}"
        self.sql(f"CREATE ROLE {name} LOGIN {attributes}")
        return name

    def grant(self, login: str, role: str = "worker") -> Run:
        return self.cli(self.url, "access", "grant", login, "--role", role)

    def listed(self) -> dict[str, Any]:
        rows = ok(self.cli(self.url, "--json", "access", "list")).json()
        return {r["login"]: r for r in rows}

    def memberships(self, login: str) -> list[str]:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s ORDER BY 1",
                (login,),
            ).fetchall()
        return [r[0] for r in rows]


@pytest.fixture
def store(pg_cluster: PostgresCluster, owner_url: str, tmp_path: Path) -> Store:
    return Store(pg_cluster, owner_url, tmp_path)


def _acts_only_as_a_worker(store: Store, login: str) -> None:
    """As ``login``: registering and disabling are refused (exit 7), snapshots cannot be
    written or deleted, and the login cannot make itself the owner."""
    url = as_login(store.url, login)
    for args in (REGISTER, ["disable", "p1", "--actor", "x", "--reason", "y"]):
        run = store.cli(url, *args)
        assert run.code == FORBIDDEN, (args, run.code, run.err)
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (
            "DELETE FROM custody_snapshots",
            "INSERT INTO custody_snapshots SELECT * FROM custody_snapshots LIMIT 0",
            f"GRANT {store.owner} TO {login}",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


@pytest.mark.parametrize(
    ("attributes", "setup", "named"),
    [
        ("", "GRANT {owner} TO {login}", "member of {owner} (the store's owner)"),
        ("CREATEROLE CREATEDB", "", "CREATEROLE CREATEDB"),
        ("SUPERUSER", "", "SUPERUSER"),
        ("BYPASSRLS", "", "BYPASSRLS"),
        ("", "GRANT pg_write_all_data TO {login}", "member of pg_write_all_data"),
        ("", "GRANT CREATE ON SCHEMA public TO {login}", "CREATE on schema public"),
    ],
)
def test_a_login_holding_more_is_refused_naming_it_and_nothing_changes(
    store: Store, attributes: str, setup: str, named: str
) -> None:
    """Granting a role to an existing login that holds an attribute, another role's
    membership or the schema's CREATE is bad input (exit 2): one line naming what it holds
    and the statement that removes it; the login gets no custody role and is not listed."""
    login = store.new_login(attributes)
    if setup:
        store.sql(setup.replace("{login}", login))
    before = store.memberships(login)
    run = store.grant(login)
    assert run.code == 2, (run.code, run.err)
    line = error_line(run)
    assert f"invalid login: {login} holds more than a custody role" in line, line
    assert named.format(owner=store.owner) in line, line
    assert store.memberships(login) == before
    assert login not in store.listed()


def test_once_the_owner_role_is_removed_the_login_is_exactly_a_worker(store: Store) -> None:
    """A login that was a member of the owner's role is refused, then granted once the
    membership is revoked: as itself it can no longer register, disable, write or delete
    snapshots, and ``access list`` shows it a worker with nothing more; given the owner's
    role again behind custody's back, the list says so."""
    login = store.new_login()
    store.sql(f"GRANT {{owner}} TO {login}")
    assert store.grant(login).code == 2
    store.sql(f"REVOKE {{owner}} FROM {login}")
    ok(store.grant(login))
    _acts_only_as_a_worker(store, login)
    assert store.listed()[login]["role"] == "worker"
    assert store.listed()[login]["also"] is None

    store.sql(f"GRANT {{owner}} TO {login}")
    also = store.listed()[login]["also"]
    assert also is not None
    assert f"member of {store.owner} (the store's owner)" in also, also


def test_privileges_granted_directly_on_custody_tables_are_taken_back(store: Store) -> None:
    """Table, column and default privileges the owner granted a login directly are revoked
    by the grant: as itself the login cannot write or delete snapshots, and the list shows
    nothing more; a privilege granted again afterwards is listed."""
    login = store.new_login()
    store.sql(
        f"GRANT INSERT, UPDATE, DELETE ON custody_snapshots, custody_availability TO {login}",
        f"GRANT UPDATE (state) ON custody_events TO {login}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {{owner}} GRANT ALL ON TABLES TO {login}",
    )
    ok(store.grant(login))
    _acts_only_as_a_worker(store, login)
    worker = psycopg.connect(as_login(store.url, login), autocommit=True)
    with worker as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM custody_availability")
    assert store.listed()[login]["also"] is None

    store.sql(f"GRANT INSERT ON custody_snapshots TO {login}")
    also = store.listed()[login]["also"]
    assert also is not None
    assert "INSERT ON custody_snapshots" in also, also


def test_privileges_granted_to_public_on_custody_tables_are_taken_back(store: Store) -> None:
    """What PUBLIC was given on custody's tables every login holds: a grant takes it back,
    so a worker's login cannot write snapshots through it."""
    store.sql("GRANT INSERT, DELETE ON custody_snapshots TO PUBLIC")
    login = store.new_login()
    ok(store.grant(login))
    _acts_only_as_a_worker(store, login)


@pytest.fixture
def worker_group_in_owner(store: Store) -> Iterator[None]:
    """custody_worker made a member of the owner's role (group roles are the cluster's:
    undone afterwards, whatever the test did)."""
    ok(store.grant(store.new_login()))  # the group roles exist from the first grant on
    store.sql("GRANT {owner} TO custody_worker")
    try:
        yield
    finally:
        store.sql("REVOKE {owner} FROM custody_worker")


def test_a_group_role_holding_more_is_refused_and_listed(
    store: Store, worker_group_in_owner: None
) -> None:
    """When the group role itself was given the owner's role, granting it is refused naming
    the group, and ``access list`` shows every login of the group holding more."""
    login = store.new_login()
    run = store.grant(login)
    assert run.code == 2, (run.code, run.err)
    line = error_line(run)
    assert "invalid role: the group role custody_worker holds more" in line, line
    assert store.memberships(login) == []
    store.sql(f"GRANT custody_worker TO {login}")
    also = store.listed()[login]["also"]
    assert also is not None
    assert "custody_worker: member of" in also, also
