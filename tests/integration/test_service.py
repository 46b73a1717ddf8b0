"""The lease service over HTTP: a real ``custody serve`` process on each store, spoken to as a
worker, a reviewer, an operator and a stranger would; the events are read afterwards through
the ledger."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import event_count
from pg_cluster import create_database, drop_database
from serving import Served, serve

from ledger import Ledger, RegisterProfile, Role

pytestmark = pytest.mark.slow

CHECKOUT = {"run_id": "r1", "task_type": "t"}
_numbers = itertools.count(1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """One service per store kind for the module (a start costs seconds); each test uses
    profiles of its own."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('service')) / 'custody.db'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        name = f"t_{uuid.uuid4().hex[:12]}"
        url = create_database(cluster.admin_url, name)
    Ledger.init(url).close()
    running = serve(url)
    try:
        yield running
    finally:
        assert running.stop() == 0
        if name is not None:
            drop_database(request.getfixturevalue("pg_cluster").admin_url, name)


@pytest.fixture
def pid(served: Served) -> str:
    """A profile of this test's own, registered."""
    profile_id = f"p{next(_numbers)}"
    _register(served, profile_id)
    return profile_id


def _register(served: Served, *profile_ids: str) -> None:
    with Ledger.open(served.store_url) as ledger:
        for profile_id in profile_ids:
            ledger.handle(RegisterProfile(profile_id=profile_id, account_id="a1", proxy_id="x1"))


def _events(served: Served) -> int:
    with Ledger.open(served.store_url) as ledger:
        return event_count(ledger)


def _checkout(client: httpx.Client, profile_id: str) -> dict[str, Any]:
    got = client.post(f"/v1/profiles/{profile_id}/checkout", json=CHECKOUT)
    assert got.status_code == 201, got.text
    lease: dict[str, Any] = got.json()
    return lease


def test_a_worker_checks_out_heartbeats_and_releases(served: Served, pid: str) -> None:
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
        assert lease["worker_id"] == "worker-1"  # the token's actor, never the body's
        beat = worker.post(
            f"/v1/leases/{lease['lease_id']}/heartbeat",
            json={"fencing_token": lease["fencing_token"], "step": "open", "url": "http://x/"},
        )
        assert beat.status_code == 200, beat.text
        assert beat.json()["last_step"] == "open"
        done = worker.post(
            f"/v1/leases/{lease['lease_id']}/release",
            json={"fencing_token": lease["fencing_token"], "outcome": "success",
                  "final_url": "http://x/done", "screenshot": "s.png"},
        )  # fmt: skip
        assert done.status_code == 200, done.text
        assert done.json()["profile_state"] == "available"
    with Ledger.open(served.store_url) as ledger:
        kinds = [type(e).__name__ for e in ledger.history(pid)]
    assert kinds[1:] == [
        "LeaseAcquired",
        "LeaseHeartbeat",
        "LeaseReleaseRequested",
        "LeaseReleasedCleanly",
    ]


def test_a_denied_checkout_is_409_with_the_denial(served: Served, pid: str) -> None:
    with served.client(Role.WORKER) as worker:
        _checkout(worker, pid)
        other = served.token("worker-2", Role.WORKER)
        with served.client(token=other) as second:
            denied = second.post(f"/v1/profiles/{pid}/checkout", json=CHECKOUT)
    assert denied.status_code == 409
    body = denied.json()
    assert body["error"] == "checkout_denied"
    assert body["denial"]["reason"] == "already_leased"
    assert body["denial"]["holder"]["worker_id"] == "worker-1"
    assert body["denial"]["remediation"]


def test_a_mismatch_on_a_held_profile_is_409_naming_the_holder(served: Served, pid: str) -> None:
    """rev39: another account on a profile another worker holds is told the mismatch and to
    wait for the holder, whom the 409's denial names, with since and until."""
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
        other = served.token("worker-2", Role.WORKER)
        with served.client(token=other) as second:
            denied = second.post(
                f"/v1/profiles/{pid}/checkout", json={**CHECKOUT, "account_id": "a-other"}
            )
    assert denied.status_code == 409, denied.text
    denial = denied.json()["denial"]
    assert denial["reason"] == "account_mismatch"
    assert "also blocked (already_leased)" in denial["remediation"]
    assert (denial["holder"]["worker_id"], denial["holder"]["lease_id"]) == (
        "worker-1",
        lease["lease_id"],
    )
    assert (denial["since"], denial["until"]) == (lease["lease_started_at"], lease["expires_at"])


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/profiles/p1/checkout", {"run_id": "r1", "task_type": "t", "ttl_seconds": -5},
         "ttl_seconds"),
        ("/v1/profiles/p1/checkout", {"run_id": "r1", "task_type": "t", "ttl_seconds": "60"},
         "ttl_seconds"),
        ("/v1/profiles/p1/checkout", {"run_id": "r1", "task_type": "t", "worker_id": "w9"},
         "worker_id"),
        ("/v1/profiles/p1/checkout", {"run_id": "r\x00", "task_type": "t"}, "run_id"),
        ("/v1/profiles/bad%20id/checkout", CHECKOUT, "profile_id"),
        ("/v1/leases/not-a-lease/heartbeat", {"fencing_token": 1}, "lease_id"),
        ("/v1/leases/lease-1@p1/heartbeat", {"fencing_token": 0}, "fencing_token"),
        ("/v1/leases/lease-1@p1/release", {"fencing_token": 1, "outcome": "expected_failure"},
         "reason"),
    ],
)  # fmt: skip
def test_bad_input_is_422_naming_the_field_and_writes_nothing(
    served: Served, pid: str, path: str, body: dict[str, Any], field: str
) -> None:
    path = path.replace("p1", pid)
    before = _events(served)
    with served.client(Role.WORKER) as worker:
        got = worker.post(path, json=body)
    assert got.status_code == 422, got.text
    assert got.json()["field"] == field
    assert field in got.json()["message"]
    assert "Traceback" not in got.text
    assert _events(served) == before


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/login?next=http://bob:hunter2@intranet.example/",
        "https://shop.example/login?next=http%3A%2F%2Fbob%3Ahunter2%40intranet.example%2F",
        "https://shop.example/login?next=//bob:hunter2@intranet.example/",  # rev47
        "https://shop.example/login?next=http:%2F%09%2Fbob%3Ahunter2%40intranet.example/",  # rev48
    ],
    ids=["as-written", "encoded", "schemeless", "tab-between-slashes"],
)
def test_a_url_nesting_a_password_is_422_and_writes_nothing(
    served: Served, pid: str, url: str
) -> None:
    """rev43: a heartbeat's URL or a release's final URL carrying a nested URL with a password
    (a login's return address) is refused as one in the URL's own userinfo is, the password
    not repeated, nothing written; the same URL without it is taken."""
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
        before = _events(served)
        token = {"fencing_token": lease["fencing_token"]}
        for field, path, body in (
            ("url", "heartbeat", {**token, "url": url}),
            ("final_url", "release", {**token, "outcome": "success", "final_url": url}),
        ):
            got = worker.post(f"/v1/leases/{lease['lease_id']}/{path}", json=body)
            assert got.status_code == 422, got.text
            assert (got.json()["error"], got.json()["field"]) == ("invalid_input", field)
            assert "hunter2" not in got.text
        assert _events(served) == before
        kept = url.replace("bob:hunter2@", "").replace("bob%3Ahunter2%40", "")
        got = worker.post(f"/v1/leases/{lease['lease_id']}/heartbeat", json={**token, "url": kept})
        assert got.status_code == 200, got.text


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/profiles/profile%20shop%2F17/checkout", CHECKOUT, "profile_id"),
        ("POST", "/v1/profiles/p1%2F17/checkout", CHECKOUT, "profile_id"),
        ("POST", "/v1/leases/lease-1@p1%2Fb/heartbeat", {"fencing_token": 1}, "lease_id"),
        ("GET", "/v1/leases/lease-1@p1%2fb", None, "lease_id"),
        ("GET", "/v1/profiles/p1%2Fb/why", None, "profile_id"),
        ("GET", "/v1/profiles/p1%2Fwhy", None, "profile_id"),
    ],
)  # fmt: skip
def test_an_id_holding_a_slash_is_422_naming_the_field_not_a_404(
    served: Served, pid: str, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    """An id holding ``/`` (sent as ``%2F``) is bad input as any malformed id is, naming the
    field; never a 404 naming nothing because the decoded ``/`` left the path matching no
    route (rev33). A stranger is still refused first, as with any other id."""
    path = path.replace("p1", pid)
    before = _events(served)
    with served.client(Role.WORKER) as worker:
        got = worker.request(method, path, json=body)
    with served.client() as stranger:
        refused = stranger.request(method, path, json=body)
    assert got.status_code == 422, got.text
    assert (got.json()["error"], got.json()["field"]) == ("invalid_input", field)
    assert "/" in got.json()["message"]  # the id as sent, decoded
    assert refused.status_code == 401, refused.text
    assert _events(served) == before


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/profiles/p1/nowhere", 404),  # whatever "p1/nowhere" would be as an id
        ("POST", "/v1/profiles/p1%2Fb/nowhere", 404),
        ("GET", "/v1/nowhere%2Fp1", 404),
        ("POST", "/v1/profiles/p1%2Fcheckout", 405),  # the path of the registration (a GET)
    ],
)
def test_a_path_naming_no_resource_is_404_and_writes_nothing(
    served: Served, pid: str, method: str, path: str, status: int
) -> None:
    """A path no resource answers is 404 ``http_404``, and a resource's path in a method it
    does not take 405; a ``%2F`` is never a separator that would make it another resource's
    (``/v1/profiles/p1%2Fcheckout`` checked p1 out)."""
    before = _events(served)
    with served.client(Role.WORKER) as worker:
        got = worker.request(method, path.replace("p1", pid), json=CHECKOUT)
    assert (got.status_code, got.json()["error"]) == (status, f"http_{status}"), got.text
    assert _events(served) == before


def test_malformed_json_and_an_unknown_profile_write_nothing(served: Served, pid: str) -> None:
    before = _events(served)
    with served.client(Role.WORKER) as worker:
        junk = worker.post(
            "/v1/profiles/p1/checkout",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        unknown = worker.post("/v1/profiles/nobody/checkout", json=CHECKOUT)
    assert (junk.status_code, junk.json()["error"]) == (422, "invalid_input")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_profile")
    assert _events(served) == before


def test_who_is_calling_comes_from_the_token(served: Served, pid: str) -> None:
    with served.client() as stranger:
        assert stranger.post(f"/v1/profiles/{pid}/checkout", json=CHECKOUT).status_code == 401
    with served.client(token="cst_made-up") as forger:  # noqa: S106  (a made-up token)
        assert forger.post(f"/v1/profiles/{pid}/checkout", json=CHECKOUT).status_code == 401
    with served.client(Role.REVIEWER) as reviewer:
        refused = reviewer.post(f"/v1/profiles/{pid}/checkout", json=CHECKOUT)
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
    before = _events(served)
    # Another worker may not speak under this lease, even knowing its fencing token.
    with served.client(token=served.token("worker-2", Role.WORKER)) as other:
        beat = other.post(
            f"/v1/leases/{lease['lease_id']}/heartbeat",
            json={"fencing_token": lease["fencing_token"]},
        )
        review = other.post(f"/v1/profiles/{pid}/review", json={"decision": "return", "note": "ok"})
    assert beat.status_code == 403, beat.text
    assert "held by worker-1" in beat.json()["message"]
    assert review.status_code == 403
    assert _events(served) == before


@pytest.mark.parametrize("scheme", ["Basic", "Token", "Foo", "Bearer:"])
def test_a_real_token_under_another_scheme_than_bearer_is_401(served: Served, scheme: str) -> None:
    """A token is taken as ``Authorization: Bearer TOKEN`` only (the scheme in any case, as
    RFC 9110 has it): a real token sent under another scheme (``Basic TOKEN``, as a client
    meaning other credentials would send it) is 401 ``unauthorised``, never read as the
    caller."""
    token = served.tokens[Role.WORKER]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        refused = client.get("/v1/profiles", headers={"Authorization": f"{scheme} {token}"})
        taken = client.get("/v1/profiles", headers={"Authorization": f"bEaReR {token}"})
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "unauthorised"
    assert refused.headers["www-authenticate"] == "Bearer"
    assert taken.status_code == 200, taken.text


def test_another_workers_lease_is_refused_by_the_write_itself(served: Served, pid: str) -> None:
    """The service's read of who holds a lease passes a lease its profile's row does not name
    (a lease the next checkout will make live, or one the row has moved past), so it cannot be
    the guard: a checkout between that read and the write made another worker's release land
    on a live lease (every time, in a loop of guessed lease ids). The write refuses it: the
    service sends the caller as the command's ``worker_id``. Here the row has moved past
    worker-1's first lease, so only the write can say whose it was."""
    from ledger import Checkout, Release

    with Ledger.open(served.store_url) as ledger:  # not through the service: it remembers
        first = ledger.handle(Checkout(profile_id=pid, worker_id="worker-1", **CHECKOUT))
        token = {"lease_id": first.lease_id, "fencing_token": first.fencing_token}
        ledger.handle(Release(**token, outcome="success", final_url="https://ok.test/"))
        ledger.handle(Checkout(profile_id=pid, worker_id="worker-1", **CHECKOUT))
    before = _events(served)
    with served.client(token=served.token("worker-2", Role.WORKER)) as other:
        answers = [
            other.post(f"/v1/leases/{first.lease_id}/{path}", json=body)
            for path, body in (
                ("heartbeat", {"fencing_token": first.fencing_token, "step": "w2"}),
                ("extend", {"fencing_token": first.fencing_token, "ttl_seconds": 3600}),
                ("release", {"fencing_token": first.fencing_token, "outcome": "success"}),
            )
        ]
    for answer in answers:
        assert (answer.status_code, answer.json()["error"]) == (403, "forbidden"), answer.text
        assert "was held by worker-1, not worker-2" in answer.json()["message"]
    assert _events(served) == before


def test_a_revoked_token_stops_working(served: Served) -> None:
    from ledger.access import revoke_tokens

    token = served.token("worker-9", Role.WORKER)
    with served.client(token=token) as worker:
        assert worker.get("/v1/profiles").status_code == 200
        with Ledger.open(served.store_url) as ledger:
            assert revoke_tokens(ledger, actor="worker-9") == 1
        deadline = time.monotonic() + 10
        while worker.get("/v1/profiles").status_code == 200:
            assert time.monotonic() < deadline, "the revoked token still works after 10 s"
            time.sleep(0.25)
        assert worker.get("/v1/profiles").status_code == 401


def test_a_lost_lease_is_410(served: Served, pid: str) -> None:
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
        with served.client(Role.OPERATOR) as operator:
            forced = operator.post(f"/v1/profiles/{pid}/force-release", json={"reason": "stop"})
            assert forced.status_code == 200, forced.text
        beat = worker.post(
            f"/v1/leases/{lease['lease_id']}/heartbeat",
            json={"fencing_token": lease["fencing_token"]},
        )
    assert beat.status_code == 410
    assert beat.json()["error"] == "lease_lost"
    assert beat.json()["lease_id"] == lease["lease_id"]


def test_a_resent_request_returns_the_first_answer_and_appends_nothing(
    served: Served, pid: str
) -> None:
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
        key = {"Idempotency-Key": "beat-7"}
        body = {"fencing_token": lease["fencing_token"], "step": "pay"}
        first = worker.post(f"/v1/leases/{lease['lease_id']}/heartbeat", json=body, headers=key)
        after_first = _events(served)
        again = worker.post(f"/v1/leases/{lease['lease_id']}/heartbeat", json=body, headers=key)
        changed = {**body, "step": "other"}
        reused = worker.post(f"/v1/leases/{lease['lease_id']}/heartbeat", json=changed, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert _events(served) == after_first
    assert reused.status_code == 422  # the same key for another command is refused
    assert _events(served) == after_first


def test_a_long_poll_answers_the_moment_the_lease_is_revoked(served: Served, pid: str) -> None:
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
        answers: list[tuple[float, dict[str, Any]]] = []

        def watch() -> None:
            got = worker.get(f"/v1/leases/{lease['lease_id']}", params={"wait": 20})
            answers.append((time.monotonic(), got.json()))

        watcher = threading.Thread(target=watch)
        watcher.start()
        time.sleep(1.0)
        assert not answers, "the long poll answered while the lease was live"
        with served.client(Role.OPERATOR) as operator:
            revoked_at = time.monotonic()
            assert operator.post(
                f"/v1/profiles/{pid}/force-release", json={"reason": "x"}
            ).is_success
        watcher.join(20)
    (answered_at, check), *_ = answers
    assert check["live"] is False
    assert answered_at - revoked_at < 1.5


def test_operators_and_reviewers_act_and_every_action_is_an_event(served: Served, pid: str) -> None:
    with served.client(Role.OPERATOR) as operator:
        q = operator.post(f"/v1/profiles/{pid}/quarantine", json={"reason": "suspicious"})
        assert (q.status_code, q.json()["state"]) == (200, "quarantined")
    with served.client(Role.REVIEWER) as reviewer:
        missing = reviewer.post(f"/v1/profiles/{pid}/review", json={"decision": "return"})
        assert (missing.status_code, missing.json()["field"]) == (422, "note")
        r = reviewer.post(f"/v1/profiles/{pid}/review", json={"decision": "return", "note": "fine"})
        assert (r.status_code, r.json()["state"]) == (200, "available"), r.text
        why = reviewer.get(f"/v1/profiles/{pid}/why").json()
        assert why["state"] == "available"
    with Ledger.open(served.store_url) as ledger:
        kinds = [type(e).__name__ for e in ledger.history(pid)]
        actors = [e.envelope.actor_id for e in ledger.history(pid)]
    assert kinds[1:] == ["ProfileQuarantined", "ProfileReviewed", "ProfileReturnedToPool"]
    assert actors[1:] == ["operator-1", "reviewer-1", "reviewer-1"]


def test_reads_answer_what_the_command_line_answers(served: Served) -> None:
    account = f"acct{next(_numbers)}"
    with Ledger.open(served.store_url) as ledger:
        for profile_id in (f"{account}-1", f"{account}-2"):
            ledger.handle(RegisterProfile(profile_id=profile_id, account_id=account, proxy_id="x"))
    with served.client(Role.WORKER) as worker:
        _checkout(worker, f"{account}-2")
    with served.client(Role.SCHEDULER) as reader:
        leased_before = reader.get("/v1/fleet").json()["by_state"]["leased"]
        rows = reader.get("/v1/profiles", params={"account": account}).json()
        states = {r["profile_id"]: r["state"] for r in rows}
        assert states == {f"{account}-1": "available", f"{account}-2": "leased"}
        leased = reader.get("/v1/profiles", params={"state": "leased"}).json()
        assert f"{account}-2" in [r["profile_id"] for r in leased]
        record = reader.get(f"/v1/profiles/{account}-2").json()
        assert (record["account_id"], record["proxy_id"]) == (account, "x")
        assert reader.get("/v1/profiles/nobody").status_code == 404
        who = reader.get(f"/v1/profiles/{account}-2/who").json()
        assert who["lease"]["worker_id"] == "worker-1"
        timeline = reader.get(f"/v1/profiles/{account}-2/timeline").json()
        assert [r["event_type"] for r in timeline][-1] == "lease_acquired"
        fleet = reader.get("/v1/fleet", params={"account": account}).json()
        assert fleet["by_state"]["leased"] == 1
        bad = reader.get("/v1/profiles", params={"state": "sleeping"})
        assert bad.status_code == 422
        metrics = reader.get("/metrics").text
    assert f'custody_profiles{{state="leased"}} {float(leased_before)}' in metrics
    route = 'method="POST",route="/v1/profiles/{profile_id}/checkout",status="201"'
    assert f"custody_http_request_seconds_count{{{route}}}" in metrics


def test_heartbeats_arriving_together_share_a_transaction(served: Served) -> None:
    """Group commit: heartbeats of many leases sent at once are written in fewer transactions
    than there are heartbeats, and each is answered and recorded once."""
    leases = []
    with served.client(Role.WORKER) as worker:
        for _ in range(40):
            profile_id = f"g{next(_numbers)}"
            _register(served, profile_id)
            leases.append(_checkout(worker, profile_id))
    mark = _last_position(served)
    with served.client(Role.WORKER) as worker:
        before = _metric(worker.get("/metrics").text, "custody_group_commit_commands_count")
        go = threading.Barrier(len(leases))
        answers: list[int] = []

        def beat(lease: dict[str, Any]) -> None:
            with served.client(Role.WORKER) as mine:
                go.wait()
                got = mine.post(
                    f"/v1/leases/{lease['lease_id']}/heartbeat",
                    json={"fencing_token": lease["fencing_token"], "step": "together"},
                )
                answers.append(got.status_code)

        threads = [threading.Thread(target=beat, args=(lease,)) for lease in leases]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        text = worker.get("/metrics").text
    assert answers == [200] * len(leases)
    transactions = _metric(text, "custody_group_commit_commands_count") - before
    assert transactions < len(leases), f"{transactions} transactions for {len(leases)} heartbeats"
    with Ledger.open(served.store_url) as ledger:
        for lease in leases:
            beats = [
                e for e in ledger.history(lease["profile_id"])
                if type(e).__name__ == "LeaseHeartbeat"
            ]  # fmt: skip
            assert len(beats) == 1
    if served.store_url.startswith("postgresql"):  # and the database says so too
        assert _transactions_since(served, mark) < len(leases)


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def _last_position(served: Served) -> int:
    if not served.store_url.startswith("postgresql"):
        return 0
    import psycopg

    with psycopg.connect(served.store_url) as conn:
        row = conn.execute(
            "SELECT coalesce(max(notification_id), 0) FROM custody_events"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _transactions_since(served: Served, mark: int) -> int:
    """How many PostgreSQL transactions wrote the events after ``mark`` (each row's xmin)."""
    import psycopg

    with psycopg.connect(served.store_url) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM custody_events WHERE notification_id > %s",
            (mark,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_resent_quarantine_answers_the_row_as_recorded(served: Served, pid: str) -> None:
    """A resent operator command answers with the row as recorded (the command line marks it
    resent, rev34); the service answers it as the first time, within its response model."""
    with served.client(Role.OPERATOR) as operator:
        key = {"Idempotency-Key": "q-7"}
        first = operator.post(f"/v1/profiles/{pid}/quarantine", json={"reason": "x"}, headers=key)
        again = operator.post(f"/v1/profiles/{pid}/quarantine", json={"reason": "x"}, headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert again.json() == first.json()


def test_a_resent_release_says_its_answer_is_as_recorded(served: Served, pid: str) -> None:
    """rev37: a worker's release resent by its Idempotency-Key once the profile was leased
    again said "p is back in the pool" of a leased profile. Its message says the state was the
    release's then, as a resent force-release's does, and its body keeps to the schema."""
    with served.client(Role.WORKER) as worker:
        lease = _checkout(worker, pid)
        key = {"Idempotency-Key": "rel-7"}
        body = {"fencing_token": lease["fencing_token"], "outcome": "success",
                "final_url": "http://x/done"}  # fmt: skip
        path = f"/v1/leases/{lease['lease_id']}/release"
        first = worker.post(path, json=body, headers=key)
        _checkout(worker, pid)
        again = worker.post(path, json=body, headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["message"].endswith(f"; {pid} is back in the pool")
    assert again.json() == {
        **first.json(),
        "message": f"{lease['lease_id']} released cleanly; {pid} was back in the pool after it "
        f"(resent: its answer as recorded, not the profile now; custody why {pid} says where "
        "it stands)",
    }
