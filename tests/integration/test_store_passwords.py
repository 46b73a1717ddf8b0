"""A PostgreSQL password kept out of the store URL: libpq's ``PGPASSWORD`` or password file
(``PGPASSFILE``, ``~/.pgpass``), so that it shows in no process list and no shell history. Every
session custody opens finds it as libpq does: each command's direct connection, the library's
pool (which was handed an empty password that hid both) and the pandas read path, against a
real server that asks this login for its password (scram-sha-256).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pg_cluster import PostgresCluster

REPO = Path(__file__).resolve().parents[2]
LOGIN, PASSWORD = "custody_pw", "s3cret-Pw"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresCluster]:
    """A server of its own whose pg_hba.conf asks ``LOGIN`` for its password (the session's
    cluster trusts every login)."""
    cluster = PostgresCluster.start()
    try:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {LOGIN} LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"ALTER DATABASE custody_test OWNER TO {LOGIN}")
            conn.execute(f"ALTER SCHEMA public OWNER TO {LOGIN}")
        assert cluster.base_dir is not None
        hba = cluster.base_dir / "data" / "pg_hba.conf"
        hba.write_text(f"host all {LOGIN} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        yield cluster
    finally:
        cluster.stop()


def _custody(url: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    return subprocess.run(
        [sys.executable, "-m", "custody", "--store", url, *args],
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(REPO), **env},
        timeout=120,
        check=False,
    )


def _every_kind_of_session(url: str, env: dict[str, str], profile: str) -> None:
    for args in (  # each opens a direct connection first; a write takes one from the pool
        ("init",),
        ("register", profile, "--account", "account_pw", "--proxy", "proxy_pw"),
        ("checkout", profile, "--worker", "w1", "--run", "r1", "--task", "t1"),
        ("--json", "usage", "--account", "account_pw"),  # the pandas read path (ADBC)
    ):
        done = _custody(url, env, *args)
        assert done.returncode == 0, (args, done.stderr)
    assert f'"profile_id": "{profile}"' in done.stdout


def test_a_password_in_pgpassword_reaches_every_session(server: PostgresCluster) -> None:
    url = f"postgresql://{LOGIN}@127.0.0.1:{server.port}/custody_test"
    _every_kind_of_session(url, {"PGPASSWORD": PASSWORD}, "profile_env")


def test_a_password_in_a_password_file_reaches_every_session(
    server: PostgresCluster, tmp_path: Path
) -> None:
    url = f"postgresql://{LOGIN}@127.0.0.1:{server.port}/custody_test"
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{server.port}:*:{LOGIN}:{PASSWORD}\n")
    passfile.chmod(0o600)
    _every_kind_of_session(url, {"PGPASSFILE": str(passfile)}, "profile_file")


def test_a_wrong_password_is_one_line_naming_it(server: PostgresCluster) -> None:
    url = f"postgresql://{LOGIN}@127.0.0.1:{server.port}/custody_test"
    done = _custody(url, {"PGPASSWORD": "not-it"}, "status")
    assert done.returncode == 6, done.stderr
    (line,) = done.stderr.splitlines()
    assert "password authentication failed" in line
    assert "not-it" not in line
