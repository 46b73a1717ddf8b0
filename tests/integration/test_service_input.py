"""What the HTTP lease service (``custody serve``) makes of what a caller sends: a read's
times mean what they mean on the command line, and input it cannot take (a body it cannot
read, a form's text that is no UTF-8, a reused Idempotency-Key) is one refusal naming what the
caller sent, with nothing written."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from serving import Served, peak_kb

from custody.cli import main
from ledger import Checkout, ForceRelease, Heartbeat, Ledger, RegisterProfile, Role


@pytest.fixture
def http(served: Served) -> Served:
    """The service on a store (each kind) holding p1: registered, leased, one heartbeat."""
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        ledger.handle(Heartbeat(lease_id="lease-1@p1", fencing_token=1, step="s1"))
    return served


def _cli(store: str, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--store", store, *args])
    assert code == 0, err.getvalue()
    return out.getvalue()


def test_timeline_until_a_date_runs_through_that_day_as_on_the_cli(http: Served) -> None:
    """``GET /v1/profiles/p1/timeline?until=TODAY`` answers today's events, as ``custody
    timeline p1 --until TODAY`` does (docs/reference/cli.md: a date alone for ``until`` runs
    through its last instant), not none of them (the date read as its midnight)."""
    today = datetime.now(UTC).date().isoformat()
    on_cli = json.loads(_cli(http.store_url, "--json", "timeline", "p1", "--until", today))
    assert [r["event_type"] for r in on_cli][:3] == [
        "profile_registered",
        "lease_acquired",
        "lease_heartbeat",
    ]
    with http.client(Role.WORKER) as client:
        got = client.get(f"/v1/profiles/p1/timeline?until={today}")
    assert got.status_code == 200, got.text
    assert [r["position"] for r in got.json()] == [r["position"] for r in on_cli]


def test_the_consoles_review_form_refuses_a_note_that_is_not_utf8_and_writes_nothing(
    served: Served,
) -> None:
    """A console form percent-encoding a byte that is no UTF-8 (``note=bad%FFbytes``) is
    refused and writes nothing, as the CLI and the JSON API refuse such a note; never decoded
    with replacement into a verdict noted ``'bad\\ufffdbytes'``, a text nobody sent."""
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        ledger.handle(ForceRelease(profile_id="p1", actor="op", reason="stuck"))
        before = len(ledger.history("p1"))
    form = {"content-type": "application/x-www-form-urlencoded", "origin": served.url}
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        signed = browser.post(
            "/console/sign-in", content=f"token={served.tokens[Role.REVIEWER]}", headers=form
        )
        assert signed.status_code in (200, 303), signed.text
        page = browser.get("/console/profiles/p1")
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert found is not None, page.text[:500]
        body = f"csrf={found.group(1)}&decision=quarantine&note=bad%FFbytes"
        refused = browser.post("/console/profiles/p1/review", content=body, headers=form)
    with Ledger.open(served.store_url) as ledger:
        written = [e.envelope.reason for e in ledger.history("p1")[before:]]
    assert written == [], f"the console wrote {written!r}"
    assert refused.status_code == 422, refused.text[:500]
    assert "UTF-8" in refused.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"fencing_token": 1, "step": "bad\xffbytes"}', "not UTF-8"),  # a byte no UTF-8
        (b'{"fencing_token": 1, "ttl_seconds": ' + b"9" * 5000 + b"}", "5,000 digits"),
        (b'{"fencing_token": 1, "step": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deeply"),
        (b'{"fencing_token": 1, "ttl_seconds": }', "not valid JSON"),
    ],
    ids=["not-utf8", "long-number", "deep-nesting", "not-json"],
)
def test_a_body_the_service_cannot_read_is_invalid_input_naming_the_body(
    http: Served, body: bytes, says: str
) -> None:
    """A body of bytes that are no UTF-8, a 5,000-digit number or nesting deeper than a parser
    goes is 422 ``invalid_input`` naming the body (the error table of
    docs/how-to/serve-workers-over-http.md), not 400 ``http_400`` "There was an error parsing
    the body", a code the table does not have, naming nothing."""
    with http.client(Role.WORKER) as client:
        got = client.post(
            "/v1/leases/lease-1@p1/extend",
            content=body,
            headers={"content-type": "application/json"},
        )
    assert (got.status_code, got.json().get("error")) == (422, "invalid_input"), got.text
    assert (got.json()["field"], says in got.json()["message"]) == ("body", True), got.text


@pytest.mark.parametrize(
    ("content_type", "says"),
    [
        ("text/plain", "got 'text/plain'"),
        ("application/x-www-form-urlencoded", "got 'application/x-www-form-urlencoded'"),
        (None, "sent none"),
        ("application/json-patch+json", "got 'application/json-patch+json'"),
        ("application/evil+json", "got 'application/evil+json'"),
        ("application/json;foo=bar", "got 'application/json;foo=bar'"),
    ],
    ids=["text", "form", "none", "json-patch", "any-json-suffix", "a-parameter-not-charset"],
)
def test_a_body_not_sent_as_json_is_refused_naming_the_content_type(
    http: Served, content_type: str | None, says: str
) -> None:
    """A JSON body sent as another content type (or none, as ``curl -d`` without ``-H``
    sends a form) is 422 ``invalid_input`` naming ``Content-Type`` and what was sent, and
    writes nothing; not "invalid body: Input should be a valid dictionary", which sends the
    caller looking for a fault in a body that has none. So is a type FastAPI reads as JSON
    that is not ``application/json`` (any ``application/*+json``), or one with a parameter
    other than ``charset`` (rev44: each was read as the command)."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
    headers = {} if content_type is None else {"content-type": content_type}
    with http.client(Role.WORKER) as client:
        got = client.post(
            "/v1/profiles/p2/checkout",
            content=json.dumps({"run_id": "r", "task_type": "t"}),
            headers=headers,
        )
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p2")) == 1  # its registration alone
    assert (got.status_code, got.json().get("field")) == (422, "Content-Type"), got.text
    assert says in got.json()["message"], got.text


def test_a_key_given_twice_in_a_body_is_refused_naming_it_and_writes_nothing(
    http: Served,
) -> None:
    """A body giving a key twice (``"step": "cart", "step": "pay"``) is 422 ``invalid_input``
    naming the body and the key, and writes nothing; never taken as one of its values (the
    last, as Python's json reads it), a step the sender may not have meant."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
    with http.client(Role.WORKER) as client:
        lease = client.post("/v1/profiles/p2/checkout", json={"run_id": "r", "task_type": "t"})
        assert lease.status_code == 201, lease.text
        with Ledger.open(http.store_url) as ledger:
            before = len(ledger.history("p2"))
        token = lease.json()["fencing_token"]
        got = client.post(
            f"/v1/leases/{lease.json()['lease_id']}/heartbeat",
            content=f'{{"fencing_token": {token}, "step": "cart", "step": "pay"}}',
            headers={"content-type": "application/json"},
        )
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p2")) == before
    assert (got.status_code, got.json().get("field")) == (422, "body"), got.text
    assert "'step'" in got.json()["message"], got.text


def test_a_lone_surrogate_is_refused_in_the_ledgers_words_and_writes_nothing(
    http: Served,
) -> None:
    """A JSON string escaping half a character (``"\\ud800"``) is 422 naming the field and
    saying the text is not valid Unicode, as the CLI and the Python API say it: never
    pydantic's "unable to parse raw data as a unicode string" about a value that is a string
    (rev27)."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
    with http.client(Role.WORKER) as client:
        got = client.post(
            "/v1/profiles/p2/checkout",
            content='{"run_id": "a\\ud800b", "task_type": "t"}',
            headers={"content-type": "application/json"},
        )
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p2")) == 1
    assert (got.status_code, got.json().get("field")) == (422, "run_id"), got.text
    assert got.json()["message"].startswith("invalid run_id: must be valid Unicode text"), got.text
    assert "raw data" not in got.json()["message"]


@pytest.mark.parametrize("charset", ["latin-1", "utf-16"])
def test_a_body_declared_in_another_charset_than_utf8_is_refused(
    http: Served, charset: str
) -> None:
    """rev24: a body sent as ``charset=latin-1`` was read as UTF-8: the client's ``Ã©`` was
    stored as ``é``, 201. JSON is UTF-8 (RFC 8259): a body declared otherwise is 422 naming the
    body and the charset, and writes nothing; ``charset=utf-8`` is taken as before."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
    sent = json.dumps({"run_id": "\u00c3\u00a9", "task_type": "t"}, ensure_ascii=False)
    with http.client(Role.WORKER) as client:
        got = client.post(
            "/v1/profiles/p2/checkout",
            content=sent.encode(charset),
            headers={"content-type": f"application/json; charset={charset}"},
        )
        with Ledger.open(http.store_url) as ledger:
            assert len(ledger.history("p2")) == 1  # its registration alone
        assert (got.status_code, got.json().get("field")) == (422, "body"), got.text
        assert f"declares the charset '{charset}'" in got.json()["message"], got.text
        taken = client.post(
            "/v1/profiles/p2/checkout",
            content=sent.encode(),
            headers={"content-type": "application/json; charset=UTF-8"},
        )
    assert (taken.status_code, taken.json()["run_id"]) == (201, "\u00c3\u00a9"), taken.text


def test_a_reused_idempotency_key_is_refused_naming_the_key_the_caller_sent(
    http: Served,
) -> None:
    """The same Idempotency-Key with a different body is refused (422) naming the
    ``Idempotency-Key`` header and the key sent (``'beat-7' was already used``), as a
    malformed key is, and so is the key sent again for another profile (``send a new
    key``); never ``command_id`` and the service's digest of the key (``'http-4be2...'``),
    which the caller never sent."""
    with http.client(Role.WORKER) as client:
        first = client.post("/v1/profiles/p2/checkout", json={"run_id": "r", "task_type": "t"})
        assert first.status_code == 404  # no p2 yet: nothing written, the key is free
        with Ledger.open(http.store_url) as ledger:
            ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
        key = {"Idempotency-Key": "beat-7"}
        order = {"run_id": "r", "task_type": "t"}
        done = client.post("/v1/profiles/p2/checkout", json=order, headers=key)
        assert done.status_code == 201, done.text
        other = client.post("/v1/profiles/p2/checkout", json={**order, "run_id": "r2"}, headers=key)
        malformed = client.post(
            "/v1/profiles/p2/checkout", json=order, headers={"Idempotency-Key": "a b"}
        )
        elsewhere = client.post("/v1/profiles/p1/checkout", json=order, headers=key)
    assert malformed.json()["field"] == "Idempotency-Key"
    assert other.status_code == 422, other.text
    refusal = other.json()
    assert (refusal["field"], "beat-7" in refusal["message"]) == ("Idempotency-Key", True), refusal
    moved = elsewhere.json()
    assert (elsewhere.status_code, moved["field"]) == (422, "Idempotency-Key"), moved
    assert "'beat-7' was already used on profile p2: send a new key" in moved["message"], moved


def test_a_body_larger_than_any_command_takes_is_413_and_read_no_further(http: Served) -> None:
    """review13: a worker's token let any body in whole: a 200 MB one raised the service's
    peak memory by 600 MB, and parsing a 60 MB one held every other caller (a heartbeat, the
    health check) for 4 s. A body past 1 MiB is 413 ``http_413``, by its Content-Length or as
    it streams in, and nothing is written; the largest body a command takes (every text at its
    longest, each character a surrogate pair's escape) is still read."""
    with Ledger.open(http.store_url) as ledger:
        before = len(ledger.history("p1"))
    big = b'{"fencing_token": 1, "step": "' + b"x" * (32 * 1024 * 1024) + b'"}'
    peak = peak_kb(http.process.pid)

    def streamed() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(big), 1 << 16):
            yield big[start : start + (1 << 16)]

    with http.client(token=http.token("w1", Role.WORKER)) as client:  # the lease's worker
        for content in (big, streamed()):
            got = client.post(
                "/v1/leases/lease-1@p1/heartbeat",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert (got.status_code, got.json()["error"]) == (413, "http_413"), got.text[:300]
            assert "larger than 1,048,576 bytes" in got.json()["message"]
        grown_mb = (peak_kb(http.process.pid) - peak) / 1024
        assert grown_mb < 16, f"the service's peak memory grew by {grown_mb:.0f} MB"
        longest = "\U0001f600" * 4096
        body = {"fencing_token": 1, "step": "\U0001f600" * 200, "url": longest}
        sent = json.dumps(body).encode()  # ensure_ascii: each emoji 12 bytes
        assert len(sent) > 50_000
        got = client.post(
            "/v1/leases/lease-1@p1/heartbeat",
            content=sent,
            headers={"content-type": "application/json"},
        )
        assert got.status_code == 200, got.text[:300]
    with Ledger.open(http.store_url) as ledger:
        history = ledger.history("p1")
    assert len(history) == before + 1
    assert getattr(history[-1], "url", None) == longest


def test_a_body_declared_larger_than_any_command_takes_is_413_before_a_byte_is_sent(
    http: Served,
) -> None:
    """A Content-Length past 1 MiB is refused by itself: a client that sends the headers and
    no body at all gets its 413 ``http_413`` at once, and nothing is written; the service
    neither waits for the body it was told of nor reads a byte of it."""
    with Ledger.open(http.store_url) as ledger:
        before = len(ledger.history("p1"))
    where = urlsplit(http.url)
    head = (
        "POST /v1/leases/lease-1@p1/heartbeat HTTP/1.1\r\n"
        f"Host: {where.netloc}\r\n"
        f"Authorization: Bearer {http.token('w1', Role.WORKER)}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {1024 * 1024 + 1}\r\n\r\n"
    )
    with socket.create_connection((where.hostname, where.port), timeout=10) as raw:
        raw.sendall(head.encode())
        try:
            status, body = _answer(raw)
        except TimeoutError:
            pytest.fail("no answer in 10 s: the service waits for the body it was told of")
    assert status.startswith(b"HTTP/1.1 413 "), (status, body)
    problem = json.loads(body)
    assert problem["error"] == "http_413", problem
    assert "larger than 1,048,576 bytes" in problem["message"]
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p1")) == before


@pytest.mark.parametrize("key", [b"x\x01y", b"x\x7f"], ids=["soh", "del"])
def test_a_request_http_cannot_parse_is_answered_with_the_services_error(
    http: Served, key: bytes
) -> None:
    """Review 267: an Idempotency-Key holding a control character got uvicorn's plain-text
    ``Invalid HTTP request received.``, where every error is one JSON object: it is the
    service's ``http_400`` object, and nothing is written."""
    with Ledger.open(http.store_url) as ledger:
        before = len(ledger.history("p1"))
    where = urlsplit(http.url)
    sent = b'{"fencing_token": 1, "step": "s2"}'
    head = (
        b"POST /v1/leases/lease-1@p1/heartbeat HTTP/1.1\r\n"
        + f"Host: {where.netloc}\r\n".encode()
        + f"Authorization: Bearer {http.token('w1', Role.WORKER)}\r\n".encode()
        + b"Idempotency-Key: " + key + b"\r\n"
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(sent)}\r\n\r\n".encode()
    )  # fmt: skip
    with socket.create_connection((where.hostname, where.port), timeout=10) as raw:
        raw.sendall(head + sent)
        status, body = _answer(raw)
    assert status.startswith(b"HTTP/1.1 400 "), (status, body)
    problem = json.loads(body)
    assert problem["error"] == "http_400", problem
    assert "not HTTP the service can read" in problem["message"], problem
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p1")) == before


# Requests whose caller hangs up mid-body: (method, path, role whose token it sends, the body's
# framing and the part of it sent). Resources that take no body, one that takes JSON, a form.
_HUNG_UP = [
    ("GET", "/healthz", None, "Content-Length: 40", b"ab"),
    ("GET", "/metrics", None, "Content-Length: 40", b"ab"),
    ("GET", "/openapi.json", None, "Content-Length: 40", b"ab"),
    ("GET", "/console", None, "Content-Length: 40", b"ab"),
    ("GET", "/console/queue", None, "Content-Length: 40", b"ab"),
    ("GET", "/console/sign-in", None, "Content-Length: 40", b"ab"),
    ("POST", "/console/sign-in", None, "Content-Length: 40", b"token=c"),
    ("POST", "/v1/sweep", Role.SCHEDULER, "Transfer-Encoding: chunked", b'5\r\n{"a":'),
    ("GET", "/v1/fleet", Role.OPERATOR, "Transfer-Encoding: chunked", b'5\r\n{"a":'),
    ("GET", "/v1/profiles", Role.OPERATOR, "Content-Length: 50", b'{"a":'),
    ("POST", "/v1/profiles/p1/checkout", Role.WORKER, "Content-Length: 50", b'{"a":'),
]


def test_a_caller_hanging_up_mid_body_is_no_unforeseen_failure(http: Served) -> None:
    """A caller that declares a body, sends part of it and hangs up is answered 400, as a
    checkout's body cut off so always was, and logged as nothing: rev44, a GET of
    ``/healthz`` (no token needed), a sweep, a console form and every other resource whose
    body was read by the service itself was an unforeseen failure, a 500 counted in
    ``/metrics`` and a traceback of some 60 lines in the log."""
    where = urlsplit(http.url)
    for method, path, role, framing, part in _HUNG_UP:
        head = f"{method} {path} HTTP/1.1\r\nHost: {where.netloc}\r\nOrigin: {http.url}\r\n"
        if role is not None:
            head += f"Authorization: Bearer {http.tokens[role]}\r\n"
        form = path.startswith("/console")
        kind = "application/x-www-form-urlencoded" if form else "application/json"
        head += f"Content-Type: {kind}\r\n{framing}\r\n\r\n"
        with socket.create_connection((where.hostname, where.port), timeout=10) as raw:
            raw.sendall(head.encode() + part)
            time.sleep(0.3)  # the service is reading the body when the caller hangs up
    time.sleep(0.5)
    with http.client() as anyone:
        counted = anyone.get("/metrics").text
    answered = {
        (found.group(1), found.group(2)): found.group(3)
        for found in re.finditer(
            r'custody_http_request_seconds_count\{method="(\w+)",route="([^"]+)",'
            r'status="(\d+)"\} 1\.0',
            counted,
        )
    }
    for method, path, _, _, _ in _HUNG_UP:
        route = path.replace("/p1/", "/{profile_id}/")
        assert answered.get((method, route)) == "400", (method, path, answered)
    said = "".join(http.said)
    assert "unforeseen" not in said, said[-3000:]
    assert "Traceback" not in said, said[-3000:]


def _answer(raw: socket.socket) -> tuple[bytes, bytes]:
    """The status line and the body of the answer read from ``raw`` (by its Content-Length)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        got = raw.recv(65536)
        assert got, f"the connection closed mid-answer: {answer!r}"
        answer += got
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    sizes = [line.split(b":")[1] for line in lines if line.lower().startswith(b"content-length:")]
    while len(body) < int(sizes[0]):
        got = raw.recv(65536)
        assert got, f"the connection closed mid-answer: {answer!r}"
        body += got
    return lines[0], body


def test_every_operation_that_takes_a_body_lists_413_in_its_openapi(http: Served) -> None:
    """The service answers 413 to a body past 1 MiB on any operation that reads one: the
    OpenAPI document (and so the TypeScript client's types) lists it on each of them, and on
    no operation that reads no body."""
    with http.client() as client:
        document = client.get("/openapi.json").json()
    operations = [
        (f"{verb.upper()} {path}", operation)
        for path, verbs in document["paths"].items()
        for verb, operation in verbs.items()
    ]
    takes = {name for name, operation in operations if "requestBody" in operation}
    lists = {name for name, operation in operations if "413" in operation["responses"]}
    assert len(takes) >= 9, sorted(takes)  # checkout, 3 lease actions, register, review, 4 ops
    assert lists == takes, (sorted(takes - lists), sorted(lists - takes))


def test_every_error_the_openapi_document_lists_is_a_problem(http: Served) -> None:
    """rev20: the sweep's 422 was documented as FastAPI's validation error, which the service
    never sends (it answers a Problem), and /healthz's 503 was not documented: every error
    status an operation lists is a Problem, and /healthz lists its 503."""
    with http.client() as client:
        document = client.get("/openapi.json").json()
    problem = {"$ref": "#/components/schemas/Problem"}
    for path, verbs in document["paths"].items():
        for verb, operation in verbs.items():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == problem, (verb, path, status, schema)
    assert "503" in document["paths"]["/healthz"]["get"]["responses"]
    # rev21: a checkout resent past its lease's deadline is lost (410), as a heartbeat is
    assert "410" in document["paths"]["/v1/profiles/{profile_id}/checkout"]["post"]["responses"]


def test_a_load_balancer_s_head_probe_of_healthz_is_answered(http: Served) -> None:
    """rev25: HEAD /healthz was 405, so a load balancer probing with HEAD marked the service
    down; it answers as GET does, without a body, and is not in the OpenAPI document."""
    with http.client() as client:
        probed = client.head("/healthz")
        document = client.get("/openapi.json").json()
    assert probed.status_code == 200, probed
    assert probed.content == b""
    assert probed.headers["cache-control"] == "no-store"
    assert set(document["paths"]["/healthz"]) == {"get"}


def test_a_body_of_more_keys_than_any_command_takes_is_refused_before_validation(
    http: Served,
) -> None:
    """A body under the size limit holding 80,000 keys is 422 naming how many, read no
    further: pydantic built an error for each unknown key, and such bodies in a loop held the
    event loop, every other caller's heartbeat with it, about a second each (rev32)."""
    with Ledger.open(http.store_url) as ledger:
        before = len(ledger.history("p1"))
    keys = ",".join(f'"k{i:05d}":0' for i in range(80_000))
    with http.client(Role.WORKER) as client:
        got = client.post(
            "/v1/leases/lease-1@p1/heartbeat",
            content=f'{{"fencing_token": 1, {keys}}}',
            headers={"content-type": "application/json"},
        )
    assert (got.status_code, got.json().get("field")) == (422, "body"), got.text
    assert "holds an object of 80,001 keys" in got.json()["message"], got.text
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p1")) == before


def test_a_query_parameter_or_header_given_twice_or_not_utf8_is_refused(http: Served) -> None:
    """``?account=a1&account=x`` is 422 naming the parameter, not read as ``x`` (Starlette
    takes the last); ``%ff`` is 422, not read as U+FFFD, a text nobody sent; two
    ``Idempotency-Key`` headers are 422 naming the header, not read as the first, and the
    checkout they came with writes nothing (rev32)."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p3", account_id="a1", proxy_id="x1"))
    with http.client(Role.OPERATOR) as operator:
        twice = operator.get("/v1/profiles?account=a1&account=x")
        undecodable = operator.get("/v1/profiles?account=%ff")
        once = operator.get("/v1/profiles?account=a1")
    assert (twice.status_code, twice.json().get("field")) == (422, "account"), twice.text
    assert "more than once" in twice.json()["message"], twice.text
    assert (undecodable.status_code, undecodable.json().get("field")) == (422, "account")
    assert "not UTF-8" in undecodable.json()["message"], undecodable.text
    assert once.status_code == 200, once.text
    assert {r["profile_id"] for r in once.json()} >= {"p1", "p3"}
    with http.client(Role.WORKER) as worker:
        keys = worker.post(
            "/v1/profiles/p3/checkout",
            json={"run_id": "r", "task_type": "t"},
            headers=[("Idempotency-Key", "k-1"), ("Idempotency-Key", "k-2")],
        )
    assert (keys.status_code, keys.json().get("field")) == (422, "Idempotency-Key"), keys.text
    with http.client(Role.WORKER) as worker:
        nan = worker.get("/v1/leases/lease-1@p1?wait=nan")
    # Not "should be <= 25" (rev32): no number written plainly, as on the command line.
    assert (nan.status_code, nan.json().get("field")) == (422, "wait"), nan.text
    assert "ASCII digits" in nan.json()["message"], nan.text
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p3")) == 1  # its registration alone


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("/v1/profiles/p1/timeline?last=1_0", "last"),
        ("/v1/profiles/p1/timeline?last=%2B3", "last"),
        ("/v1/profiles/p1/timeline?last=%203", "last"),
        ("/v1/profiles/p1/timeline?last=3.0", "last"),
        ("/v1/profiles/p1/timeline?last=%D9%A3", "last"),  # an Arabic-Indic 3
        ("/v1/profiles/p1/replay?at=NOW&events=1_0", "events"),
        ("/v1/profiles/p1/timeline?last=1e1", "last"),
        ("/v1/leases/lease-1@p1?wait=1e", "wait"),
        ("/v1/leases/lease-1@p1?wait=inf", "wait"),
        ("/v1/leases/lease-1@p1?wait=%201", "wait"),
    ],
    ids=[
        "underscore",
        "plus",
        "space",
        "point",
        "other-digits",
        "events",
        "exponent",
        "w-cut-exponent",
        "inf",
        "w-space",
    ],
)
def test_a_query_number_the_command_line_refuses_is_refused(
    http: Served, query: str, name: str
) -> None:
    """A query number is written as the command line's numbers are (docs/reference/cli.md:
    ASCII digits, a minus before them, seconds perhaps with a fraction after a point): rev44,
    ``?last=1_0``, ``+3``, `` 3`` and ``3.0`` answered rows. Each is 422 naming the parameter,
    at once; one written plainly is answered."""
    query = query.replace("NOW", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    with http.client(Role.OPERATOR) as operator:
        got = operator.get(query)
        plain = operator.get(query.rpartition("=")[0] + ("=0" if name == "wait" else "=3"))
    assert (got.status_code, got.json().get("field")) == (422, name), got.text
    assert "ASCII digits" in got.json()["message"], got.text
    assert got.elapsed.total_seconds() < 2, got.elapsed
    assert plain.status_code == 200, plain.text


@pytest.mark.parametrize("wait", ["1e-07", "1e-05", "5E-7", "2.5e-1"])
def test_a_wait_written_as_programs_write_small_numbers_is_taken(http: Served, wait: str) -> None:
    """``wait`` as JavaScript's ``String()`` and Python's ``str()`` write a small number, with
    an exponent (review 250: the TypeScript client's ``watch(id, 1e-7)`` and httpx's
    ``params={"wait": 0.00001}`` were refused, 422, where the service answered them before)."""
    with http.client(Role.OPERATOR) as operator:
        got = operator.get(f"/v1/leases/lease-1@p1?wait={wait}")
    assert got.status_code == 200, got.text


def test_a_timeline_longer_than_one_answer_carries_is_refused_saying_how_to_ask(
    tmp_path: Path,
) -> None:
    """Without ``last`` a timeline answers no more rows than ``last`` may ask for (10,000):
    a longer one is 422 naming ``last`` and saying how to ask, never all of it (rev32: 12,002
    rows, 6.2 MB, in one answer, while ``?last=20000`` was refused) nor cut short unsaid."""
    from serving import serve

    from service._reads import MAX_EVENTS

    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        for i in range(MAX_EVENTS):
            ledger.handle(Heartbeat(lease_id="lease-1@p1", fencing_token=1, step=f"s{i}"))
        assert len(ledger.history("p1")) == MAX_EVENTS + 2
    served = serve(url)
    try:
        with served.client(Role.WORKER) as client:
            whole = client.get("/v1/profiles/p1/timeline")
            last = client.get(f"/v1/profiles/p1/timeline?last={MAX_EVENTS}")
    finally:
        assert served.stop() == 0
    assert (whole.status_code, whole.json().get("field")) == (422, "last"), whole.text[:300]
    assert "more than 10,000 events" in whole.json()["message"], whole.text
    assert last.status_code == 200, last.text[:300]
    assert len(last.json()) == MAX_EVENTS
    assert last.json()[-1]["step"] == f"s{MAX_EVENTS - 1}"


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/v1/profiles?stat=stale", "stat"),
        ("GET", "/v1/profiles/p1/timeline?lst=1", "lst"),
        ("GET", "/v1/leases/lease-1@p1?wiat=20", "wiat"),
        ("GET", "/v1/fleet?account=a1&acount=a1", "acount"),
        ("POST", "/v1/sweep?dry_run=true", "dry_run"),
        ("POST", "/v1/leases/lease-1@p1/heartbeat?fencing_token=1", "fencing_token"),
    ],
    ids=["filter", "timeline", "long-poll", "fleet", "sweep", "heartbeat"],
)
def test_a_query_parameter_the_resource_does_not_take_is_refused_writing_nothing(
    http: Served, method: str, path: str, name: str
) -> None:
    """A query parameter no resource reads is 422 naming it (and what the resource takes),
    before anything is read or written; never ignored: ``?stat=stale`` answered every
    profile, ``POST /v1/sweep?dry_run=true`` swept for real and ``?wiat=20`` answered at once
    (rev35), where the command line refuses ``--stat`` and ``--dry-run``."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
        ledger.handle(
            Checkout(profile_id="p2", worker_id="w2", run_id="r", task_type="t", ttl_seconds=1)
        )
        before = ledger.store.event_count()
    role = Role.SCHEDULER if "sweep" in path else Role.WORKER
    body = {"fencing_token": 1} if "heartbeat" in path else None
    time.sleep(1.2)  # p2's lease past its deadline: a real sweep would settle it
    with http.client(role) as client:
        got = client.request(method, path, json=body)
    assert (got.status_code, got.json().get("field")) == (422, name), got.text
    assert "is no query parameter this resource takes" in got.json()["message"], got.text
    assert got.elapsed.total_seconds() < 10, got.elapsed  # refused, not held as a long poll
    with Ledger.open(http.store_url) as ledger:
        assert ledger.store.event_count() == before


def test_a_body_sent_to_a_resource_that_takes_none_is_refused_writing_nothing(
    http: Served,
) -> None:
    """``POST /v1/sweep`` with ``{"dry_run": true}``, or with ``{not json``, is 422 naming
    ``body``, and sweeps nothing (rev35: 200, a real sweep, the body never read); so is a
    read sent a body (a filter in it would be ignored, every row answered). A sweep sent no
    body, as the TypeScript client sends it, still sweeps."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
        ledger.handle(
            Checkout(profile_id="p2", worker_id="w2", run_id="r", task_type="t", ttl_seconds=1)
        )
        before = ledger.store.event_count()
    time.sleep(1.2)
    sent = {"content-type": "application/json"}
    with http.client(Role.SCHEDULER) as scheduler:
        dry = scheduler.post("/v1/sweep", json={"dry_run": True})
        garbled = scheduler.post("/v1/sweep", content=b"{not json", headers=sent)
        read = scheduler.request("GET", "/v1/profiles", json={"state": "stale"})
        for got in (dry, garbled, read):
            assert (got.status_code, got.json().get("field")) == (422, "body"), got.text
            assert "takes no body" in got.json()["message"], got.text
        with Ledger.open(http.store_url) as ledger:
            assert ledger.store.event_count() == before
        swept = scheduler.post("/v1/sweep")
        empty = scheduler.post("/v1/sweep", content=b"", headers=sent)
    assert swept.status_code == 200, swept.text
    assert empty.status_code == 200, empty.text
    with Ledger.open(http.store_url) as ledger:
        assert ledger.store.event_count() > before


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("z" * 200_000, "'" + "z" * 59 + "... (200000 characters)"),
        ("x\n\x1b[2J\x1b[31mPWNED", "'x\\n\\x1b[2J\\x1b[31mPWNED'"),
        ("acc\u034fount", "'acc\\u034fount'"),  # a mark repr leaves as it is
        ("ttl_secs", "ttl_secs"),
        ("query", "query"),  # pydantic's word for where a value was, here the caller's key
    ],
    ids=["long", "terminal-escape", "invisible", "plain", "a-location-s-word"],
)
def test_an_unknown_body_key_is_named_cut_and_escaped(http: Served, key: str, said: str) -> None:
    """A body's key the resource does not take is 422 naming it as every refusal quotes what
    it refuses: at most a short prefix then its length, each control character as its escape,
    in one line (rev35: a 200,000-character key answered 400,089 bytes, and
    ``x\\n\\x1b[2J...`` cleared the terminal that printed the message)."""
    body = json.dumps({"run_id": "r", "task_type": "t", key: 1})
    with http.client(Role.WORKER) as worker:
        got = worker.post(
            "/v1/profiles/p1/checkout", content=body, headers={"content-type": "application/json"}
        )
    assert got.status_code == 422, got.text[:300]
    assert got.json()["field"] == said, got.text[:300]
    assert got.json()["message"] == f"invalid {said}: is no field this body takes", got.text[:300]
    assert len(got.content) < 400, len(got.content)


@pytest.mark.parametrize("path", ["/v1/fleet", "/v1/profiles"])
def test_an_account_no_profile_was_registered_under_is_quoted_cut_and_escaped(
    http: Served, path: str
) -> None:
    """rev35 review: an account id of 60,000 characters was answered whole (a 60 KB 422), and
    one holding an invisible mark (U+034F) with it raw, where the command line escapes it."""
    with http.client(Role.OPERATOR) as operator:
        long = operator.get(path, params={"account": "k" * 60_000})
        marked = operator.get(path, params={"account": "acct\u034f"})
    assert long.status_code == marked.status_code == 422, (long.text[:300], marked.text)
    assert len(long.content) < 600, len(long.content)
    assert "(60000 characters)" in long.json()["message"], long.text[:300]
    assert "\u034f" not in marked.json()["message"], marked.text
    assert "'acct\\u034f'" in marked.json()["message"], marked.text


@pytest.mark.parametrize(
    ("method", "path", "field", "sent"),
    [
        ("GET", "/v1/profiles/a%ffb/why", "profile_id", "a%ffb"),
        ("POST", "/v1/profiles/%ff%2Fb/checkout", "profile_id", "%ff%2Fb"),
        ("POST", "/v1/leases/lease-1@p%ff/heartbeat", "lease_id", "lease-1@p%ff"),
    ],
)
def test_an_id_in_the_path_that_is_not_utf8_is_refused_quoting_what_was_sent(
    http: Served, method: str, path: str, field: str, sent: str
) -> None:
    """rev36: ``GET /v1/profiles/a%ffb/why`` was refused quoting ``'a\\ufffdb'``, a character
    nobody sent (the server reads bytes that are no UTF-8 as U+FFFD). A path id that is no
    UTF-8 once decoded is refused as any malformed id is (422 naming it, nothing written),
    in one line quoting it as it was sent, percent-encoded."""
    body = {"fencing_token": 1} if "heartbeat" in path else {"run_id": "r", "task_type": "t"}
    with http.client(Role.WORKER) as worker:
        got = worker.request(method, path, json=body if method == "POST" else None)
    assert got.status_code == 422, got.text
    said = got.json()
    assert said["field"] == field, said
    assert said["message"].endswith(f"(got {sent!r})"), said
    assert "\ufffd" not in got.text
    assert "\\ufffd" not in said["message"], said
    assert "\n" not in said["message"]
    with Ledger.open(http.store_url) as ledger:
        assert len(ledger.history("p1")) == 3  # registered, leased, one heartbeat


def test_a_path_with_a_trailing_slash_is_404_never_a_redirect(http: Served) -> None:
    """A resource's path with a trailing slash names no resource: 404 ``http_404`` JSON, no
    ``Location``, nothing written (rev38: Starlette answered 307 to the path without it, its
    ``Location`` built from the ``Host`` header, ``http://evil.example/v1/sweep``, and a
    client that followed it resent the sweep, which ran); under ``/console``, the console's
    404 page. The console's own address with a slash, ``/console/``, still leads to its queue,
    by a path that names no host."""
    with Ledger.open(http.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p2", account_id="a1", proxy_id="x1"))
        ledger.handle(
            Checkout(profile_id="p2", worker_id="w2", run_id="r", task_type="t", ttl_seconds=1)
        )
        before = ledger.store.event_count()
    time.sleep(1.2)  # p2's lease past its deadline: a sweep that ran would settle it
    paths = [
        ("GET", "/v1/profiles/p1/why/"),
        ("POST", "/v1/sweep/"),
        ("GET", "/console/queue/"),
        ("GET", "/healthz/"),
    ]
    with http.client(Role.SCHEDULER) as client:
        for method, path in paths:
            got = client.request(method, path, headers={"Host": "evil.example"})
            assert (got.status_code, got.headers.get("location")) == (404, None), path
            if path.startswith("/console/"):  # the console's own page (rev45)
                assert got.headers["content-type"].startswith("text/html"), (path, got.text)
            else:
                assert got.json()["error"] == "http_404", (path, got.text)
            followed = client.request(method, path, follow_redirects=True)
            assert followed.status_code == 404, (path, followed.text)
        home = client.get("/console/", headers={"Host": "evil.example"})
    assert (home.status_code, home.headers["location"]) == (303, "/console/queue")
    with Ledger.open(http.store_url) as ledger:
        assert ledger.store.event_count() == before


def test_every_404_and_405_under_the_console_is_its_page_with_its_headers(
    served: Served,
) -> None:
    """rev45: an address under ``/console`` no page has (``/console/queue/``, ``/console/x``)
    and a method a page does not take (``GET`` of a verdict's address, ``HEAD`` of the
    queue, ``PUT`` of the sign-in) answered the API's JSON 404 or 405, without the console's
    CSP, ``X-Frame-Options`` or ``Cache-Control: no-store``: each is the console's refusal
    page with its headers (a 405 naming the methods the page takes, in ``Allow`` too). An
    API path still answers JSON."""
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
    asked = [
        ("GET", "/console/queue/", 404, None),
        ("GET", "/console/nowhere", 404, None),
        ("GET", "/console/profiles/p1/review", 405, "POST"),
        ("HEAD", "/console/queue", 405, "GET"),
        ("PUT", "/console/sign-in", 405, "GET, POST"),
    ]
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        answers = [browser.request(method, path) for method, path, _, _ in asked]
        api = browser.get("/v1/nowhere")
    for (method, path, status, allow), got in zip(asked, answers, strict=True):
        where = (method, path, got.headers, got.text[:300])
        assert got.status_code == status, where
        assert got.headers["content-type"].startswith("text/html"), where
        assert got.headers["content-security-policy"].startswith("default-src 'none'"), where
        assert got.headers["x-frame-options"] == "DENY", where
        assert got.headers["cache-control"] == "no-store", where
        assert got.headers.get("allow") == allow, where
        if method != "HEAD":
            said = "no page at this address" if status == 404 else f"it takes {allow}"
            assert said in got.text, where
    assert (api.status_code, api.json()["error"]) == (404, "http_404"), api.text


def _reviewer_at(served: Served, browser: httpx.Client, profile_id: str) -> tuple[str, str]:
    """Sign ``browser`` in as a reviewer; the profile page's form token and version."""
    form = {"content-type": "application/x-www-form-urlencoded", "origin": served.url}
    token = served.tokens[Role.REVIEWER]
    signed = browser.post("/console/sign-in", content=f"token={token}", headers=form)
    assert signed.status_code == 303, signed.text
    page = browser.get(f"/console/profiles/{profile_id}")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    version = re.search(r'name="expected_version" value="(\d+)"', page.text)
    assert csrf is not None, page.text[:500]
    assert version is not None, page.text[:500]
    return csrf.group(1), version.group(1)


def test_a_console_form_giving_a_field_twice_is_refused_writing_nothing(served: Served) -> None:
    """A review form giving ``decision`` (or any field) twice is refused on the console's page,
    422 naming it, and nothing is written (rev38: ``decision=return&...&decision=disable``
    recorded ``return``, the first, where the JSON API refuses a key given twice). The same
    form giving each field once is recorded."""
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        ledger.handle(ForceRelease(profile_id="p1", actor="op", reason="stuck"))
        before = len(ledger.history("p1"))
    form = {"content-type": "application/x-www-form-urlencoded", "origin": served.url}
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        csrf, version = _reviewer_at(served, browser, "p1")
        fields = f"csrf={csrf}&expected_version={version}&note=checked"
        refused = [
            browser.post("/console/profiles/p1/review", content=body, headers=form)
            for body in (
                f"{fields}&decision=return&decision=disable",
                f"{fields}&decision=return&note=other",
                f"{fields}&csrf={csrf}&decision=return",
            )
        ]
        with Ledger.open(served.store_url) as ledger:
            written = [e.event_type for e in ledger.history("p1")[before:]]
        taken = browser.post(
            "/console/profiles/p1/review", content=f"{fields}&decision=return", headers=form
        )
    assert written == [], f"the console wrote {written!r}"
    for answer, name in zip(refused, ("decision", "note", "csrf"), strict=True):
        assert answer.status_code == 422, answer.text[:500]
        assert answer.headers["content-type"].startswith("text/html"), answer.headers
        assert answer.headers["x-frame-options"] == "DENY", answer.headers
        assert f"invalid {name}: is given 2 times in the form; give it once" in answer.text
    assert taken.status_code == 303, taken.text[:500]


def test_every_get_the_service_answers_refuses_a_query_or_a_body_it_does_not_read(
    served: Served,
) -> None:
    """``/openapi.json`` and the console's pages refuse what they do not read as the API's
    resources do (rev38: ``GET /openapi.json`` with ``{}`` or ``?x=1`` answered 200, and a
    console page took any query and a GET's body): the document 422 JSON naming it; a page
    its refusal page, 422 with the console's headers; a form posted with a query (none is
    read) writes nothing. Each sent plainly is answered as before."""
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        ledger.handle(ForceRelease(profile_id="p1", actor="op", reason="stuck"))
        before = ledger.store.event_count()
    form = {"content-type": "application/x-www-form-urlencoded", "origin": served.url}
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        document = [
            browser.get("/openapi.json?x=1"),
            browser.request("GET", "/openapi.json", json={}),
        ]
        plain = browser.get("/openapi.json")
        csrf, version = _reviewer_at(served, browser, "p1")
        verdict = f"csrf={csrf}&expected_version={version}&note=checked&decision=return"
        pages = [
            browser.get("/console/queue?state=stale"),
            browser.request("GET", "/console/profiles/p1", content=b"note=x", headers=form),
            browser.get("/console/sign-in?next=/elsewhere"),
            browser.post("/console/profiles/p1/review?decision=disable", content=verdict,
                         headers=form),
        ]  # fmt: skip
        queue = browser.get("/console/queue")
    for got, field in zip(document, ("x", "body"), strict=True):
        assert (got.status_code, got.json()["field"]) == (422, field), got.text[:300]
    assert plain.status_code == 200, plain.text[:300]
    assert "/v1/sweep" in plain.json()["paths"], plain.text[:300]
    for got in pages:
        assert got.status_code == 422, (got.request.url, got.text[:500])
        assert got.headers["content-type"].startswith("text/html"), got.headers
        assert got.headers["content-security-policy"].startswith("default-src 'none'")
        assert "takes no query parameters" in got.text or "takes no body" in got.text
    assert queue.status_code == 200, queue.text[:300]
    with Ledger.open(served.store_url) as ledger:
        assert ledger.store.event_count() == before


def test_a_console_form_holding_a_field_it_does_not_take_is_refused_naming_it(
    served: Served,
) -> None:
    """rev41: ``reviewer=op&extra=1`` beside a verdict's fields was left unread and the verdict
    recorded (303), where the JSON API refuses an unknown key: each form (the verdict, the
    sign-in, the sign-out) refuses a field it does not take, 422 naming every one, and nothing
    is written; a form of more fields than any takes is refused saying so, not as text that is
    no form. The verdict without them is recorded."""
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        ledger.handle(ForceRelease(profile_id="p1", actor="op", reason="stuck"))
        before = len(ledger.history("p1"))
    form = {"content-type": "application/x-www-form-urlencoded", "origin": served.url}
    token = served.tokens[Role.REVIEWER]
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        csrf, version = _reviewer_at(served, browser, "p1")
        fields = f"csrf={csrf}&expected_version={version}&note=checked&decision=return"
        refused = {
            "verdict": browser.post(
                "/console/profiles/p1/review", content=f"{fields}&reviewer=op&extra=1", headers=form
            ),
            "many": browser.post(
                "/console/profiles/p1/review", content=fields + "&x=1" * 17, headers=form
            ),
            "sign-in": browser.post(
                "/console/sign-in", content=f"token={token}&reviewer=op&extra=1", headers=form
            ),
            "sign-out": browser.post(
                "/console/sign-out", content=f"csrf={csrf}&reviewer=op&extra=1", headers=form
            ),
        }
        with Ledger.open(served.store_url) as ledger:
            written = [e.event_type for e in ledger.history("p1")[before:]]
        still_in = browser.get("/console/queue")  # the refused sign-out ended nothing
        taken = browser.post("/console/profiles/p1/review", content=fields, headers=form)
    assert written == [], f"the console wrote {written!r}"
    for what, answer in refused.items():
        assert answer.status_code == 422, (what, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html"), answer.headers
        assert answer.headers["x-frame-options"] == "DENY", answer.headers
        said = "invalid form: must have at most 20 fields (got 21)" if what == "many" else (
            "invalid reviewer: is no field this form takes, nor is extra"
        )  # fmt: skip
        assert said in answer.text, (what, answer.text[:2000])
        assert "UTF-8" not in answer.text, (what, answer.text[:2000])
    assert "set-cookie" not in refused["sign-in"].headers
    assert still_in.status_code == 200, still_in.text[:300]
    assert taken.status_code == 303, taken.text[:500]


def test_a_console_form_sent_as_another_type_is_refused_writing_nothing(served: Served) -> None:
    """rev45: a verdict posted as ``application/json`` or ``text/plain`` with an urlencoded
    body was read as a form and recorded (303), where the JSON API refuses a body of another
    type naming ``Content-Type``. Each form (the verdict, the sign-in) is refused by the API's
    rule on the console's page, 422 naming ``Content-Type``, and nothing is written; the form
    sent as ``application/x-www-form-urlencoded``, a ``charset`` beside it, is recorded."""
    with Ledger.open(served.store_url) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        ledger.handle(ForceRelease(profile_id="p1", actor="op", reason="stuck"))
        before = len(ledger.history("p1"))
    sent_as = ("application/json", "text/plain", "application/x-www-form-urlencoded; x=1", None)
    with httpx.Client(base_url=served.url, timeout=30) as browser:
        csrf, version = _reviewer_at(served, browser, "p1")
        fields = f"csrf={csrf}&expected_version={version}&note=checked&decision=return"
        refused = []
        for kind in sent_as:
            headers = {"origin": served.url} | ({"content-type": kind} if kind else {})
            refused.append(browser.post("/console/profiles/p1/review", content=fields,
                                        headers=headers))  # fmt: skip
        token = served.tokens[Role.REVIEWER]
        sign_in = browser.post(
            "/console/sign-in",
            content=f"token={token}",
            headers={"origin": served.url, "content-type": "text/plain"},
        )
        with Ledger.open(served.store_url) as ledger:
            written = [e.event_type for e in ledger.history("p1")[before:]]
        kind = "application/x-www-form-urlencoded; charset=UTF-8"
        taken = browser.post(
            "/console/profiles/p1/review",
            content=fields,
            headers={"origin": served.url, "content-type": kind},
        )
    assert written == [], f"the console wrote {written!r}"
    for kind, answer in zip((*sent_as, "text/plain"), (*refused, sign_in), strict=True):
        assert answer.status_code == 422, (kind, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html"), answer.headers
        assert answer.headers["x-frame-options"] == "DENY", answer.headers
        said = "the request sent none" if kind is None else f"got &#39;{kind}&#39;"
        assert (
            f"invalid Content-Type: must be application/x-www-form-urlencoded ({said})"
            in answer.text
        ), (kind, answer.text[:2000])
    assert taken.status_code == 303, taken.text[:500]
