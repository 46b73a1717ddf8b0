"""The review console's guards, over plain HTTP to a real ``custody serve``: a form from
another origin or without the session's form token records nothing, the session cookie cannot
be read by a script or sent from another site, a screenshot path names only an image, and the
pages stay out of the API's OpenAPI document."""

from __future__ import annotations

import html
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from io import StringIO
from pathlib import Path

import httpx
import pytest
from console_scene import crashed_run, events, register
from pg_cluster import PostgresCluster
from serving import Served, serve

from custody.cli import main
from ledger import Ledger, Role
from ledger.rules import one_part
from service._console import COOKIE, HEADERS, form_token

pytestmark = pytest.mark.slow

VERDICT = {"decision": "return", "note": "cart emptied"}


@contextmanager
def _signed_in(served: Served, token: str | None = None) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a reviewer's session cookie, and that session's form token."""
    token = token or served.tokens[Role.REVIEWER]
    with httpx.Client(base_url=served.url, headers={"Origin": served.url}, timeout=30) as client:
        answer = client.post("/console/sign-in", data={"token": token})
        assert answer.status_code == 303, answer.text
        yield client, form_token(client.cookies[COOKIE])


def test_a_form_from_another_origin_records_nothing(served: Served) -> None:
    """The session's cookie and form token are not enough: a verdict posted with another
    site's Origin is refused (403) and no event is written."""
    crashed_run(served, "p_origin")
    before = events(served)
    with _signed_in(served) as (client, csrf):
        answer = client.post(
            "/console/profiles/p_origin/review",
            data={"csrf": csrf, **VERDICT},
            headers={"Origin": "https://elsewhere.example"},
        )
    assert answer.status_code == 403
    assert "own pages" in answer.text
    assert events(served) == before


def test_a_form_without_the_sessions_token_records_nothing(served: Served) -> None:
    """From the right origin but with no (or another session's) form token: 403, nothing
    written."""
    crashed_run(served, "p_csrf")
    before = events(served)
    with _signed_in(served) as (client, _):
        for said in ({}, {"csrf": form_token("someone else's token")}):
            answer = client.post("/console/profiles/p_csrf/review", data={**said, **VERDICT})
            assert answer.status_code == 403, answer.text
    assert events(served) == before


def test_the_session_cookie_is_httponly_and_strict(served: Served) -> None:
    """Signing in sets the session in a cookie no script reads and no other site sends; a
    request without it is sent to sign in."""
    token = served.tokens[Role.REVIEWER]
    with httpx.Client(base_url=served.url, headers={"Origin": served.url}) as client:
        answer = client.post("/console/sign-in", data={"token": token})
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
    anonymous = httpx.get(f"{served.url}/console/queue")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/console/sign-in"


def test_a_screenshot_path_that_is_no_image_is_not_read_out(served: Served, tmp_path: Path) -> None:
    """A release naming a readable file that is not an image (a worker could name any file)
    gets no byte of it served: the page says where it was and why it is not shown."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the service's secret\n")
    crashed_run(served, "p_shot", screenshot=secret)
    with _signed_in(served) as (client, _):
        page = client.get("/console/profiles/p_shot")
        image = client.get("/console/profiles/p_shot/screenshot")
    assert f"not shown: it was at <code>{secret}</code>" in page.text
    assert "not a PNG or JPEG" in page.text
    assert image.status_code == 404
    assert "secret" not in image.text.replace(str(secret), "")


def test_a_screenshot_path_naming_a_fifo_holds_no_reader(served: Served, tmp_path: Path) -> None:
    """A release naming a FIFO (whose open would wait for a writer for ever) is judged without
    opening it for a blocking read: the page answers at once and says why it shows nothing."""
    fifo = tmp_path / "shot.png"
    os.mkfifo(fifo)
    crashed_run(served, "p_fifo", screenshot=fifo, screenshot_sha256="0" * 64)
    # rev20: a worker waiting to write into the FIFO learnt when a reviewer viewed the page
    # (its open returned). The service looks at the path without opening it.
    woke = threading.Event()
    writer = threading.Thread(target=lambda: (os.close(os.open(fifo, os.O_WRONLY)), woke.set()))
    writer.start()
    try:
        with _signed_in(served) as (client, _):
            page = client.get("/console/profiles/p_fifo", timeout=10)
            image = client.get("/console/profiles/p_fifo/screenshot", timeout=10)
            assert client.get("/console/profiles/p_fifo", timeout=10).status_code == 200
        assert not woke.wait(0.5), "the service opened the FIFO"
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer go
        writer.join(10)
    assert "not a regular file" in page.text
    assert image.status_code == 404


def test_the_console_is_not_part_of_the_api(served: Served) -> None:
    """The pages are for people: no /console path in the OpenAPI document programs use."""
    spec = httpx.get(f"{served.url}/openapi.json").json()
    assert not [p for p in spec["paths"] if p.startswith("/console")]


def test_the_reviewer_is_the_tokens_actor_never_the_forms(served: Served) -> None:
    """A form that names another reviewer (or actor) records nothing: such a field is no
    field the form takes (422, rev41); the verdict's event is the session token's actor's."""
    crashed_run(served, "p_actor")
    with _signed_in(served) as (client, csrf):
        drawn = _drawn_version(client.get("/console/profiles/p_actor").text)
        verdict = {"csrf": csrf, "expected_version": drawn, **VERDICT}
        forged = client.post(
            "/console/profiles/p_actor/review",
            data={**verdict, "reviewer": "mallory", "actor": "mallory"},
        )
        assert forged.status_code == 422, forged.text
        answer = client.post("/console/profiles/p_actor/review", data=verdict)
        assert answer.status_code == 303, answer.text
    with served.client(Role.REVIEWER) as reader:
        timeline = reader.get("/v1/profiles/p_actor/timeline").json()
    reviewed = [e["actor_id"] for e in timeline if e["event_type"] == "profile_reviewed"]
    assert reviewed == ["reviewer-1"]


def _form_drawn(page: str) -> tuple[str, list[str]]:
    """The verdict form's note as the page draws it, and the decisions it draws checked."""
    note = re.search(r'<input id="note" [^>]*value="([^"]*)"', page)
    assert note is not None, page[:3000]
    checked = re.findall(r'name="decision" value="(\w+)"[^>]* checked', page)
    return html.unescape(note[1]), checked


def test_a_refused_verdict_is_drawn_again_with_the_note_and_decision_sent(served: Served) -> None:
    """rev41: a note past the ledger's 200 characters (the field takes 400 UTF-16 units) was
    refused, 422, and the page drawn again with an empty note and no decision: the reviewer's
    text was lost. The form is drawn again as it was sent, the note as typed (an emoji's
    zero-width joiner, a quote and a ``<`` kept, not escaped as a worker's text is), beside
    the limit it is held to. After a 409 (the profile moved on since its page was drawn) the
    note is kept and the decision left to be made again on the page as it now stands."""
    crashed_run(served, "p_note")
    note = 'order 4471 placed twice "<b>"; \U0001f469\u200d\U0001f52c checked. ' + "x" * 157
    assert len(note) == 201
    with _signed_in(served) as (client, csrf):
        page = client.get("/console/profiles/p_note").text
        assert 'id="note-limit" class="quiet">at most 200 characters</span>' in page
        drawn = _drawn_version(page)
        before = events(served)
        sent = {"csrf": csrf, "expected_version": drawn, "decision": "disable", "note": note}
        refused = client.post("/console/profiles/p_note/review", data=sent)
        assert refused.status_code == 422, refused.text
        assert "invalid note: String should have at most 200 characters" in refused.text
        assert _form_drawn(refused.text) == (note, ["disable"])
        assert "at most 200 characters</span>" in refused.text
        assert events(served) == before
        with served.client(token=served.token("bob", Role.REVIEWER)) as bob:
            moved = bob.post("/v1/profiles/p_note/review", json={"decision": "quarantine",
                                                                 "note": "still odd"})  # fmt: skip
            assert moved.status_code == 200, moved.text
        stale = client.post("/console/profiles/p_note/review", data={**sent, "note": note[:200]})
        assert stale.status_code == 409, stale.text
        assert _form_drawn(stale.text) == (note[:200], [])


def test_signing_out_ends_the_session(served: Served) -> None:
    """After signing out the browser holds no session: the queue sends it to sign in."""
    with _signed_in(served) as (client, csrf):
        assert client.get("/console/queue").status_code == 200
        out = client.post("/console/sign-out", data={"csrf": csrf})
        assert out.status_code == 303
        assert client.get("/console/queue").status_code == 303


def test_a_bidi_override_a_worker_wrote_is_shown_as_its_escape(served: Served) -> None:
    """rev20: a step ``safe<U+202E>gnp.exe`` read as ``safeexe.png`` and a URL ending in a
    reversed ``moc.live`` as ``evil.com``: the page shows each invisible format character as
    its escape (as the command line does), never the character itself; the store keeps it."""
    step, url = "safe\u202egnp.exe", "https://ex.example/\u202emoc.live"
    crashed_run(served, "p_bidi", step=step, url=url)
    with _signed_in(served) as (client, _):
        page = client.get("/console/profiles/p_bidi").text
    assert "\u202e" not in page
    assert "safe\\u202egnp.exe" in page
    assert "https://ex.example/\\u202emoc.live" in page
    with served.client(Role.REVIEWER) as reader:
        timeline = reader.get("/v1/profiles/p_bidi/timeline").json()
    assert step in [e["step"] for e in timeline]


def _run(served: Served, profile_id: str, run_id: str, beat: dict[str, object],
         final: dict[str, object]) -> None:  # fmt: skip
    """worker-1 checks out ``profile_id`` under ``run_id``, reports ``beat`` and releases it
    failed, with ``final`` (its evidence)."""
    register(served, profile_id)
    with served.client(Role.WORKER) as worker:
        body = {"run_id": run_id, "task_type": "inventory_check"}
        lease = worker.post(f"/v1/profiles/{profile_id}/checkout", json=body).json()
        token = {"fencing_token": lease["fencing_token"]}
        for path, sent in (("heartbeat", beat), ("release", {"outcome": "failure", **final})):
            said = worker.post(f"/v1/leases/{lease['lease_id']}/{path}", json=token | sent)
            assert said.status_code == 200, said.text


def _line(page: str, label: str) -> str:
    """What the page shows beside ``label``, as its markup."""
    found = re.search(rf"<dt>{label}</dt><dd[^>]*>(.*?)</dd>", page, re.S)
    assert found is not None, (label, page[:3000])
    return found[1]


def test_a_workers_none_reads_apart_from_nothing_recorded(served: Served) -> None:
    """rev45: a mutating step named ``none`` showed ``mutating step: none``, as a run that
    mutated nothing; a URL ``none`` and a final URL ``none recorded`` read as no URL; a run id
    ``worker_09 / run_7`` read as a worker and a run on the ``worker / run / task`` line,
    where ``custody why`` tells them apart. Each recorded text is shown as the command line
    prints it (``one_part``: one holding a space its JSON string, as ``why`` prints the step),
    and where nothing was recorded the page says so in markup and words no text reads as."""
    run_id = "worker_09 / run_7"
    beat = {"step": "none", "url": "none", "mutating": True}
    _run(served, "p_words", run_id, beat, {"final_url": "none recorded"})
    _run(served, "p_nothing", "r1", {"step": "s1", "safe": True}, {})
    with _signed_in(served) as (client, _):
        words = client.get("/console/profiles/p_words").text
        nothing = client.get("/console/profiles/p_nothing").text
    absent = _line(nothing, "mutating step")
    assert absent == '<em class="nothing">none recorded</em>', absent
    assert _line(words, "last safe step") == absent  # never reported: as the other's
    for label in ("mutating step", "last URL", "final URL"):
        assert _line(nothing, label) == absent, (label, nothing[:3000])
        said = _line(words, label)
        assert said != absent, (label, said)
        assert "<" not in said, (label, said)
    assert html.unescape(_line(words, "final URL")) == '"none recorded"'
    assert html.unescape(_line(words, "worker / run / task")) == " / ".join(
        one_part(part) for part in ("worker-1", run_id, "inventory_check")
    )
    # The step as ``custody why`` prints it, on its "step that mutated the account" line.
    printed = StringIO()
    with redirect_stdout(printed):
        assert main(["--store", served.store_url, "why", "p_words"]) == 0
    mutated = re.search(r"step that mutated the account: (\S+)", printed.getvalue())
    assert mutated is not None, printed.getvalue()
    assert html.unescape(_line(words, "mutating step")) == mutated[1] == "none"


def test_a_worker_named_like_a_role_reads_as_one_name_in_the_timeline_and_queue(
    served: Served,
) -> None:
    """Note 56: a worker whose id is ``w (reviewer)`` was shown ``w (reviewer) (worker)`` in
    the timeline's "by" cell, as if a reviewer had acted, and unquoted in the queue's "last
    worker" cell. Its id is shown as ``custody why`` prints a recorded text (``one_part``)."""
    name = "w (reviewer)"
    register(served, "p_named")
    with served.client(token=served.token(name, Role.WORKER)) as worker:
        body = {"run_id": "r1", "task_type": "inventory_check"}
        lease = worker.post("/v1/profiles/p_named/checkout", json=body).json()
        token = {"fencing_token": lease["fencing_token"]}
        # A failure after a mutating step: the profile is quarantined, waiting in the queue.
        for path, sent in (("heartbeat", {"step": "s1", "mutating": True}),
                           ("release", {"outcome": "failure"})):  # fmt: skip
            said = worker.post(f"/v1/leases/{lease['lease_id']}/{path}", json=token | sent)
            assert said.status_code == 200, said.text
    with _signed_in(served) as (client, _):
        page = html.unescape(client.get("/console/profiles/p_named").text)
        queue = html.unescape(client.get("/console/queue").text)
    quoted = one_part(name)
    assert quoted == '"w (reviewer)"'
    assert f"<td>{quoted} (worker)</td>" in page, page[-3000:]
    assert f"{name} (worker)" not in page.replace(quoted, "")
    row = re.search(r"<tr>\s*<td><a href=\"/console/profiles/p_named\">.*?</tr>", queue, re.S)
    assert row is not None, queue[-3000:]
    assert f"<td>{quoted}</td>" in row[0], row[0]


def test_a_typed_escape_and_the_character_it_names_show_apart_on_pages(served: Served) -> None:
    """rev36: a text typed with a backslash and ``u202e`` as letters read as one holding
    U+202E: the page doubles a typed backslash that begins what reads as an escape. A
    refusal's sentence, whose values ``repr`` quoted already, is shown as the command line
    shows an error line: a refused id holding U+200B reads ``'a\\u200bb'``, one typed with a
    backslash ``'a\\\\u200bb'``, never the one as the other."""
    crashed_run(served, "p_real", step="safe\u202egnp.exe")
    crashed_run(served, "p_typed", step="safe\\u202egnp.exe")
    with _signed_in(served) as (client, _):
        real = client.get("/console/profiles/p_real").text
        typed = client.get("/console/profiles/p_typed").text
        refused = {
            sent: client.get(f"/console/profiles/{sent}") for sent in ("a%E2%80%8Bb", "a%5Cu200bb")
        }
    assert "safe\\u202egnp.exe" in real
    assert "safe\\\\u202egnp.exe" not in real
    assert "safe\\\\u202egnp.exe" in typed
    for sent, quoted in (("a%E2%80%8Bb", "'a\\u200bb'"), ("a%5Cu200bb", "'a\\\\u200bb'")):
        assert refused[sent].status_code == 422, refused[sent].text
        said = re.search(r'<p class="refused" role="alert">(.*?)</p>', refused[sent].text)
        assert said is not None, refused[sent].text
        assert html.unescape(said[1]).endswith(f"(got {quoted})"), said[1]


def test_no_page_of_the_services_origin_runs_a_script_from_elsewhere(served: Served) -> None:
    """rev20: FastAPI's /docs and /redoc pages loaded Swagger UI and ReDoc from a CDN, with no
    Content-Security-Policy, on the console's origin, where such a script may read a console
    page's form token and post a verdict as the signed-in reviewer. They are not served;
    /openapi.json still is."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(f"{served.url}{path}").status_code == 404, path
    assert httpx.get(f"{served.url}/openapi.json").status_code == 200


def _drawn_version(page: str) -> str:
    found = re.search(r'name="expected_version" value="(\d+)"', page)
    assert found is not None, page[:2000]
    return found.group(1)


def test_a_verdict_from_a_page_drawn_before_the_profile_moved_on_records_nothing(
    served: Served,
) -> None:
    """rev20: a reviewer opened run 1's page; meanwhile another reviewer returned the profile
    and run 2 sent it to review again. The old page's verdict, with its note about run 1, was
    recorded on run 2. The form carries the version the page showed: its verdict is refused
    (409, saying so, the page drawn again), nothing written; from the new page it is taken."""
    crashed_run(served, "p_stale")
    with _signed_in(served) as (client, csrf):
        drawn = _drawn_version(client.get("/console/profiles/p_stale").text)
        with served.client(token=served.token("bob", Role.REVIEWER)) as bob:
            said = bob.post("/v1/profiles/p_stale/review", json=VERDICT)
            assert said.status_code == 200, said.text
        with served.client(Role.WORKER) as worker:
            lease = worker.post(
                "/v1/profiles/p_stale/checkout", json={"run_id": "run-2", "task_type": "t"}
            ).json()
            ended = worker.post(
                f"/v1/leases/{lease['lease_id']}/release",
                json={"fencing_token": lease["fencing_token"], "outcome": "failure", "reason": "x"},
            )
            assert ended.json()["profile_state"] == "review_required", ended.text
        before = events(served)
        old = {"csrf": csrf, "expected_version": drawn, **VERDICT}
        refused = client.post("/console/profiles/p_stale/review", data=old)
        assert refused.status_code == 409, refused.text
        assert "changed since the version" in refused.text
        assert events(served) == before
        fresh = {**old, "expected_version": _drawn_version(refused.text)}
        taken = client.post("/console/profiles/p_stale/review", data=fresh)
        assert taken.status_code == 303, taken.text
    assert events(served) == before + 2  # profile_reviewed, profile_returned_to_pool


def test_a_verdict_posted_twice_is_recorded_once(served: Served) -> None:
    """rev20: a double click on "keep quarantined" recorded two verdicts (the second is
    allowed by the state: still quarantined). The second names a version the first moved
    past: refused, one verdict recorded."""
    crashed_run(served, "p_twice")
    with _signed_in(served) as (client, csrf):
        drawn = _drawn_version(client.get("/console/profiles/p_twice").text)
        before = events(served)
        form = {"csrf": csrf, "expected_version": drawn, "decision": "quarantine", "note": "odd"}
        first = client.post("/console/profiles/p_twice/review", data=form)
        second = client.post("/console/profiles/p_twice/review", data=form)
    assert (first.status_code, second.status_code) == (303, 409), second.text
    assert events(served) == before + 2  # profile_reviewed, profile_quarantined


def test_a_verdict_form_without_the_pages_version_records_nothing(served: Served) -> None:
    """A form that does not say which version its page showed (tampered, or drawn by an older
    console) is bad input naming the field, nothing written."""
    crashed_run(served, "p_unversioned")
    with _signed_in(served) as (client, csrf):
        before = events(served)
        for version in ({}, {"expected_version": "x"}, {"expected_version": "9" * 40}):
            form = {"csrf": csrf, **version, **VERDICT}
            answer = client.post("/console/profiles/p_unversioned/review", data=form)
            assert answer.status_code == 422, answer.text
            assert "expected_version" in answer.text
            if not version:  # rev21: says what to do, not "should be a valid integer"
                assert "reload the page" in answer.text
    assert events(served) == before


def test_a_verdict_on_a_version_the_profile_never_reached_is_bad_input(served: Served) -> None:
    """rev45: a version past the profile's own was refused as "changed since" (409): nobody
    judged it, so it is bad input naming expected_version and the profile's version (422),
    nothing written, as the command line's exit 2."""
    crashed_run(served, "p_ahead")
    with _signed_in(served) as (client, csrf):
        drawn = int(_drawn_version(client.get("/console/profiles/p_ahead").text))
        before = events(served)
        form = {"csrf": csrf, "expected_version": str(drawn + 50), **VERDICT}
        answer = client.post("/console/profiles/p_ahead/review", data=form)
    assert answer.status_code == 422, answer.text
    assert (
        f"expected_version: {drawn + 50} is past profile p_ahead&#39;s version {drawn}"
        in answer.text
    )
    assert events(served) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/console/profiles/p_slash%2Fb"),
        ("GET", "/console/profiles/p_slash%2Fscreenshot"),
        ("GET", "/console/profiles/p_slash%2fb/screenshot"),
        ("POST", "/console/profiles/p_slash%2Fb/review"),
    ],
)
def test_a_profile_id_holding_a_slash_is_refused_as_bad_input(
    served: Served, method: str, path: str
) -> None:
    """An id holding ``/`` (sent as ``%2F``) reaches the console's page and is refused as any
    malformed id is, on a page naming the field (rev33 review: a JSON 404 naming nothing,
    or p_slash's own screenshot page for ``p_slash%2Fscreenshot``), and nothing is written."""
    crashed_run(served, "p_slash")
    before = events(served)
    with _signed_in(served) as (client, csrf):
        data = {"csrf": csrf, **VERDICT} if method == "POST" else None
        answer = client.request(method, path, data=data)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "invalid profile_id" in answer.text
    assert events(served) == before


def test_a_profile_id_that_is_not_utf8_is_refused_quoting_what_was_sent(served: Served) -> None:
    """rev36: ``GET /console/profiles/%ff`` was refused quoting ``'\\ufffd'``, a character
    nobody sent: an id no UTF-8 once decoded is refused as any malformed id is (422, naming
    the field), quoting the id as it was sent."""
    with _signed_in(served) as (client, _):
        answer = client.get("/console/profiles/%ff")
    assert answer.status_code == 422, answer.text
    said = re.search(r'<p class="refused" role="alert">(.*?)</p>', answer.text)
    assert said is not None, answer.text
    assert html.unescape(said[1]).startswith("invalid profile_id: "), said[1]
    assert html.unescape(said[1]).endswith("(got '%ff')"), said[1]
    assert "ufffd" not in answer.text
    assert "\ufffd" not in answer.text


@pytest.mark.postgres
def test_a_store_out_of_reach_is_the_consoles_page_with_its_headers(
    cluster: PostgresCluster,
) -> None:
    """With PostgreSQL stopped, every console request is the console's own page, 503 with
    ``Retry-After`` and the console's headers (its CSP, ``X-Frame-Options``): where the token
    or the session is looked up (a sign-in, a session's first request) as where a page is read
    or a verdict written (rev38: the token's lookup answered the API's JSON 503, without
    them)."""
    url = f"{cluster.url}?timeout=1"  # the store's waits: an answer within seconds once down
    Ledger.init(url).close()
    served = serve(url)
    try:
        crashed_run(served, "p_down")
        unseen = [served.token(f"carol{n}", Role.REVIEWER) for n in range(3)]  # never looked up
        with ExitStack() as stack:  # sessions whose first request meets the store down
            sessions = [stack.enter_context(_signed_in(served, t))[0].cookies[COOKIE]
                        for t in unseen[1:]]  # fmt: skip
        with _signed_in(served) as (client, csrf):
            drawn = _drawn_version(client.get("/console/profiles/p_down").text)
            cluster.stop()
            verdict = {"csrf": csrf, "expected_version": drawn, **VERDICT}
            answers = {
                "page": client.get("/console/queue"),
                "verdict": client.post("/console/profiles/p_down/review", data=verdict),
            }
        origin = {"Origin": served.url}
        with httpx.Client(base_url=served.url, headers=origin, timeout=30) as fresh:
            answers["sign-in"] = fresh.post("/console/sign-in", data={"token": unseen[0]})
            fresh.cookies.set(COOKIE, sessions[0])
            answers["first page"] = fresh.get("/console/queue")
            fresh.cookies.set(COOKIE, sessions[1])
            answers["first verdict"] = fresh.post(
                "/console/profiles/p_down/review", data={**verdict, "csrf": form_token(sessions[1])}
            )
        for what, answer in answers.items():
            assert answer.status_code == 503, (what, answer.text)
            assert answer.headers["content-type"].startswith("text/html"), (what, answer.text)
            assert answer.headers["retry-after"].isdigit(), (what, answer.headers)
            for name, value in HEADERS.items():
                assert answer.headers.get(name) == value, (what, name, answer.headers)
            assert "Not done" in answer.text, (what, answer.text)
    finally:
        served.stop()


def test_an_overdue_lease_is_shown_as_the_command_line_shows_it(served: Served) -> None:
    """rev41: a lease past its deadline, not yet swept, showed as plain "leased" on the queue
    and the profile's page, where ``custody status`` says "leased (overdue)": both say so."""
    register(served, "p_late")
    with served.client(Role.WORKER) as worker:
        body = {"run_id": "run-1", "task_type": "t", "ttl_seconds": 1}
        assert worker.post("/v1/profiles/p_late/checkout", json=body).status_code == 201
    time.sleep(1.5)
    with _signed_in(served) as (client, _):
        queue = client.get("/console/queue").text
        page = client.get("/console/profiles/p_late").text
    row = re.search(r'<a href="/console/profiles/p_late">p_late</a></td>\s*<td>(.*?)</td>', queue)
    assert row is not None, queue
    assert re.sub(r"<[^>]+>", "", row[1]) == "leased (overdue)", row[1]
    assert '<span class="state leased" id="state">leased (overdue)</span>' in page, page[:2000]
    assert "this one is leased (overdue)." in page
