"""The worker SDK against a real ledger (in memory), without a browser: how a lease ends, what
the release reports, when a lease is lost, and which launches are refused before any browser
starts (``NoBrowser`` fails the test if one is attempted)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from worker_scene import FakeClock, history, leases_on, sdk_settings, sdk_store

from ledger import (
    Checkout,
    CheckoutDenied,
    ForceRelease,
    InvalidInput,
    Ledger,
    RegisterProfile,
    StoreUnavailable,
)
from ledger._domain import events as ev
from workers import (
    BrowserSettings,
    LaunchRefused,
    LeaseLost,
    NoProfileAvailable,
    _hub as hub,
    aio,
)
from workers._profile_dir import MARKER


class NoBrowser:
    """A Playwright stand-in: the test fails if the SDK tries to launch anything."""

    @property
    def chromium(self) -> Any:
        raise AssertionError("a browser was launched")


@pytest.fixture
def store(tmp_path: Path) -> str:
    return sdk_store(tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> BrowserSettings:
    return sdk_settings(tmp_path)


def test_leaving_the_block_releases_with_what_the_worker_knows(
    store: str, settings: BrowserSettings, tmp_path: Path
) -> None:
    """A clean exit releases as success with the steps the ledger accepted; without a browser
    there is no final URL, so the rules send the profile to review. The heartbeat thread has
    ended before the release, and evidence.json keeps the record."""
    with (
        leases_on(store, settings) as leases,
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        assert lease.heartbeat_thread_alive
        lease.step("dashboard_loaded", safe=True)
    assert not lease.heartbeat_thread_alive
    assert lease.evidence is not None
    assert lease.result is not None
    assert (lease.evidence.outcome, lease.evidence.last_safe_step) == (
        "success",
        "dashboard_loaded",
    )
    assert lease.result.profile_state == "review_required"
    assert lease.result.cause == "unknown_final_url"
    [kept_at] = (tmp_path / "evidence/p1").glob("lease-1-*/evidence.json")
    kept = json.loads(kept_at.read_text())
    assert kept["lease_id"] == "lease-1@p1"
    assert kept["outcome"] == "success"
    types = [e.event_type for e in history(store)]
    assert types[-2:] == ["lease_release_requested", "review_requested"]
    assert "lease_heartbeat" not in types[types.index("lease_release_requested") :]


def test_pages_reported_without_a_browser_are_the_url_and_the_prompt(
    store: str, settings: BrowserSettings
) -> None:
    """lease.visited(url) does what a navigation does in a launched browser: the next
    heartbeat carries the URL, the last one is the final URL, and a verification page is the
    prompt seen, which sends the profile to review."""
    with (
        leases_on(store, settings) as leases,
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        lease.visited("http://127.0.0.1:9/dashboard")
        lease.step("dashboard_loaded", safe=True)
        lease.visited("http://127.0.0.1:9/verify/challenge")
        lease.visited("http://127.0.0.1:9/done")
    beats = [e for e in history(store) if isinstance(e, ev.LeaseHeartbeat)]
    assert beats[-1].step == "dashboard_loaded"
    assert beats[-1].url == "http://127.0.0.1:9/dashboard"
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert (release.final_url, release.prompt_seen) == ("http://127.0.0.1:9/done", True)
    assert lease.result is not None
    assert (lease.result.profile_state, lease.result.cause) == (
        "review_required",
        "verification_prompt",
    )


@pytest.mark.parametrize(
    "url",
    [
        "https:user:pw-s3cret@shop.example/a",  # a browser reads it with the slashes
        " https://user:pw-s3cret@shop.example/a",  # a leading space
        "https:\\\\user:pw-s3cret@shop.example/a",  # backslashes
        "ftp:/user:pw-s3cret@shop.example/a",
        "HTTPS://user:pw-s3cret@a:b@shop.example/a",
        "http:/\n/user:pw-s3cret@shop.example/a",  # rev30: what a browser takes out
        "\x01https://user:pw-s3cret@shop.example/a",
        "https://us\ter:pw-s3cret@shop.example/a",
    ],
)
def test_a_url_the_ledger_reads_a_password_in_is_reported_without_it(
    store: str, settings: BrowserSettings, url: str
) -> None:
    """lease.visited drops the userinfo the ledger's own rule reads (``carries_password``), so
    the heartbeat that carries the URL is taken and the lease kept. rev27: only
    ``scheme://user:pw@`` at the start was cleaned; these spellings made every later heartbeat
    refused ("must not carry a password") and ``lease.step`` raise InvalidInput."""
    with (
        leases_on(store, settings) as leases,
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        lease.visited(url)
        lease.step("next", safe=True)
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.final_url is not None
    assert release.final_url.endswith("shop.example/a")
    assert "pw-s3cret" not in repr(history(store))


def test_what_is_not_a_page_or_a_reason_is_refused_as_bad_input(
    store: str, settings: BrowserSettings
) -> None:
    """An empty URL (which the ledger refuses, so every later heartbeat was), None for a URL
    (TypeError) or for an expected failure's reason (AttributeError): InvalidInput naming the
    parameter, the lease kept and released as usual."""
    with (
        leases_on(store, settings) as leases,
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        for url in ("", "  ", None):
            with pytest.raises(InvalidInput, match="invalid url"):
                lease.visited(url)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="invalid reason"):
            lease.expected_failure(None)  # type: ignore[arg-type]
        lease.step("next", safe=True)
    assert lease.result is not None


def test_an_exception_releases_as_a_failure_naming_it(
    store: str, settings: BrowserSettings
) -> None:
    """The exception propagates; the release is a failure whose reason names it, and a
    mutating step no safe step confirmed quarantines the profile."""
    with (  # noqa: PT012
        leases_on(store, settings) as leases,
        pytest.raises(RuntimeError, match="boom"),
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        lease.step("submit_order", mutating=True)
        raise RuntimeError("boom")
    assert lease.result is not None
    assert lease.result.profile_state == "quarantined"
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.outcome == "failure"
    assert release.envelope.reason == "RuntimeError: boom"


def test_expected_failure_is_released_as_such(store: str, settings: BrowserSettings) -> None:
    """lease.expected_failure(reason) makes the release an expected failure with the reason."""
    with (
        leases_on(store, settings) as leases,
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        lease.expected_failure("out of stock")
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert (release.outcome, release.envelope.reason) == ("expected_failure", "out of stock")


@pytest.mark.parametrize("flavour", ["sync", "asyncio"])
def test_an_evidence_directory_that_cannot_be_written_is_said_and_the_lease_released(
    store: str, settings: BrowserSettings, tmp_path: Path, flavour: str
) -> None:
    """A file where the profile's evidence directory must go (a path under /proc and a full
    disk are alike): the lease is released all the same, the release's evidence problem saying
    evidence.json could not be written. Before, the OSError left the lease held to its TTL."""
    assert settings.evidence_dir is not None
    Path(settings.evidence_dir).mkdir()
    (Path(settings.evidence_dir) / "p1").write_text("in the way")

    async def run_async() -> aio.WorkerLease:
        async with (
            aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases,
            leases.checkout("p1", run_id="run_1", task_type="t") as lease,
        ):
            await lease.step("dashboard_loaded", safe=True)
        return lease

    if flavour == "sync":
        with (
            leases_on(store, settings) as leases,
            leases.checkout("p1", run_id="run_1", task_type="t") as held,
        ):
            held.step("dashboard_loaded", safe=True)
        result = held.result
    else:
        result = asyncio.run(run_async()).result
    assert result is not None
    (release,) = [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.outcome == "success"
    assert release.evidence_problem is not None
    assert release.evidence_problem.startswith("evidence.json could not be written: NotADirectory")


def test_a_worker_paused_past_its_deadline_stops_and_releases_nothing(
    store: str, settings: BrowserSettings
) -> None:
    """Past the renew deadline on the worker's own clock (no heartbeat thread needed to
    notice), the lease is lost: step() raises LeaseLost, lease.lost is set, and leaving the
    block raises LeaseLost without sending a release."""
    clock = FakeClock()
    with (  # noqa: PT012
        leases_on(store, settings, clock=clock) as leases,
        pytest.raises(LeaseLost),
        leases.checkout("p1", run_id="run_1", task_type="t", ttl_seconds=30) as lease,
    ):
        lease.step("polling")
        clock.now += 20  # 2/3 of the TTL, as a SIGSTOP would
        assert not lease.lost.is_set()
        with pytest.raises(LeaseLost, match="not renewed within 20s"):
            lease.step("polling")
        assert lease.lost.is_set()
    assert lease.result is None
    assert not lease.heartbeat_thread_alive
    assert not [e for e in history(store) if isinstance(e, ev.LeaseReleaseRequested)]


def test_a_lease_the_ledger_ended_is_lost_at_the_next_step(
    store: str, settings: BrowserSettings
) -> None:
    """An operator ends the lease; the worker's next step learns it from the ledger, and the
    error says "lease lost" once (the guard keeps the ledger's reason, not its whole line)."""
    with (  # noqa: PT012
        leases_on(store, settings) as leases,
        pytest.raises(LeaseLost),
        leases.checkout("p1", run_id="run_1", task_type="t") as lease,
    ):
        with Ledger.open(store, create=False) as ops:
            ops.handle(ForceRelease(profile_id="p1", actor="ops", reason="browser hung"))
        with pytest.raises(LeaseLost, match="ended") as lost:  # the ledger's, or the watch's
            lease.step("polling")
        assert str(lost.value).count("lease lost") == 1, str(lost.value)
    assert "ended" in lease.why_lost


def test_a_denied_checkout_raises_before_the_block(store: str, settings: BrowserSettings) -> None:
    """A second worker is denied with the reason; its block never runs."""
    with leases_on(store, settings) as leases, leases.checkout("p1", run_id="r1", task_type="t"):
        other = leases_on(store, settings)
        with (
            pytest.raises(CheckoutDenied) as denied,
            other.checkout("p1", run_id="r2", task_type="t"),
        ):
            pytest.fail("the block ran")
        assert denied.value.reason == "already_leased"


@pytest.mark.parametrize(
    ("profile_id", "options", "message"),
    [
        ("p_nodir", {}, "registered without a user_data_dir, and a registration never changes"),
        ("p_unknown_proxy", {}, "no proxy configured for 'py'"),
        ("p1", {"proxy": {"server": "http://elsewhere:1"}}, "proxy comes from the lease"),
    ],
    ids=["no_directory", "unknown_proxy", "proxy_option"],
)
def test_launches_the_profile_does_not_allow_are_refused(
    store: str, settings: BrowserSettings, profile_id: str, options: dict[str, Any], message: str
) -> None:
    """Refused before any browser starts, with a message that says what to fix."""
    with (
        leases_on(store, settings) as leases,
        pytest.raises(LaunchRefused, match=message),
        leases.checkout(profile_id, run_id="r", task_type="t") as lease,
        lease.browser(NoBrowser(), **options),  # type: ignore[arg-type]
    ):
        pytest.fail("launched")


def test_a_directory_marked_by_a_later_lease_refuses_the_launch(
    store: str, settings: BrowserSettings, tmp_path: Path
) -> None:
    """A profile directory whose marker holds a higher fencing token than the lease's (say,
    restored from another store) is not launched: ``LaunchRefused`` naming the marker file and
    its token, not ``LeaseLost``, for the lease is not lost (``lease.lost`` stays unset); the
    lease is released as a failure saying so (review), and the marker is left as it was."""
    marker = tmp_path / "p1" / MARKER
    marker.parent.mkdir()
    marker.write_text(
        json.dumps({"fencing_token": 5, "lease_id": "lease-5@p1", "profile_id": "p1"})
    )
    with (
        leases_on(store, settings) as leases,
        pytest.raises(LaunchRefused, match=f"^{marker} holds fencing token 5, higher"),
        leases.checkout("p1", run_id="r", task_type="t") as lease,
        lease.browser(NoBrowser()),  # type: ignore[arg-type]
    ):
        pytest.fail("launched")
    assert json.loads(marker.read_text())["fencing_token"] == 5
    assert not lease.lost.is_set()
    assert lease.evidence is not None
    assert lease.evidence.reason is not None
    assert lease.evidence.reason.startswith(f"LaunchRefused: {marker} holds fencing token 5")
    assert lease.result is not None
    assert lease.result.profile_state == "review_required"


def test_the_asyncio_flavour_keeps_its_ledger_on_one_thread_of_its_own(
    store: str, settings: BrowserSettings
) -> None:
    """The same lease on asyncio: heartbeats are a task that renews while the block runs,
    every ledger call runs on one thread that is not the event loop's, and after the block the
    task has ended and the release was sent."""
    threads: set[int] = set()

    async def run() -> aio.WorkerLease:
        leases = aio.ProfileLeases.open(store, worker_id="worker_03", settings=settings)
        loop_thread = threading.get_ident()
        original = leases._on

        def spy(use: Any) -> Any:
            threads.add(threading.get_ident())
            return original(use)

        leases._on = spy  # type: ignore[method-assign]
        async with leases.checkout("p1", run_id="run_1", task_type="t", ttl_seconds=3) as lease:
            assert lease.heartbeat_task_running
            await lease.step("dashboard_loaded", safe=True)
            await asyncio.sleep(2.3)  # two renewal intervals and some
        assert loop_thread not in threads
        await leases.close()
        return lease

    lease = asyncio.run(run())
    assert len(threads) == 1
    assert not lease.heartbeat_task_running
    assert lease.result is not None
    events = history(store)
    renewals = [e for e in events if isinstance(e, ev.LeaseHeartbeat)]
    assert len(renewals) >= 3  # the step and at least two renewals
    assert events[-2].event_type == "lease_release_requested"


def test_the_asyncio_flavour_writes_the_evidence_off_the_event_loop(
    store: str, settings: BrowserSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``evidence.json`` is written and synced to the disk on a thread, not on the event loop,
    whose other leases' heartbeats a slow disk would otherwise hold up (note 55: the asyncio
    SDK wrote it, with its ``fsync``, on the loop)."""
    synced_on: list[int] = []
    fsync = os.fsync

    def spy(fd: int) -> None:
        synced_on.append(threading.get_ident())
        fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)

    async def run() -> tuple[aio.WorkerLease, int]:
        async with (
            aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases,
            leases.checkout("p1", run_id="run_1", task_type="t") as lease,
        ):
            await lease.step("dashboard_loaded", safe=True)
        return lease, threading.get_ident()

    lease, loop_thread = asyncio.run(run())
    assert lease.evidence is not None
    assert lease.evidence.evidence_problem is None
    assert synced_on
    assert loop_thread not in synced_on


def test_a_checkout_whose_answer_was_lost_is_resent_under_the_same_id(
    store: str, settings: BrowserSettings
) -> None:
    """StoreUnavailable after the grant landed: the resend carries the same command id, so the
    worker gets the lease that was granted rather than being denied by its own lease."""
    leases = leases_on(store, settings)
    real = leases.ledger.handle
    sent: list[str | None] = []

    def flaky(command: Any) -> Any:
        granted = real(command)
        if isinstance(command, Checkout):
            sent.append(command.command_id)
            if len(sent) == 1:
                raise StoreUnavailable("the answer was lost")
        return granted

    leases.ledger.handle = flaky  # type: ignore[method-assign]
    with leases.checkout("p1", run_id="run_1", task_type="t") as lease:
        assert lease.fencing_token == 1
    assert len(sent) == 2
    assert sent[0] == sent[1]


def test_checkout_for_leases_any_free_profile_of_the_account(
    store: str, settings: BrowserSettings, tmp_path: Path
) -> None:
    """leases.checkout_for routes to an available profile of the account and holds it like a
    checkout (renewed, released at the end); with every profile taken it is denied with the
    aggregated reason, on both flavours."""
    with Ledger.open(store, create=False) as ledger:
        for n in (1, 2):
            ledger.handle(
                RegisterProfile(
                    profile_id=f"shop_{n}",
                    account_id="shop",
                    proxy_id="px",
                    user_data_dir=str(tmp_path / f"s{n}"),
                )
            )
    with (
        leases_on(store, settings) as leases,
        leases.checkout_for(account_id="shop", run_id="r1", task_type="t") as first,
        leases.checkout_for(account_id="shop", run_id="r2", task_type="t") as second,
    ):
        assert {first.lease.profile_id, second.lease.profile_id} == {"shop_1", "shop_2"}
        assert first.heartbeat_thread_alive
        with pytest.raises(NoProfileAvailable, match="0 of 2 profiles for shop: 2 leased"):  # noqa: SIM117
            with leases.checkout_for(account_id="shop", run_id="r3", task_type="t"):
                pytest.fail("the block ran")

        async def route() -> str:
            async with (
                aio.ProfileLeases.open(store, worker_id="w9", settings=settings) as other,
                other.checkout_for(account_id="shop", run_id="r4", task_type="t"),
            ):
                return "routed"

        with pytest.raises(NoProfileAvailable):
            asyncio.run(route())
    assert first.evidence is not None
    assert second.evidence is not None


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_background_heartbeats_outlive_an_error_they_do_not_expect(
    store: str, settings: BrowserSettings, monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    """The first background renewal fails with an error nobody expects (TTL 3 s: due after
    1 s, retried 0.2 s later, given up 2 s after the last renewal): the heartbeats go on, the
    lease is held through 2.6 s of work, and leaving the block releases it; on both
    flavours."""
    real = hub.send  # the renewal hub's store call, shared by both flavours
    surprises: list[str] = []

    def hiccup(*args: Any, **kwargs: Any) -> Any:
        if not surprises:
            surprises.append("raised")
            raise RuntimeError("driver hiccup")
        return real(*args, **kwargs)

    monkeypatch.setattr(hub, "send", hiccup)

    def run_sync() -> Any:
        with leases_on(store, settings).checkout(
            "p1", run_id="r", task_type="t", ttl_seconds=3
        ) as lease:
            time.sleep(2.6)
        return lease

    async def run_async() -> Any:
        async with (
            aio.ProfileLeases.open(store, worker_id="w", settings=settings) as leases,
            leases.checkout("p1", run_id="r", task_type="t", ttl_seconds=3) as lease,
        ):
            await asyncio.sleep(2.6)
        return lease

    lease = run_sync() if flavour == "sync" else asyncio.run(run_async())
    assert surprises == ["raised"]
    assert not lease.lost.is_set()
    assert lease.result is not None
    beats = [e for e in history(store) if isinstance(e, ev.LeaseHeartbeat)]
    assert len(beats) >= 2
