"""The Node worker SDK (clients/typescript, ``ProfileLeases``) against a real ``custody serve``.

Guarantees (docs/how-to/node-worker.md, "The worker"): "leaving the task releases the lease
[...] an exception as a failure naming it (then thrown on)"; the lease is "watched with the
service's long poll" and "when it is lost (an operator's force-release, ...), every request of
the context is aborted at once". Quality bar: nothing a user did is ever lost; what the SDK
makes from text nobody typed (an exception's message) is made storable, as the Python SDK does
(``workers._reasons.storable``).

Before the fix (found by review7):

- a task that throws an ``Error`` whose message holds a NUL, or whose first line the SDK cuts
  at 2,000 UTF-16 code units in the middle of an emoji (a lone surrogate), is never released:
  the release is refused 422 ``invalid reason`` and ``checkout`` throws that ``CustodyError``
  instead of the task's error; the lease stays live until a sweep makes it stale (review).
  (``worker.ts`` ``settle``: ``firstLine(...).slice(0, MAX_REASON)`` with no ``storable``.)
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import built, run_node, serving, worker_env
from serving import Served

from ledger import Ledger, ProfileState, RegisterProfile
from ledger._domain.model import says_something
from workers._reasons import reason_of

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as running:
        yield running


FAILING_TASK = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
const message = process.env.KIND === "nul"
  ? "the page sent a byte \\u0000 we did not expect"
  : "x".repeat(1990) + "\\u{1F600}".repeat(10);
try {
  await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async () => { throw new Error(message); });
  console.log(JSON.stringify({ thrown: null }));
} catch (e) {
  console.log(JSON.stringify({ thrown: e.name, status: e.status ?? null,
    message: String(e.message).slice(0, 300) }));
}
"""


@pytest.mark.parametrize("kind", ["nul", "emoji-at-the-cut"])
def test_a_task_that_throws_is_released_as_a_failure_whatever_its_message(
    service: Served, tmp_path: Path, kind: str
) -> None:
    said = run_node(
        tmp_path,
        FAILING_TASK,
        worker_env(service, tmp_path, KIND=kind),
    )
    with Ledger.open(service.store_url) as ledger:
        state = ledger.view("p1").state
        types = [e.event_type for e in ledger.history("p1")]
    # The task's own error is thrown on, not the service's refusal of the release.
    assert said["thrown"] == "Error", said
    assert said["status"] is None, said
    # And the lease was released as a failure: not left live for a sweep to find.
    assert "lease_release_requested" in types, (state, types, said)
    assert state is not ProfileState.LEASED, (state, types, said)


EXPECTED = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
let said = {};
try {
  const lease = await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async (lease) => { lease.expectedFailure("the shop said \\u0000 out of stock"); });
  said = { outcome: lease.evidence?.outcome ?? null, state: lease.result?.profile_state ?? null };
} catch (e) {
  said = { thrown: `${e.name}: ${e.message}`.slice(0, 300) };
}
console.log(JSON.stringify(said));
"""


def test_an_expected_failure_whose_reason_holds_nul_is_released(
    service: Served, tmp_path: Path
) -> None:
    """The Python SDK escapes a NUL in ``expected_failure``'s reason (``workers._held``:
    "a NUL or a lone surrogate in it is escaped"); the Node SDK's ``expectedFailure`` takes it
    as it is, and its release is then refused 422: ``checkout`` throws and the lease is left
    live."""
    said = run_node(
        tmp_path,
        EXPECTED,
        worker_env(service, tmp_path),
    )
    with Ledger.open(service.store_url) as ledger:
        state = ledger.view("p1").state
    assert "thrown" not in said, said
    assert said["outcome"] == "expected_failure", said
    assert state is not ProfileState.LEASED, (state, said)


UNWRITABLE = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
let said = {};
try {
  const lease = await leases.checkout("p1", { run_id: "run_1", task_type: "t", ttl_seconds: 60 },
    async (lease) => { await lease.step("done", { safe: true }); });
  said = { problem: lease.evidence?.evidence_problem ?? null };
} catch (e) {
  said = { thrown: `${e.name}: ${e.message}`.slice(0, 300) };
}
console.log(JSON.stringify(said));
"""


def test_an_evidence_directory_that_cannot_be_written_is_said_and_the_lease_released(
    service: Served, tmp_path: Path
) -> None:
    """A file where the profile's evidence directory must go: the release says evidence.json
    could not be written (its evidence problem), as the Python SDK does. rev27: ``checkout``
    threw ENOTDIR before the release, and the lease was left live for the sweep."""
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    (evidence / "p1").write_text("in the way")
    said = run_node(tmp_path, UNWRITABLE, worker_env(service, tmp_path))
    with Ledger.open(service.store_url) as ledger:
        state = ledger.view("p1").state
    assert "thrown" not in said, said
    assert said["problem"].startswith("evidence.json could not be written: Error: ENOTDIR"), said
    assert state is not ProfileState.LEASED, (state, said)


NAMED = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
const thrown = [];
for (const [n, [name, message]] of JSON.parse(process.env.CASES).entries()) {
  try {
    await leases.checkout(`p${n}`, { run_id: `run_${n}`, task_type: "t", ttl_seconds: 60 },
      async () => { const error = new Error(message); error.name = name; throw error; });
  } catch (e) {
    thrown.push(e.name);
  }
}
console.log(JSON.stringify({ thrown }));
"""

# (the error's name, its message): what a Python task raising ``name(message)`` is named by.
CASES = [
    ("Error", "x" * 300),  # past 200: cut, and the cut marked
    ("TimeoutError", "\n\n  the page never loaded  \nsecond line"),  # blank lines first
    ("Error", ""),  # no message: the name alone
    ("Error", " \t "),  # nothing but what strip() strips
    ("Error", "x" * 190 + "\U0001f600" * 20),  # a character outside the BMP at the cut
    ("Error", "one\u2028two"),  # a line break of Python's that is not \n
    ("Error", "a byte \x00 we did not expect"),  # NUL: escaped
    ("SubmitError", "ends with the next line\r\nnot this"),
]


def test_a_failure_is_named_by_the_node_worker_as_by_the_python_worker(tmp_path: Path) -> None:
    """docs/how-to/node-worker.md: "As in Python: ... an exception as a failure naming it";
    the Python SDK names it ``Type: first line``, escaped, at most 200 characters
    (``workers._reasons.reason_of``). The Node SDK cut the message's first line at 2,000
    characters, without Python's stripping or its cut mark, and kept a blank first line."""
    profiles = [
        RegisterProfile(profile_id=f"p{n}", account_id="a1", proxy_id="x1")
        for n in range(len(CASES))
    ]
    with serving(tmp_path, *profiles) as service:
        said = run_node(tmp_path, NAMED, worker_env(service, tmp_path, CASES=json.dumps(CASES)))
        with Ledger.open(service.store_url) as ledger:
            reasons = [
                next(
                    e.envelope.reason
                    for e in ledger.history(f"p{n}")
                    if e.event_type == "lease_release_requested"
                )
                for n in range(len(CASES))
            ]
    assert said["thrown"] == [name for name, _ in CASES]
    expected = [reason_of(type(name, (Exception,), {})(message)) for name, message in CASES]
    assert reasons == expected


REASONS = """
import { reasonOf } from "CLIENT_TEXT";
const said = JSON.parse(process.env.MESSAGES).map((message) => {
  const error = new Error(message);
  error.name = "RuntimeError";
  return reasonOf(error);
});
console.log(JSON.stringify({ said }));
"""
PASSWORDS = [
    "Page.goto: net::ERR_UNSAFE_PORT at http://shopuser:S3cretPassw0rd@127.0.0.1:1/login",
    "from https:\\\\u:p@shop.example/a and ftp:/u:p@host/x",
    "mail bob@example.com, see mailto:bob@example.com or https://user@host/",
    "connect postgresql://custody:secret@db.internal:5432/custody failed",
]


def test_an_errors_url_password_is_left_out_of_the_reason_as_in_python(tmp_path: Path) -> None:
    """A reason derived from an error leaves out the user and password of every URL the error
    names (an exception names the URL it failed on, and the ledger is append-only), exactly as
    the Python SDK's reason_of does."""
    script = REASONS.replace("CLIENT_TEXT", (built().parent / "text.js").as_uri())
    said = run_node(tmp_path, script, {"MESSAGES": json.dumps(PASSWORDS)})["said"]
    assert said == [reason_of(RuntimeError(message)) for message in PASSWORDS]
    assert not [s for s in said if "S3cret" in s or ":p@" in s or "secret@" in s]


BLANKS = """
import { blank } from "CLIENT_TEXT";
const blanks = [];
for (let code = 0; code <= 0x10ffff; code += 1) {
  if (blank(String.fromCodePoint(code))) blanks.push(code);
}
console.log(JSON.stringify({ blanks }));
"""


def test_the_worker_refuses_at_once_every_text_the_ledger_takes_as_saying_nothing(
    tmp_path: Path,
) -> None:
    """The Node SDK's ``blank`` (what ``expectedFailure`` refuses with a RangeError at once) is
    the ledger's ``says_something`` turned round, character by character, for every character
    this Python's Unicode knows (a character it does not know shows something to the ledger;
    Node's newer Unicode may know it). rev29: the SDK tested only what ``strip()`` strips, so
    ``expectedFailure("\\u200b")`` was taken, the release refused 422 and the lease left held
    until the sweep sent the profile to review."""
    script = BLANKS.replace("CLIENT_TEXT", (built().parent / "text.js").as_uri())
    node_blank = set(run_node(tmp_path, script, {})["blanks"])
    known = [code for code in range(0x110000) if unicodedata.category(chr(code)) != "Cn"]
    ledger_blank = {code for code in known if not says_something(chr(code))}
    assert {0x200B, 0x2800, 0x07, 0x1C, 0xFEFF} <= ledger_blank
    differ = sorted(code for code in known if (code in node_blank) != (code in ledger_blank))
    assert not differ, [f"U+{code:04X}" for code in differ[:20]]


URLS = """
import { carriesPassword, withoutNestedPasswords, withoutPasswords, withoutUserinfo }
  from "CLIENT_TEXT";
import { Progress } from "CLIENT_GUARD";
const said = JSON.parse(process.env.URLS).map((url) => {
  let password = "";
  try { password = new URL(url).password; } catch {}
  // What a browser follows from a login page's ?next= (decoded once), against the page's URL
  let next = "";
  try { next = new URL(new URL(url).searchParams.get("next") ?? "", url).password; } catch {}
  const progress = new Progress();
  progress.navigated(url);
  return { wu: withoutUserinfo(url), wp: withoutPasswords(url), password, next,
    wn: withoutNestedPasswords(url), cp: carriesPassword(url), recorded: progress.url };
});
// Every character past ASCII escaped: Python splits lines at U+0085 and U+2028, JSON not.
const ascii = (c) => `\\\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
console.log(JSON.stringify({ said }).replace(/[\u007f-\uffff]/g, ascii));
"""

# A sign-in's redirect (host and port) before the next parameter's e-mail address (rev43's
# review: read as a nested URL's user and password, as written and encoded).
_SIGN_INS = (
    "https://idp.example/auth?client_id=x&redirect_uri=http%3A%2F%2Flocalhost%3A8080"
    "&login_hint=bob%40corp.com&response_type=code",
    "https://idp.example/auth?redirect_uri=http://localhost:8080&login_hint=bob@corp.com",
    "https://a.example/?ref=http://host:8080;user=a@b.com",
)

_URL_PARTS = ("http", "foo", "file", "HTTPS", ":", "/", "//", "\\", "u", "p", "@", "host", "?", "#",
              "ws", "\t", "\n", " ", "\x01", "\x1c", "\xa0", "\x85", "\ufeff", "%40",
              "%3A", "%2f", "%25", "%62", "?next=", "x", "&", ";", "%26", ":80", "%09")  # fmt: skip


def test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would(
    tmp_path: Path,
) -> None:
    """Random URLs and the spellings rev30's second reading found, through both SDKs' rules:
    the Node SDK cuts a URL's userinfo and a text's passwords exactly as the ledger's
    ``without_userinfo`` and ``without_passwords`` do; whatever password WHATWG's URL parser
    (Node's ``new URL``, Chromium's) reads in a URL, the ledger refuses it; and what the SDKs
    record of it the ledger takes. Before: ``foo://u:p\\\\x@host`` went past the ledger (a
    backslash ends no authority of a scheme that is not special), the Node SDK kept a
    password holding "\\ufeff" that Python cut, and ``https:alice@//bob:pw@host/`` was
    recorded as ``https://bob:pw@host/``, which the ledger refuses. rev43: both SDKs record a
    URL without the password of a URL nested in it (``?next=http://bob:pw@intranet/``, or
    percent-encoded), as a reason leaves it out, and the ledger refuses one as Node reads it.
    rev48: a nested URL with a tab or line break among its slashes (``?next=http:%2F%09%2Fbob
    %3Apw@intranet/``), whose password Node's URL parser reads from ``?next=``, went past both
    SDKs' rules and the ledger."""
    import random

    from ledger.rules import (
        carries_password,
        without_nested_passwords,
        without_passwords,
        without_userinfo,
    )
    from workers._guard import recorded_url

    rng = random.Random(30)
    urls = ["".join(rng.choice(_URL_PARTS) for _ in range(rng.randint(3, 12))) for _ in range(3000)]
    urls += [
        "foo://u:p\\x@host/a",
        "https:alice@//bob:pw@host/",
        "https://u:p\ufeffq@host/a",
        "https://u:p\x1cq@host/a",
        "http:/\n/alice:pw@host/",
        "\x01https://bob:pw@host/",
        "view-source:https://u:pw@host/",
        "BLOB:view-source:foo://u:pw@host/",
        "view-source: http://u:pw@host/",  # rev31: spaces or controls before the inner URL
        "VIEW-SOURCE: \x01blob:  https://u:pw@host/",
        "//u:pw@host/",  # rev31: scheme-relative
        "///u:pw@host/",
        "//@" * 40 + "h/",  # rev31 reread2: cut at most 16 times
        "http:" + "@/" * 40,
        "file:///notes:v2@home.html",  # no userinfo in a file URL
        *_SIGN_INS,
        "https://s/?next=http://bob:p&ss@intranet/ and https://bob:pa;ss@intranet/",
        "https://s/;u=http://bob:p;w@h/?next=http://bob:pw@h&x=http://al:p;w@g/",
        "https://s/?next=http://bob:pa&ss=1@intranet/",
        "https://s/?next=http%3A%2F%2Fbob%3A1234%26a%3D1%40intranet",
        "\\\\\\u:pw@host/",
        "\\\\u:pw@host/",
        "failed at http://alice@corp.example:pw@host/ twice",  # rev31: a user holding an "@"
        "at ws:tok@host/ and foo://tok@host/ but mailto:joe@host",  # rev33: a user, no password
        "failed at http://ghp_SECRET@127.0.0.1:1/x",
        # rev43: a URL nested in the page's, as written and percent-encoded (twice, too)
        "https://a.example/login?next=http://bob:hunter2@intranet.example/#access_token=T",
        "https://a.example/login?next=http%3A%2F%2Fbob%3Ahunter2%40intranet.example%2F",
        "https://a.example/?next=https%3A%2F%2Fsso%2F%3Fnext%3Dhttp%253A%252F%252Fb%253Ap%2540i",
        "failed at https://a.example/?next=http%3A%2F%2Fbob%3Ahunter2%40intranet/ twice",
    ]
    end = len(urls)  # the spellings above end here
    # rev48: a tab or a line break before, between or after the slashes of a URL nested in the
    # page's, which a browser drops (Node's URL parser reads the password: ``next``), and
    # as written in a failure's reason
    tabbed = [
        "https://a.example/login?next=http:%2F%09%2Fbob%3Ahunter2@intranet/",
        "https://a.example/login?next=http:%2F%0A%2Fbob%3Ahunter2@intranet/",
        "https://a.example/login?next=http:%2F%0D%2Fbob%3Ahunter2@intranet/",
        "https://a.example/login?next=http:%2F%09%09%2Fbob%3Ahunter2@intranet/",
        "https://a.example/login?next=http:%09//bob%3Ahunter2@intranet/",
        "https://a.example/login?next=http%3A%2F%09%2Fbob%3Ahunter2%40intranet%2F",
        "https://a.example/login?next=ws://%0Abob%3Ahunter2@intranet/",
        "https://a.example/login?next=//%09bob%3Ahunter2@intranet/",
        # rev48's review: a tab or a line break anywhere, which a browser drops as well
        "https://a.example/login?next=http%09://bob:hunter2@intranet/",
        "https://a.example/login?next=http%3A%2F%2Fbob%3Ahunter%092%40intranet",
        "https://a.example/login?next=%2F%2Fbob%3Ahunter%0A2%40intranet",
        "https://a.example/login?next=%2F%2F%09%2Fbob%3Ahunter2%40intranet",
        "https://a.example/login?next=ht%09tp:bob:hunter2@intranet/",
    ]
    urls += tabbed
    urls += [
        "https://a.example/login?next=http:%2F%2509%2Fbob%253Ahunter2@intranet/",
        "https://a.example/login?next=http%3A%2F%09%2FTOKEN%40intranet%2F",
        "https://idp.example/auth?redirect_uri=http%3A%2F%09%2Flocalhost%3A8080&login_hint=b%40c.com",
        "failed at http:/\t/bob:hunter2@intranet/ and ws:\n//TOKEN@intranet/",
    ]
    script = URLS.replace("CLIENT_TEXT", (built().parent / "text.js").as_uri())
    script = script.replace("CLIENT_GUARD", (built().parent / "guard.js").as_uri())
    said = run_node(tmp_path, script, {"URLS": json.dumps(urls)})["said"]
    for url, node in zip(urls, said, strict=True):
        assert node["wu"] == without_userinfo(url), url
        assert node["wp"] == without_passwords(url), url
        assert node["wn"] == without_nested_passwords(url), url
        assert node["cp"] == carries_password(url), url
        assert not node["password"] or carries_password(url), url
        assert not node["next"] or carries_password(url), url
        assert node["recorded"] == recorded_url(url), url
        assert not carries_password(node["recorded"]), url
    answered = dict(zip(urls, said, strict=True))
    for url in tabbed:  # rev48: a browser reads the password, the ledger refuses it
        assert answered[url]["next"] == "hunter2", url
        assert answered[url]["cp"], url
        assert "hunter2" not in answered[url]["recorded"], url
    assert not answered[urls[-2]]["cp"]
    assert answered[urls[-2]]["recorded"] == urls[-2]
    assert (
        answered[urls[-3]]["recorded"] == "https://a.example/login?next=http%3A%2F%09%2Fintranet%2F"
    )
    assert answered[urls[-1]]["wp"] == "failed at http:/\t/intranet/ and ws:\n//intranet/"
    for url in _SIGN_INS:  # rev43's review: no password in them, recorded as they are
        assert (answered[url]["recorded"], answered[url]["cp"]) == (url, False), url
    # rev43's second review: a password holding a query's separator is one, nested or not
    semi = answered["https://s/?next=http://bob:p&ss@intranet/ and https://bob:pa;ss@intranet/"]
    assert semi["wp"] == "https://s/?next=http://intranet/ and https://intranet/"
    matrix = answered["https://s/;u=http://bob:p;w@h/?next=http://bob:pw@h&x=http://al:p;w@g/"]
    assert matrix["recorded"] == "https://s/;u=http://h/?next=http://h&x=http://g/"
    assert answered["https://s/?next=http://bob:pa&ss=1@intranet/"]["recorded"] == (
        "https://s/?next=http://intranet/"
    )
    assert answered["https://s/?next=http%3A%2F%2Fbob%3A1234%26a%3D1%40intranet"]["recorded"] == (
        "https://s/?next=http%3A%2F%2Fintranet"
    )
    assert said[end - 7]["wp"] == "failed at http://host/ twice"
    assert said[end - 5]["wp"] == "failed at http://127.0.0.1:1/x"
    nested = [node["recorded"] for node in said[end - 4 : end - 1]]
    assert nested == [
        "https://a.example/login?next=http://intranet.example/#access_token=T",
        "https://a.example/login?next=http%3A%2F%2Fintranet.example%2F",
        "https://a.example/?next=https%3A%2F%2Fsso%2F%3Fnext%3Dhttp%253A%252F%252Fi",
    ]
    assert said[end - 1]["wp"] == "failed at https://a.example/?next=http%3A%2F%2Fintranet/ twice"


LONG = """
import { reasonOf } from "CLIENT_TEXT";
const texts = ["a".repeat(1e6) + "@", "a:".repeat(5e5) + "@", "http://" + "a:".repeat(5e5) + "@",
  "a" + " ".repeat(1e6) + "b", "a" + "\\n".repeat(1e6)];
console.log(JSON.stringify({ said: texts.map((t) => reasonOf(new Error(t))) }));
"""


def test_the_node_sdk_cuts_a_long_message_s_passwords_in_time_linear_in_its_length(
    tmp_path: Path,
) -> None:
    """A thrown error whose one line runs to a million characters gives the Node SDK's reason
    at once, the Python SDK's reason (rev31: the pattern's backtracking took minutes, as it
    did in Python; and the reread: trimming a long run of spaces, 5 s at 100,000). The bound is
    generous: what it replaced needed minutes here."""
    from workers._reasons import reason_of

    script = LONG.replace("CLIENT_TEXT", (built().parent / "text.js").as_uri())
    said = run_node(tmp_path, script, {}, timeout=60)["said"]
    texts = ["a" * 10**6 + "@", "a:" * 500_000 + "@", "http://" + "a:" * 500_000 + "@"]
    texts += ["a" + " " * 10**6 + "b", "a" + "\n" * 10**6]  # rev31 reread: Node's first line
    Error = type("Error", (Exception,), {})  # noqa: N806 (named as JavaScript names it)
    assert said == [reason_of(Error(t)) for t in texts]
