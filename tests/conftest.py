"""Fixtures shared by every test suite.

PostgreSQL: one throwaway cluster per test session (see `pg_cluster.py`), or the server named by
the environment variable CUSTODY_TEST_PG_URL (an admin URL with the right to create databases),
which is then used as it is and never started or stopped.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import PostgresCluster, create_database, drop_database

PG_URL_ENV = "CUSTODY_TEST_PG_URL"


@pytest.fixture(scope="session", autouse=True)
def _temporary_files_in_the_session() -> Iterator[None]:
    """Every temporary file the session and its children make (a demo's kept fleet directory,
    Chromium's and Node's scratch, ``mkdtemp`` in the TypeScript tests) goes under one
    directory of the session's, removed when it ends: a day of runs had left some 2,600
    directories (389 MB) in /tmp. It is in the temporary directory the session found, and
    others may enter it (not pytest's base directory, which only its owner may): tests run
    commands as another user on a store in a directory of their own below it."""
    scratch = Path(tempfile.mkdtemp(prefix="custody-tests-"))
    scratch.chmod(0o755)
    before = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(scratch)
    tempfile.tempdir = None  # gettempdir() caches its answer; let it read TMPDIR again
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = before
        tempfile.tempdir = None
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL server: `.url` is database custody_test, `.admin_url` postgres.

    Started on first use and stopped at the end of the session (and at exit, should the session
    die first); with CUSTODY_TEST_PG_URL set, that server is used instead and left alone.
    """
    external = os.environ.get(PG_URL_ENV)
    if external:
        cluster = PostgresCluster.attach(external)
    else:
        cluster = PostgresCluster.start()
        atexit.register(cluster.stop)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """URL of a fresh, empty database made for this test alone and dropped after it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = create_database(pg_cluster.admin_url, name)
    try:
        yield url
    finally:
        drop_database(pg_cluster.admin_url, name)
