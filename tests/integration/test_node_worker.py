"""The TypeScript client and the example Node worker (clients/typescript) against a real
``custody serve``: its types checked against the service's /openapi.json, then ``npm test``
run with the service's URL and tokens, and the ledger's events read back afterwards.

Needs Node 20 and npm on PATH and ``npm ci --prefix clients/typescript`` done (scripts/test.sh
does it); a missing piece fails the test, naming it, rather than skipping it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from serving import Served, serve

from ledger import Ledger, ProfileState, RegisterProfile, Role

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
PROFILES = ("node_clean", "node_crash", "node_revoked")
NPM_SECONDS = 300

pytestmark = pytest.mark.slow


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert shutil.which(args[0]), f"{args[0]} is not on PATH (Node 20 and npm are needed)"
    assert (CLIENT / "node_modules").is_dir(), "run: scripts/bootstrap.sh --with-node"
    return subprocess.run(
        args,
        cwd=CLIENT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=NPM_SECONDS,
        check=False,
    )


def _serve(url: str) -> Iterator[Served]:
    Ledger.init(url).close()
    running = serve(url)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def sqlite_served(tmp_path: Path) -> Iterator[Served]:
    """``custody serve`` on a fresh SQLite store with a token per role."""
    yield from _serve(f"sqlite:///{tmp_path / 'custody.db'}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """``custody serve`` on a fresh store of each kind with a token per role."""
    if request.param == "sqlite":
        yield from _serve(f"sqlite:///{tmp_path / 'custody.db'}")
    else:
        yield from _serve(request.getfixturevalue("pg_url"))


def test_the_client_types_agree_with_the_service(sqlite_served: Served) -> None:
    """clients/typescript/src/openapi.ts is what openapi-typescript generates from the
    service's own /openapi.json now, and tsc accepts the client against it: a field the
    service renames or drops fails here, not in a worker in production."""
    check = _run(["node", "scripts/openapi-types.mjs", "check", sqlite_served.url])
    assert check.returncode == 0, check.stderr + check.stdout
    typed = _run(["npx", "--no-install", "tsc", "-p", "tsconfig.json", "--noEmit"])
    assert typed.returncode == 0, typed.stdout + typed.stderr


def _register(store_url: str, profiles_dir: Path) -> None:
    with Ledger.open(store_url) as ledger:
        for profile_id in PROFILES:
            ledger.handle(
                RegisterProfile(
                    profile_id=profile_id,
                    account_id="account_node",
                    proxy_id="proxy_node",
                    user_data_dir=str(profiles_dir / profile_id),
                )
            )


def _events(ledger: Ledger, profile_id: str) -> list[Any]:
    return list(ledger.history(profile_id))


def _of(events: list[Any], event_type: str) -> list[Any]:
    return [e for e in events if e.event_type == event_type]


@pytest.mark.browser
def test_the_example_node_worker_clean_crashed_and_revoked(
    any_served: Served, tmp_path: Path
) -> None:
    """``npm test`` drives the example worker through a clean run, a crash after a mutating
    step and a revocation mid-run (its own assertions: the page's traffic stops within 2 s),
    and the ledger holds what each should leave: a clean release (its URL without the page's
    password) with the screenshot's sha256, a failed release after ``submit_order`` and the
    profile blocked as the policy says, an operator's revocation and no release by the
    worker."""
    profiles, evidence, results = tmp_path / "profiles", tmp_path / "evidence", tmp_path / "r.json"
    _register(any_served.store_url, profiles)
    proxies = tmp_path / "proxies.json"  # the worker must resolve the profiles' proxy id
    proxies.write_text(json.dumps({"proxy_node": None}))
    env = {
        "CUSTODY_PROXIES": str(proxies),
        "CUSTODY_URL": any_served.url,
        "CUSTODY_WORKER_TOKEN": any_served.tokens[Role.WORKER],
        "CUSTODY_OPERATOR_TOKEN": any_served.tokens[Role.OPERATOR],
        "CUSTODY_PROFILES_DIR": str(profiles),
        "CUSTODY_EVIDENCE_DIR": str(evidence),
        "CUSTODY_RESULTS": str(results),
        "CHROMIUM": "/usr/bin/chromium",
    }
    tested = _run(["npm", "test"], env)
    assert tested.returncode == 0, tested.stdout[-6000:] + tested.stderr[-3000:]
    assert "# SKIP" not in tested.stdout, "the tests against the service were skipped"
    seen = json.loads(results.read_text())

    with Ledger.open(any_served.store_url) as ledger:
        clean = _events(ledger, "node_clean")
        (released,) = _of(clean, "lease_release_requested")
        assert released.outcome == "success"
        assert released.final_url.endswith("/done")
        assert "s3cret-pw" not in repr(clean), "the page's password reached the ledger"
        shot = Path(released.screenshot)
        assert shot.is_relative_to(evidence / "node_clean")
        assert hashlib.sha256(shot.read_bytes()).hexdigest() == released.screenshot_sha256
        assert _of(clean, "lease_released_cleanly")
        assert ledger.view("node_clean").state is ProfileState.AVAILABLE
        assert (profiles / "node_clean").is_dir(), "the browser ran on the registered directory"

        crash = _events(ledger, "node_crash")
        (failed,) = _of(crash, "lease_release_requested")
        assert failed.outcome == "failure"
        assert "crashed after submit_order" in (failed.envelope.reason or "")
        assert [b.step for b in _of(crash, "lease_heartbeat") if b.mutating] == ["submit_order"]
        state = ledger.view("node_crash").state
        assert state.value == seen["crash"]["why"]["state"]
        assert state in (ProfileState.QUARANTINED, ProfileState.REVIEW_REQUIRED)

        revoked = _events(ledger, "node_revoked")
        assert [e.cause for e in _of(revoked, "lease_revoked")] == ["force_release"]
        assert _of(revoked, "lease_release_requested") == []
        assert ledger.view("node_revoked").state.value == seen["revoked"]["why"]["state"]
    assert seen["revoked"]["lastRequestAfterRevocationMs"] <= 2000


@pytest.fixture(scope="module")
def worker_js() -> Path:
    """The example worker as tsc builds it from the tree's source now: a dist/ left from an
    earlier build would run another worker than the one under test."""
    built = _run(["npm", "run", "build"])
    assert built.returncode == 0, built.stdout + built.stderr
    return CLIENT / "dist" / "examples" / "worker.js"


def test_the_example_node_worker_refuses_settings_it_cannot_send_with(worker_js: Path) -> None:
    """A token pasted with a curly quote, or a service URL holding a password, is bad input:
    exit 2 at once with one line that shows neither (rev32: every request failed before it was
    sent, was taken for a lost answer and resent for the checkout's TTL, then exit 6 with the
    token or the password printed). Nothing listens at the URL: nothing is ever sent."""
    worker = str(worker_js)
    for url, token, secret in (
        ("http://127.0.0.1:9", "cst_sekr\u2019", "sekr"),
        ("http://u:pw-sekr@127.0.0.1:9", "cst_token", "pw-sekr"),
    ):
        env = {"CUSTODY_URL": url, "CUSTODY_TOKEN": token}
        ran = _run(["node", worker, "--profile", "p1", "--url", "http://127.0.0.1:9/"], env)
        assert ran.returncode == 2, ran.stdout + ran.stderr
        (line,) = ran.stdout.splitlines()
        assert "bad_input" in json.loads(line), line
        assert secret not in ran.stdout + ran.stderr


def test_the_example_node_worker_exits_as_the_command_line_when_nothing_is_leased(
    sqlite_served: Served, worker_js: Path
) -> None:
    """Every refusal before a lease exists exits with the command line's code for it, in one
    JSON line and no stack trace (rev33: each exited 1, the code of a task released as a
    failure; a missing --profile or --url with Node's stack trace): an unknown profile, a
    malformed profile id (one holding a '/' too, or a dot segment, "." or "..", which the
    client refuses before sending: rev38, it reached no resource of its own and exited 1) and
    a missing, unknown or malformed option are bad input, 2; a token that is unknown, or not a
    worker's, may not check out, 7 (Forbidden). Nothing is written to the ledger."""
    _register(sqlite_served.store_url, Path("/nonexistent"))
    worker = str(worker_js)
    ours, operator = sqlite_served.tokens[Role.WORKER], sqlite_served.tokens[Role.OPERATOR]
    page, leasable = ["--url", "http://127.0.0.1:9/"], ["--profile", "node_clean"]
    for args, token, code, key, says in (
        (["--profile", "nope", *page], ours, 2, "bad_input", "'nope'"),
        (["--profile", "profile shop 17", *page], ours, 2, "bad_input", "profile_id"),
        (["--profile", "profile shop/17", *page], ours, 2, "bad_input", "profile shop/17"),
        (["--profile", ".", *page], ours, 2, "bad_input", 'profile_id: "."'),
        (["--profile", "..", *page], ours, 2, "bad_input", 'profile_id: ".."'),
        (leasable, ours, 2, "bad_input", "--url is required"),
        (page, ours, 2, "bad_input", "--profile is required"),
        ([*leasable, *page, "--bogus"], ours, 2, "bad_input", "--bogus"),
        ([*leasable, "--url", "dashboard.html"], ours, 2, "bad_input", "--url"),
        ([*leasable, *page, "--linger", "soon"], ours, 2, "bad_input", "--linger"),
        ([*leasable, *page], "cst_unknown", 7, "forbidden", "unknown or revoked"),
        ([*leasable, *page], operator, 7, "forbidden", "worker role"),
    ):
        env = {"CUSTODY_URL": sqlite_served.url, "CUSTODY_TOKEN": token}
        ran = _run(["node", worker, *args], env)
        assert (ran.returncode, ran.stderr) == (code, ""), (args, ran.stdout, ran.stderr)
        (line,) = ran.stdout.splitlines()
        assert says in json.loads(line)[key], (args, line)
    with Ledger.open(sqlite_served.store_url) as ledger:
        assert [e.event_type for e in _events(ledger, "node_clean")] == ["profile_registered"]
