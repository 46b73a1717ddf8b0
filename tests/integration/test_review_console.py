"""The review console in a real Chromium (Debian's, driven by Playwright) on a real ``custody
serve``: a reviewer signs in, reads why a profile is quarantined and returns it; a worker's
token cannot review; a worker's words stay text; the ledger's refusal is shown as it says it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_scene import CHROMIUM, INJECTED, crashed_run, events, sign_in
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from serving import Served

from ledger import Ledger, Role
from ledger.rules import one_part

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# Where the docs' screenshots are written when asked (docs/images, by hand, after a change
# to the pages); the suite itself writes nothing into the repository.
SHOTS = os.environ.get("CUSTODY_CONSOLE_SHOTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/bootstrap.sh --with-chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(viewport={"width": 1000, "height": 720})
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    made = context.new_page()
    dialogs: list[str] = []
    made.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    made.dialogs = dialogs  # type: ignore[attr-defined]
    return made


def _screenshot_of_a_page(context: BrowserContext, path: Path) -> Path:
    shot = context.new_page()
    shot.set_content("<h1>Order form</h1><p>Submitting…</p>")
    shot.screenshot(path=str(path))
    shot.close()
    return path


def test_a_reviewer_returns_a_quarantined_profile_and_a_worker_gets_it_again(
    served: Served, context: BrowserContext, page: Page, tmp_path: Path
) -> None:
    """Sign in with a reviewer's token, find the profile in the queue with why, open it (the
    mutating step, the final URL, the screenshot), return it with a note: the verdict is the
    token's actor's event, and the next checkout is granted."""
    shot = _screenshot_of_a_page(context, tmp_path / "final.png")
    crashed_run(served, "shop_17", screenshot=shot)
    assert sign_in(page, served, served.tokens[Role.REVIEWER]) == 303
    assert page.url.endswith("/console/queue")
    row = page.locator("#queue tbody tr", has_text="shop_17")
    assert "quarantined" in row.inner_text()
    assert "mutation_unconfirmed" in row.inner_text()
    if SHOTS:
        page.set_viewport_size({"width": 1000, "height": 260})
        page.screenshot(path=str(Path(SHOTS) / "console-queue.png"))
        page.set_viewport_size({"width": 1000, "height": 720})

    row.get_by_role("link", name="shop_17").click()
    assert "mutation_unconfirmed" in page.locator("#why").inner_text()
    run = page.locator("#last-run").inner_text()
    assert "submit_order" in run
    assert "https://shop.example/checkout" in run
    assert page.locator("#final-url").inner_text() == "https://shop.example/checkout"
    width = page.locator("img#screenshot").evaluate("img => img.naturalWidth")
    assert width > 0, "the screenshot did not load"
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / "console-profile.png"), full_page=True)

    page.check("input[name=decision][value=return]")
    page.fill("#note", "order not placed; cart emptied")
    page.click("#verdict button[type=submit]")
    assert "available" in page.locator("h1").inner_text()
    review = page.locator("#last-review").inner_text()
    assert review.startswith("return by reviewer-1 ")
    assert "order not placed" in review

    with served.client(Role.WORKER) as worker:
        again = worker.post(
            "/v1/profiles/shop_17/checkout", json={"run_id": "run-2", "task_type": "t"}
        )
        assert again.status_code == 201, again.text
        assert again.json()["fencing_token"] == 2
        timeline = worker.get("/v1/profiles/shop_17/timeline").json()
    reviewed = [e for e in timeline if e["event_type"] == "profile_reviewed"]
    assert [(e["actor_id"], e["actor_role"]) for e in reviewed] == [("reviewer-1", "reviewer")]


def test_a_workers_token_cannot_review(served: Served, context: BrowserContext, page: Page) -> None:
    """A worker's token is refused at sign-in (403, the sentence that says why, no cookie),
    and even carried in the console's cookie it is no session: it opens no page (the sign-in
    page instead) and records no verdict."""
    crashed_run(served, "shop_18")
    before = events(served)
    worker = served.tokens[Role.WORKER]
    assert sign_in(page, served, worker) == 403
    assert "worker-1 acts as worker; this needs the reviewer role" in page.inner_text("main")
    assert context.cookies() == []

    context.add_cookies([{"name": "custody_console", "value": worker, "url": served.url}])
    shown = page.goto(f"{served.url}/console/profiles/shop_18")
    assert shown is not None
    assert page.url == f"{served.url}/console/sign-in"
    from service._console import form_token

    posted = page.request.post(
        f"{served.url}/console/profiles/shop_18/review",
        form={"csrf": form_token(worker), "decision": "return", "note": "looks fine"},
        headers={"Origin": served.url},
        max_redirects=0,
    )
    assert posted.status == 303
    assert posted.headers["location"] == "/console/sign-in"
    assert events(served) == before, "a worker's token recorded something"


def test_what_a_worker_wrote_is_shown_as_text(served: Served, page: Page) -> None:
    """A step, URL and final URL carrying a script and an image with an onerror handler are
    shown as their text: the page holds no script and no image element, no dialog opened,
    and the Content-Security-Policy header is there."""
    url = f"https://x.example/{INJECTED}"
    crashed_run(served, "shop_19", step=INJECTED, url=url)
    sign_in(page, served, served.tokens[Role.REVIEWER])
    answer = page.goto(f"{served.url}/console/profiles/shop_19")
    assert answer is not None
    policy = answer.headers.get("content-security-policy", "")
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert page.locator("script").count() == 0
    assert page.locator("img").count() == 0
    assert INJECTED in page.locator("#steps").inner_text()
    # Holding a space and quotes: as ``custody why`` prints it, its JSON string (rev45).
    assert page.locator("#final-url").inner_text() == one_part(url)
    page.wait_for_timeout(200)  # an onerror would have fired by now
    assert page.dialogs == []  # type: ignore[attr-defined]


def test_the_ledgers_refusal_is_shown_in_its_own_words(served: Served, page: Page) -> None:
    """worker-1 ran the lease; holding a reviewer's token it still may not review that run:
    the page says the ledger's sentence (409) and nothing is recorded."""
    crashed_run(served, "shop_20")
    before = events(served)
    sign_in(page, served, served.token("worker-1", Role.REVIEWER))
    page.goto(f"{served.url}/console/profiles/shop_20")
    page.check("input[name=decision][value=return]")
    page.fill("#note", "I ran it, it is fine")
    with page.expect_navigation() as navigated:
        page.click("#verdict button[type=submit]")
    assert navigated.value is not None
    assert navigated.value.status == 409
    said = page.locator("#refusal").inner_text()
    assert said == (
        "worker-1 ran the profile's last lease (lease-1@shop_20): a worker may not review its "
        "own run; another reviewer must"
    )
    assert "quarantined" in page.locator("h1").inner_text()
    assert events(served) == before


def test_a_note_the_ledger_takes_can_be_typed_whole(served: Served, page: Page) -> None:
    """rev29: the note field's maxlength (200) counted UTF-16 units where the ledger counts
    code points (at most 200): a note of 150 emoji, which the ledger takes, was cut by the
    browser to 100. The field takes twice the ledger's limit (every code point is at most two
    units); a longer note is the ledger's to refuse, in its own words."""
    crashed_run(served, "shop_21")
    sign_in(page, served, served.tokens[Role.REVIEWER])
    page.goto(f"{served.url}/console/profiles/shop_21")
    page.check("input[name=decision][value=quarantine]")
    note = "\U0001f50d" * 150
    page.fill("#note", note)
    page.click("#verdict button[type=submit]")
    with Ledger.open(served.store_url) as ledger:
        (review,) = [e for e in ledger.history("shop_21") if e.event_type == "profile_reviewed"]
    assert review.note == note
