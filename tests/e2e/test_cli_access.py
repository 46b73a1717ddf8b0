"""Roles enforced where the data lives: a PostgreSQL store owned by an owner role (not a
superuser), logins granted one custody role each with ``custody access grant``, and what each
login can and cannot do, asked of the command line and of the database directly.

The database is the boundary here, not the ledger: the attacks connect with psycopg as the
worker's login, as a stolen credential would, and are refused by privileges and triggers.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from cli_process import custody, error_line, event_types, ok
from pg_cluster import PostgresCluster, drop_database

from ledger import Checkout, Heartbeat, LeaseLost, Ledger, Release, StoreUnavailable, Sweep
from ledger._stores import postgres
from ledger._stores.access import MISDATED
from ledger._stores.sql import SCHEMA_VERSION

pytestmark = pytest.mark.postgres

PROFILE = "profile_shop_17"
REGISTER = ["register", PROFILE, "--account", "account_shop_17", "--proxy", "proxy_us_east_12"]
FORBIDDEN = 7


def _as(url: str, login: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{login}@{host}"))


class Owned:
    """A store whose owner is a login with CREATEROLE, not a superuser, and its logins."""

    def __init__(self, cluster: PostgresCluster, tmp_path: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.owner, self.db, self.tmp = f"own_{tag}", f"t_{tag}", tmp_path
        self.tag = tag
        self.admin = cluster.admin_url
        with psycopg.connect(self.admin, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {self.owner} LOGIN CREATEROLE")
            conn.execute(f"CREATE DATABASE {self.db} OWNER {self.owner} TEMPLATE template0")
        parts = urlsplit(self.admin)
        self.url = _as(urlunsplit(parts._replace(path=f"/{self.db}")), self.owner)
        ok(custody("--store", self.url, "init", cwd=tmp_path))
        with psycopg.connect(self.url, autocommit=True) as conn:  # PG 15 lets every login
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # create tables

    def login(self, role: str) -> str:
        """A new login granted ``role``; its store URL."""
        name = f"{role[:4]}_{self.tag}_{uuid.uuid4().hex[:4]}"
        ok(custody("--store", self.url, "access", "grant", name, "--role", role, cwd=self.tmp))
        return _as(self.url, name)

    def cli(self, url: str, *args: str) -> object:
        return custody("--store", url, *args, cwd=self.tmp)

    def timeline(self) -> list[str]:
        run = ok(custody("--store", self.url, "--json", "timeline", PROFILE, cwd=self.tmp))
        return event_types(run.json())


@pytest.fixture
def owned(pg_cluster: PostgresCluster, tmp_path: Path) -> Iterator[Owned]:
    store = Owned(pg_cluster, tmp_path)
    try:
        yield store
    finally:
        drop_database(store.admin, store.db)


def _leased(owned: Owned, worker_url: str) -> dict[str, object]:
    ok(owned.cli(owned.url, *REGISTER))
    args = ["--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t"]
    lease: dict[str, object] = ok(owned.cli(worker_url, *args)).json()
    return lease


def _events(owned: Owned) -> list[tuple[Any, ...]]:
    """Every stored event's columns but its position, in log order (read as the owner)."""
    with psycopg.connect(owned.url, autocommit=True) as conn:
        return conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM custody_events "
            "ORDER BY notification_id"
        ).fetchall()


def _refused_until_init(owned: Owned, worker: str, version: int, *statements: str) -> None:
    """The store as schema ``version`` left it (``statements`` run as its owner): the worker's
    commands are refused until ``custody init`` migrates it, which the owner then runs."""
    with psycopg.connect(owned.url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.execute("UPDATE custody_schema SET version = %s", (version,))
    refused = owned.cli(worker, "status")
    assert refused.code == 6, refused.err
    assert f"has schema {version}, this custody needs {SCHEMA_VERSION}" in error_line(refused)
    ok(owned.cli(owned.url, "init"))


def test_a_worker_login_runs_its_lease_and_nothing_else(owned: Owned) -> None:
    """The worker's login checks out, heartbeats and releases; a registration, a review and
    an operator's quarantine over it exit 7 naming the role, and append nothing."""
    worker = owned.login("worker")
    lease = _leased(owned, worker)
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    ok(owned.cli(worker, "heartbeat", lease_id, "--token", token, "--step", "cart"))
    release = ["release", lease_id, "--token", token, "--outcome", "failure"]
    ok(owned.cli(worker, *release, "--final-url", "https://shop.example/x"))
    before = owned.timeline()
    assert before[-1] in ("review_requested", "profile_quarantined"), before

    for args in (
        ["register", "profile_other", "--account", "a", "--proxy", "p"],
        ["review", PROFILE, "--reviewer", "rv", "--decision", "return", "--note", "fine"],
        ["quarantine", PROFILE, "--actor", "op", "--reason", "bad"],
    ):
        run = owned.cli(worker, *args)
        assert run.code == FORBIDDEN, (args, run.err)
        line = error_line(run)
        assert "may act as worker" in line, line
        assert "needs the" in line, line
    assert owned.timeline() == before


def test_the_database_refuses_a_worker_credential_that_skips_the_ledger(owned: Owned) -> None:
    """Connected with psycopg as the worker's login: UPDATE, DELETE and TRUNCATE of events are
    refused by privileges, and an appended reviewer's verdict (or a worker event of a type its
    role may not record) is refused by the insert trigger. The events are as they were, and
    custody verify holds."""
    worker = owned.login("worker")
    _leased(owned, worker)
    rows = _events(owned)
    stream, version, _, state = rows[-1]
    forged = json.loads(bytes(state))
    forged["envelope"]["actor_role"] = "reviewer"
    with psycopg.connect(worker, autocommit=True) as conn:
        for statement in (
            "UPDATE custody_events SET state = state",
            "DELETE FROM custody_events",
            "TRUNCATE custody_events",
            "DELETE FROM custody_snapshots",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        for topic, role in (("profile_reviewed", "reviewer"), ("profile_reviewed", "worker")):
            forged["envelope"]["actor_role"] = role
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(
                    "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                    "VALUES (%s, %s, %s, %s)",
                    (stream, version + 1, topic, json.dumps(forged).encode()),
                )
            assert ("as reviewer" if role == "reviewer" else "may not record") in str(refused.value)
    after = _events(owned)
    assert after == rows
    ok(owned.cli(owned.url, "verify"))


def test_a_worker_login_a_superuser_set_to_replica_is_refused_all_the_same(owned: Owned) -> None:
    """``ALTER ROLE ... SET session_replication_role = replica`` by a superuser (or on the
    database) passes over every ordinary trigger in the login's sessions: the guards are
    enabled ALWAYS, so a worker's login so set, with raw SQL, still cannot append a reviewer's
    verdict nor edit its profile's availability row, and verify holds (rev39: the forged review
    was appended, verify passed, the timeline showed it and checkout was granted)."""
    worker = owned.login("worker")
    _leased(owned, worker)
    with psycopg.connect(owned.admin, autocommit=True) as conn:
        conn.execute(
            f"ALTER ROLE {urlsplit(worker).username} SET session_replication_role = replica"
        )
    rows = _events(owned)
    stream, version, _, state = rows[-1]
    forged = json.loads(bytes(state))
    forged["envelope"]["actor_role"] = "reviewer"
    with psycopg.connect(worker, autocommit=True) as conn:
        said = conn.execute("SHOW session_replication_role").fetchone()
        assert said == ("replica",), said
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="as reviewer"):
            conn.execute(
                "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s)",
                (stream, version + 1, "profile_reviewed", json.dumps(forged).encode()),
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="without its event"):
            conn.execute("UPDATE custody_availability SET state = 'available', version = 99")
    assert _events(owned) == rows
    ok(owned.cli(owned.url, "verify"))


def test_a_worker_login_cannot_choose_an_event_s_position(owned: Owned) -> None:
    """The group roles insert an event's columns but not its position, which the server
    draws: a worker's login that chose ``notification_id`` could take the log's next positions
    (every append then fails) or put its event past the read models' checkpoints. A store of
    schema 10 (INSERT on the whole table) is refused until ``custody init`` grants anew."""
    worker = owned.login("worker")
    _leased(owned, worker)
    rows = _events(owned)
    stream, version, topic, state = rows[-1]  # the lease's last event: the worker's own kind
    positioned = (
        "INSERT INTO custody_events (originator_id, originator_version, topic, state, "
        "notification_id) VALUES (%s, %s, %s, %s, 9000000000000000000)"
    )

    def refused_positioned() -> None:
        with psycopg.connect(worker, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
                conn.execute(positioned, (stream, version + 1, topic, state))
            assert "permission denied for table custody_events" in str(refused.value)

    refused_positioned()
    # as schema 10 left it
    _refused_until_init(owned, worker, 10, "GRANT INSERT ON custody_events TO custody_worker")
    refused_positioned()
    after = _events(owned)
    assert after == rows
    ok(owned.cli(worker, "status"))
    ok(owned.cli(owned.url, "verify"))


def test_a_worker_login_appends_only_the_next_event_of_its_profile_s_stream(
    owned: Owned,
) -> None:
    """rev24: the insert trigger checked a login's event's role and type, not where it went. A
    worker's login appended past a stream's head (every load, repair and read of that profile
    failed for good, as an internal error), began a stream of its own naming a registered
    profile (every timeline unreadable) or an id not yet registered (registering it refused for
    good). Each is refused now, as is an event naming another profile than its stream's; the
    events are as they were and verify holds. A store of schema 11 is refused until ``custody
    init`` installs the check."""
    worker = owned.login("worker")
    _leased(owned, worker)
    ok(owned.cli(owned.url, "register", "profile_other", "--account", "a", "--proxy", "p"))
    rows = _events(owned)
    stream, _, topic, state = next(r for r in rows if r[2] == "lease_acquired")
    head = max(r[1] for r in rows if r[0] == stream)
    insert = (
        "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
        "VALUES (%s, %s, %s, %s)"
    )
    elsewhere = json.loads(bytes(state))
    elsewhere["profile_id"] = "profile_other"
    attempts = {
        "past its head": (stream, head + 2, state, "it follows no version"),
        "a stream of its own": (uuid.uuid4(), 1, state, "only a registration does"),
        "its own stream, later": (uuid.uuid4(), 2, state, "it follows no version 1"),
        "naming another profile": (
            stream,
            head + 1,
            json.dumps(elsewhere).encode(),
            "was not registered in",
        ),
    }

    def refused_each() -> None:
        with psycopg.connect(worker, autocommit=True) as conn:
            for where, at, body, said in attempts.values():  # DID NOT RAISE: said names it
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match=said):
                    conn.execute(insert, (where, at, topic, body))

    refused_each()
    assert _events(owned) == rows
    ok(owned.cli(owned.url, "verify"))
    _refused_until_init(owned, worker, 11)
    refused_each()
    ok(owned.cli(worker, "status"))


def test_a_worker_login_appends_only_events_dated_by_the_server_s_clock(owned: Owned) -> None:
    """rev34: a worker's login appended 1,500 heartbeats dated ahead, each renewing its lease
    for the TTL from its own forged time (so no load saw a late event or a deadline past the
    TTL), and held the profile out of the sweep's sight for 75 minutes; verify, rebuild and
    every load took them. An event a login appends is taken only when dated within a minute
    of the server's clock (ahead, or behind: a lease renewed past its deadline); the events
    are as they were, and an honest heartbeat still goes through. A store of schema 16 is
    refused until ``custody init`` installs the check."""
    worker = owned.login("worker")
    lease = _leased(owned, worker)
    rows = _events(owned)
    stream, _, topic, state = rows[-1]
    assert topic == "lease_acquired"
    head = max(r[1] for r in rows if r[0] == stream)
    insert = (
        "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
        "VALUES (%s, %s, %s, %s)"
    )

    def dated(shift: float | None) -> bytes:
        body = json.loads(bytes(state))
        if shift is None:
            del body["envelope"]["at"]
        else:
            at = datetime.now(UTC) + timedelta(seconds=shift)
            body["envelope"]["at"] = at.isoformat().replace("+00:00", "Z")
        return json.dumps(body).encode()

    def spelt(fraction: str) -> bytes:  # now, its second's fraction not as custody writes it
        body = json.loads(bytes(state))
        body["envelope"]["at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S") + fraction
        return json.dumps(body).encode()

    attempts = {  # the SQLSTATE custody decides again on (MISDATED), or a refusal
        "two minutes ahead": (dated(120), "more than 60 s from the server's clock", MISDATED),
        "two minutes behind": (dated(-120), "more than 60 s from the server's clock", MISDATED),
        "with no time": (dated(None), "without custody's time", "42501"),
        "a tenth of a second": (spelt(".5Z"), "without custody's time", "42501"),
        "nine digits of a second": (spelt(".123456789Z"), "without custody's time", "42501"),
    }

    def refused_each() -> None:
        with psycopg.connect(worker, autocommit=True) as conn:
            for body, said, code in attempts.values():  # DID NOT RAISE: the time was taken
                with pytest.raises(psycopg.Error, match=said) as refused:
                    conn.execute(insert, (stream, head + 1, topic, body))
                assert refused.value.sqlstate == code

    refused_each()
    assert _events(owned) == rows
    ok(owned.cli(owned.url, "verify"))
    _refused_until_init(owned, worker, 16)
    refused_each()
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    ok(owned.cli(worker, "heartbeat", lease_id, "--token", token, "--step", "cart"))
    assert owned.timeline()[-1] == "lease_heartbeat"


def test_a_login_s_long_transaction_dates_no_event_a_minute_before_the_server_s_clock(
    owned: Owned,
) -> None:
    """rev37: a worker's login held a transaction open 75 s and appended a heartbeat dated at
    its start, before the acquisition it renewed; the check's bound was a minute before the
    transaction's start (``now()``), not the server's clock. An event dated 61 s behind the
    server's clock, in a transaction 2 s old (within a minute of its start), is refused as
    misdated, and nothing is written."""
    worker = owned.login("worker")
    _leased(owned, worker)
    rows = _events(owned)
    stream, _, topic, state = rows[-1]
    head = max(r[1] for r in rows if r[0] == stream)
    with psycopg.connect(worker) as conn:
        conn.execute("SELECT 1")  # the transaction begins: now() is fixed here
        time.sleep(2)
        body = json.loads(bytes(state))
        at = datetime.now(UTC) - timedelta(seconds=61)
        body["envelope"]["at"] = at.isoformat().replace("+00:00", "Z")
        with pytest.raises(psycopg.Error, match="more than 60 s from the server's clock") as no:
            conn.execute(
                "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s)",
                (stream, head + 1, topic, json.dumps(body).encode()),
            )
        assert no.value.sqlstate == MISDATED
    assert _events(owned) == rows


def test_a_decision_that_arrives_misdated_is_decided_again(owned: Owned) -> None:
    """rev34 review: a worker's heartbeat decided before a stall (a paused VM, a stopped
    process) arrived dated more than a minute behind the server's clock, and failed as a
    refusal of the login's privilege, the lease live for nine minutes more. The database's
    refusal of a misdated event makes the command decide again, at a fresh time: here the
    first time read is two minutes behind, the next the clock's."""
    worker = owned.login("worker")
    lease = _leased(owned, worker)
    with Ledger.open(worker) as ledger:
        store: Any = ledger.store
        honest = store.clock
        late = [True]

        class Stalled:
            def now(self) -> datetime:
                if late.pop() if late else False:
                    return honest.now() - timedelta(minutes=2)
                return honest.now()

            def forget(self) -> None:  # told after the refusal: measured again
                honest.forget()

            def latest(self, at: float) -> float:  # the write's check: the server's clock
                return honest.latest(at)

        store.clock = Stalled()
        lease_id, token = str(lease["lease_id"]), int(str(lease["fencing_token"]))
        ledger.handle(Heartbeat(lease_id=lease_id, fencing_token=token, step="cart"))
        assert not late  # the misdated time was read, refused, and read again
    assert owned.timeline()[-1] == "lease_heartbeat"


def test_a_measured_clock_the_server_stepped_from_is_measured_again_once_refused(
    owned: Owned,
) -> None:
    """A server clock that stepped two minutes since the process measured it (a failover to
    another primary): the first write is refused as misdated, and custody measures the
    server's clock again before it decides again, instead of deciding on the stale offset until
    its 30 s measurement age runs out (rev35: a command answered "busy" then)."""
    worker = owned.login("worker")
    lease = _leased(owned, worker)
    with Ledger.open(worker) as ledger:
        store: Any = ledger.store
        clock = store.clock
        ledger.now()
        clock._offset -= 120.0  # as if measured before a step of two minutes
        measured = clock.measurements
        lease_id, token = str(lease["lease_id"]), int(str(lease["fencing_token"]))
        ledger.handle(Heartbeat(lease_id=lease_id, fencing_token=token, step="cart"))
        assert clock.measurements == measured + 1
        assert ledger.uow.conflicts == 1
    assert owned.timeline()[-1] == "lease_heartbeat"


def test_a_clock_that_is_not_the_stores_is_said_so_and_writes_nothing(owned: Owned) -> None:
    """rev35: a worker whose times are two minutes off the server's (a clock it was given;
    measured again, the store's own clock would not be) was refused as misdated thirty times
    and told "profile ... is busy: 30 conflicting writes in a row; retry", which no retry
    mends. After three refusals in a row it is told its clock is not the store's, exit 6."""
    worker = owned.login("worker")
    lease = _leased(owned, worker)
    rows = _events(owned)
    lease_id, token = str(lease["lease_id"]), int(str(lease["fencing_token"]))
    for shift in (120, -120):
        off = lambda s=shift: datetime.now(UTC) + timedelta(seconds=s)  # noqa: E731
        with Ledger.open(worker, clock=off) as ledger:
            with pytest.raises(StoreUnavailable) as refused:
                ledger.handle(Heartbeat(lease_id=lease_id, fencing_token=token, step="cart"))
            assert ledger.uow.conflicts == 3
        said = str(refused.value)
        assert "dated too far from its clock" in said, said
        assert "this process's clock is not the store's" in said, said
        assert "busy" not in said, said
        assert refused.value.exit_code == 6
    assert _events(owned) == rows


def _shifted(seconds: float) -> Any:
    """A clock ``seconds`` off the server's (the local one, which the cluster shares)."""
    return lambda: datetime.now(UTC) + timedelta(seconds=seconds)


def _versions(owned: Owned) -> list[tuple[Any, int]]:
    return [(r[0], r[1]) for r in _events(owned)]


@pytest.mark.parametrize("path", ["prepared", "psycopg"])
def test_a_worker_login_acts_on_its_lease_only_before_its_deadline_on_the_server_s_clock(
    owned: Owned, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev35: the ledger judged a lease's deadline on the time in the event, the writer's: a
    worker's login with its clock 10 s behind released a lease 5 s past its deadline, clean,
    the profile went back to the pool and was leased again, and verify held. The database
    refuses a worker's lease event once the lease's deadline is past on the server's clock;
    the command decides again at a fresh time and, refused again, is lease lost (exit 4),
    nothing written. An honest heartbeat just before the deadline still goes through, and an
    honest sweep settles the lease after it. A store of schema 17 is refused until ``custody
    init`` installs the check. The same through psycopg's way of appending (``path``: a
    connection not in UTF-8, a text holding NUL)."""
    if path == "psycopg":
        monkeypatch.setattr(postgres, "_direct", lambda *_: None)
    worker, scheduler = owned.login("worker"), owned.login("scheduler")
    ok(owned.cli(owned.url, *REGISTER))
    _refused_until_init(owned, worker, 17)
    with Ledger.open(worker) as ledger:
        lease = ledger.handle(
            Checkout(profile_id=PROFILE, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=3)
        )
        time.sleep(1.3)  # before the deadline: an honest heartbeat renews it
        lease = ledger.handle(
            Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step="cart")
        )
    time.sleep(max(0.0, (lease.expires_at - datetime.now(UTC)).total_seconds()) + 1.5)
    versions = _versions(owned)
    acts = {
        "heartbeat": Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token),
        "release": Release(
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            outcome="success",
            final_url="https://shop.example/done",
        ),
    }
    with Ledger.open(worker, clock=_shifted(-10)) as behind:
        for command in acts.values():  # DID NOT RAISE: taken past the deadline
            with pytest.raises(LeaseLost, match="past its deadline") as lost:
                behind.handle(command)
            assert lost.value.exit_code == 4
    assert _versions(owned) == versions  # nothing written
    assert owned.timeline()[-1] == "lease_heartbeat"
    shown = ok(owned.cli(owned.url, "--json", "why", PROFILE)).json()
    assert shown["state"] == "leased", shown  # not back in the pool
    with Ledger.open(scheduler) as sweeper:  # the honest sweep after the deadline
        report = sweeper.handle(Sweep())
    assert [r.profile_id for r in report.settled] == [PROFILE], report
    assert ok(owned.cli(owned.url, "--json", "why", PROFILE)).json()["state"] != "available"


def test_a_scheduler_login_marks_stale_only_a_lease_past_its_deadline_on_the_server_s_clock(
    owned: Owned,
) -> None:
    """rev35: a scheduler's login with its clock 50 s ahead swept a lease live for 30 s more
    on the server's clock, and settled it. The database refuses a stale mark before the
    lease's deadline on the server's clock: the sweep settles nothing and names the profile
    among its failures, the lease still live, its worker's heartbeat taken."""
    worker, scheduler = owned.login("worker"), owned.login("scheduler")
    ok(owned.cli(owned.url, *REGISTER))
    with Ledger.open(worker) as ledger:
        lease = ledger.handle(
            Checkout(profile_id=PROFILE, worker_id="w1", run_id="r1", task_type="t", ttl_seconds=30)
        )
    versions = _versions(owned)
    with Ledger.open(scheduler, clock=_shifted(50)) as ahead:
        report = ahead.handle(Sweep())
    assert report.settled == [], report  # a live lease settled early
    assert [f.profile_id for f in report.failed] == [PROFILE], report
    assert "before its deadline" in report.failed[0].error
    assert "busy" not in report.failed[0].error
    assert _versions(owned) == versions
    assert ok(owned.cli(owned.url, "--json", "why", PROFILE)).json()["state"] == "leased"
    with Ledger.open(worker) as ledger:
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    assert owned.timeline()[-1] == "lease_heartbeat"


def test_an_operator_login_registers_a_profile_only_once(owned: Owned) -> None:
    """rev25: the insert trigger took a registration from an operator's login wherever it
    went. Appended to a registered profile's stream it moved a quarantined profile to another
    account (and back to the pool); at version 1 of a stream of its own it made every timeline
    unreadable. Each is refused now, and so is an event naming no profile; the operator's own
    registrations still go through, and verify holds. A store of schema 12 is refused until
    ``custody init`` installs the check."""
    operator = owned.login("operator")
    ok(owned.cli(operator, *REGISTER))
    ok(owned.cli(operator, "quarantine", PROFILE, "--actor", "op", "--reason", "suspicious"))
    rows = _events(owned)
    stream, _, topic, state = rows[0]
    assert topic == "profile_registered"
    head = max(r[1] for r in rows if r[0] == stream)
    moved = json.loads(bytes(state))
    moved["account_id"] = "account_other"
    nameless = {k: v for k, v in moved.items() if k != "profile_id"}
    insert = (
        "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
        "VALUES (%s, %s, %s, %s)"
    )
    attempts = {
        "again, past its head": (stream, head + 1, moved, "a registration begins its stream"),
        "again, in a stream of its own": (uuid.uuid4(), 1, moved, "it is registered"),
        "naming no profile": (uuid.uuid4(), 1, nameless, "names no profile"),
    }

    def refused_each() -> None:
        with psycopg.connect(operator, autocommit=True) as conn:
            for where, at, body, said in attempts.values():  # DID NOT RAISE: said names it
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match=said):
                    conn.execute(insert, (where, at, topic, json.dumps(body).encode()))

    refused_each()
    assert _events(owned) == rows
    ok(owned.cli(owned.url, "verify"))
    _refused_until_init(owned, operator, 12)
    refused_each()
    ok(owned.cli(operator, "register", "profile_next", "--account", "a", "--proxy", "p"))
    ok(owned.cli(owned.url, "verify"))


def test_an_operator_login_registers_a_profile_only_in_its_own_stream(owned: Owned) -> None:
    """rev37: the insert check took an operator's registration of a profile with no
    availability row, as its own transaction's snapshot saw the table, in any stream: a new
    profile registered in a stream of its own (or twice, in two, in one transaction) made
    every timeline, `why` and `status` fail, and so did a second registration from a
    REPEATABLE READ snapshot taken before the first. The database now takes a login's
    registration only in the profile's own stream (its id's UUID 5, computed in the database
    as custody computes it), where a second meets the first on the events' key whatever the
    snapshot: each is refused, the operator's own registrations still go through, and
    verify holds. A store of schema 18 is refused until ``custody init`` installs the check."""
    from ledger._domain.model import stream_id

    operator = owned.login("operator")
    ok(owned.cli(operator, *REGISTER))
    (row,) = _events(owned)
    body = json.loads(bytes(row[3]))
    insert = (
        "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
        "VALUES (%s, 1, 'profile_registered', %s)"
    )

    def state(profile_id: Any) -> bytes:
        return json.dumps({**body, "profile_id": profile_id}).encode()

    def refused_each() -> None:
        # Nor of an id register refuses, in that id's own stream (the fix's review: "a b" and
        # the number 5 failed status for the whole fleet, 5 init too).
        for named in ("a b", "x" * 129, 5):
            with (
                psycopg.connect(operator, autocommit=True) as conn,
                pytest.raises(
                    psycopg.errors.InsufficientPrivilege, match="not an id custody takes"
                ),
            ):
                conn.execute(insert, (stream_id(str(named)), state(named)))
        stray = pytest.raises(psycopg.errors.InsufficientPrivilege, match="its stream is")
        with psycopg.connect(operator) as conn, stray:  # the first of two in one transaction
            for _ in range(2):
                conn.execute(insert, (uuid.uuid4(), state("p_new")))
        snapshot = psycopg.connect(operator)
        try:  # a snapshot from before the registration: the key, not the snapshot, refuses
            snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            snapshot.execute("SELECT count(*) FROM custody_availability").fetchone()
            name = f"p_{uuid.uuid4().hex[:6]}"
            ok(owned.cli(operator, "register", name, "--account", "a", "--proxy", "p"))
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="its stream is"):
                snapshot.execute(insert, (uuid.uuid4(), state(name)))
            snapshot.rollback()
            snapshot.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            snapshot.execute("SELECT 1").fetchone()
            again = f"p_{uuid.uuid4().hex[:6]}"
            ok(owned.cli(operator, "register", again, "--account", "a", "--proxy", "p"))
            with pytest.raises(psycopg.errors.UniqueViolation):
                snapshot.execute(insert, (stream_id(again), state(again)))
        finally:
            snapshot.close()

    refused_each()
    ok(owned.cli(owned.url, "verify"))
    assert ok(owned.cli(operator, "status")).err == ""
    _refused_until_init(owned, operator, 18)
    refused_each()
    ok(owned.cli(owned.url, "verify"))
    with psycopg.connect(owned.url) as conn:  # the database's stream ids are custody's
        ids = ["p", "x" * 128, *(f"{uuid.uuid4().hex}.:-_" * n for n in range(1, 4))]
        for pid in ids:
            (found,) = conn.execute("SELECT custody_profile_stream(%s)", (pid,)).fetchone()
            assert found == stream_id(pid), pid


def test_a_lease_the_ledger_never_grants_is_believed_by_no_load(owned: Owned) -> None:
    """rev24: a worker's login returned a quarantined profile to the pool with worker-typed
    events only, their links whole (anyone can compute a link): a lease acquired while the
    profile was quarantined, released cleanly. ``why`` said a checkout would be granted, and
    one was. A load now folds no lease the ledger never grants (on a profile that is not
    available, or with a token that is not the next): the checkout and ``why`` name the event
    (exit 1), the profile stays out of the pool, and ``verify`` names it (exit 5)."""
    from ledger._domain import chain

    worker = owned.login("worker")
    ok(owned.cli(owned.url, *REGISTER))
    ok(owned.cli(owned.url, "quarantine", PROFILE, "--actor", "op", "--reason", "suspicious"))
    stream, head, _, state = _events(owned)[-1]
    prev = json.loads(bytes(state))["~chain"]["hash"]
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")  # the server takes it (rev34)
    envelope = {
        "actor_id": "w_evil",
        "actor_role": "worker",
        "at": at,
        "causation_id": "c",
        "command": "checkout:x",
        "command_id": "c",
        "correlation_id": "c",
        "reason": "",
    }
    lease = {"account_id": "account_shop_17", "ended_at": None, "ending": None, "expires_at": at,
             "fencing_token": 1, "hard_limit_at": None, "heartbeat_at": at,
             "last_safe_step": None, "last_step": None, "last_url": None,
             "lease_id": f"lease-1@{PROFILE}", "lease_started_at": at, "lease_status": "active",
             "mutating_step": None, "profile_id": PROFILE, "proxy_id": "proxy_us_east_12",
             "release_policy": "manual_review_on_unknown_state", "run_id": "rx",
             "task_type": "t", "ttl_seconds": 300, "worker_id": "w_evil"}  # fmt: skip
    lease_id = f"lease-1@{PROFILE}"
    released = {"lease_id": lease_id, "outcome": "success"}
    forged = [
        ("lease_acquired", {"class_version": 2, "lease": lease}),
        ("lease_release_requested", {
            "class_version": 3, "evidence_problem": None, "fencing_token": 1,
            "final_url": "https://x/done", "observed_account": None, "observed_proxy": None,
            "prompt_seen": False, "screenshot": None, "screenshot_sha256": None, **released}),
        ("lease_released_cleanly", {"class_version": 1, **released}),
    ]  # fmt: skip
    with psycopg.connect(worker, autocommit=True) as conn:  # the database lets each in
        for n, (topic, fields) in enumerate(forged, start=head + 1):
            event = {**fields, "envelope": envelope, "profile_id": PROFILE}
            body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
            link = chain.link(prev, chain.header_bytes(event, n, topic), body)
            conn.execute(
                "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s)",
                (stream, n, topic, chain.stored(body, link)),
            )
            prev = link.hash
    said = (
        f"custody: the event 'lease_acquired' v{head + 1} of profile '{PROFILE}' cannot be read "
        "(a lease on a profile that was quarantined: the ledger never grants it)"
    )
    for args in (["checkout", PROFILE, "--worker", "w2", "--run", "r2", "--task", "t"],
                 ["why", PROFILE]):  # fmt: skip
        run = owned.cli(worker, *args)
        assert run.code == 1, (args, run.out, run.err)
        assert error_line(run).startswith(said), error_line(run)
    assert [r[2] for r in _events(owned)][-4:-2] == ["profile_quarantined", "lease_acquired"]
    # verify folded only the streams with snapshots: every chain held, exit 0. It folds each
    # stream to its end now, as a load does, and names the event.
    audit = owned.cli(owned.url, "verify")
    assert audit.code == 5, (audit.out, audit.err)
    assert (
        f"  {PROFILE} v{head + 1}: a lease on a profile that was quarantined: the ledger never "
        "grants it; appended past the ledger (its link computed): no load believes it"
    ) in audit.out.splitlines(), audit.out


def _custody_time(at: datetime) -> str:
    """``at`` as custody writes a time."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _append_as(url: str, owned: Owned, topic: str, fields: dict[str, Any], at: str) -> None:
    """An event of ``topic`` with ``fields``, dated ``at``, appended as the next of PROFILE's
    stream through ``url``'s login, its link computed (anyone can), as a stolen credential
    would with raw SQL."""
    from ledger._domain import chain

    stream, head, _, state = [r for r in _events(owned) if r[3] and PROFILE.encode() in r[3]][-1]
    prev = json.loads(bytes(state))["~chain"]["hash"]
    role = {"lease_acquired": "worker", "lease_heartbeat": "worker"}.get(topic, "scheduler")
    envelope = {"actor_id": "w_evil", "actor_role": role, "at": at, "causation_id": "c",
                "command": f"{topic}:x", "command_id": uuid.uuid4().hex, "correlation_id": "c",
                "reason": ""}  # fmt: skip
    event = {**fields, "envelope": envelope, "profile_id": PROFILE}
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    link = chain.link(prev, chain.header_bytes(event, head + 1, topic), body)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            (stream, head + 1, topic, chain.stored(body, link)),
        )


def _lease(at: str, **times: str | None) -> dict[str, Any]:
    """The lease custody's checkout of PROFILE writes at ``at`` (TTL 300 s, no hard limit),
    with ``times`` changed so."""
    due = _custody_time(datetime.fromisoformat(at) + timedelta(seconds=300))
    lease = {"account_id": "account_shop_17", "ended_at": None, "ending": None,
             "expires_at": due, "fencing_token": 1, "hard_limit_at": None, "heartbeat_at": at,
             "last_safe_step": None, "last_step": None, "last_url": None,
             "lease_id": f"lease-1@{PROFILE}", "lease_started_at": at, "lease_status": "active",
             "mutating_step": None, "profile_id": PROFILE, "proxy_id": "proxy_us_east_12",
             "release_policy": "manual_review_on_unknown_state", "run_id": "rx",
             "task_type": "t", "ttl_seconds": 300, "worker_id": "w_evil"}  # fmt: skip
    return {"class_version": 2, "lease": {**lease, **times}}


def test_a_worker_login_acquires_only_a_lease_started_at_its_event_s_time(owned: Owned) -> None:
    """rev37: a worker's login acquired a lease dated now that started in 2099, its deadline
    and hard limit an hour after its start: the database took it, verify passed, the sweep
    never reached it, and every read showed the profile leased until 2099. The database takes
    a login's acquisition only as custody's checkout writes it: started and renewed at its
    event's time, due within its TTL of it and by its hard limit; an honest checkout goes
    through. Stored before the fix (here by the owner, whom the check passes over), no load
    believes it and verify names it. A store of schema 18 is refused until ``custody init``
    installs the check."""
    worker = owned.login("worker")
    ok(owned.cli(owned.url, *REGISTER, "--max-lease", "3600"))
    now = datetime.now(UTC)
    at, y2099 = _custody_time(now), datetime(2099, 1, 1, tzinfo=UTC)
    hour = timedelta(hours=1)
    later = _custody_time(y2099 + hour)
    forged = {
        "started in 2099": _lease(at, lease_started_at=_custody_time(y2099),
                                  heartbeat_at=_custody_time(y2099), expires_at=later,
                                  hard_limit_at=later),
        "started an hour before": _lease(at, lease_started_at=_custody_time(now - hour)),
        "renewed in 2099": _lease(at, heartbeat_at=_custody_time(y2099)),
        "due past its TTL": _lease(at, expires_at=_custody_time(now + timedelta(seconds=301))),
        "due past its hard limit": _lease(
            at, hard_limit_at=_custody_time(now + timedelta(seconds=60))
        ),
    }  # fmt: skip

    def refused_each() -> None:
        for lease in forged.values():  # DID NOT RAISE: the database took it
            with pytest.raises(
                psycopg.errors.InsufficientPrivilege, match="may not record a lease"
            ):
                _append_as(worker, owned, "lease_acquired", lease, at)

    rows = _events(owned)
    refused_each()
    assert _events(owned) == rows
    _refused_until_init(owned, worker, 18)
    refused_each()
    _append_as(owned.url, owned, "lease_acquired", forged["started in 2099"], at)  # before
    audit = owned.cli(owned.url, "verify")
    assert audit.code == 5, (audit.out, audit.err)
    said = (
        f"a lease started at 2099-01-01T00:00:00+00:00, not at its checkout's "
        f"{now.isoformat()}: the ledger never grants it"
    )
    assert f"  {PROFILE} v2: {said}" in audit.out, audit.out
    why = owned.cli(worker, "why", PROFILE)
    assert why.code == 1, (why.out, why.err)
    assert said in error_line(why), error_line(why)


def test_a_worker_login_writes_a_lease_s_times_only_as_custody_writes_them(owned: Owned) -> None:
    """rev37: a worker's login appended a checkout whose deadline was written "+00:00", not
    custody's "Z": the fold took it, but the database's reading of the deadline refused every
    sweep's stale mark of that lease, and it was never settled. The database takes a login's
    lease event only with its times as custody writes them; stored before the fix (here by
    the owner), verify names it."""
    worker = owned.login("worker")
    lease = _leased(owned, worker)
    now = datetime.now(UTC)
    at, offset = _custody_time(now), (now + timedelta(seconds=30)).isoformat()
    renewal = {"class_version": 1, "expires_at": offset, "fencing_token": 1,
               "lease_id": lease["lease_id"], "mutating": False, "safe": False,
               "step": "x", "url": None}  # fmt: skip
    rows = _events(owned)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="a time not custody's"):
        _append_as(worker, owned, "lease_heartbeat", renewal, at)  # DID NOT RAISE: taken
    assert _events(owned) == rows
    _append_as(owned.url, owned, "lease_heartbeat", renewal, at)  # stored before the fix
    audit = owned.cli(owned.url, "verify")
    assert audit.code == 5, (audit.out, audit.err)
    assert f"  {PROFILE} v3: its expires_at is written {offset!r}, not as custody" in audit.out


def test_a_revoke_alone_is_named_and_denies_checkouts_with_the_way_out(owned: Owned) -> None:
    """rev26 reread2: an operator's login appended one ``lease_revoked`` on a leased profile,
    with nothing after it (the ledger records one only with the review or quarantine it sends
    the profile to): why, checkout and the HTML report were internal errors, verify said every
    chain holds, and an honest disable then enable made it "leased" with no lease. Now verify
    names the revoke, a checkout is denied naming it and the way out, an honest disable is
    refused, and the way out (quarantine, then review) works."""
    from ledger._domain import chain

    operator, worker, reviewer = (owned.login(r) for r in ("operator", "worker", "reviewer"))
    ok(owned.cli(owned.url, *REGISTER))
    ok(owned.cli(worker, "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t"))
    other = "profile_other"  # an honest revoke, to copy
    ok(owned.cli(owned.url, "register", other, "--account", "a", "--proxy", "x"))
    ok(owned.cli(worker, "checkout", other, "--worker", "w2", "--run", "r2", "--task", "t"))
    ok(owned.cli(operator, "force-release", other, "--actor", "op", "--reason", "copy"))
    rows = _events(owned)
    honest = next(r for r in rows if r[2] == "lease_revoked")
    event = json.loads(bytes(honest[3]))
    del event["~chain"]
    event.update(profile_id=PROFILE, lease_id=f"lease-1@{PROFILE}")
    stream, head, _, state = next(r for r in reversed(rows) if r[2] == "lease_acquired"
                                  and json.loads(bytes(r[3]))["profile_id"] == PROFILE)  # fmt: skip
    prev = json.loads(bytes(state))["~chain"]["hash"]
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    link = chain.link(prev, chain.header_bytes(event, head + 1, "lease_revoked"), body)
    with psycopg.connect(operator, autocommit=True) as conn:  # the database lets it in
        conn.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            (stream, head + 1, "lease_revoked", chain.stored(body, link)),
        )
    audit = owned.cli(owned.url, "verify")
    assert audit.code == 5, (audit.out, audit.err)
    assert (
        f"  {PROFILE} v{head + 1}: the revoke of lease-1@{PROFILE} with no review or quarantine "
        "after it: the ledger never records one"
    ) in audit.out, audit.out
    why = ok(owned.cli(worker, "why", PROFILE)).out
    assert "leased with no lease: the revoke of" in why, why
    denied = owned.cli(worker, "checkout", PROFILE, "--worker", "w3", "--run", "r3", "--task", "t")
    assert denied.code == 3, (denied.out, denied.err)
    assert f"custody quarantine {PROFILE}" in error_line(denied)
    disable = owned.cli(operator, "disable", PROFILE, "--actor", "op", "--reason", "park")
    assert disable.code == 1, disable.err
    assert "it follows the revoke of" in error_line(disable), disable.err
    ok(owned.cli(operator, "quarantine", PROFILE, "--actor", "op", "--reason", "revoked alone"))
    review = ["review", PROFILE, "--reviewer", "rv", "--decision", "return", "--note", "ok"]
    ok(owned.cli(reviewer, *review))
    ok(owned.cli(worker, "checkout", PROFILE, "--worker", "w3", "--run", "r3", "--task", "t"))


def test_a_command_id_a_worker_claimed_answers_no_other_role_s_command(owned: Owned) -> None:
    """rev24: a worker's login that predicted a reviewer's command id and arguments recorded the
    id, with the review's fingerprint, beside an event of its own (both allowed it: the event
    is a worker's, the row is beside it); the reviewer's review with that id was answered as
    a resend, exit 0, and nothing was recorded. A resend is answered only if the event beside
    its id was made in the command's role: here it is bad input asking for a new id (exit 2).
    The worker's event is one the ledger decides (a heartbeat on its own live lease), so that
    every load believes it (rev25: one it never decides makes the profile unreadable)."""
    from ledger import Review
    from ledger._domain import chain

    worker, reviewer = owned.login("worker"), owned.login("reviewer")
    lease = _leased(owned, worker)
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    ok(owned.cli(worker, "heartbeat", lease_id, "--token", token, "--step", "cart"))
    claimed = "review-001"
    review = ["review", PROFILE, "--reviewer", "alice", "--decision", "quarantine", "--note",
              "keep it out", "--command-id", claimed]  # fmt: skip
    fingerprint = Review(profile_id=PROFILE, reviewer="alice", decision="quarantine",
                         note="keep it out", command_id=claimed).fingerprint()  # fmt: skip
    stream, head, _, state = _events(owned)[-1]
    event = {k: v for k, v in json.loads(bytes(state)).items() if k != chain.CHAIN_KEY}
    event["envelope"] = {**event["envelope"], "causation_id": claimed, "command": fingerprint,
                         "command_id": claimed, "correlation_id": claimed}  # fmt: skip
    body = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    prev = json.loads(bytes(state))["~chain"]["hash"]
    link = chain.link(prev, chain.header_bytes(event, head + 1, "lease_heartbeat"), body)
    with psycopg.connect(worker) as conn:  # one transaction: the event, then its id beside it
        conn.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, 'lease_heartbeat', %s)",
            (stream, head + 1, chain.stored(body, link)),
        )
        conn.execute(
            "INSERT INTO custody_commands (command_id, profile_id, version, command) "
            "VALUES (%s, %s, %s, %s)",
            (claimed, PROFILE, head + 1, fingerprint),
        )
    # The worker's run ends as a failure: the profile goes to review, as the reviewer expects.
    ok(owned.cli(worker, "release", lease_id, "--token", token, "--outcome", "failure"))
    before = _events(owned)
    run = owned.cli(reviewer, *review)
    assert run.code == 2, (run.out, run.err)
    assert error_line(run) == (
        f"custody: invalid command_id: 'review-001' was recorded on {PROFILE} beside an event in "
        "the worker role, not this command's reviewer: send a new id"
    )
    assert _events(owned) == before
    ok(owned.cli(reviewer, *review[:-1], "review-002"))  # a new id: the review is recorded
    assert [r[2] for r in _events(owned)][-2:] == ["profile_reviewed", "profile_quarantined"]


def test_not_even_the_owner_rewrites_events(owned: Owned) -> None:
    """The owner of the events table may append as any role, but its UPDATE, DELETE and
    TRUNCATE are refused by the triggers, which name the operation."""
    ok(owned.cli(owned.url, *REGISTER))
    with psycopg.connect(owned.url, autocommit=True) as conn:
        for statement, op in (
            ("UPDATE custody_events SET topic = topic", "UPDATE"),
            ("DELETE FROM custody_events", "DELETE"),
            ("TRUNCATE custody_events", "TRUNCATE"),
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=f"{op} refused"):
                conn.execute(statement)
        (count,) = conn.execute("SELECT count(*) FROM custody_events").fetchone() or (0,)
    assert count == 1


def test_each_role_does_its_part_and_a_regrant_replaces_the_role(owned: Owned) -> None:
    """An operator's login registers, a worker's leases and fails, a scheduler's sweeps, a
    reviewer's review returns the profile; ``access list`` shows each login's one role, and
    granting a login another role takes the first away."""
    operator, worker = owned.login("operator"), owned.login("worker")
    scheduler, reviewer = owned.login("scheduler"), owned.login("reviewer")
    ok(owned.cli(operator, *REGISTER))
    args = ["--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t"]
    lease = ok(owned.cli(worker, *args, "--ttl", "1")).json()
    time.sleep(1.5)
    assert owned.cli(worker, "sweep").code == FORBIDDEN
    assert owned.cli(operator, "sweep").code == FORBIDDEN  # the scheduler's alone (roles.md)
    ok(owned.cli(scheduler, "sweep"))
    review = ["review", PROFILE, "--reviewer", "rv", "--decision", "return", "--note", "ok"]
    assert owned.cli(scheduler, *review).code == FORBIDDEN
    ok(owned.cli(reviewer, *review))
    assert owned.timeline() == [
        "profile_registered",
        "lease_acquired",
        "lease_marked_stale",
        "review_requested",
        "profile_reviewed",
        "profile_returned_to_pool",
    ]
    assert lease["fencing_token"] == 1

    listed = ok(owned.cli(owned.url, "--json", "access", "list")).json()
    roles = {row["login"]: row["role"] for row in listed}
    for url, role in ((operator, "operator"), (worker, "worker"), (reviewer, "reviewer")):
        assert roles[urlsplit(url).username] == role
    name = urlsplit(worker).username
    assert name is not None
    ok(owned.cli(owned.url, "access", "grant", name, "--role", "reviewer"))
    listed = ok(owned.cli(owned.url, "--json", "access", "list")).json()
    assert [r["role"] for r in listed if r["login"] == name] == ["reviewer"]
    checkout = owned.cli(worker, *args)
    assert checkout.code == FORBIDDEN, checkout.err


def test_the_owners_commands_under_a_roles_login_say_the_owner_runs_them(owned: Owned) -> None:
    """rev26: init, projections rebuild and access token or grant under an operator's login
    answered PostgreSQL's "permission denied for schema public" (or "to create role"), which
    points at granting the login CREATE or CREATEROLE, what access grant then takes back. Each
    says the store's owner runs it, exit 7, and writes nothing."""
    operator = owned.login("operator")
    before = _events(owned)
    for args in (
        ["init"],
        ["projections", "rebuild"],
        ["access", "token", "someone", "--role", "worker"],
        ["access", "grant", f"zed_{owned.tag}", "--role", "worker"],
    ):
        run = owned.cli(operator, *args)
        assert run.code == FORBIDDEN, (args, run.err)
        said = error_line(run)
        assert f"custody {' '.join(args[:2])} is the store owner's command" in said, said
        assert urlsplit(operator).username in said, said
    assert _events(owned) == before


def test_a_worker_login_takes_no_snapshot_and_reads_its_timeline(owned: Owned) -> None:
    """Snapshots are a load's starting state: a worker's login may not write them, so its
    process takes none (the 50th event's snapshot is not attempted, the command succeeds).
    It reads the timeline as the read models' maintainers left it (it may not write them):
    nothing of its lease before a scheduler's ``projections run``, all of it after."""
    worker = owned.login("worker")
    lease = _leased(owned, worker)
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    from ledger import Heartbeat, Ledger

    with Ledger.open(worker) as ledger:
        for step in range(55):
            ledger.handle(Heartbeat(lease_id=lease_id, fencing_token=int(token), step=f"s{step}"))
    with psycopg.connect(owned.url, autocommit=True) as conn:
        (snapshots,) = conn.execute("SELECT count(*) FROM custody_snapshots").fetchone() or (0,)
    assert snapshots == 0
    run = ok(owned.cli(worker, "--json", "timeline", PROFILE))
    assert run.json() == []  # init installed the read model; no maintainer has folded since
    ok(owned.cli(owned.login("scheduler"), "projections", "run", "--rounds", "1"))
    run = ok(owned.cli(worker, "--json", "timeline", PROFILE))
    assert len(run.json()) == 57


def test_grant_refuses_sqlite_and_bad_names(owned: Owned, tmp_path: Path) -> None:
    """On SQLite there are no logins to grant (exit 2, the docs' boundary named); a login
    name that is not a plain role name, or the owner itself, is refused with exit 2."""
    sqlite = f"sqlite:///{tmp_path / 'c.db'}"
    ok(custody("--store", sqlite, "init", cwd=tmp_path))
    run = custody("--store", sqlite, "access", "grant", "w1", "--role", "worker", cwd=tmp_path)
    assert run.code == 2
    assert "file's permissions" in error_line(run)
    for bad in ('w"; DROP TABLE custody_events; --', owned.owner, "custody_worker"):
        run = owned.cli(owned.url, "access", "grant", bad, "--role", "worker")
        assert run.code == 2, run.err
        error_line(run)


@pytest.mark.slow
def test_a_worker_login_cannot_stop_an_orphaned_browser_and_stops_nothing(owned: Owned) -> None:
    """Stopping an orphaned browser is an operator's act, recorded as ``browser_stopped``: a
    worker's login is refused (exit 7 naming the role) before any signal reaches the browser,
    which still runs, and nothing is appended."""
    from chromium_process import launch, still_running, stop

    directory = owned.tmp / "profiles" / PROFILE
    directory.mkdir(parents=True)
    ok(owned.cli(owned.url, *REGISTER, "--user-data-dir", str(directory)))
    worker = owned.login("worker")
    before = owned.timeline()
    browser = launch(directory, owned.tmp / "chromium.log")
    try:
        run = owned.cli(worker, "inspect", PROFILE, "--stop-orphan", "--actor", "ops")
        assert run.code == FORBIDDEN, run.err
        assert "needs the operator role" in error_line(run)
        assert still_running(browser), "a refused stop stopped the browser"
        assert owned.timeline() == before
    finally:
        stop(browser)


def test_every_role_writes_its_rows_beside_its_events_and_the_owner_repairs(owned: Owned) -> None:
    """Beside the guards on the availability row, the command ids and the read models, each
    role's own commands still work, command ids included: the operator registers and
    force-releases, the worker checks out, heartbeats and releases, the reviewer reviews and
    reads the timeline (caught up: it maintains the read models), the scheduler sweeps. A
    repair of availability writes rows without events: the owner's, refused to another login
    (exit 7), which may still report the differences."""
    operator, worker = owned.login("operator"), owned.login("worker")
    scheduler, reviewer = owned.login("scheduler"), owned.login("reviewer")
    ok(owned.cli(operator, *REGISTER))
    args = ["--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t"]
    lease = ok(owned.cli(worker, *args, "--command-id", "co-1")).json()
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    beat = ["heartbeat", lease_id, "--token", token, "--step", "cart", "--command-id", "hb-1"]
    ok(owned.cli(worker, *beat))
    ok(owned.cli(worker, *beat))
    release = [
        "release",
        lease_id,
        "--token",
        token,
        "--outcome",
        "success",
        "--final-url",
        "https://shop.example/x",
    ]
    ok(owned.cli(worker, *release, "--command-id", "rel-1"))
    lease = ok(owned.cli(worker, *args, "--command-id", "co-2")).json()
    force = ["force-release", PROFILE, "--actor", "op", "--reason", "stuck"]
    ok(owned.cli(operator, *force, "--command-id", "fr-1"))
    review = ["review", PROFILE, "--reviewer", "rv", "--decision", "return", "--note", "ok"]
    ok(owned.cli(reviewer, *review, "--command-id", "rv-1"))
    ok(owned.cli(scheduler, "sweep", "--command-id", "sw-1"))
    shown = event_types(ok(owned.cli(reviewer, "--json", "timeline", PROFILE)).json())
    assert shown[-2:] == ["profile_reviewed", "profile_returned_to_pool"], shown
    assert shown.count("lease_heartbeat") == 1, shown  # its resend appended nothing

    with psycopg.connect(owned.url, autocommit=True) as conn:  # a row damaged by hand
        conn.execute(
            "UPDATE custody_availability SET reason = 'x' WHERE profile_id = %s", (PROFILE,)
        )
    for url in (worker, operator):
        refused = owned.cli(url, "rebuild")
        assert refused.code == FORBIDDEN, refused.err
        assert "without its event" in error_line(refused)
    fixed = ok(owned.cli(owned.url, "--json", "rebuild")).json()
    assert [d["profile_id"] for d in fixed["differences"]] == [PROFILE]
    assert ok(owned.cli(operator, "--json", "rebuild")).json()["differences"] == []


def test_init_gives_an_older_store_the_guards(owned: Owned) -> None:
    """A store of schema 8 (every role writing the caches, no row trigger) is refused until
    ``custody init`` migrates it, which installs the triggers and takes the read models and the
    bare writes away from the worker's login."""
    worker = owned.login("worker")
    _leased(owned, worker)
    with psycopg.connect(owned.url, autocommit=True) as conn:  # as schema 8 left it
        for table in ("custody_availability", "custody_commands"):
            conn.execute(f"DROP TRIGGER {table}_beside ON {table}")
        conn.execute("DROP FUNCTION custody_check_beside()")
        conn.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON custody_availability, custody_commands, "
            "custody_timeline, custody_projection_positions TO custody_worker"
        )
        conn.execute("UPDATE custody_schema SET version = 8")
    refused = owned.cli(worker, "status")
    assert refused.code == 6, refused.err
    assert "custody init" in error_line(refused)
    ok(owned.cli(owned.url, "init"))
    with psycopg.connect(worker, autocommit=True) as conn:
        for statement in (
            "UPDATE custody_availability SET until = '2036-01-01'",
            "DELETE FROM custody_commands",
            "UPDATE custody_timeline SET step = 'x'",
            "UPDATE custody_projection_positions SET position = 0",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    ok(owned.cli(worker, "status"))


def test_init_pins_the_checks_of_a_schema_9_store(owned: Owned) -> None:
    """A store of schema 9 (its check functions on the writer's search path, where a login's
    temporary table comes first) is refused until ``custody init``, which pins both."""
    worker = owned.login("worker")
    functions = "('custody_check_append', 'custody_check_beside')"
    pinned = f"SELECT proname, proconfig FROM pg_proc WHERE proname IN {functions}"
    with psycopg.connect(owned.url, autocommit=True) as conn:  # as schema 9 left it
        assert all(config for _, config in conn.execute(pinned))
        for function in ("custody_check_append", "custody_check_beside"):
            conn.execute(f"ALTER FUNCTION {function}() RESET search_path")
        conn.execute("UPDATE custody_schema SET version = 9")
    refused = owned.cli(worker, "status")
    assert refused.code == 6, refused.err
    assert f"has schema 9, this custody needs {SCHEMA_VERSION}" in error_line(refused)
    ok(owned.cli(owned.url, "init"))
    with psycopg.connect(owned.url, autocommit=True) as conn:
        found = dict(conn.execute(pinned).fetchall())
    assert sorted(found) == ["custody_check_append", "custody_check_beside"]
    for config in found.values():
        assert config == ["search_path=pg_catalog, public, pg_temp"], config
    ok(owned.cli(worker, "status"))


def test_an_owner_without_createrole_is_told_to_get_it_not_to_give_it_up(owned: Owned) -> None:
    """rev29: the set-up page made the owner without CREATEROLE; its ``access grant`` was
    refused with a line that seemed to forbid granting CREATEROLE at all ("never by granting a
    custody role's login CREATE or CREATEROLE"). It says the owner needs the attribute."""
    with psycopg.connect(owned.admin, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {owned.owner} NOCREATEROLE")
    run = owned.cli(owned.url, "access", "grant", f"new_{owned.tag}", "--role", "worker")
    assert run.code == FORBIDDEN, run.err
    said = error_line(run)
    assert "making logins needs the owner to have CREATEROLE" in said, said
    assert "ALTER ROLE <owner> CREATEROLE" in said
    with psycopg.connect(owned.admin, autocommit=True) as conn:
        conn.execute(f"ALTER ROLE {owned.owner} CREATEROLE")
    ok(owned.cli(owned.url, "access", "grant", f"new_{owned.tag}", "--role", "worker"))


def test_rebuild_under_a_roles_login_says_the_owner_runs_it(owned: Owned) -> None:
    """rev29: ``custody rebuild`` under an operator's login, with a row to repair, was refused
    in the database trigger's words alone ("may not write custody_availability for profile
    ... without its event"), which read as a fault. It says the store's owner runs it."""
    ok(owned.cli(owned.url, *REGISTER))
    with psycopg.connect(owned.url, autocommit=True) as conn:
        conn.execute("DELETE FROM custody_availability")
    run = owned.cli(owned.login("operator"), "rebuild")
    assert run.code == FORBIDDEN, run.err
    said = error_line(run)
    assert "custody rebuild is the store owner's command" in said, said
    ok(owned.cli(owned.url, "rebuild"))


def test_a_login_whose_role_was_revoked_is_told_it_holds_none(owned: Owned) -> None:
    """rev29: after ``REVOKE custody_worker FROM <login>`` (roles.md) every command under the
    login was refused in the database's words alone, "permission denied for table
    custody_schema", where the docs promise a line naming the login and what it needs."""
    worker = owned.login("worker")
    name = urlsplit(worker).username
    with psycopg.connect(owned.url, autocommit=True) as conn:
        conn.execute(f"REVOKE custody_worker FROM {name}")
    run = owned.cli(worker, "status")
    assert run.code == FORBIDDEN, run.err
    said = error_line(run)
    assert f"login {name} holds no custody role" in said, said
    assert f"custody access grant {name} --role ROLE" in said
