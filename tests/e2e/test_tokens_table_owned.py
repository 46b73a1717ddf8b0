"""The lease service's tokens table is the store owner's: ``custody init`` makes it, and a table
of that name another login owns is refused by ``access token`` and named by ``access grant``.

Observed (rev27 audit, finding 2): the table was made lazily by the first ``access token``; a
worker login that could once CREATE in the schema (PostgreSQL 14's default, or a past grant)
made it first, kept owning it after ``REVOKE CREATE``, wrote a token hash of its choosing with
role reviewer (the lease service then took it as a reviewer's), and ``access grant`` still
listed it as a worker. Each step connects as the login itself, on a real server.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cli_process import custody, error_line, ok
from owned_store import as_login, granted
from pg_cluster import PostgresCluster

from ledger import Ledger
from ledger.access import token_holder

pytestmark = pytest.mark.postgres

_COLUMNS = (
    "(token_hash TEXT PRIMARY KEY, token_id TEXT NOT NULL UNIQUE, actor TEXT NOT NULL, "
    "role TEXT NOT NULL, issued_at TEXT NOT NULL, revoked_at TEXT)"
)


def _admin(cluster: PostgresCluster, owner_url: str) -> str:
    """The cluster's superuser on the store's database."""
    parts = urlsplit(cluster.admin_url)
    return urlunsplit(parts._replace(path=urlsplit(owner_url).path))


def _sql(url: str, *statements: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows: list[tuple[object, ...]] = []
        for statement in statements:
            cursor = conn.execute(statement)
            rows = cursor.fetchall() if cursor.description else []
        return rows


def _tokens_owner(url: str) -> object:
    found = _sql(url, "SELECT pg_get_userbyid(relowner) FROM pg_class "
                      "WHERE oid = to_regclass('custody_tokens')")  # fmt: skip
    return found[0][0] if found else None


def test_init_makes_the_tokens_table_as_the_owner(owner_url: str, tmp_path: Path) -> None:
    """After init (of a new store, and of one made before the table was) custody_tokens is the
    owner's and a worker's login may not write a token into it."""
    owner = urlsplit(owner_url).username
    assert _tokens_owner(owner_url) == owner
    _sql(owner_url, "DROP TABLE custody_tokens")  # as a store made before it was
    ok(custody("--store", owner_url, "init", cwd=tmp_path))
    assert _tokens_owner(owner_url) == owner
    worker = granted(owner_url, "worker", tmp_path)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _sql(worker, "INSERT INTO custody_tokens VALUES ('h', 'i', 'mallory', 'reviewer', 'now')")


def test_a_tokens_table_a_login_made_first_is_refused_and_named(
    pg_cluster: PostgresCluster, owner_url: str, tmp_path: Path
) -> None:
    """A login that made custody_tokens while it could CREATE in the schema: init refuses
    (exit 2) naming the table's owner, access grant refuses the login (exit 2) naming the
    table it owns, and access token refuses (exit 2) naming the owner, writing no token."""
    admin = _admin(pg_cluster, owner_url)
    squatter = f"l_{uuid.uuid4().hex[:8]}"
    _sql(owner_url, "DROP TABLE IF EXISTS custody_tokens")  # a store made before init made it
    _sql(admin, f"CREATE ROLE {squatter} LOGIN", f"GRANT CREATE ON SCHEMA public TO {squatter}")
    _sql(as_login(owner_url, squatter), f"CREATE TABLE public.custody_tokens {_COLUMNS}")
    _sql(admin, f"REVOKE CREATE ON SCHEMA public FROM {squatter}")
    owner = urlsplit(owner_url).username
    said = f"the table custody_tokens is owned by {squatter}, not by the store's owner {owner}"
    run = custody("--store", owner_url, "init", cwd=tmp_path)
    assert (run.code, said in run.err) == (2, True), (run.code, run.err)
    run = custody("--store", owner_url, "access", "grant", squatter, "--role", "worker",
                  cwd=tmp_path)  # fmt: skip
    assert run.code == 2, (run.code, run.err)
    line = error_line(run)
    assert f"invalid login: {squatter} holds more than a custody role" in line, line
    assert "owner of table custody_tokens" in line, line
    run = custody("--store", owner_url, "access", "token", "alice", "--role", "reviewer",
                  cwd=tmp_path)  # fmt: skip
    assert run.code == 2, (run.code, run.err)
    line = error_line(run)
    assert said in line, line
    assert "so no token was issued" in line, line
    assert _sql(admin, "SELECT count(*) FROM custody_tokens") == [(0,)]


def test_the_lease_service_trusts_no_token_in_a_table_a_login_made_first(
    pg_cluster: PostgresCluster, owner_url: str, tmp_path: Path
) -> None:
    """A reviewer's token the squatter wrote into the table it owns (a store not yet through
    init again) is no token to the lease service's lookup."""
    admin = _admin(pg_cluster, owner_url)
    squatter = f"l_{uuid.uuid4().hex[:8]}"
    _sql(owner_url, "DROP TABLE IF EXISTS custody_tokens")
    _sql(admin, f"CREATE ROLE {squatter} LOGIN", f"GRANT CREATE ON SCHEMA public TO {squatter}")
    forged = "cst_" + "m" * 43
    _sql(
        as_login(owner_url, squatter),
        f"CREATE TABLE public.custody_tokens {_COLUMNS}",
        "INSERT INTO custody_tokens VALUES "
        f"('{hashlib.sha256(forged.encode()).hexdigest()}', 'x', 'mallory', 'reviewer', 'now')",
        "GRANT SELECT ON custody_tokens TO PUBLIC",  # the lease service must read it
    )
    with Ledger.open(owner_url) as ledger:
        assert token_holder(ledger, forged) is None
