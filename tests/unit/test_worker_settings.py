"""A worker's settings: where evidence goes by default (from its environment), and the launch
options that would take the browser off the lease's profile and proxy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger import InvalidInput
from workers import DIRECT, BrowserSettings, LaunchRefused
from workers._held import WorkerConfig
from workers._settings import default_evidence_dir

NO_SHARED_WORKERS = "--disable-blink-features=SharedWorker"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home of its own, no evidence or XDG variable set, and a working directory elsewhere."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CUSTODY_EVIDENCE_DIR", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "home"


def test_evidence_goes_to_the_users_state_directory_not_the_working_one(home: Path) -> None:
    """With nothing configured, evidence goes to ~/.local/state/custody/evidence, whatever
    directory the worker was started in."""
    config = WorkerConfig.open(None, worker_id="w", settings=BrowserSettings())
    assert config.evidence_dir == home / ".local/state/custody/evidence"
    assert default_evidence_dir() == config.evidence_dir


def test_xdg_state_home_and_custody_evidence_dir_choose_it_in_that_order(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$XDG_STATE_HOME (when absolute, as the XDG spec requires) moves it to
    $XDG_STATE_HOME/custody/evidence; $CUSTODY_EVIDENCE_DIR names it outright (a relative one
    is taken from the working directory once, at open); BrowserSettings(evidence_dir=...)
    beats both."""
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    assert default_evidence_dir() == home / ".local/state/custody/evidence"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_evidence_dir() == tmp_path / "state/custody/evidence"
    monkeypatch.setenv("CUSTODY_EVIDENCE_DIR", "shots")
    assert default_evidence_dir() == tmp_path / "cwd/shots"
    chosen = BrowserSettings(evidence_dir=tmp_path / "mine")
    assert WorkerConfig.open(None, worker_id="w", settings=chosen).evidence_dir == tmp_path / "mine"


@pytest.mark.parametrize("value", ["", "  "])
def test_custody_evidence_dir_and_proxies_set_but_empty_are_refused_not_unset(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """rev45: set but empty, ``$CUSTODY_EVIDENCE_DIR`` quietly meant the user's state
    directory and ``$CUSTODY_PROXIES`` no proxies: the first is bad input naming it when the
    worker opens, the second refuses the launch naming it (a browser, ``LaunchRefused``)."""
    monkeypatch.setenv("CUSTODY_EVIDENCE_DIR", value)
    with pytest.raises(InvalidInput, match=r"^invalid CUSTODY_EVIDENCE_DIR: is set but empty"):
        WorkerConfig.open(None, worker_id="w", settings=BrowserSettings())
    monkeypatch.delenv("CUSTODY_EVIDENCE_DIR")
    monkeypatch.setenv("CUSTODY_PROXIES", value)
    message = r"^\$CUSTODY_PROXIES is set but empty: unset it for the default \(no proxies\)"
    with pytest.raises(LaunchRefused, match=message):
        BrowserSettings().resolve_proxy("proxy_us_east_12")


@pytest.mark.parametrize(
    "arg",
    [
        "--proxy-server=direct://",
        "-proxy-server=http://10.9.9.9:3128",
        "--proxy-pac-url=http://10.9.9.9/proxy.pac",
        "--no-proxy-server",
        "--proxy-auto-detect",
        "--proxy-bypass-list=*",
        "--user-data-dir=/tmp/elsewhere",
        "--profile-directory=Profile 2",
        "--force-webrtc-ip-handling-policy=default",
        "--webrtc-ip-handling-policy=default",
    ],
)
def test_a_chromium_switch_that_changes_the_proxy_or_the_profile_is_refused(arg: str) -> None:
    """A switch in ``args`` that chooses the proxy (Chromium obeys the last ``--proxy-server``
    it is given), the hosts that bypass it, the directory, the profile in it, or the WebRTC
    policy is refused like the ``proxy`` keyword, from the call (at launch) or the worker's
    settings (when they are made), and so is an ``ignore_default_args`` list naming one."""
    settings = BrowserSettings()
    proxy = {"server": "http://10.0.0.12:3128"}
    for refused in (
        lambda: settings.launch_arguments(proxy, {"args": ["--mute-audio", arg]}),
        lambda: settings.launch_arguments(proxy, {"ignore_default_args": [arg]}),
    ):
        with pytest.raises(LaunchRefused, match="proxy, profile directory or WebRTC policy"):
            refused()
    for options in ({"args": [arg]}, {"ignore_default_args": [arg]}):
        with pytest.raises(InvalidInput, match=r"invalid launch_options: .*WebRTC policy"):
            BrowserSettings(launch_options=options)


def test_dropping_every_default_argument_is_refused_other_arguments_pass() -> None:
    """``ignore_default_args=True`` would drop the proxy and directory Playwright passes: refused;
    switches of other kinds, and a list of other defaults to drop, pass as given."""
    settings = BrowserSettings()
    with pytest.raises(LaunchRefused, match="ignore_default_args=True"):
        settings.launch_arguments(None, {"ignore_default_args": True})
    given = {"args": ["--mute-audio", "--lang=de"], "ignore_default_args": ["--hide-scrollbars"]}
    arguments = settings.launch_arguments({"server": "http://10.0.0.5:3128"}, given)
    assert (arguments["args"], arguments["ignore_default_args"]) == (
        ["--mute-audio", "--lang=de", NO_SHARED_WORKERS],
        ["--hide-scrollbars"],
    )
    # A direct profile's launch says so (DIRECT_SWITCH), after the caller's own switches.
    direct = settings.launch_arguments(DIRECT, given)
    assert direct["args"] == ["--mute-audio", "--lang=de", NO_SHARED_WORKERS, "--no-proxy-server"]
    assert given["args"] == ["--mute-audio", "--lang=de"]  # the caller's list is left as it was


def test_every_launch_has_no_shared_workers_and_none_may_drop_that() -> None:
    """Shared workers are switched off in every launch, a caller's own blink features kept
    beside it (Chromium merges the switch); an ``ignore_default_args`` list naming that switch
    (Playwright would drop it) is refused at launch and in the worker's settings."""
    settings = BrowserSettings()
    for proxy in (DIRECT, {"server": "http://10.0.0.5:3128"}):
        for given in ({}, {"args": ["--disable-blink-features=AutomationControlled"]}):
            arguments = settings.launch_arguments(proxy, given)
            assert NO_SHARED_WORKERS in arguments["args"]
            assert set(given.get("args", ())) <= set(arguments["args"])
    dropped = {"ignore_default_args": ["--hide-scrollbars", NO_SHARED_WORKERS]}
    with pytest.raises(LaunchRefused, match="passing the lease's guard"):
        settings.launch_arguments(DIRECT, dropped)
    with pytest.raises(InvalidInput, match="passing the lease's guard"):
        BrowserSettings(launch_options=dropped)


@pytest.mark.parametrize(
    ("patterns", "said"),
    [
        (["/verify", "("], "'(': missing ), unterminated subpattern"),
        ("captcha", "must be a list of regular expressions"),
        ([b"/login"], "b'/login' is not a regular expression"),
    ],
    ids=["not_a_regex", "a_string", "bytes"],
)
def test_prompt_patterns_that_are_not_regular_expressions_are_refused_at_once(
    patterns: object, said: str
) -> None:
    """Refused when the settings are made, before any checkout: a pattern compiled only once a
    lease was granted raised there and left the lease unreleased (rev27); a string, which is a
    sequence too, made every letter a pattern and every URL a prompt."""
    with pytest.raises(InvalidInput, match="invalid prompt_patterns: ") as refused:
        BrowserSettings(prompt_patterns=patterns)  # type: ignore[arg-type]
    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"proxies": {"px": "http://127.0.0.1:3128"}}, "invalid proxies: 'px' must be None"),
        ({"proxies": {"px": {"host": "10.0.0.1"}}}, "host is not a proxy setting"),
        ({"proxies": {"px": {"server": ""}}}, "its server is missing"),
        ({"proxies": {"px": {"server": "http://h:1", "password": 3}}}, "each setting a string"),
        ({"proxies": {7: None}}, "invalid proxies: a proxy id is a string, not 7"),
        ({"proxies": [1, 2]}, "invalid proxies: must map proxy ids to proxies"),
        ({"proxies": "http://127.0.0.1:3128"}, "invalid proxies: must map proxy ids"),
        ({"launch_options": [("headless", False)]}, "invalid launch_options: must be a mapping"),
        ({"launch_options": {"headles": True}}, "headles: not an option of Playwright's"),
        ({"launch_options": {"args": "--lang=de"}}, "args must be a list of strings"),
        ({"launch_options": {"ignore_default_args": "x"}}, "ignore_default_args must be a list"),
        ({"launch_options": {"proxy": None}}, "proxy comes from the lease's profile"),
        ({"screenshot_timeout_ms": -5}, "invalid screenshot_timeout_ms: must be a positive"),
        ({"screenshot_timeout_ms": 0}, "invalid screenshot_timeout_ms: must be a positive"),
        ({"screenshot_timeout_ms": float("nan")}, "invalid screenshot_timeout_ms"),
        ({"screenshot_timeout_ms": "5000"}, "invalid screenshot_timeout_ms"),
        ({"executable_path": "/nope/chromium"}, "'/nope/chromium' is not an executable file"),
        ({"executable_path": "/"}, "invalid executable_path: '/' is not an executable file"),
        ({"executable_path": None}, "invalid executable_path: must be the path of Chromium"),
        ({"evidence_dir": 5}, "invalid evidence_dir: must be a path or None"),
    ],
)
def test_settings_every_launch_would_fail_on_are_refused_when_made(
    given: dict[str, object], said: str
) -> None:
    """A proxy that is not Playwright's proxy settings (a URL string where it wants a dict),
    launch options that are not a mapping of its options, a timeout that is not a positive
    number, an executable named that is not one: refused when the settings are made (rev41),
    where each was accepted and then failed every launch, each lease released as an unexpected
    failure and its profile sent to review."""
    with pytest.raises(InvalidInput, match=re.escape(said)):
        BrowserSettings(**given)  # type: ignore[arg-type]


def test_settings_a_launch_can_use_are_accepted(tmp_path: Path) -> None:
    """Proxies as a mapping (a dict of settings, ``DIRECT``) or a callable, Playwright's own
    launch options, a path-like executable that is one: accepted as given. The default
    executable is not checked (a worker that never launches a browser opens without one)."""
    chromium = tmp_path / "chrome"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    settings = BrowserSettings(
        executable_path=chromium,  # type: ignore[arg-type]
        proxies={"px": {"server": "http://10.0.0.5:3128", "username": "w", "bypass": None}},
        launch_options={"headless": False, "slow_mo": 50, "args": ["--lang=de"]},
        screenshot_timeout_ms=1.5,
    )
    assert settings.resolve_proxy("px") == {
        "server": "http://10.0.0.5:3128",
        "username": "w",
        "bypass": None,
    }
    assert BrowserSettings(proxies=lambda proxy_id: DIRECT).resolve_proxy("any") is DIRECT
    assert BrowserSettings(executable_path="/usr/bin/chromium").executable_path


def test_a_proxy_resolved_at_launch_that_is_not_one_refuses_the_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a callable answers, or ``$CUSTODY_PROXIES`` holds, is known only at launch: a URL
    string there refuses the launch (``LaunchRefused`` naming the proxy id), never reaches
    Playwright as its proxy."""
    with pytest.raises(LaunchRefused, match="proxy configured for 'px' must be None"):
        BrowserSettings(proxies=lambda proxy_id: "http://10.0.0.5:3128").resolve_proxy("px")  # type: ignore[arg-type,return-value]
    named = tmp_path / "proxies.json"
    named.write_text('{"px": "http://10.0.0.5:3128"}')
    monkeypatch.setenv("CUSTODY_PROXIES", str(named))
    with pytest.raises(LaunchRefused, match="proxy configured for 'px' must be None"):
        BrowserSettings().resolve_proxy("px")
