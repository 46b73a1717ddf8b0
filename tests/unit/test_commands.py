"""Commands are validated strictly at the boundary and fingerprinted stably."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import AfterValidator

from ledger._commands import (
    Checkout,
    Heartbeat,
    Quarantine,
    RegisterProfile,
    Release,
    Review,
)
from ledger._domain.browser import BrowserCheck
from ledger._domain.errors import InvalidInput
from ledger._domain.model import Outcome, ReviewDecision
from ledger._door import Door

CHECKOUT = {
    "profile_id": "profile_shop_17",
    "worker_id": "worker_03",
    "run_id": "run_0945",
    "task_type": "inventory_check",
}


def test_fingerprint_is_pinned() -> None:
    """The fingerprint of a known command has a known value: stored command ids stay
    recognisable across processes, runs and releases."""
    assert Checkout(**CHECKOUT).fingerprint() == "checkout:ac853c46ef00a549"
    release = Release(
        lease_id="lease-1@profile_shop_17",
        fencing_token=1,
        outcome="success",
        final_url="https://shop.example/done",
    )
    assert release.fingerprint() == "release:489ed93e03ef1ad6"


def test_fingerprint_survives_a_later_optional_field() -> None:
    """A later version that adds an optional field fingerprints an old command as before, so
    a worker that retries across a deploy is recognised."""

    class CheckoutV2(Checkout):
        priority: int | None = None
        region: str = "any"

    old = Checkout(**CHECKOUT)
    assert CheckoutV2(**CHECKOUT).fingerprint() == old.fingerprint()
    assert CheckoutV2(**CHECKOUT, priority=2).fingerprint() != old.fingerprint()


def test_fingerprint_binds_what_was_asked_not_the_id_or_spelling() -> None:
    """Another argument changes the fingerprint; the command id, an explicit default and an
    enum given as its value do not."""
    base = Checkout(**CHECKOUT).fingerprint()
    assert Checkout(**{**CHECKOUT, "run_id": "run_0946"}).fingerprint() != base
    assert Checkout(**CHECKOUT, command_id="c-1").fingerprint() == base
    assert Checkout(**CHECKOUT, ttl_seconds=300).fingerprint() == base
    assert Checkout(**CHECKOUT, ttl_seconds=301).fingerprint() != base
    as_value = Review(profile_id="p", reviewer="r", decision="return", note="ok")
    as_enum = Review(profile_id="p", reviewer="r", decision=ReviewDecision.RETURN, note="ok")
    assert as_value.fingerprint() == as_enum.fingerprint()
    assert as_value.fingerprint() != Heartbeat(lease_id="lease-1@p", fencing_token=1).fingerprint()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"ttl_seconds": "300"}, "ttl_seconds"),
        ({"ttl_seconds": -5}, "ttl_seconds"),
        ({"ttl_seconds": 86_401}, "ttl_seconds"),
        ({"ttl_seconds": True}, "ttl_seconds"),
        ({"profile_id": "p2\n"}, "profile_id"),
        ({"profile_id": "x" * 129}, "profile_id"),
        ({"worker_id": "w4 "}, "worker_id"),
        ({"worker_id": " "}, "worker_id"),
        ({"worker_id": "w\x1b[31m"}, "worker_id"),
        ({"command_id": "c\n"}, "command_id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_checkout_fields_name_the_field(fields: dict[str, object], field: str) -> None:
    """Strict validation: no coercion, no look-alike ids, no unknown fields; the error names
    the field."""
    with pytest.raises(InvalidInput) as caught:
        Checkout(**{**CHECKOUT, **fields})
    assert caught.value.field == field


def test_missing_field_is_named() -> None:
    """A required field left out is named, without a made-up value."""
    with pytest.raises(InvalidInput, match=r"invalid worker_id: Field required$"):
        Checkout(profile_id="p", run_id="r", task_type="t")


def test_release_rules_at_the_boundary() -> None:
    """An expected failure must say what it was (given blank or not at all); a lease id
    matches in full; an outcome arrives as its value."""
    lease = {"lease_id": "lease-1@p", "fencing_token": 1}
    # rev28: nor one a person is shown nothing of (zero-width, word joiner, BOM, ESC)
    blanks = ("  ", "\u200b", "\u2060\ufeff", "\x1b", " \u034f\xa0")
    for reason in ({}, *({"reason": blank} for blank in blanks)):
        with pytest.raises(InvalidInput, match="invalid reason: an expected failure"):
            Release(**lease, outcome="expected_failure", **reason)
    assert Release(**lease, outcome="expected_failure", reason="sold out").reason
    with pytest.raises(InvalidInput, match="invalid lease_id"):
        Release(lease_id="lease-1@p\n", fencing_token=1, outcome="success")
    assert Release(**lease, outcome="failure").outcome is Outcome.FAILURE


def test_a_name_that_shows_nothing_is_refused() -> None:
    """A review's note, an operator's reason or a worker's id of invisible characters alone
    says nothing a reader can see (rev28: a zero-width note was accepted, a blank refused)."""
    for blank in ("\u200b", "\u2060\ufeff", "\u3164", " \u2800 "):
        with pytest.raises(InvalidInput, match="invalid note: must not be empty"):
            Review(profile_id="p", reviewer="rita", decision="return", note=blank)
        with pytest.raises(InvalidInput, match="invalid reason: must not be empty"):
            Quarantine(profile_id="p", actor="olga", reason=blank)
        with pytest.raises(InvalidInput, match="invalid worker_id: must not be empty"):
            Checkout(**{**CHECKOUT, "worker_id": blank})
    assert Quarantine(profile_id="p", actor="olga", reason="\u200bleak").reason
    # rev28's second read: what this Python's Unicode does not know yet (U+1F6DC, an emoji of
    # Unicode 15; U+31350, CJK Extension H) or a private-use character may show on a screen
    for shown in ("\U0001f6dc", "\U00031350", "\ue000", "\u0301"):
        assert Checkout(**{**CHECKOUT, "account_id": shown}).account_id == shown


def test_a_screenshot_digest_is_hex_sha256_of_a_named_screenshot() -> None:
    """The digest is 64 lowercase hex digits (a newline after it, upper case or a short one is
    refused) and only comes with the screenshot it is the digest of."""
    lease = {"lease_id": "lease-1@p", "fencing_token": 1, "outcome": "success"}
    digest = "ab" * 32
    shot = Release(**lease, screenshot="final.png", screenshot_sha256=digest)
    assert shot.screenshot_sha256 == digest
    for bad in (digest + "\n", digest.upper(), digest[:-1], "g" * 64):
        with pytest.raises(InvalidInput, match="invalid screenshot_sha256"):
            Release(**lease, screenshot="final.png", screenshot_sha256=bad)
    with pytest.raises(InvalidInput, match="needs the screenshot"):
        Release(**lease, screenshot_sha256=digest)


def test_a_profile_directory_is_absolute() -> None:
    """A relative user_data_dir would name another directory on every worker: refused."""
    base = {"profile_id": "p", "account_id": "a", "proxy_id": "x"}
    with pytest.raises(InvalidInput, match="user_data_dir: must be an absolute path"):
        RegisterProfile(**base, user_data_dir="profiles/p")
    assert RegisterProfile(**base, user_data_dir="/srv/profiles/p").user_data_dir


def test_numbers_have_ranges_date_arithmetic_survives() -> None:
    """The repeated-failure window and limit are bounded, so ``now - window`` cannot overflow."""
    base = {"profile_id": "p", "account_id": "a", "proxy_id": "x"}
    for bad in ({"unclean_window_seconds": 10**12}, {"unclean_limit": 65}, {"unclean_limit": 0}):
        with pytest.raises(InvalidInput):
            RegisterProfile(**base, **bad)


def test_long_values_are_quoted_by_a_short_prefix() -> None:
    """An error line quotes at most a short prefix of a huge value."""
    with pytest.raises(InvalidInput) as caught:
        Heartbeat(lease_id="lease-1@p", fencing_token=1, url="u" * 1_000_000)
    assert len(str(caught.value)) < 300


def test_a_cut_quote_counts_the_characters_given() -> None:
    """A text cut short in an error line is followed by its own length in characters, not its
    repr's: 201 characters against a bound of 200 reads as 201."""
    with pytest.raises(InvalidInput) as caught:
        RegisterProfile(profile_id="p", account_id="a" * 201, proxy_id="x")
    assert str(caught.value).endswith("... (201 characters))")


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:s3cret@shop.example/x",
        "http://:s3cret@h/",
        "ftp://a:s3cret@h",
        "h://a:b:s3cret@h",
    ],
)
def test_a_password_in_a_url_or_a_proxy_id_is_refused_and_never_quoted(url: str) -> None:
    """The log is append-only and every role reads it: a page URL or a final URL carrying
    ``user:password@``, or a proxy registered as its URL with the password, is refused
    (``refusal``: judged once the command id is looked up, tests/integration/test_command_ids.py),
    and the refusal does not repeat the password (it goes to a terminal, a log, an HTTP
    response)."""
    lease = {"lease_id": "lease-1@p", "fencing_token": 1}
    asked = {
        "url": Heartbeat(**lease, url=url),
        "final_url": Release(**lease, outcome="success", final_url=url),
        "proxy_id": RegisterProfile(profile_id="p", account_id="a", proxy_id=url),
    }
    for field, command in asked.items():
        refused = command.refusal()
        assert refused is not None
        assert refused.field == field
        assert str(refused) == f"invalid {field}: must not carry a password (user:password@)"


def test_a_url_with_a_user_alone_or_an_at_sign_past_its_host_is_taken() -> None:
    """Only a password is refused: a user name alone, and an ``@`` or ``:`` in the path, the
    query or the fragment, are a URL's own text."""
    lease = {"lease_id": "lease-1@p", "fencing_token": 1}
    for url in (
        "https://alice@shop.example/x",
        "https://shop.example/u/a:b@c",
        "https://shop.example/x?to=a:b@c",
        "https://shop.example/#a:b@c",
        "mailto:a:b@c",
        "file:///notes:v2@home.html",  # rev31 reread2: a file URL has no userinfo
        # rev43: a nested URL whose scheme has no host a browser reads (no "//"), or no password
        "https://shop.example/x?at=12h:30:00@utc",
        "https://shop.example/x?to=mailto:a:b@c",
        "https://shop.example/login?next=https://alice@intranet.example/",
        "https://shop.example/x?email=bob%40example.com#access_token=ya29.T0KEN",
    ):
        assert Heartbeat(**lease, url=url).refusal() is None
    for proxy in ("proxy_us_east_12", "px-eu.1", "http://proxy.example:3128", "px@eu"):
        assert RegisterProfile(profile_id="p", account_id="a", proxy_id=proxy).refusal() is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("proxy_id", "alice:s3cret@proxy.example:3128"),  # the way proxies are often written
        ("proxy_id", "socks5h://alice:s3cret@proxy.example:1080"),
        ("url", " https://alice:s3cret@shop.example/"),  # a leading space
        ("url", "https:alice:s3cret@shop.example/"),  # a browser reads it with the slashes
        ("url", "https:\\\\alice:s3cret@shop.example/"),
        ("url", "HTTPS:/alice:s3cret@shop.example/"),
        # What a browser takes out before it reads a URL (rev30: Chromium read these as
        # credentials, the rule did not): a line break or tab within, a control at either end.
        ("url", "http:/\n/alice:s3cret@shop.example/"),
        ("url", "ht\ttps://ali\rce:s3cret@shop.example/"),
        ("url", "\x01https://alice:s3cret@shop.example/"),
        ("url", "https://alice:s3cret@shop.example/\x1f"),
        # rev30: a backslash ends the authority of a special scheme only (Chromium reads the
        # password "s3\\cret" here)
        ("url", "foo://alice:s3\\cret@shop.example/"),
        # rev30: a URL nested in view-source: or blob: carries its inner URL's credentials
        ("url", "view-source:https://alice:s3cret@shop.example/"),
        ("url", "blob:https://alice:s3cret@shop.example/x"),
        # rev31: Chromium reads the inner URL past spaces and controls (it sent the password),
        # and a scheme-relative URL takes its base's scheme with the userinfo
        ("url", "view-source: https://alice:s3cret@shop.example/"),
        ("url", "VIEW-SOURCE:  blob:\x01https://alice:s3cret@shop.example/"),
        ("url", "//alice:s3cret@shop.example/"),
        ("url", "///alice:s3cret@shop.example/"),  # rev31 reread: any number of slashes
        ("url", "\\\\alice:s3cret@shop.example/"),
        # rev43: a URL nested in the page's (a login's return address), as written, encoded
        # (twice too), after backslashes, in the fragment; and in a proxy id
        ("url", "https://shop.example/login?next=http://bob:s3cret@intranet.example/"),
        ("url", "https://shop.example/login?next=http%3A%2F%2Fbob%3As3cret%40intranet"),
        ("url", "https://shop.example/?n=http%253A%252F%252Fbob%253As3cret%2540intranet"),
        ("url", "https://shop.example/?n=HTTPS:\\\\bob:s3cret@intranet/"),
        ("url", "https://shop.example/#n=foo://bob:s3cret@intranet/"),
        ("url", "view-source:https://shop.example/?n=https://bob:s3cret@intranet/"),
        ("proxy_id", "px?via=http://bob:s3cret@proxy.example/"),
        # rev43's second review: a nested password holding a ";" or an "&" as written (a
        # query's separator ends only a host's value), in a query or a path's parameter
        ("url", "https://sso.corp/login?next=http://bob:Pa;ss1@intranet/"),
        ("url", "https://shop.example/?next=http://bob:p&ss@intranet/"),
        ("url", "https://shop.example/?next=ftp://bob:pw;type=a@intranet/"),
        ("url", "https://shop.example/?next=http%3A%2F%2Fbob%3Ap&ss%40intranet%2F"),
        ("url", "https://shop.example/;u=http://bob:p;w@h/"),
        # rev43's third review: a password beginning with one, or digits before one, and a
        # user holding one
        ("url", "https://sso.corp/login?next=http://bob:&Tr0ub4dor@intranet/"),
        ("url", "https://sso.corp/login?next=http://john.doe:2024;Summer@intranet/"),
        # rev47: a nested URL without its scheme, which a browser follows with the page's
        # (``http://bob:s3cret@intranet/``), as written, encoded (twice too), after backslashes
        ("url", "https://shop.example/login?next=//bob:s3cret@intranet/"),
        ("url", "https://shop.example/login?next=%2F%2Fbob%3As3cret%40intranet"),
        ("url", "https://shop.example/?n=%252F%252Fbob%253As3cret%2540intranet"),
        ("url", "https://shop.example/?n=\\\\bob:s3cret@intranet/"),
        ("url", "https://shop.example/#n=///bob:s3cret@intranet/"),
        # review 281: a tab or a line break between the slashes, which a browser drops
        ("url", "https://shop.example/login?next=/%09/bob:s3cret@intranet/landing"),
        ("url", "https://shop.example/login?next=%2F%0A%2Fbob%3As3cret%40intranet"),
        # rev48: a tab or a line break before, between or after a scheme's slashes, which a
        # browser drops (``http:/\t/bob:s3cret@intranet/`` is ``http://bob:s3cret@intranet/``)
        ("url", "https://shop.example/login?next=http:%2F%09%2Fbob%3As3cret@intranet/"),
        ("url", "https://shop.example/login?next=http%3A%2F%09%2Fbob%3As3cret%40intranet"),
        ("url", "https://shop.example/login?next=https:%2F%0A%2Fbob%3As3cret@intranet/"),
        ("url", "https://shop.example/login?next=http:%2F%0D%2Fbob%3As3cret@intranet/"),
        ("url", "https://shop.example/login?next=http:%2F%09%09%2Fbob%3As3cret@intranet/"),
        ("url", "https://shop.example/login?next=http:%09//bob%3As3cret@intranet/"),
        ("url", "https://shop.example/login?next=http:%2F%2509%2Fbob%253As3cret@intranet/"),
        ("url", "https://shop.example/?n=http%253A%252F%2509%252Fbob%253As3cret%2540intranet"),
        ("url", "https://shop.example/login?next=http://%09bob%3As3cret@intranet/"),
        ("url", "https://shop.example/login?next=foo:%2F%09%2Fbob:s3cret@intranet/"),
        ("url", "https://shop.example/login?next=//%0Dbob%3As3cret%40intranet"),
        # rev48's review: a browser drops a tab or a line break anywhere in the URL it follows,
        # so an escaped one is no character (Chromium sent bob:pw for each)
        ("url", "https://shop.example/login?next=http%09://bob:pw@intranet/"),
        ("url", "https://shop.example/login?next=http%3A%2F%2Fbob%3Ap%09w%40intranet"),
        ("url", "https://shop.example/login?next=%2F%2Fbob%3Ap%0Aw%40intranet"),
        ("url", "https://shop.example/login?next=%2F%2F%09%2Fbob%3Apw%40intranet"),
        ("url", "https://shop.example/login?next=ht%09tp:bob:pw@intranet/"),
        ("url", "https://shop.example/login?next=ht%2509tp%253A%252F%252Fbob%253Ap%250dw%2540i"),
        ("url", "https://sso.corp/?next=https%3A%2F%2Fsvc%3A12%26ab%40api.internal%2F"),
        ("url", "https://shop.example/?next=http://bob;x:pw@intranet/"),
        ("url", "https://shop.example/?next=http://bob:pa&ss=1@intranet/"),  # no host before
        # rev43's fourth review: an "=" of the password's own, an empty port, a separator the
        # last decoding made, a user past ASCII
        ("url", "https://shop.example/?next=http://bob:2024;Summer=@intranet/"),
        ("url", "https://shop.example/?next=http://svc:1234;Zm9vYmFy=@intranet/"),
        ("url", "https://shop.example/?next=http://bob;role=admin:pw@intranet/"),
        ("url", "https://shop.example/?next=http%3A%2F%2Fbob%3A%26a%3D1%40intranet%2F"),
        ("url", "https://shop.example/?next=http%253A%252F%252Fbob%253A%2526a%253D1%2540i%252F"),
        ("url", "https://shop.example/?next=http://böb:&a=1@intranet/"),
        ("url", "https://shop.example/?next=http%3A%2F%2Fbob%3A1234%26a%3D1%40intranet"),
    ],
)
def test_a_password_in_other_spellings_is_refused(field: str, value: str) -> None:
    """rev23: only ``scheme://user:password@`` was refused: a proxy id written
    ``user:password@host:port``, and URLs a browser reads as the same credentials (a leading
    space, no slashes, backslashes), went into the log."""
    lease = {"lease_id": "lease-1@p", "fencing_token": 1}
    command = (
        RegisterProfile(profile_id="p", account_id="a", proxy_id=value)
        if field == "proxy_id"
        else Heartbeat(**lease, url=value)
    )
    refused = command.refusal()
    assert refused is not None
    assert refused.field == field


@pytest.mark.parametrize(
    ("url", "recorded"),
    [
        ("http:/\n/alice:s3cret@shop.example/a", "http://shop.example/a"),
        ("ht\ttps://ali\rce:s3cret@shop.example/a", "https://shop.example/a"),
        ("\x01 https://alice:s3cret@shop.example/a\x1f ", "https://shop.example/a"),
        ("https://alice:s3cret@shop.example/a", "https://shop.example/a"),
        ("https://shop.example/a\tb ", "https://shop.example/a\tb "),  # no userinfo: as it is
        ("https:alice@//bob:s3cret@shop.example/a", "https://shop.example/a"),  # cut twice
        ("view-source:https://alice:s3cret@shop.example/a", "view-source:https://shop.example/a"),
        ("view-source: https://alice:s3cret@shop.example/a", "view-source: https://shop.example/a"),
        ("//alice:s3cret@shop.example/a", "//shop.example/a"),
        ("\\\\\\alice:s3cret@shop.example/a", "\\\\\\shop.example/a"),
    ],
)
def test_a_url_s_userinfo_is_cut_as_a_browser_reads_it(url: str, recorded: str) -> None:
    """What the SDKs record of a page (``without_userinfo``) is the URL a browser reads, without
    its user and password, and the door takes it (rev30: a tab, a line break or a control at
    either end hid the password from the rule, which Chromium read as credentials)."""
    from ledger.rules import carries_password, without_passwords, without_userinfo

    assert without_userinfo(url) == recorded
    assert not carries_password(recorded)
    assert without_passwords(f"at {recorded}") == f"at {recorded}"


@pytest.mark.parametrize(
    ("url", "recorded"),
    [
        (
            "https://shop.example/login?next=http://bob:s3cret@intranet.example/a#access_token=T",
            "https://shop.example/login?next=http://intranet.example/a#access_token=T",
        ),
        (
            "https://shop.example/login?next=http%3A%2F%2Fbob%3As3cret%40intranet%2Fa&x=1",
            "https://shop.example/login?next=http%3A%2F%2Fintranet%2Fa&x=1",
        ),
        (
            "https://shop.example/?n=https%3A%2F%2Fsso%2F%3Fn%3Dhttp%253A%252F%252Fb%253Ap%2540i",
            "https://shop.example/?n=https%3A%2F%2Fsso%2F%3Fn%3Dhttp%253A%252F%252Fi",
        ),
        (  # the user's first letter an escape itself: the cut begins at its "%"
            "https://shop.example/?n=http%3A%2F%2F%62ob%3Ap%40intranet",
            "https://shop.example/?n=http%3A%2F%2Fintranet",
        ),
        (
            "https://shop.example/login?next=https://TOKEN@intranet.example/",
            "https://shop.example/login?next=https://intranet.example/",
        ),
        ("\x01https://shop.example/?n=ws://b:p@i/ ", "https://shop.example/?n=ws://i/"),
        (  # rev47: without its scheme, as written and encoded; a user alone goes as well
            "https://shop.example/login?next=//bob:s3cret@intranet/a&r=%2F%2Fb%3Ap%40i",
            "https://shop.example/login?next=//intranet/a&r=%2F%2Fi",
        ),
        ("https://shop.example/?n=//TOKEN@intranet/", "https://shop.example/?n=//intranet/"),
        (  # rev48: a tab or a line break among the slashes, which a browser drops
            "https://shop.example/login?next=http%3A%2F%09%2Fbob%3As3cret%40intranet%2Fa",
            "https://shop.example/login?next=http%3A%2F%09%2Fintranet%2Fa",
        ),
        (
            "https://shop.example/?n=http%253A%252F%250A%252Fb%253Ap%2540i&m=%2F%2F%09T%40i",
            "https://shop.example/?n=http%253A%252F%250A%252Fi&m=%2F%2F%09i",
        ),
        (
            "https://shop.example/?n=https%3A%09%2F%2FTOKEN%40intranet",
            "https://shop.example/?n=https%3A%09%2F%2Fintranet",
        ),
        (  # rev48's review: an escaped tab or line break is no character, wherever it is
            "https://shop.example/login?next=http%09://bob:pw@intranet/a&r=%2F%2F%09%2Fb%3Ap%40i",
            "https://shop.example/login?next=http%09://intranet/a&r=%2F%2F%09%2Fi",
        ),
        (
            "https://shop.example/?n=http%3A%2F%2Fbob%3Ap%09w%40intranet&m=ht%0Atp:b:p@i/",
            "https://shop.example/?n=http%3A%2F%2Fintranet&m=ht%0Atp:i/",
        ),
        ("file:///notes:v2@home.html", "file:///notes:v2@home.html"),  # its own: a file's name
        ("https://shop.example/a\tb ", "https://shop.example/a\tb "),  # none: as it is
    ],
)
def test_a_nested_url_s_userinfo_is_cut_as_a_reason_s_is(url: str, recorded: str) -> None:
    """rev43: what the SDKs record of a page (``recorded_url``) leaves out the user and password
    of a URL nested in it, as written or percent-encoded, as a failure's reason does
    (``without_passwords``), and the door takes it; the URL's own userinfo is
    ``without_userinfo``'s, and a fragment's token is kept."""
    from ledger.rules import carries_password, without_nested_passwords, without_passwords
    from workers._guard import recorded_url

    assert without_nested_passwords(url) == recorded
    assert recorded_url(url) == recorded
    assert not carries_password(recorded)
    if url.isprintable() and not url.startswith("file:"):
        assert without_passwords(f"at {url}") == f"at {recorded}"


@pytest.mark.parametrize(
    "url",
    [
        "https://accounts.google.com/o/oauth2/v2/auth?client_id=x&redirect_uri=http%3A%2F%2F"
        "localhost%3A8080&login_hint=bob%40corp.com&response_type=code",
        "https://idp.example/auth?redirect_uri=http://localhost:8080&login_hint=bob@corp.com",
        "https://idp.example/?redirect_uri=https%3A%2F%2Fapp.example%3A8443&login_hint=a%40b.com",
        "https://cas.example/login?service=https%3A%2F%2Fapp.example%3A443&username=a%40corp.com",
        "https://a.example/?u=https://a.example:8443&email=x@y.com",
        "https://a.example/?ref=http://host:8080;user=a@b.com",
        # rev43's third review: addresses, names past ASCII, encoded twice, more parameters
        "https://idp.example/auth?redirect_uri=http://[fe80::1%25eth0]:8080&login_hint=b@c.com",
        "https://x.example/?u=https://[2001:db8::1]&e=bob@corp.com",
        "https://idp.example/auth?redirect_uri=http://b%C3%BCcher.de:8080&login_hint=b@c.com",
        "https://idp.example/auth?redirect_uri=http://bücher.de&login_hint=bob@corp.com",
        "https://github.com/login?return_to=%2Flogin%2Foauth%2Fauthorize%3Fredirect_uri%3D"
        "http%253A%252F%252F127.0.0.1%253A53682%26login%3Dbob%2540corp.com",
        "https://accounts.example/auth?redirect_uri=https://app.example.com&state=a:b"
        "&login_hint=bob@corp.com",
        "https://x.example/?u=https://app.example.com&amp;e=bob@corp.com",
        # rev43's fourth review: doubled and valueless parameters, any name between
        "https://idp.example/auth?redirect_uri=http://localhost:8080&&login_hint=bob@corp.com",
        "https://idp.example/auth?redirect_uri=http://localhost:8080&prompt&login_hint=b@c.com",
        "https://api.example/odata?next=https://api.example.com&$filter=x&email=bob@corp.com",
        "https://idp.example/auth?redirect_uri=http://localhost:8080&amp;amp;login_hint=b@c.com",
        # rev47: a redirect without its scheme, as written and encoded
        "https://idp.example/auth?redirect_uri=//localhost:8080&login_hint=bob@corp.com",
        "https://idp.example/auth?redirect_uri=%2F%2Flocalhost%3A8080&login_hint=bob%40corp.com",
        # review 281: two slashes in a path begin no URL (a map's coordinates, a file's name)
        "https://maps.example/place/@//48.85:2.35@15z",
        "https://files.example/a_//b:c@d",
        "https://files.example/files/(//b:c@d)",
        "https://files.example/~//b:c@d",
        # rev48: a tab among a redirect's slashes makes it no user's
        "https://idp.example/auth?redirect_uri=http%3A%2F%09%2Flocalhost%3A8080&login_hint=b%40c.com",
        "https://maps.example/place/@/%09/48.85:2.35@15z?n=%09//x",
    ],
)
def test_a_sign_in_s_redirect_and_the_next_parameter_s_address_are_no_password(url: str) -> None:
    """rev43's review: a query's value ends at its "&" or ";" as written, so an OAuth or CAS
    sign-in's redirect (a host and port) and the e-mail address of the next parameter were read
    as a nested URL's user and password: the door refused the URL (a heartbeat lost its lease)
    and the SDKs recorded another one (redirect_uri=http://corp.com). Taken as it is, and a
    reason naming it keeps it whole."""
    from ledger.rules import carries_password, without_nested_passwords, without_passwords
    from workers._guard import recorded_url

    assert not carries_password(url)
    assert without_nested_passwords(url) == url
    assert recorded_url(url) == url
    assert without_passwords(f"stuck at {url}") == f"stuck at {url}"


@pytest.mark.parametrize(
    "password", ["pa;ss", "p&ss", "p&ss;w", "2024;Summer=", "&K9xq2w==", ";K=9"]
)
def test_a_password_holding_a_query_s_separator_is_cut_from_a_reason(password: str) -> None:
    """rev43's second review: a reason's URL whose own password holds a ";" or an "&" kept it
    whole once a query's separator ended every segment."""
    from ledger.rules import without_passwords

    said = f"Error: net::ERR_NAME_NOT_RESOLVED at https://bob:{password}@intranet.invalid/"
    assert (
        without_passwords(said) == "Error: net::ERR_NAME_NOT_RESOLVED at https://intranet.invalid/"
    )


@pytest.mark.parametrize("password", ["hun%26ter2", "1234%26x", "8080%3Bx"])
def test_an_encoded_separator_inside_a_nested_password_ends_nothing(password: str) -> None:
    """A "%26" (or "%3B") decoded is part of the nested URL, not the end of the outer query's
    value: even after digits that would read as a host's port ("bob:1234&x@intranet")."""
    from ledger.rules import carries_password, without_nested_passwords

    url = f"https://a.example/login?next=http%3A%2F%2Fbob%3A{password}%40intranet.example"
    assert carries_password(url)
    assert (
        without_nested_passwords(url)
        == "https://a.example/login?next=http%3A%2F%2Fintranet.example"
    )


def test_a_password_holding_an_at_is_cut_whole_from_a_text() -> None:
    """An error naming a URL whose password holds an "@" keeps neither part of it (rev30: the
    tail after the first "@" stayed, read as a user name)."""
    from ledger.rules import without_passwords

    said = "net::ERR_FAILED at https://alice:Tr0ub4dor@3xyz@shop.example/login, retrying"
    assert without_passwords(said) == "net::ERR_FAILED at https://shop.example/login, retrying"


def test_a_user_name_holding_an_at_is_cut_with_its_password_from_a_text() -> None:
    """An error naming a URL whose user is an e-mail address keeps neither user nor password
    (rev31: the rule wanted no "@" in the user, and the whole password stayed in a reason)."""
    from ledger.rules import without_passwords

    said = "login failed at http://alice@corp.example:hunter2@shop.example/, giving up"
    assert without_passwords(said) == "login failed at http://shop.example/, giving up"


def test_a_scheme_that_is_not_special_has_userinfo_only_after_two_slashes() -> None:
    """``foo:\\\\alice:s3cret@host`` has no authority for a browser (a backslash is no slash
    but in a special scheme): taken as it is, and recorded as it is (rev30: refused, and
    rewritten by the SDKs)."""
    from ledger.rules import carries_password, without_userinfo

    url = "foo:\\\\alice:s3cret@shop.example/a"
    assert not carries_password(url)
    assert without_userinfo(url) == url


def test_passwords_are_cut_from_a_text_as_the_rule_s_pattern_cuts_them() -> None:
    """``without_passwords`` gives what the rule's patterns, substituted left to right, give
    (its one-pass search must find the same scheme, user and last "@" as backtracking does),
    on random texts of URL parts."""
    import random

    from ledger._domain.model import _PASSWORD_IN_URL, _USER_IN_URL
    from ledger.rules import without_passwords

    parts = ["http", "a", "B", "1", "+", ".", "-", ":", "/", "\\", "@", "?", "#", " ", "\t",
             "\xa0", "u", "p", "x:", "//", "@h", "\u00e9", "\ufeff", "HTTPS", "ws",
             "ftp", "s", "\n", "\r", "/\t/", "=//"]  # fmt: skip
    rng = random.Random(31)
    for _ in range(20_000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(0, 24)))
        ruled = _USER_IN_URL.sub(r"\1", _PASSWORD_IN_URL.sub(r"\1", text))
        assert without_passwords(text) == ruled, repr(text)


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("net::ERR_UNSAFE_PORT at http://ghp_SECRET@127.0.0.1:1/x", "at http://127.0.0.1:1/x"),
        ("failed at HTTPS:ghp_SECRET@git.example/r.git, retrying", "at HTTPS:git.example/r.git,"),
        ("at wss://tok@a@ws.example/feed", "at wss://ws.example/feed"),
        ("at foo://tok@host/", "at foo://host/"),
        ("at https://@host/", "at https://host/"),
    ],
)
def test_a_url_s_user_without_a_password_is_cut_from_a_text(said: str, kept: str) -> None:
    """A URL's user with no password goes from a text as a password does (rev33: a token as
    the user, ``https://TOKEN@host/``, stayed whole in a failure's reason, where a heartbeat's
    URL is recorded without it)."""
    from ledger.rules import without_passwords

    assert kept in without_passwords(said)
    assert "SECRET" not in without_passwords(said)
    assert "tok" not in without_passwords(said)


@pytest.mark.parametrize(
    ("said", "kept"),
    [
        ("net::ERR_FAILED at http:/\t/bob:SECRET@intranet/a", "at http:/\t/intranet/a"),
        ("net::ERR_FAILED at http:/\n/bob:SECRET@intranet/a", "at http:/\n/intranet/a"),
        ("net::ERR_FAILED at https:\t//bob:SECRET@intranet/a", "at https:\t//intranet/a"),
        ("net::ERR_FAILED at http:/\r\r/SECRET@intranet/a", "at http:/\r\r/intranet/a"),
        ("net::ERR_FAILED at ws://\tSECRET@intranet/a", "at ws://\tintranet/a"),
        ("net::ERR_FAILED at foo:/\t/SECRET@intranet/a", "at foo:/\t/intranet/a"),
        ("stuck at https://a/?next=/\t/SECRET@i/ and ?n=//\tSECRET@j/", "/\t/i/ and ?n=//\tj/"),
    ],
)
def test_a_tab_or_line_break_among_a_scheme_s_slashes_hides_no_user_in_a_text(
    said: str, kept: str
) -> None:
    """rev48: a browser drops every tab and line break in a URL, so ``http:/\t/bob:pw@h`` is
    ``http://bob:pw@h`` to it; a failure's reason kept the user and password, the rule's
    slashes ending at the tab."""
    from ledger.rules import without_passwords

    assert kept in without_passwords(said)
    assert "SECRET" not in without_passwords(said)


@pytest.mark.parametrize(
    "said",
    [
        "write to mailto:joe@example.com",
        "see foo:/alice@host",
        "at user@host:22",
        "see foo:\t/alice@host",  # rev48: one slash past a tab is still one
    ],
)
def test_a_text_s_address_that_is_no_url_s_user_is_kept(said: str) -> None:
    """An e-mail address, and a user after a scheme that is not special with fewer than two
    slashes (no authority for a browser), are no URL's userinfo: kept."""
    from ledger.rules import without_passwords

    assert without_passwords(said) == said


def test_a_long_message_is_cut_of_its_passwords_in_time_linear_in_its_length() -> None:
    """An exception whose one line runs to a million characters gives its reason at once in a
    process of its own (rev31: the pattern's backtracking took 3 s at 64,000 characters and
    minutes at a million, so the worker SDK hung leaving the block and the lease went stale).
    The bound is generous: the search it replaced needed minutes here."""
    import subprocess
    import sys

    script = (
        "from workers._reasons import reason_of\n"
        "for text in ('a' * 10**6 + '@', 'a:' * 500_000 + '@', 'http://' + 'a:' * 500_000 + '@',\n"
        "             'http:' * 200_000 + '@', 'a://' * 250_000 + '@'):\n"
        "    assert reason_of(RuntimeError(text)).startswith('RuntimeError: ')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_a_command_copied_with_changes_comes_in_by_the_door_again() -> None:
    """``model_copy(update=...)`` checks the changes as a new command would be checked: a line
    break in an account id, a negative hard limit, a TTL past the limit or a wrong type is
    ``InvalidInput`` naming the field (rev31 library review: pydantic's copy checked nothing,
    and the ledger appended what its door refuses); a good change is taken."""
    base = RegisterProfile(profile_id="p", account_id="a", proxy_id="x")
    for update, field in (
        ({"account_id": "a\nb"}, "account_id"),
        ({"max_lease_seconds": -5}, "max_lease_seconds"),
        ({"unclean_limit": "three"}, "unclean_limit"),
    ):
        with pytest.raises(InvalidInput) as refused:
            base.model_copy(update=update)
        assert refused.value.field == field
    checkout = Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t")
    with pytest.raises(InvalidInput) as refused:
        checkout.model_copy(update={"ttl_seconds": 10**9})
    assert refused.value.field == "ttl_seconds"
    assert base.model_copy(update={"account_id": "b"}) == RegisterProfile(
        profile_id="p", account_id="b", proxy_id="x"
    )
    assert checkout.model_copy() == checkout


def test_a_file_url_keeps_its_at_signs_and_a_url_cut_again_and_again_ends() -> None:
    """A file URL has no userinfo: ``file:///a@b.html`` is recorded as it is (rev31 reread2:
    as ``file:///b.html``, another file's URL). A text that reads as a userinfo after every
    cut ("//@//@//@...", a cut for each "@": 7 s at 200,000 characters) is cut at most 16
    times, then everything up to its last "@" goes, in a process of its own within a
    generous bound; nothing left carries a password."""
    import subprocess
    import sys

    from ledger.rules import carries_password, without_userinfo

    assert without_userinfo("file:///a@b.html") == "file:///a@b.html"
    built = "//a:b@" * 40 + "host/x"
    assert without_userinfo(built).endswith("host/x")
    assert not carries_password(without_userinfo(built))
    script = (
        "from ledger.rules import carries_password, without_userinfo\n"
        "for text in ('//@' * 10**6 + 'h/', 'http:' + '@/' * 10**6, '//a:b@' * 10**5 + 'h/'):\n"
        "    assert not carries_password(without_userinfo(text))\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_a_command_is_checked_again_at_handling_unless_validation_made_it() -> None:
    """``as_validated``, what ``Ledger.handle`` asks of every command: one that validation
    made, or built with ``model_construct`` holding exactly what validation makes, is itself
    (a resent command id is matched on its fingerprint); a bad value, a field left out, or a
    bad value in a model it holds is ``InvalidInput`` naming the field (rev35: a command built
    with ``model_construct`` went past the door); the same values as other types give
    validation's copy, fingerprinted alike."""
    beat: dict[str, Any] = {"lease_id": "lease-1@p", "fencing_token": 1}
    built = Heartbeat(step="s", **beat)
    assert built.as_validated() is built
    unchecked = Heartbeat.model_construct(step="s", **beat)
    assert unchecked.as_validated() is unchecked
    assert unchecked.fingerprint() == built.fingerprint()
    registration: dict[str, Any] = {"profile_id": "p", "account_id": "a", "proxy_id": "x"}
    for cls, fields, field in (
        (Heartbeat, {**beat, "step": "a\x00b"}, "step"),
        (RegisterProfile, {**registration, "profile_id": "z" * 5000}, "profile_id"),
        (RegisterProfile, {**registration, "release_policy": "bogus"}, "release_policy"),
        (RegisterProfile, {**registration, "unclean_limit": -3}, "unclean_limit"),
        (Checkout, {**CHECKOUT, "ttl_seconds": "300"}, "ttl_seconds"),
        (Checkout, {"profile_id": "p"}, "worker_id"),
        (Release, {**beat, "outcome": "expected_failure"}, "reason"),
    ):
        bad: Any = cls.model_construct(**fields)
        with pytest.raises(InvalidInput) as refused:
            bad.as_validated()
        assert refused.value.field == field
        with pytest.raises(InvalidInput):  # a copy of it, and one validation let through
            bad.model_copy().as_validated()
        with pytest.raises(InvalidInput):
            cls.model_validate(bad).as_validated()
    inspected = BrowserCheck.model_construct(user_data_dir="/p", status="up", host="h", detail="d")
    review = Review(profile_id="p", reviewer="r", decision="disable", note="n", browser=inspected)
    with pytest.raises(InvalidInput) as refused:
        review.as_validated()
    assert refused.value.field == "browser.status"
    as_text: Any = Release.model_construct(outcome="failure", **beat)
    made = as_text.as_validated()
    assert made is not as_text
    assert made.outcome is Outcome.FAILURE
    assert made.fingerprint() == Release(outcome="failure", **beat).fingerprint()


def test_a_value_validation_would_make_otherwise_is_refused() -> None:
    """A value validation accepts but makes into another is not what validation made: refused
    naming the field, not taken as it was nor silently changed."""

    class Trimmed(Door):
        kind = "trimmed"
        name: Annotated[str, AfterValidator(str.strip)]

    assert Trimmed(name=" x ").name == "x"
    with pytest.raises(InvalidInput) as refused:
        Trimmed.model_construct(name=" x ").as_validated()
    assert refused.value.field == "name"
    assert "not what validation makes" in refused.value.problem


def test_the_door_forgets_the_commands_it_made_once_they_are_gone() -> None:
    """The door's note of the commands validation made holds none once they are gone (a
    process renewing leases for months builds millions)."""
    import gc

    from ledger import _door

    gc.collect()
    before = len(_door._MADE)
    beats = [Heartbeat(lease_id=f"lease-{n}@p", fencing_token=n) for n in range(1, 1001)]
    assert len(_door._MADE) >= before + len(beats)
    del beats
    gc.collect()
    assert len(_door._MADE) <= before
