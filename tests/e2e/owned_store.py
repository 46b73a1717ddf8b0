"""A PostgreSQL store owned as docs/operations/roles.md has it, by a login with CREATEROLE that
is not a superuser, and the URLs its logins connect with: for the tests of roles and access."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from cli_process import custody, ok
from pg_cluster import PostgresCluster, drop_database


def as_login(url: str, login: str) -> str:
    """``url`` with ``login`` as its user (and no password: the cluster trusts local logins)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{login}@{host}"))


@contextmanager
def owned_store(cluster: PostgresCluster, tmp_path: Path) -> Iterator[str]:
    """A fresh database owned by a fresh CREATEROLE login, initialised by it: its URL as the
    owner; dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    owner, db = f"own_{tag}", f"t_{tag}"
    with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE")
        conn.execute(f"CREATE DATABASE {db} OWNER {owner} TEMPLATE template0")
    url = as_login(urlunsplit(urlsplit(cluster.admin_url)._replace(path=f"/{db}")), owner)
    ok(custody("--store", url, "init", cwd=tmp_path))
    try:
        yield url
    finally:
        drop_database(cluster.admin_url, db)


def granted(owner_url: str, role: str, tmp_path: Path) -> str:
    """The URL of a new login ``access grant`` gave ``role``."""
    name = f"{role[:4]}_{uuid.uuid4().hex[:8]}"
    ok(custody("--store", owner_url, "access", "grant", name, "--role", role, cwd=tmp_path))
    return as_login(owner_url, name)
