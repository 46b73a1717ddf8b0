"""A PostgreSQL store whose pool cannot make a connection says why (``ledger._stores.postgres``
``name_connect_failures``): the server's reason, not only how long the pool waited."""

from __future__ import annotations

import psycopg
from owner_login import custody, owner_login
from pg_cluster import PostgresCluster

UNAVAILABLE = 6


def test_a_pool_that_cannot_connect_names_the_server_s_reason(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    """rev29: a login with one connection slot left (each command holds its first, direct
    connection while it takes one from the pool) failed after the store's timeout with only
    "couldn't get a connection after 5.00 sec": the server's "too many connections for role"
    was lost. The line now ends with the last connection attempt's reason."""
    with owner_login(pg_cluster, pg_url) as (role, store):
        assert custody(f"{store}?timeout=2", "init").returncode == 0
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} CONNECTION LIMIT 1")
        run = custody(f"{store}?timeout=2", "status")
        assert run.returncode == UNAVAILABLE, run.stderr
        lines = run.stderr.splitlines()
        assert len(lines) == 1, run.stderr
        assert "couldn't get a connection after 2.00 sec" in lines[0]
        assert "the last connection attempt failed:" in lines[0]
        assert f'too many connections for role "{role}"' in lines[0]
