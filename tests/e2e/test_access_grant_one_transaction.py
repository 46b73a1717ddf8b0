"""``custody access grant`` is one transaction, taken in turn, and refused to a non-owner before
it writes; a login holding ADMIN OPTION on its group role is refused and listed; the remedy a
refusal names runs as written (rev46 review).

Observed: two grants of one login at once (``--role worker``, ``--role reviewer``) each revoked
the other's role before either granted its own: the login held both. ADMIN OPTION on
``custody_reviewer`` granted by an administrator was kept by ``access grant`` and not listed:
that login made a worker's login a reviewer. A reviewer's login running ``access grant`` was
refused only after it had written default privileges of its own: DROP ROLE of it then failed.
A refusal named ``REVOKE Deploy Team FROM erin``, which does not parse.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cli_process import custody, error_line, ok
from owned_store import as_login
from pg_cluster import PostgresCluster

from ledger import Ledger
from ledger._stores import access as store_access
from ledger.access import grant

pytestmark = pytest.mark.postgres


def _admin(cluster: PostgresCluster, owner_url: str) -> str:
    parts = urlsplit(cluster.admin_url)
    return urlunsplit(parts._replace(path=urlsplit(owner_url).path))


def _sql(url: str, statement: str) -> list[Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement)
        return cur.fetchall() if cur.description else []


def _memberships(url: str, login: str) -> list[str]:
    rows = _sql(
        url,
        "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        f"JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '{login}' ORDER BY 1",
    )
    return [r[0] for r in rows]


def test_two_grants_at_once_leave_exactly_one_role(
    pg_cluster: PostgresCluster, owner_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    login = f"race_{uuid.uuid4().hex[:8]}"
    ok(custody("--store", owner_url, "access", "grant", login, "--role", "scheduler", cwd=tmp_path))
    slow = store_access._run_formatted

    def granting_slowly(store: Any, template: str, *args: str) -> None:
        if template.startswith("GRANT %I TO"):  # both revoke before either grants, unless turns
            time.sleep(0.5)
        slow(store, template, *args)

    monkeypatch.setattr(store_access, "_run_formatted", granting_slowly)
    failed: list[BaseException] = []

    def run(role: str) -> None:
        try:
            with Ledger.open(owner_url) as ledger:
                grant(ledger, login, role)
        except BaseException as e:  # reported below
            failed.append(e)

    threads = [threading.Thread(target=run, args=(r,)) for r in ("worker", "reviewer")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failed == []
    held = _memberships(_admin(pg_cluster, owner_url), login)
    assert held in (["custody_worker"], ["custody_reviewer"])


def test_refused_grant_of_a_non_owner_writes_nothing(
    pg_cluster: PostgresCluster, owner_url: str, tmp_path: Path
) -> None:
    admin = _admin(pg_cluster, owner_url)
    reviewer = f"rev_{uuid.uuid4().hex[:8]}"
    ok(
        custody(
            "--store", owner_url, "access", "grant", reviewer, "--role", "reviewer", cwd=tmp_path
        )
    )
    mallory = f"mal_{uuid.uuid4().hex[:8]}"
    refused = custody(
        "--store", as_login(owner_url, reviewer), "access", "grant", mallory, "--role", "operator",
        cwd=tmp_path,
    )  # fmt: skip
    assert refused.code == 7, refused.err
    assert f"login {reviewer} does not own custody_events" in error_line(refused)
    assert (
        _sql(admin, f"SELECT 1 FROM pg_default_acl WHERE defaclrole::regrole::text = '{reviewer}'")
        == []
    )
    assert _sql(admin, f"SELECT 1 FROM pg_roles WHERE rolname = '{mallory}'") == []
    _sql(owner_url, f"REVOKE custody_reviewer FROM {reviewer}")
    _sql(owner_url, f"DROP ROLE {reviewer}")  # taken back as roles.md says: nothing left of it


def test_admin_option_on_the_group_role_is_refused_and_listed(
    pg_cluster: PostgresCluster, owner_url: str, tmp_path: Path
) -> None:
    admin = _admin(pg_cluster, owner_url)
    login = f"ra_{uuid.uuid4().hex[:8]}"
    ok(custody("--store", owner_url, "access", "grant", login, "--role", "reviewer", cwd=tmp_path))
    _sql(admin, f"GRANT custody_reviewer TO {login} WITH ADMIN OPTION")
    listed = ok(custody("--store", owner_url, "--json", "access", "list", cwd=tmp_path)).json()
    also = [r["also"] for r in listed if r["login"] == login]
    assert also == ["ADMIN OPTION on custody_reviewer"]
    refused = custody(
        "--store", owner_url, "access", "grant", login, "--role", "reviewer", cwd=tmp_path
    )
    assert refused.code == 2, refused.err
    remedy = f"REVOKE ADMIN OPTION FOR custody_reviewer FROM {login}"
    assert remedy in error_line(refused)
    _sql(admin, remedy)  # the statement named runs, and the grant then goes through
    ok(custody("--store", owner_url, "access", "grant", login, "--role", "reviewer", cwd=tmp_path))


def test_the_remedy_named_quotes_the_role(
    pg_cluster: PostgresCluster, owner_url: str, tmp_path: Path
) -> None:
    admin = _admin(pg_cluster, owner_url)
    tag = uuid.uuid4().hex[:8]
    team, login = f"Deploy Team {tag}", f"erin_{tag}"
    _sql(admin, f'CREATE ROLE "{team}"')
    _sql(admin, f"CREATE ROLE {login} LOGIN")
    _sql(admin, f'GRANT "{team}" TO {login}')
    refused = custody(
        "--store", owner_url, "access", "grant", login, "--role", "worker", cwd=tmp_path
    )
    assert refused.code == 2, refused.err
    remedy = f'REVOKE "{team}" FROM {login}'
    assert remedy in error_line(refused)
    _sql(admin, remedy)
    ok(custody("--store", owner_url, "access", "grant", login, "--role", "worker", cwd=tmp_path))
