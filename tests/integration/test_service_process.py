"""The service as a process: it stops cleanly on SIGTERM, answering what it took, and it says
503 with Retry-After while its store cannot be reached, and recovers after."""

from __future__ import annotations

import re
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from serving import serve

from ledger import Ledger, RegisterProfile, Role

pytestmark = pytest.mark.slow


def test_sigterm_answers_the_requests_in_flight_and_exits_0(tmp_path: Path) -> None:
    """A SIGTERM answers what is in flight and exits 0; a long poll in flight answers at once
    (the lease still live), so the stop waits for none: with a watch of 20 s open the stop
    took 20 s, refusing every request meanwhile, and a Node worker lost its lease over a plain
    restart (rev25)."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
    served = serve(url)
    with served.client(Role.WORKER) as worker:
        lease = worker.post("/v1/profiles/p1/checkout", json={"run_id": "r", "task_type": "t"})
        lease_id = lease.json()["lease_id"]
    answers: list[Any] = []

    def watch() -> None:  # in flight when the signal comes
        with served.client(Role.WORKER) as mine:
            got = mine.get(f"/v1/leases/{lease_id}", params={"wait": 20})
            answers.append((got.status_code, got.json()["live"]))

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(1.0)
    started = time.monotonic()
    served.process.send_signal(signal.SIGTERM)
    assert served.stop() == 0
    stopped = time.monotonic() - started
    watcher.join(30)
    assert answers == [(200, True)]  # answered in full, not cut off
    assert stopped < 8, f"the stop waited {stopped:.1f} s for the watch"


@pytest.mark.postgres
def test_an_unreachable_store_is_503_with_retry_after_then_recovers(pg_cluster: Any) -> None:
    from pg_cluster import create_database, drop_database

    name = "t_unreachable_service"
    url = create_database(pg_cluster.admin_url, name)
    try:
        with Ledger.init(url) as ledger:
            ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
        served = serve(url)
        try:
            with psycopg.connect(pg_cluster.admin_url, autocommit=True) as admin:
                admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (name,),
                )
                with served.client(Role.WORKER) as worker:
                    down = worker.post(
                        "/v1/profiles/p1/checkout", json={"run_id": "r", "task_type": "t"}
                    )
                    health = worker.get("/healthz")
                assert down.status_code == 503, down.text
                assert down.json()["error"] == "store_unavailable"
                assert down.headers["Retry-After"].isdigit()
                assert "Traceback" not in down.text
                assert health.status_code == 503
                admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            with served.client(Role.WORKER) as worker:
                deadline = time.monotonic() + 20
                while (up := worker.get("/healthz")).status_code != 200:
                    assert time.monotonic() < deadline, up.text
                    time.sleep(0.2)
                again = worker.post(
                    "/v1/profiles/p1/checkout", json={"run_id": "r", "task_type": "t"}
                )
            assert again.status_code == 201, again.text
        finally:
            assert served.stop() == 0
    finally:
        drop_database(pg_cluster.admin_url, name)


@pytest.mark.postgres
def test_two_replicas_share_one_postgresql(pg_url: str) -> None:
    """Stateless replicas: a lease checked out through one is renewed and watched through the
    other, and racing checkouts through both grant exactly one lease."""
    with Ledger.init(pg_url) as ledger:
        for profile_id in ("p1", "race"):
            ledger.handle(RegisterProfile(profile_id=profile_id, account_id="a", proxy_id="x"))
    first, second = serve(pg_url), serve(pg_url, tokens=False)
    second.tokens = first.tokens  # the tokens live in the store, not in a replica
    try:
        with first.client(Role.WORKER) as one, second.client(Role.WORKER) as two:
            lease = one.post("/v1/profiles/p1/checkout", json={"run_id": "r", "task_type": "t"})
            lease_id, token_no = lease.json()["lease_id"], lease.json()["fencing_token"]
            beat = two.post(f"/v1/leases/{lease_id}/heartbeat", json={"fencing_token": token_no})
            assert beat.status_code == 200, beat.text
            answers: list[Any] = []
            watcher = threading.Thread(
                target=lambda: answers.append(
                    two.get(f"/v1/leases/{lease_id}", params={"wait": 20}).json()
                )
            )
            watcher.start()
            time.sleep(0.5)
            with first.client(Role.OPERATOR) as operator:
                assert operator.post("/v1/profiles/p1/disable", json={"reason": "x"}).is_success
            watcher.join(20)
        assert answers[0]["live"] is False
        codes: list[int] = []
        go = threading.Barrier(8)

        def race(served: Any) -> None:
            with served.client(Role.WORKER) as mine:
                go.wait()
                got = mine.post(
                    "/v1/profiles/race/checkout", json={"run_id": "r", "task_type": "t"}
                )
                codes.append(got.status_code)

        racers = [threading.Thread(target=race, args=(s,)) for s in (first, second) * 4]
        for t in racers:
            t.start()
        for t in racers:
            t.join(60)
        assert sorted(codes) == [201] + [409] * 7
        with Ledger.open(pg_url) as ledger:
            acquired = [e for e in ledger.history("race") if type(e).__name__ == "LeaseAcquired"]
        assert len(acquired) == 1
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


@pytest.mark.postgres
def test_a_service_login_acts_only_in_the_roles_granted_to_it(pg_cluster: Any) -> None:
    """The database bounds the service: a login granted worker and reviewer serves checkouts
    and reviews, and an operator's token gets 403 from the ledger's own check of the login
    (the database would refuse the event too); nothing is written."""
    from ledger.access import grant, issue_token, logins

    with _owned(pg_cluster) as (owner_url, service_login, as_login):
        with Ledger.init(owner_url) as ledger:
            ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
            granted = grant(ledger, service_login, ["worker", "reviewer"])
            assert [r.value for r in granted.roles] == ["worker", "reviewer"]
            held = {r.role.value for r in logins(ledger) if r.login == service_login}
            assert held == {"worker", "reviewer"}
            tokens = {r: issue_token(ledger, f"{r.value}-1", r).token for r in Role}
        served = serve(as_login(service_login), tokens=False)
        served.tokens = tokens
        try:
            with served.client(Role.WORKER) as worker:
                got = worker.post(
                    "/v1/profiles/p1/checkout", json={"run_id": "r", "task_type": "t"}
                )
                assert got.status_code == 201, got.text
            with Ledger.open(owner_url) as ledger:
                before = len(ledger.history("p1"))
            with served.client(Role.OPERATOR) as operator:
                refused = operator.post("/v1/profiles/p1/quarantine", json={"reason": "x"})
            assert refused.status_code == 403, refused.text
            assert f"store login {service_login}" in refused.json()["message"]
            with Ledger.open(owner_url) as ledger:
                assert len(ledger.history("p1")) == before
        finally:
            assert served.stop() == 0


@pytest.mark.postgres
def test_a_worker_only_service_says_what_its_reads_leave_out(pg_cluster: Any) -> None:
    """A service whose login holds only the worker role may not fold the read models, and
    while nobody runs ``custody projections run`` its reads leave the newer events out. Each
    such answer says so, as the command line says it to a person: a ``Custody-Note`` header
    naming the read model (rev32: the timeline answered 200 with one event of three, no word),
    and ``/metrics`` gives ``custody_read_model_behind_events`` for an alert (it read 0 leases)."""
    from ledger.access import grant, issue_token
    from projections import READ_MODELS, catch_up_all

    with _owned(pg_cluster) as (owner_url, service_login, as_login):
        with Ledger.init(owner_url) as ledger:
            ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
            grant(ledger, service_login, ["worker"])
            token = issue_token(ledger, "worker-1", Role.WORKER).token
            catch_up_all(ledger, READ_MODELS.values())  # installed and current, as init leaves
        served = serve(as_login(service_login), tokens=False)
        served.tokens = {Role.WORKER: token}
        try:
            with served.client(Role.WORKER) as worker:
                lease = worker.post(
                    "/v1/profiles/p1/checkout", json={"run_id": "r", "task_type": "t"}
                )
                assert lease.status_code == 201, lease.text
                timeline = worker.get("/v1/profiles/p1/timeline")
                assert timeline.status_code == 200, timeline.text
                said = timeline.headers.get_list("custody-note")
                metrics = worker.get("/metrics")
            with Ledger.open(owner_url) as ledger:  # the owner folds: the timeline was behind
                assert len(ledger.history("p1")) > len(timeline.json())
            assert any("the timeline read model has" in s and "may not fold" in s for s in said), (
                timeline.headers
            )
            behind = re.search(
                r'^custody_read_model_behind_events\{read_model="leases"\} (\d+)',
                metrics.text,
                re.MULTILINE,
            )
            assert behind is not None, metrics.text
            assert float(behind.group(1)) > 0, metrics.text
        finally:
            assert served.stop() == 0


@contextmanager
def _owned(pg_cluster: Any) -> Iterator[tuple[str, str, Callable[[str], str]]]:
    """A database owned by a fresh CREATEROLE login: its URL, a service login's name to grant,
    and the URL of the database for any login; both logins and the database dropped after."""
    from urllib.parse import urlsplit, urlunsplit

    from pg_cluster import drop_database

    tag = uuid.uuid4().hex[:8]
    owner, db = f"own_{tag}", f"t_{tag}"
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN CREATEROLE")
        conn.execute(f"CREATE DATABASE {db} OWNER {owner} TEMPLATE template0")

    def as_login(login: str) -> str:
        parts = urlsplit(pg_cluster.admin_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit(parts._replace(netloc=f"{login}@{host}", path=f"/{db}"))

    try:
        yield as_login(owner), f"svc_{tag}", as_login
    finally:
        drop_database(pg_cluster.admin_url, db)
        with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
            for role in (f"svc_{tag}", owner):
                conn.execute(f"DROP ROLE IF EXISTS {role}")
