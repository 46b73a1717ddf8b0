"""A PostgreSQL login whose search path leaves out the schema public: the library keeps the
events in public while custody's own tables and look-ups follow the search path, so init made
the events there and then failed with a traceback (IndexError, found by a review). Every
command now refuses such a store in one line, before anything is made."""

from __future__ import annotations

import psycopg
from owner_login import custody, owner_login
from pg_cluster import PostgresCluster

BAD_INPUT = 2


def test_a_login_without_public_on_its_search_path_is_refused_in_one_line(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    with owner_login(pg_cluster, pg_url) as (role, store):
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "Their Schema" AUTHORIZATION {role}')
            conn.execute(f'ALTER ROLE {role} SET search_path = "Their Schema"')
        for command in (["init"], ["status"]):
            run = custody(f"{store}?timeout=2", *command)
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


def test_a_new_store_is_not_split_by_a_schema_before_public(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    """A login with a schema of its own name (PostgreSQL 15's advice) and the default
    search_path ``"$user", public`` made the events in public and custody's other tables in
    its schema: every login ``access grant`` made was told "not initialised" (a review found
    it). init refuses to make such a store, in one line, before anything is made; with the
    search path set to public it makes the store whole."""
    with owner_login(pg_cluster, pg_url) as (role, store):
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA AUTHORIZATION {role}")
        _refused_init(store, role)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            made = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('public', %s) AND c.relkind = 'r'",
                (role,),
            ).fetchone()
            assert made == (0,)
            conn.execute(f"ALTER ROLE {role} SET search_path = public")
        assert custody(f"{store}?timeout=2", "init").returncode == 0
        with psycopg.connect(pg_url, autocommit=True) as conn:
            schemas = conn.execute(
                "SELECT DISTINCT n.nspname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname LIKE 'custody%%' AND c.relkind = 'r'"
            ).fetchall()
        assert schemas == [("public",)]


def test_verify_by_a_login_whose_own_schema_comes_first_finds_the_guards_beside_the_events(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    """A store made whole in public, then a schema of the owner's own name made later (its
    search path ``"$user", public`` puts it first): every command finds custody's tables in
    public, and verify's check of the guards looks beside the events too, not in the login's
    current schema (a review: 12 guards 'missing', exit 5, for a store that held them all)."""
    with owner_login(pg_cluster, pg_url) as (role, store):
        assert custody(store, "init").returncode == 0
        assert custody(store, "register", "p1", "--account", "a", "--proxy", "x").returncode == 0
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA AUTHORIZATION {role}")
        run = custody(store, "verify")
        assert run.returncode == 0, run.stdout + run.stderr


def test_init_of_a_store_made_before_refuses_a_login_whose_own_schema_now_comes_first(
    pg_cluster: PostgresCluster, pg_url: str
) -> None:
    """A store made whole in public, then a schema of the owner's own name: init refuses in
    one line and makes nothing there (rev32, a review of the guard check: it made a second set
    of custody's tables and guard functions in that schema and pointed the events' triggers at
    them, after which every worker's checkout failed, while verify passed)."""
    with owner_login(pg_cluster, pg_url) as (role, store):
        assert custody(store, "init").returncode == 0
        assert custody(store, "register", "p1", "--account", "a", "--proxy", "x").returncode == 0
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA AUTHORIZATION {role}")
        line = _refused_init(store, role)
        assert "an init here would split the store" in line
        with psycopg.connect(pg_url, autocommit=True) as conn:
            made = conn.execute(
                "SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace", (role,)
            ).fetchone()
        assert made == (0,)
        assert custody(store, "verify").returncode == 0


def _refused_init(store: str, role: str) -> str:
    """``custody init``'s one line refusing a login that makes new tables in ``role`` first."""
    run = custody(f"{store}?timeout=2", "init")
    assert run.returncode == BAD_INPUT, run.stderr
    (line,) = run.stderr.splitlines()
    assert f"makes new tables in {role}, before public" in line
    return line
