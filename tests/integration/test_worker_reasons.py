"""The worker SDK's release when things go wrong around it, against a real ledger (in memory):
reasons derived from any exception are storable and short, the task's exception is never
replaced, a report the ledger refuses still ends the lease, and unstorable page URLs are
escaped."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from worker_scene import history, leases_on, sdk_settings, sdk_store

from ledger import InvalidInput, Release
from ledger._domain import events as ev
from workers import BrowserSettings, _renewal as renewal, aio


@pytest.fixture
def store(tmp_path: Path) -> str:
    return sdk_store(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> BrowserSettings:
    return sdk_settings(tmp_path)


class Unprintable(Exception):
    """An exception whose message cannot be read."""

    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def _storable(text: str) -> bool:
    """What every store keeps as given: no NUL, no lone surrogate (valid UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            RuntimeError("cannot read " + os.fsdecode(b"caf\xe9\x00.txt") + ": gone"),
            "RuntimeError: cannot read caf\\udce9\\x00.txt: gone",
        ),
        (Unprintable(), "Unprintable"),
        (
            RuntimeError("Failed to launch chromium\n" + " --flag" * 400),
            "RuntimeError: Failed to launch chromium",
        ),
        (RuntimeError("x" * 5000), "RuntimeError: " + "x" * 183 + "..."),
        (
            RuntimeError(
                "Page.goto: net::ERR_UNSAFE_PORT at http://shopuser:S3cretPassw0rd@127.0.0.1:1/"
                "login (from https:\\\\u:p@shop.example/a, mail bob@example.com)"
            ),
            "RuntimeError: Page.goto: net::ERR_UNSAFE_PORT at http://127.0.0.1:1/login (from "
            "https:\\\\shop.example/a, mail bob@example.com)",
        ),
    ],
    ids=["undecodable_file_name", "unprintable", "launch_command_line", "long", "password"],
)
def test_the_reason_derived_from_an_exception_is_storable_and_short(
    store: str, settings: BrowserSettings, error: Exception, reason: str
) -> None:
    """Whatever the exception says (a file name that is not UTF-8 with a NUL, a message that
    cannot be read, Chromium's 2 KB command line, 5,000 characters), the release's reason is
    its type and first line, escaped and at most 200 characters; the lease is released and the
    user's very exception propagates."""
    with (
        leases_on(store, settings) as leases,
        pytest.raises(type(error)) as raised,
        leases.checkout("p1", run_id="run_1", task_type="t"),
    ):
        raise error
    assert raised.value is error
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.outcome == "failure"
    assert release.envelope.reason == reason
    assert _storable(release.envelope.reason)
    assert len(release.envelope.reason) <= 200


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_release_that_fails_never_hides_the_users_exception(
    store: str,
    settings: BrowserSettings,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    flavour: str,
) -> None:
    """The release itself fails (not for the store's sake): the user's exception still
    propagates, carrying a note that says the lease was not released and why, and the failure
    is logged; on both flavours."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("release broke")

    monkeypatch.setattr(renewal, "release", broken)

    async def run_async() -> None:
        async with (
            aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases,
            leases.checkout("p1", run_id="run_1", task_type="t"),
        ):
            raise ValueError("the task's own error")

    def run_sync() -> None:
        with leases_on(store, settings).checkout("p1", run_id="run_1", task_type="t"):
            raise ValueError("the task's own error")

    with pytest.raises(ValueError, match="the task's own error") as raised:
        asyncio.run(run_async()) if flavour == "async" else run_sync()
    notes = getattr(raised.value, "__notes__", [])
    assert any("not released" in n and "release broke" in n for n in notes), notes
    assert "release broke" in caplog.text


def test_a_release_the_ledger_refuses_is_sent_again_with_what_it_can_take(
    store: str, settings: BrowserSettings, tmp_path: Path
) -> None:
    """A release refused as bad input (here: any final URL) is sent again without what the
    ledger refused, saying so as the evidence problem: the lease always ends, and never
    cleanly on an unproven report; evidence.json keeps what was released."""
    leases = leases_on(store, settings)
    real = leases.ledger.handle

    def picky(command: Any) -> Any:
        if isinstance(command, Release) and command.final_url is not None:
            raise InvalidInput("final_url", "not this one")
        return real(command)

    leases.ledger.handle = picky  # type: ignore[method-assign]
    with leases.checkout("p1", run_id="run_1", task_type="t") as lease:
        lease.visited("http://127.0.0.1:9/done")
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.final_url is None
    assert release.evidence_problem is not None
    assert "final_url" in release.evidence_problem
    assert lease.result is not None
    assert (lease.result.profile_state, lease.result.cause) == (
        "review_required",
        "evidence_failed",
    )
    [kept_at] = (tmp_path / "evidence/p1").glob("lease-1-*/evidence.json")
    kept = json.loads(kept_at.read_text())
    assert (kept["final_url"], kept["evidence_problem"]) == (None, release.evidence_problem)


def test_pages_with_unstorable_urls_are_escaped_not_refused(
    store: str, settings: BrowserSettings
) -> None:
    """A page URL holding a NUL or an undecodable byte is escaped before any heartbeat or
    release carries it, so the lease is renewed and released, not lost over a URL."""
    with (
        leases_on(store, settings) as leases,
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        lease.visited("http://127.0.0.1:9/a\x00b/" + os.fsdecode(b"\xff"))
        lease.step("looked")
    beats = [e for e in history(store) if isinstance(e, ev.LeaseHeartbeat)]
    assert beats[-1].url == "http://127.0.0.1:9/a\\x00b/\\udcff"
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.final_url == beats[-1].url


def test_an_expected_failure_the_ledger_would_refuse_is_bad_input_at_once(
    store: str, settings: BrowserSettings
) -> None:
    """An empty, invisible or over-long expected failure reason is refused where the task
    gives it (not at the release, where it would cost the lease); a NUL in it is escaped."""
    with (
        leases_on(store, settings) as leases,
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        # rev29: a zero-width space, Braille's blank or a bell say nothing to the ledger
        # (ledger.rules.says_something) and were taken here, the release then refused.
        for bad in (" ", "x" * 2001, "\u200b", "\u2800", "\x07", " \u2060\ufe0f"):
            with pytest.raises(InvalidInput, match="reason"):
                lease.expected_failure(bad)
        lease.expected_failure("closed\x00")
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert (release.outcome, release.envelope.reason) == ("expected_failure", "closed\\x00")


def test_two_stores_on_one_host_never_write_over_each_others_evidence(tmp_path: Path) -> None:
    """rev26: two stores (staging and production, or a store made again) each lease a profile
    first with token 1, and the evidence went to ``<evidence_dir>/p1/lease-1/`` for both:
    store B's run replaced the evidence.json and screenshot store A's release names. Each
    lease's directory names its start too; both records stay as released."""
    settings = sdk_settings(tmp_path)  # one evidence directory, as on one host
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        store = sdk_store(tmp_path / name)
        with leases_on(store, settings) as leases:
            with leases.checkout("p1", run_id=f"run_{name}", task_type="t") as lease:
                lease.visited(f"https://{name}.example/done")
            assert lease.lease.lease_id == "lease-1@p1"
    directories = sorted((tmp_path / "evidence/p1").iterdir())
    assert len(directories) == 2, directories
    runs = sorted(json.loads((d / "evidence.json").read_text())["run_id"] for d in directories)
    assert runs == ["run_a", "run_b"]
