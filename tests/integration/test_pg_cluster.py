"""The test run's throwaway PostgreSQL: it answers, and every test gets its own database."""

from __future__ import annotations

import psycopg
import pytest
from pg_cluster import PostgresCluster
from psycopg.conninfo import conninfo_to_dict

pytestmark = pytest.mark.postgres

# Databases handed out by `pg_url` earlier in this session, in order.
_seen_urls: list[str] = []


def test_cluster_answers_and_is_postgresql_15_or_newer(pg_cluster: PostgresCluster) -> None:
    """The session cluster answers `select version()` and runs PostgreSQL 15 or newer."""
    with psycopg.connect(pg_cluster.url) as conn:
        row = conn.execute("select version(), current_database()").fetchone()
        server_version = conn.info.server_version
    assert row is not None
    version, database = row
    assert str(version).startswith("PostgreSQL ")
    assert server_version >= 150000
    assert database == "custody_test"


@pytest.mark.parametrize("turn", ["first", "second"])
def test_each_pg_url_is_a_distinct_fresh_database(
    turn: str, pg_url: str, pg_cluster: PostgresCluster
) -> None:
    """Each `pg_url` is a new database: a table created in an earlier one is absent from it."""
    assert pg_url not in _seen_urls
    assert pg_url not in (pg_cluster.url, pg_cluster.admin_url)
    earlier = [str(conninfo_to_dict(url)["dbname"]) for url in _seen_urls]
    with psycopg.connect(pg_cluster.admin_url) as conn:
        left_over = conn.execute(
            "select datname from pg_database where datname = any(%s)", (earlier,)
        ).fetchall()
    assert left_over == [], "pg_url databases of earlier tests must have been dropped"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("select to_regclass('probe')").fetchone() == (None,)
        conn.execute("create table probe (turn text not null)")
        conn.execute("insert into probe (turn) values (%s)", (turn,))
        assert conn.execute("select turn from probe").fetchall() == [(turn,)]
    with psycopg.connect(pg_cluster.url) as conn:
        assert conn.execute("select to_regclass('probe')").fetchone() == (None,)
    _seen_urls.append(pg_url)
