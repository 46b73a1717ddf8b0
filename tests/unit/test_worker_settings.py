"""A worker's settings: where evidence goes by default (from its environment), and the launch
options that would take the browser off the lease's profile and proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import InvalidInput
from workers import DIRECT, BrowserSettings, LaunchRefused
from workers._held import WorkerConfig
from workers._settings import default_evidence_dir


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
    policy is refused like the ``proxy`` keyword, from the call or the worker's settings, and
    so is an ``ignore_default_args`` list naming one."""
    settings = BrowserSettings()
    proxy = {"server": "http://10.0.0.12:3128"}
    for refused in (
        lambda: settings.launch_arguments(proxy, {"args": ["--mute-audio", arg]}),
        lambda: BrowserSettings(launch_options={"args": [arg]}).launch_arguments(proxy, {}),
        lambda: settings.launch_arguments(proxy, {"ignore_default_args": [arg]}),
    ):
        with pytest.raises(LaunchRefused, match="proxy, profile directory or WebRTC policy"):
            refused()


def test_dropping_every_default_argument_is_refused_other_arguments_pass() -> None:
    """``ignore_default_args=True`` would drop the proxy and directory Playwright passes: refused;
    switches of other kinds, and a list of other defaults to drop, pass as given."""
    settings = BrowserSettings()
    with pytest.raises(LaunchRefused, match="ignore_default_args=True"):
        settings.launch_arguments(None, {"ignore_default_args": True})
    given = {"args": ["--mute-audio", "--lang=de"], "ignore_default_args": ["--hide-scrollbars"]}
    arguments = settings.launch_arguments({"server": "http://10.0.0.5:3128"}, given)
    assert (arguments["args"], arguments["ignore_default_args"]) == (
        ["--mute-audio", "--lang=de"],
        ["--hide-scrollbars"],
    )
    # A direct profile's launch says so (DIRECT_SWITCH), after the caller's own switches.
    direct = settings.launch_arguments(DIRECT, given)
    assert direct["args"] == ["--mute-audio", "--lang=de", "--no-proxy-server"]
    assert given["args"] == ["--mute-audio", "--lang=de"]  # the caller's list is left as it was


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
