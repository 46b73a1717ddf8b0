"""The review console's sessions, over plain HTTP to real ``custody serve`` processes on SQLite
and PostgreSQL (rev45): the cookie carries a session kept in the store, never the reviewer's
token (a browser sends the cookie to every port of the host); the API takes no session as a
bearer token; a session ends at sign-out, with its token, and at its end on the store's clock,
for every replica of the service."""

from __future__ import annotations

import html
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from console_scene import crashed_run, events
from serving import Served, serve

from ledger import Ledger, RegisterProfile, Role
from service._console import COOKIE, SESSION_SECONDS, form_token

pytestmark = pytest.mark.slow

VERDICT = {"decision": "return", "note": "cart emptied"}
ORIGIN = "Origin"


@contextmanager
def _signed_in(served: Served, token: str | None = None) -> Iterator[tuple[httpx.Client, str]]:
    """A client that signed in as a reviewer, and its cookie's value."""
    said = token or served.tokens[Role.REVIEWER]
    with httpx.Client(base_url=served.url, headers={ORIGIN: served.url}, timeout=30) as client:
        answer = client.post("/console/sign-in", data={"token": said})
        assert answer.status_code == 303, answer.text
        yield client, client.cookies[COOKIE]


def _with_cookie(served: Served, cookie: str) -> httpx.Client:
    """A client of another browser (or another server's) that holds only ``cookie``."""
    client = httpx.Client(base_url=served.url, headers={ORIGIN: served.url}, timeout=30)
    client.cookies.set(COOKIE, cookie)
    return client


def _signed_out_to_sign_in(answer: httpx.Response) -> None:
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/sign-in"


def test_the_cookie_carries_a_session_which_the_api_refuses(served: Served) -> None:
    """The cookie is not the reviewer's token, nor holds it; sent as a bearer token to the
    JSON API it is refused (401) and records nothing; in the console it acts as the reviewer.
    Guard: the session in the cookie (with the token there, the API took it: 200)."""
    crashed_run(served, "p_cookie")
    token = served.tokens[Role.REVIEWER]
    before = events(served)
    with _signed_in(served) as (client, cookie):
        assert token not in cookie
        assert cookie not in token
        assert client.get("/console/queue").status_code == 200
    api = served.client(token=cookie)
    with api:
        assert api.get("/v1/profiles/p_cookie").status_code == 401
        review = api.post("/v1/profiles/p_cookie/review", json=VERDICT)
    assert review.status_code == 401, review.text
    assert events(served) == before


def test_a_signed_out_session_is_refused(served: Served) -> None:
    """After sign-out the same cookie value, replayed by another client, gets the sign-in
    page and records no verdict; the token signs in again to a new session. Guard: the
    sign-out ends the session in the store (without it, the old value still showed the queue)."""
    crashed_run(served, "p_out")
    before = events(served)
    with _signed_in(served) as (client, cookie):
        out = client.post("/console/sign-out", data={"csrf": form_token(cookie)})
        _signed_out_to_sign_in(out)
    with _with_cookie(served, cookie) as replay:
        _signed_out_to_sign_in(replay.get("/console/queue"))
        posted = replay.post(
            "/console/profiles/p_out/review",
            data={"csrf": form_token(cookie), "expected_version": "5", **VERDICT},
        )
        _signed_out_to_sign_in(posted)
    assert events(served) == before
    with _signed_in(served) as (again, fresh):
        assert fresh != cookie
        assert again.get("/console/queue").status_code == 200


def test_signing_in_anew_ends_the_session_before(served: Served) -> None:
    """A browser that signs in again (as the same reviewer or another) without signing out
    ends the session its cookie held: a copy of the old value is refused, the new one acts.
    Guard: review 261, the earlier session lived its 8 h beside the new one."""
    with _signed_in(served) as (client, first):
        again = client.post("/console/sign-in", data={"token": served.tokens[Role.REVIEWER]})
        assert again.status_code == 303, again.text
        second = client.cookies[COOKIE]
        assert second != first
        assert client.get("/console/queue").status_code == 200
    with _with_cookie(served, first) as copy:
        _signed_out_to_sign_in(copy.get("/console/queue"))


def test_a_revoked_token_ends_its_session_at_once(served: Served) -> None:
    """``custody access revoke`` ends the sessions its token started, on the next page (no
    token cache stands between). Guard: a session holds only while its token is live."""
    token = served.token("carol", Role.REVIEWER)
    with _signed_in(served, token) as (client, _):
        assert client.get("/console/queue").status_code == 200
        revoked = subprocess.run(
            [sys.executable, "-m", "custody", "--store", served.store_url, "access", "revoke",
             "carol"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        _signed_out_to_sign_in(client.get("/console/queue"))


def _later(tmp_path: Path) -> dict[str, str]:
    """The environment of a replica whose store's clock reads ``SESSION_SECONDS`` and a minute
    later than the store's (a ``sitecustomize`` moves ``SqlStore.now``, the store's clock on
    both kinds): as when a session's end has come."""
    later = tmp_path / "later"
    later.mkdir()
    (later / "sitecustomize.py").write_text(
        textwrap.dedent(f"""
        from datetime import timedelta
        from ledger._stores.sql import SqlStore
        _now = SqlStore.now
        SqlStore.now = lambda self: _now(self) + timedelta(seconds={SESSION_SECONDS + 60})
        """)
    )
    # This repository's packages named before the site's: the sitecustomize imports them
    # before the process's own directory is on its path.
    repo = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (str(later), repo, os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}


def test_two_replicas_share_a_session_and_its_end(store_url: str, tmp_path: Path) -> None:
    """Two ``custody serve`` on one store: a session started at one acts at the other, and a
    sign-out at the other ends it at the first. A replica whose store's clock reads past the
    session's end refuses it. Guards: sessions in the store, the end judged on its clock."""
    first = serve(store_url)
    second = serve(store_url, tokens=False)
    later = serve(store_url, tokens=False, env=_later(tmp_path))
    try:
        with _signed_in(first) as (client, cookie):
            with _with_cookie(later, cookie) as expired:
                _signed_out_to_sign_in(expired.get("/console/queue"))
            with _with_cookie(second, cookie) as there:
                assert there.get("/console/queue").status_code == 200
                _signed_out_to_sign_in(
                    there.post("/console/sign-out", data={"csrf": form_token(cookie)})
                )
            _signed_out_to_sign_in(client.get("/console/queue"))
    finally:
        for replica in (first, second, later):
            assert replica.stop() == 0


@pytest.mark.postgres
def test_only_the_reviewers_role_writes_sessions(pg_cluster: Any) -> None:
    """On PostgreSQL a worker's, scheduler's or operator's login may neither start a session
    (which would act as a reviewer in the console) nor read them; a service whose login holds
    only the reviewer's role signs a reviewer in and out. Guard: the sessions' privileges."""
    from test_service_process import _owned

    from ledger.access import grant, issue_token

    others: dict[Role, str] = {}
    with _dropped(pg_cluster, others), _owned(pg_cluster) as (owner_url, service_login, as_login):
        others |= {r: f"{service_login}_{r.value}" for r in Role if r != Role.REVIEWER}
        with Ledger.init(owner_url) as ledger:
            grant(ledger, service_login, ["reviewer"])
            for role, login in others.items():
                grant(ledger, login, [role])
            token = issue_token(ledger, "carol", Role.REVIEWER)
        for login in others.values():
            with psycopg.connect(as_login(login), autocommit=True) as conn:
                for statement in (
                    "INSERT INTO custody_console_sessions VALUES ('h', %s, 'a', '9999')",
                    "SELECT * FROM custody_console_sessions",
                ):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege):
                        conn.execute(statement, (token.token_id,) if "%s" in statement else ())
        served = serve(as_login(service_login), tokens=False)
        try:
            with _signed_in(served, token.token) as (client, cookie):
                assert client.get("/console/queue").status_code == 200
                out = client.post("/console/sign-out", data={"csrf": form_token(cookie)})
                _signed_out_to_sign_in(out)
        finally:
            assert served.stop() == 0
        # A service whose login lacks the role is told so, in custody's words (note 56: it
        # said only the database's "permission denied for table custody_console_sessions").
        worker = others[Role.WORKER]
        served = serve(as_login(worker), tokens=False)
        try:
            with httpx.Client(base_url=served.url, headers={ORIGIN: served.url}) as client:
                answer = client.post("/console/sign-in", data={"token": token.token})
            assert answer.status_code == 403, answer.text
            said = f"login {worker} lacks the reviewer role, which the review console's sessions"
            assert said in html.unescape(answer.text), answer.text
            assert COOKIE not in answer.cookies
        finally:
            assert served.stop() == 0


@contextmanager
def _dropped(pg_cluster: Any, logins: dict[Role, str]) -> Iterator[None]:
    """The ``logins`` the block makes, dropped after it (with what they own)."""
    try:
        yield
    finally:
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            for login in logins.values():
                conn.execute(f"DROP ROLE IF EXISTS {login}")


def test_a_store_of_schema_19_is_refused_until_init_makes_the_sessions_table(
    sql_store_url: str,
) -> None:
    """A store made before the console's sessions (schema 19, no table) is refused until its
    next ``init``, which makes the table as the owner: no service signs a reviewer in to a
    store without it. Guard: ``SCHEMA_VERSION`` 20."""
    from ledger import StoreUnavailable
    from ledger._stores.sql import SCHEMA_VERSION

    with Ledger.open(sql_store_url) as ledger:
        ledger.store.execute("DROP TABLE custody_console_sessions")
        ledger.store.execute("UPDATE custody_schema SET version = 19")
    with (
        Ledger.open(sql_store_url) as ledger,
        pytest.raises(
            StoreUnavailable, match=f"has schema 19, this custody needs {SCHEMA_VERSION}"
        ),
    ):
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
    Ledger.init(sql_store_url).close()
    with Ledger.open(sql_store_url) as ledger:
        assert ledger.store.query("SELECT count(*) AS n FROM custody_console_sessions") == [
            {"n": 0}
        ]
