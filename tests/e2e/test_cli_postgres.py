"""End to end: the ``custody`` command line as a subprocess, on a shared PostgreSQL store."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import custody, error_line, event_types, finish, ok, start

pytestmark = pytest.mark.postgres

PROFILE = "profile_shop_17"
REGISTER = ["register", PROFILE, "--account", "account_shop_17", "--proxy", "proxy_us_east_12"]


def checkout_args(worker: str) -> list[str]:
    return ["checkout", PROFILE, "--worker", worker, "--run", f"run_{worker}", "--task", "t"]


def test_command_before_init_says_to_run_init(pg_url: str, tmp_path: Path) -> None:
    """On a PostgreSQL database without the schema, a checkout exits 6 and says to run
    custody init (workers never create tables)."""
    run = custody("--store", pg_url, *checkout_args("worker_03"), cwd=tmp_path)
    assert run.code == 6, run.err
    assert "custody init" in error_line(run)


def test_init_is_idempotent_then_a_lease_runs(pg_url: str, tmp_path: Path) -> None:
    """``custody init`` twice exits 0 both times; then register, checkout and release work
    with the store given by $CUSTODY_STORE."""
    ok(custody("--store", pg_url, "init", cwd=tmp_path))
    ok(custody("--store", pg_url, "init", cwd=tmp_path))

    ok(custody(*REGISTER, cwd=tmp_path, store=pg_url))
    lease = ok(custody("--json", *checkout_args("worker_03"), cwd=tmp_path, store=pg_url)).json()
    assert lease["lease_id"] == f"lease-1@{PROFILE}"
    assert lease["fencing_token"] == 1
    release = ["release", lease["lease_id"], "--token", "1", "--outcome", "success"]
    released = custody(
        "--json", *release, "--final-url", "https://shop.example/done", cwd=tmp_path, store=pg_url
    )
    assert ok(released).json()["profile_state"] == "available"


def test_simultaneous_checkouts_one_wins(pg_url: str, tmp_path: Path) -> None:
    """Two checkouts of one profile started at the same time: exactly one exits 0, the other
    exits 3 naming the winner, and the history holds one lease."""
    ok(custody("--store", pg_url, "init", cwd=tmp_path))
    ok(custody(*REGISTER, cwd=tmp_path, store=pg_url))

    racers = {w: start(*checkout_args(w), cwd=tmp_path, store=pg_url) for w in ("w_a", "w_b")}
    runs = {w: finish(proc) for w, proc in racers.items()}

    codes = sorted(run.code for run in runs.values())
    assert codes == [0, 3], {w: (r.code, r.err) for w, r in runs.items()}
    winner = next(w for w, r in runs.items() if r.code == 0)
    loser = next(r for r in runs.values() if r.code == 3)
    assert f"worker {winner}" in error_line(loser)
    timeline = ok(custody("--json", "timeline", PROFILE, cwd=tmp_path, store=pg_url)).json()
    assert event_types(timeline).count("lease_acquired") == 1


def test_a_write_whose_session_ends_under_it_names_the_id_that_tells(
    pg_url: str, tmp_path: Path
) -> None:
    """A checkout whose backend is terminated while its insert runs is exit 6 with one line
    saying it may have been carried out and naming its ``--command-id``; the same command
    with that id then answers (here: carries it out, once). rev32: a checkout terminated at
    its COMMIT said only 'server closed the connection', while the lease had been granted."""
    import time

    import psycopg

    ok(custody("init", cwd=tmp_path, store=pg_url))
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path, store=pg_url))
    sleep = (
        "CREATE FUNCTION test_sleep() RETURNS trigger LANGUAGE plpgsql AS "
        "$f$ BEGIN PERFORM pg_sleep(60); RETURN NEW; END $f$"
    )
    checkout = ("checkout", "p1", "--worker", "w1", "--run", "r", "--task", "t")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sleep)
        conn.execute(
            "CREATE TRIGGER test_sleep BEFORE INSERT ON custody_events "
            "FOR EACH ROW EXECUTE FUNCTION test_sleep()"
        )
        running = start(*checkout, "--command-id", "co-1", cwd=tmp_path, store=pg_url)
        for _ in range(600):
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                "AND query LIKE '%custody_events%'"
            ).fetchone()
            if row is not None:
                break
            time.sleep(0.05)
        assert row is not None, "the checkout never reached its insert"
        conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        said = finish(running)
        conn.execute("DROP TRIGGER test_sleep ON custody_events")
    assert said.code == 6, said
    assert "checkout may have been carried out" in said.err, said.err
    assert "the same command with --command-id co-1 answers as it did" in said.err, said.err
    assert len(said.err.strip().splitlines()) == 1, said.err
    again = ok(custody("--json", *checkout, "--command-id", "co-1", cwd=tmp_path, store=pg_url))
    assert '"fencing_token": 1' in again.out, again.out


@pytest.mark.parametrize("part", ["database", "user"])
def test_a_nul_in_the_url_names_no_other_store(pg_url: str, tmp_path: Path, part: str) -> None:
    """rev38: libpq takes C strings, so ``.../store1%00prod`` opened ``store1`` (and ``init``
    there answered "initialised: ...store1\\x00prod", exit 0). A NUL in the database, user or
    password is bad input naming the part (exit 2, one line), and nothing is made."""
    scheme, _, rest = pg_url.partition("://")
    user, _, place = rest.partition("@")
    url = f"{scheme}://{user}%00x@{place}" if part == "user" else f"{pg_url}%00prod"
    run = custody("--store", url, "init", cwd=tmp_path)
    assert run.code == 2, run.err
    assert f"a NUL byte (%00) in the {part} of" in error_line(run)
    before_init = custody("--store", pg_url, "status", cwd=tmp_path)
    assert before_init.code == 6, before_init.err
    assert "not initialised" in error_line(before_init)
