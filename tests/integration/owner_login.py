"""A login of its own that owns a test's database and its schema public, and custody run as
it in a process of its own: for what a store's login, not the superuser, meets."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from pg_cluster import PostgresCluster

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def owner_login(pg_cluster: PostgresCluster, pg_url: str) -> Iterator[tuple[str, str]]:
    """A new login owning ``pg_url``'s database and its schema public, and its store URL (no
    password, no parameters); everything it owns is handed back and the login dropped after."""
    role = f"r_{uuid.uuid4().hex[:10]}"
    database = urlsplit(pg_url).path.lstrip("/")
    host = urlsplit(pg_cluster.admin_url).netloc.rsplit("@", 1)[-1]
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER DATABASE {database} OWNER TO {role}")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {role}")
    try:
        yield role, f"postgresql://{role}@{host}/{database}"
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")


def custody(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``custody --store STORE ARGS...`` in a process of its own, without the PG* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PYTHONPATH"] = str(REPO)
    argv = [sys.executable, "-m", "custody", "--store", store, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
