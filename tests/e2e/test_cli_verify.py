"""End to end: the audit commands as a person runs them, as subprocesses, on SQLite and on
PostgreSQL: a key, a signed digest, an event edited in the database behind custody's back
(its triggers gone around), verify naming it with exit 5 and one line on stderr, and, with
the row put back and init run, verify holding again and proving the next digest extends the
first."""

from __future__ import annotations

import json
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cli_process import custody, custody_all, error_line, ok, read_terminal
from guards_aside import guards_aside

from ledger import Checkout, Heartbeat, Ledger, RegisterProfile, Release
from ledger._stores.access import append_only_ddl


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store holding p1's lease: registered, leased, renewed, released (v1 to v5)."""
    url = (
        f"sqlite:///{tmp_path / 'custody.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    with Ledger.init(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t")
        ).lease_id
        ledger.handle(Heartbeat(lease_id=lease, fencing_token=1, step="cart"))
        ledger.handle(Release(lease_id=lease, fencing_token=1, outcome="success", final_url="u"))
    return url


@contextmanager
def _as_superuser(url: str) -> Iterator[Any]:
    """A raw session that the append-only triggers do not stop (committed at the end)."""
    if url.startswith("postgresql"):
        with psycopg.connect(url) as conn, guards_aside(conn):
            yield conn
        return
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        conn.execute("DROP TRIGGER IF EXISTS custody_events_no_update")
        yield conn
        # Put back as custody installs it: verify checks the guards too.
        for statement in append_only_ddl("stored_events", "custody_availability", owner=None):
            conn.execute(statement)
        conn.commit()


def _heartbeat_state(url: str, state: bytes | None = None) -> bytes:
    """p1's heartbeat (v3) as stored; with ``state``, stored as that instead."""
    pg = url.startswith("postgresql")
    table, mark = ("custody_events", "%s") if pg else ("stored_events", "?")
    with _as_superuser(url) as conn:
        if state is not None:
            conn.execute(
                f"UPDATE {table} SET state = {mark} WHERE topic = 'lease_heartbeat'", (state,)
            )
        (found,) = conn.execute(f"SELECT state FROM {table} WHERE topic = 'lease_heartbeat'")
        return bytes(found[0])


def test_a_signed_digest_catches_an_edit_and_the_restored_log_extends_it(
    store: str, tmp_path: Path
) -> None:
    """keygen makes a private key only its owner reads; digest --key signs; an edited
    heartbeat makes verify --public-key exit 5 naming p1 v3 on stdout (and in --json) with
    one line on stderr; the original bytes back and init run, verify exits 0 and a second
    digest, naming the first as its previous, is proved to extend it."""
    key, first, second = tmp_path / "audit.key", tmp_path / "first.json", tmp_path / "second.json"
    ok(custody("keygen", str(key), cwd=tmp_path, store=store))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ok(custody("digest", "--key", str(key), "--out", str(first), cwd=tmp_path, store=store))
    recorded = json.loads(first.read_bytes())
    assert (recorded["tree"]["size"], recorded["heads"]["p1"]["version"]) == (5, 5)
    assert recorded["signature"]

    genuine = _heartbeat_state(store)
    _heartbeat_state(store, genuine.replace(b'"step":"cart"', b'"step":"home"'))
    check = ["verify", "--digest", str(first), "--public-key", f"{key}.pub"]
    said, as_json = custody_all([check, ["--json", *check]], cwd=tmp_path, store=store)
    assert said.code == as_json.code == 5
    assert said.out.splitlines() == [
        "checked 5 events of 1 profiles: 1 problem(s)",
        "  p1 v3: its body was edited after it was stored (it no longer hashes to its link)",
    ]
    assert error_line(said) == "custody: verify: 1 problem(s) in the log"
    assert json.loads(as_json.out)["problems"] == [said.out.splitlines()[1].strip()]

    _heartbeat_state(store, genuine)
    ok(custody("init", cwd=tmp_path, store=store))
    assert "every chain holds" in ok(custody(*check, cwd=tmp_path, store=store)).out
    ok(custody("register", "p2", "--account", "a", "--proxy", "x", cwd=tmp_path, store=store))
    ok(
        custody(
            *("digest", "--key", str(key), "--out", str(second), "--previous", str(first)),
            cwd=tmp_path,
            store=store,
        )
    )
    proved = custody(
        *("verify", "--digest", str(second), "--since-digest", str(first)),
        *("--public-key", f"{key}.pub"),
        cwd=tmp_path,
        store=store,
    )
    assert ok(proved).out.rstrip().endswith("; the later digest's log extends the earlier's")
    assert "checked 6 events of 2 profiles" in proved.out


def _on_a_terminal(tmp_path: Path, store: str, *args: str) -> tuple[int, bytes]:
    """Run ``custody --store STORE ARGS`` with stdout and stderr on one pseudo-terminal, as a
    person sees it: its exit code and what the terminal showed."""
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "dumb"}
    env.pop("CUSTODY_STORE", None)
    proc = subprocess.Popen([sys.executable, "-m", "custody", "--store", store, *args],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower)  # fmt: skip
    os.close(follower)
    shown = read_terminal(leader)
    return proc.wait(timeout=60), shown


def test_the_progress_line_is_ended_before_what_follows_it(tmp_path: Path) -> None:
    """rev31: digest on a terminal never ended its progress line, so its answer (the digest's
    JSON a person copies, or "digest: d.json") and its refusal were glued to it: "custody: 1
    events walkedcustody: the log does not verify". The line is ended whenever it was shown:
    digest to stdout, to a file, and refused."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.open(store) as ledger:
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    code, shown = _on_a_terminal(tmp_path, store, "digest")
    assert code == 0, shown
    assert b"events walked\r\n{" in shown, shown
    code, shown = _on_a_terminal(tmp_path, store, "digest", "--out", "d.json")
    assert code == 0, shown
    assert b"events walked\r\ndigest: d.json" in shown, shown
    with closing(sqlite3.connect(tmp_path / "custody.db")) as db:
        db.execute("DROP TRIGGER custody_events_no_update")
        db.execute("UPDATE stored_events SET state = CAST('{}' AS BLOB)")
        db.commit()
    code, shown = _on_a_terminal(tmp_path, store, "digest", "--out", "d.json")
    assert code == 5, shown
    assert b"events walked\r\ncustody: the log does not verify" in shown, shown


def test_the_progress_line_on_a_terminal_holds_no_escape_sequence(tmp_path: Path) -> None:
    """rev22: verify's progress line on a terminal ended in ``ESC [K``, which a dumb terminal
    (TERM=dumb) shows as text. It is the count alone, each line covering the last."""
    import os
    import pty
    import subprocess
    import sys

    store = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.open(store) as ledger:
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "dumb"}
    env.pop("CUSTODY_STORE", None)
    proc = subprocess.Popen([sys.executable, "-m", "custody", "--store", store, "verify"],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=follower)  # fmt: skip
    os.close(follower)
    shown = read_terminal(leader)
    assert proc.wait(timeout=60) == 0
    assert proc.stdout is not None
    assert proc.stdout.read().startswith(b"checked 1 events")
    proc.stdout.close()
    assert b"events walked" in shown, shown
    assert b"\x1b" not in shown, shown
