"""A PostgreSQL login whose search path leaves out the schema public: the library keeps the
events in public while custody's own tables and look-ups follow the search path, so init made
the events there and then failed with a traceback (IndexError, found by a review). Every
command now refuses such a store in one line, before anything is made."""

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
BAD_INPUT = 2


def test_a_login_without_public_on_its_search_path_is_refused_in_one_line(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    role = f"r_{uuid.uuid4().hex[:10]}"
    database = urlsplit(pg_url).path.lstrip("/")
    host = urlsplit(pg_cluster.admin_url).netloc.rsplit("@", 1)[-1]
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"ALTER DATABASE {database} OWNER TO {role}")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {role}")
        conn.execute(f'CREATE SCHEMA "Their Schema" AUTHORIZATION {role}')
        conn.execute(f'ALTER ROLE {role} SET search_path = "Their Schema"')
    store = f"postgresql://{role}@{host}/{database}?timeout=2"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PYTHONPATH"] = str(REPO)

    def custody(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "custody", "--store", store, *args]
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)

    try:
        for command in (["init"], ["status"]):
            run = custody(*command)
            assert run.returncode == BAD_INPUT, run.stderr
            (line,) = run.stderr.splitlines()
            assert "search_path" in line
            assert "public" in line
        with psycopg.connect(pg_url, autocommit=True) as conn:
            made = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('public', 'Their Schema') AND c.relkind = 'r'"
            ).fetchone()
        assert made == (0,)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP ROLE {role}")
