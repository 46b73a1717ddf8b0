"""``custody access grant --password-stdin`` never sends the password itself to the server.

Observed (rev38 review): the grant ran ``CREATE ROLE x LOGIN PASSWORD '<the password>'``, so a
server logging DDL (``log_statement = 'ddl'``) wrote every granted password into its log, and
one with the defaults (``log_min_error_statement = error``) every password of a grant that
failed. The statement now carries the password's SCRAM-SHA-256 verifier, made on custody's
side; the login still signs in with the password, under scram-sha-256.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from owned_store import owned_store
from pg_cluster import PostgresCluster

pytestmark = pytest.mark.postgres

LOGIN = "w_logged"


@pytest.fixture(scope="module")
def logging_server() -> Iterator[PostgresCluster]:
    """A server of its own that logs every DDL statement and asks ``LOGIN`` for its password
    (scram-sha-256; the session's cluster trusts every login)."""
    cluster = PostgresCluster.start()
    try:
        assert cluster.base_dir is not None
        hba = cluster.base_dir / "data" / "pg_hba.conf"
        hba.write_text(f"host all {LOGIN} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET log_statement = 'ddl'")
            conn.execute("SELECT pg_reload_conf()")
        yield cluster
    finally:
        cluster.stop()


def _sign_in(server: PostgresCluster, password: str) -> None:
    psycopg.connect(
        host="127.0.0.1", port=server.port, user=LOGIN, password=password,
        dbname="custody_test", connect_timeout=10,
    ).close()  # fmt: skip


def test_a_granted_password_is_in_no_statement_the_server_logs(
    logging_server: PostgresCluster, tmp_path: Path
) -> None:
    """Creating the login and changing its password: the server's log shows each statement
    with a SCRAM verifier and never the password, and the login signs in with it."""
    assert logging_server.base_dir is not None
    log = logging_server.base_dir / "log"
    first, second = f"First-{uuid.uuid4().hex}", f"Second-{uuid.uuid4().hex}"
    with owned_store(logging_server, tmp_path) as url:
        for password in (first, second):  # CREATE ROLE, then ALTER ROLE
            run = subprocess.run(
                [sys.executable, "-m", "custody", "--store", url, "access", "grant", LOGIN,
                 "--role", "worker", "--password-stdin"],
                input=f"{password}\n", capture_output=True, text=True, cwd=tmp_path,
                timeout=60, check=False,
            )  # fmt: skip
            assert run.returncode == 0, run.stderr
        logged = log.read_text(errors="replace")
        assert first not in logged
        assert second not in logged
        for verb in ("CREATE", "ALTER"):
            assert f"{verb} ROLE {LOGIN} LOGIN PASSWORD 'SCRAM-SHA-256$4096:" in logged, verb
        _sign_in(logging_server, second)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            _sign_in(logging_server, first)  # the password is asked for, and checked
