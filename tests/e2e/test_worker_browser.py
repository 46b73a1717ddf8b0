"""The SDK's browser with a real Chromium against local pages: cookies across leases, the
evidence filed at release, a verification prompt, and the profile's proxy."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import custody, ok
from local_site import CountingProxy, LocalSite
from playwright.sync_api import Error as PlaywrightError, Playwright, sync_playwright
from worker_harness import PROFILE, store_with_profile

from ledger import Checkout, Ledger, Release
from ledger._domain import events as ev
from workers import DIRECT, BrowserSettings, LaunchRefused, ProfileLeases
from workers._profile_dir import read as read_marker

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def pw() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def site() -> Iterator[LocalSite]:
    served = LocalSite()
    yield served
    served.close()


def releases(store: str) -> list[ev.LeaseReleaseRequested]:
    with Ledger.open(store, create=False) as ledger:
        return [e for e in ledger.history(PROFILE) if isinstance(e, ev.LeaseReleaseRequested)]


def test_a_cookie_set_under_one_lease_is_there_under_the_next(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """Two clean leases on one profile: the login cookie (with an expiry) set under the first
    is sent under the second. Each release files the final URL and a screenshot whose sha256
    is the file's; the profile directory's marker holds the latest fencing token."""
    store, user_data_dir = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        leases.checkout(PROFILE, run_id="run_1", task_type="login") as first,
        first.browser(pw) as context,
    ):
        context.new_page().goto(f"{site.url}/login")
        first.step("logged_in", safe=True)
    with (
        leases.checkout(PROFILE, run_id="run_2", task_type="check") as second,
        second.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{site.url}/whoami")
        cookies = page.text_content("#cookies")
    assert cookies == "session=s3cret"
    assert first.result is not None
    assert second.result is not None
    assert (first.result.profile_state, second.result.profile_state) == ("available", "available")

    filed = releases(store)
    assert [r.final_url for r in filed] == [f"{site.url}/login", f"{site.url}/whoami"]
    for release in filed:
        assert release.screenshot is not None
        shot = Path(release.screenshot)
        assert shot.read_bytes().startswith(b"\x89PNG")
        assert release.screenshot_sha256 == hashlib.sha256(shot.read_bytes()).hexdigest()
    marker = read_marker(user_data_dir)
    assert marker is not None
    assert (marker["fencing_token"], marker["run_id"]) == (2, "run_2")


def test_a_verification_page_sends_the_profile_to_review(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """A navigation matching a prompt pattern is reported at release (prompt_seen), and the
    rules send the profile to review, even though the task itself succeeded."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{site.url}/dashboard")
        page.goto(f"{site.url}/verify/challenge?next=/orders")
        page.goto(f"{site.url}/dashboard")
    assert lease.evidence is not None
    assert lease.evidence.prompt_url == f"{site.url}/verify/challenge?next=/orders"
    assert lease.result is not None
    assert (lease.result.profile_state, lease.result.cause) == (
        "review_required",
        "verification_prompt",
    )
    assert [r.prompt_seen for r in releases(store)] == [True]


def test_a_navigation_that_failed_leaves_the_last_page_as_the_final_url(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """A task that catches a ``goto`` that failed (connection refused) and leaves: the final
    URL is the last page committed, not Chromium's error page. rev27: the release and the
    heartbeats said ``chrome-error://chromewebdata/``, a URL naming no page of the run."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/submit"  # bound, not listening
        store, _ = store_with_profile(tmp_path)
        settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
        leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
        with (
            leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
            lease.browser(pw) as context,
        ):
            page = context.new_page()
            page.goto(f"{site.url}/dashboard")
            with pytest.raises(PlaywrightError, match="ERR_CONNECTION_REFUSED"):
                page.goto(refused)
            lease.step("submit_failed", safe=True)
    assert [r.final_url for r in releases(store)] == [f"{site.url}/dashboard"]
    with Ledger.open(store, create=False) as ledger:
        assert "chrome-error" not in repr(ledger.history(PROFILE))


def test_a_verification_page_opened_as_a_popup_is_seen(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """A page that opens a verification prompt with ``window.open``: Playwright reports the
    popup only after its first navigation, yet that first URL is the prompt seen, the popup's
    URL reaches the ledger's heartbeats, and the profile goes to review."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    prompt = f"{site.url}/verify/challenge?via=popup"
    with (
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(f"{site.url}/dashboard")
        with context.expect_page() as popped:
            page.evaluate("url => { window.open(url); }", prompt)
        popped.value.wait_for_load_state()
        lease.step("popup_shown")
        popped.value.close()
    assert lease.evidence is not None
    assert lease.evidence.prompt_url == prompt
    assert lease.result is not None
    assert (lease.result.profile_state, lease.result.cause) == (
        "review_required",
        "verification_prompt",
    )
    with Ledger.open(store, create=False) as ledger:
        beats = [e for e in ledger.history(PROFILE) if isinstance(e, ev.LeaseHeartbeat)]
    assert prompt in [b.url for b in beats]


def test_credentials_in_a_page_url_are_never_recorded(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """A page opened as ``http://user:password@host/...`` (Chromium keeps the userinfo in the
    page's URL): the heartbeats, the release's final URL and ``evidence.json`` say the URL
    without it, and the password is nowhere in the ledger or the evidence."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(site.url.replace("http://", "http://alice:s3cret-pw@") + "/account?k=1")
        assert "s3cret-pw" in page.url
        lease.step("account_open")
    assert [r.final_url for r in releases(store)] == [f"{site.url}/account?k=1"]
    with Ledger.open(store, create=False) as ledger:
        assert "s3cret-pw" not in repr(ledger.store.history(PROFILE))
    evidence_files = list((tmp_path / "evidence").rglob("evidence.json"))
    assert evidence_files
    assert all("s3cret-pw" not in f.read_text() for f in evidence_files)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None: a new SQLite file; else a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


# A login page's return address, as written and percent-encoded, each a URL with a password;
# and an OAuth token in the fragment, which is no URL's userinfo and is kept.
NESTED = (
    "/account?next=http://bob:hunter2@intranet.example/admin"
    "&back=http%3A%2F%2Fcarol%3Aswordfish%40intranet.example%2F#access_token=ya29.T0KEN"
)
NESTED_RECORDED = (
    "/account?next=http://intranet.example/admin"
    "&back=http%3A%2F%2Fintranet.example%2F#access_token=ya29.T0KEN"
)


def test_a_password_in_a_url_nested_in_the_page_s_is_never_recorded(
    tmp_path: Path, pw: Playwright, site: LocalSite, store_url: str | None
) -> None:
    """rev43: a page whose URL carries another URL with a password (a login's ``?next=``, as
    written or percent-encoded): the heartbeats, the release's final URL and ``evidence.json``
    kept ``bob:hunter2@``, which the failure's reason left out of the same URL. Now each says
    the URL without the nested passwords, as the reason does, and neither password is in the
    timeline or the evidence; the fragment's token stays (a query's secret is the page's)."""
    store, _ = store_with_profile(tmp_path, url=store_url)
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (  # noqa: PT012 (the failure is the lease's, raised inside its block)
        pytest.raises(RuntimeError, match="stuck at"),
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(site.url + NESTED)
        assert "bob:hunter2@" in page.url
        assert "carol%3Aswordfish%40" in page.url
        lease.step("at_login")
        raise RuntimeError(f"stuck at {page.url}")
    recorded = site.url + NESTED_RECORDED
    shown = ok(custody("--json", "timeline", PROFILE, cwd=tmp_path, store=store))
    assert "hunter2" not in shown.out
    assert "swordfish" not in shown.out
    beats = [row for row in shown.json() if row["event_type"] == "lease_heartbeat"]
    assert [row["url"] for row in beats if row["url"] is not None] == [recorded]
    (release,) = releases(store)
    assert release.final_url == recorded
    assert release.envelope.reason == f"RuntimeError: stuck at {recorded}"
    with Ledger.open(store, create=False) as ledger:
        assert "hunter2" not in repr(ledger.store.history(PROFILE))
    (evidence,) = (tmp_path / "evidence").rglob("evidence.json")
    said = evidence.read_text()
    assert "hunter2" not in said
    assert "swordfish" not in said
    assert json.loads(said)["final_url"] == recorded


def test_the_browser_goes_through_the_profiles_proxy_and_its_credentials_stay_local(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """The profile's proxy id resolves, in the worker's own configuration, to a proxy that
    wants credentials: every page request passes it (even to 127.0.0.1), the release reports
    the proxy id launched with, and the password appears nowhere in the ledger. A release
    reporting another proxy quarantines the profile."""
    proxy = CountingProxy("worker", "pw-s3cret")
    try:
        server = {"server": proxy.server, "username": "worker", "password": "pw-s3cret"}
        settings = BrowserSettings(proxies={"px": server}, evidence_dir=tmp_path / "evidence")
        store, _ = store_with_profile(tmp_path)
        leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
        before = len(site.hits)
        with (
            leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
            lease.browser(pw) as context,
        ):
            context.new_page().goto(f"{site.url}/orders")
    finally:
        proxy.close()
    assert f"{site.url}/orders" in proxy.requests
    assert [h.via_proxy for h in site.hits[before:]] == [True]
    assert lease.result is not None
    assert lease.result.profile_state == "available"
    assert [r.observed_proxy for r in releases(store)] == ["px"]
    with Ledger.open(store, create=False) as ledger:
        stored = ledger.store.history(PROFILE)
        assert "pw-s3cret" not in repr(stored)
        other = ledger.handle(
            Checkout(profile_id=PROFILE, worker_id="worker_04", run_id="run_2", task_type="t")
        )
        ended = ledger.handle(
            Release(
                lease_id=other.lease_id,
                fencing_token=other.fencing_token,
                outcome="success",
                final_url=f"{site.url}/orders",
                observed_proxy="proxy_eu_9",
            )
        )
    assert (ended.profile_state, ended.cause) == ("quarantined", "proxy_mismatch")


def test_a_direct_profile_goes_direct_whatever_proxy_the_environment_names(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """A profile whose proxy id resolves to DIRECT, launched with a proxy in the browser's
    environment (``http_proxy`` and ``all_proxy``, as a worker's host may set them, here
    through Playwright's ``env``): no request reaches that proxy (a host only it could answer
    is not reached at all), pages on 127.0.0.1 load directly, and the release records the
    direct proxy id the pages truly went through."""
    proxy = CountingProxy("worker", "pw")
    try:
        settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")
        store, _ = store_with_profile(tmp_path)
        leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
        environment = {**os.environ, "http_proxy": proxy.server, "all_proxy": proxy.server}
        with (
            leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
            lease.browser(pw, env=environment) as context,
        ):
            context.new_page().goto(f"{site.url}/orders")
            # On a page of its own: Chromium's error page commits after the refusal, and would
            # interrupt a navigation that followed on the same page.
            with pytest.raises(PlaywrightError, match="ERR_NAME_NOT_RESOLVED"):
                context.new_page().goto("http://shop.invalid/dashboard")
    finally:
        proxy.close()
    assert (proxy.requests, proxy.refused) == ([], 0)
    assert [r.observed_proxy for r in releases(store)] == ["px"]


STUN = """async port => {
    const pc = new RTCPeerConnection({iceServers: [{urls: `stun:127.0.0.1:${port}`}]});
    pc.createDataChannel('x');
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(done => setTimeout(done, 1500));
    pc.close();
}"""


def test_webrtc_sends_no_udp_around_the_profiles_proxy(
    tmp_path: Path, pw: Playwright, site: LocalSite
) -> None:
    """A page under a lease with a proxy asks a STUN server on 127.0.0.1 for its address: no
    datagram leaves the browser (the profile's WebRTC policy is pinned to
    ``disable_non_proxied_udp``), and a launch argument that would move the proxy or the
    policy is refused before any browser starts."""
    stun = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stun.bind(("127.0.0.1", 0))
    stun.settimeout(0.5)
    proxy = CountingProxy("worker", "pw")
    try:
        server = {"server": proxy.server, "username": "worker", "password": "pw"}
        settings = BrowserSettings(proxies={"px": server}, evidence_dir=tmp_path / "evidence")
        store, _ = store_with_profile(tmp_path)
        leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
        with leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease:
            for arg in ("--proxy-server=direct://", "--force-webrtc-ip-handling-policy=default"):
                with pytest.raises(LaunchRefused), lease.browser(pw, args=[arg]):
                    pytest.fail("launched")
            with lease.browser(pw) as context:
                page = context.new_page()
                page.goto(f"{site.url}/rtc")
                page.evaluate(STUN, stun.getsockname()[1])
        try:
            datagram = stun.recvfrom(2048)
        except TimeoutError:
            datagram = None
    finally:
        stun.close()
        proxy.close()
    assert datagram is None
    assert f"{site.url}/rtc" in proxy.requests
    assert lease.result is not None
    assert lease.result.profile_state == "available"


def test_a_failed_launch_is_released_with_a_short_reason(tmp_path: Path, pw: Playwright) -> None:
    """A browser that cannot start (its executable exits at once): Playwright's error carries
    about 4 KB of Chromium's command line and logs; the release's reason is the error's type
    and first line only, and the error itself propagates unchanged."""
    store, _ = store_with_profile(tmp_path)
    settings = BrowserSettings(
        proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence", executable_path="/bin/false"
    )
    leases = ProfileLeases.open(store, worker_id="worker_03", settings=settings)
    with (
        pytest.raises(PlaywrightError) as failed,
        leases.checkout(PROFILE, run_id="run_1", task_type="t") as lease,
        lease.browser(pw),
    ):
        pytest.fail("launched")
    assert len(str(failed.value)) > 2000
    (release,) = releases(store)
    assert release.outcome == "failure"
    assert release.envelope.reason == (
        "TargetClosedError: BrowserType.launch_persistent_context: "
        "Target page, context or browser has been closed"
    )
    assert lease.result is not None
    assert lease.result.profile_state == "review_required"
