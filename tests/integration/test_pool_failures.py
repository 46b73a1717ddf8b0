"""A PostgreSQL store whose pool cannot make a connection says why (``ledger._stores.postgres``
``name_connect_failures``): the server's reason, not only how long the pool waited."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from pg_cluster import PostgresCluster

REPO = Path(__file__).resolve().parents[2]
UNAVAILABLE = 6


def test_a_pool_that_cannot_connect_names_the_server_s_reason(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    """rev29: a login with one connection slot left (each command holds its first, direct
    connection while it takes one from the pool) failed after the store's timeout with only
    "couldn't get a connection after 5.00 sec": the server's "too many connections for role"
    was lost. The line now ends with the last connection attempt's reason."""
    role = f"r_{uuid.uuid4().hex[:10]}"
    database = urlsplit(pg_url).path.lstrip("/")
    host = urlsplit(pg_cluster.admin_url).netloc.rsplit("@", 1)[-1]
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER DATABASE {database} OWNER TO {role}")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {role}")
    store = f"postgresql://{role}@{host}/{database}?timeout=2"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PYTHONPATH"] = str(REPO)

    def custody(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "custody", "--store", store, *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)

    try:
        assert custody("init").returncode == 0
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE {role} CONNECTION LIMIT 1")
        run = custody("status")
        assert run.returncode == UNAVAILABLE, run.stderr
        lines = run.stderr.splitlines()
        assert len(lines) == 1, run.stderr
        assert "couldn't get a connection after 2.00 sec" in lines[0]
        assert "the last connection attempt failed:" in lines[0]
        assert f'too many connections for role "{role}"' in lines[0]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
