"""A worker's browser configuration: which Chromium, where evidence goes, how a proxy id
becomes a proxy, which pages count as a login or verification prompt.

The ledger knows a profile's proxy only by its id. The worker turns the id into a server and
credentials from its own configuration (a mapping or a callable), so credentials never reach
the ledger; the id it resolved is what it reports as the proxy it launched with.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import BrowserType, ProxySettings

from ledger import InvalidInput
from ledger.rules import environment_setting

DEFAULT_EXECUTABLE = "/usr/bin/chromium"
PROXIES_ENV_VAR = "CUSTODY_PROXIES"
EVIDENCE_ENV_VAR = "CUSTODY_EVIDENCE_DIR"
STATE_DIR = "the user's state directory"
# Pages that mean a person must look: a challenge, a captcha, a second factor. A login page is
# left out on purpose: many tasks log in; a task that must never see one adds its pattern.
DEFAULT_PROMPT_PATTERNS = (
    r"captcha",
    r"/challenge",
    r"/verif(y|ication)",
    r"/(2fa|mfa|two-factor)",
)
# What a launch always gets unless the caller says otherwise. Service workers are blocked: a
# request a service worker makes on its own is one more path to the network to reason about.
LAUNCH_DEFAULTS: dict[str, Any] = {"headless": True, "service_workers": "block"}
# Options that would make the launch something other than this lease's profile and proxy.
RESERVED_OPTIONS = ("user_data_dir", "proxy")
# Switches a caller may not pass (in ``args``, or in an ``ignore_default_args`` list): each
# would change the proxy the browser uses (Chromium obeys the last --proxy-server it is given),
# which hosts bypass it, the profile directory (or the profile inside it: the WebRTC policy is
# pinned in Default's preferences, ``workers._launch.pin_webrtc_policy``) it opens, or says to
# set the WebRTC policy, which is the SDK's. Names as Chromium reads them on POSIX: after "-"
# or "--", up to "=".
RESERVED_SWITCHES = frozenset(
    {
        "proxy-server",
        "proxy-pac-url",
        "no-proxy-server",
        "proxy-auto-detect",
        "proxy-bypass-list",
        "user-data-dir",
        "profile-directory",
        "force-webrtc-ip-handling-policy",
        "webrtc-ip-handling-policy",
    }
)

# A proxy id resolves to the proxy's settings, or to None: "this id means a direct connection".
DIRECT = None
# How a direct profile is launched: Chromium uses no proxy at all, not even one its environment
# names (``http_proxy``, ``all_proxy``; it reads them when given no proxy switch).
DIRECT_SWITCH = "--no-proxy-server"
# Switches every launch gets, after the caller's, and which an ``ignore_default_args`` list may
# not name (Playwright drops a named argument from all it passes, the caller's too). No shared
# workers: Playwright does not attach to a shared worker, so its requests pass no
# ``context.route`` and reach the network after the lease is lost (rev43: a frozen worker's page
# kept fetching through one for 16 s after a force-release). The feature's constructor is gone
# from every frame of every page, an iframe's and a popup's too. Chromium merges repeated
# --disable-blink-features and an --enable-blink-features=SharedWorker does not undo it
# (measured with Debian's Chromium 156), so a caller's own --disable-blink-features=... stands.
GUARD_SWITCHES = ("--disable-blink-features=SharedWorker",)
Proxy = ProxySettings | None
ProxyResolver = Mapping[str, Proxy] | Callable[[str], Proxy]


class LaunchRefused(Exception):
    """The browser was not launched: the profile or this worker's configuration does not allow
    it (no registered profile directory, a proxy id this worker cannot resolve, an option
    that would launch something other than the leased profile)."""


@dataclass(frozen=True)
class BrowserSettings:
    """How this worker launches a leased profile.

    ``proxies``: a mapping from proxy id to Playwright proxy settings (``DIRECT`` for none), or
    a callable doing the same that raises ``LookupError`` for an id it does not know; None reads
    the JSON file named by ``$CUSTODY_PROXIES`` (an object of the same shape), else knows no
    proxy. ``prompt_patterns`` are regular expressions searched in every URL a frame navigates
    to (case-insensitive). ``evidence_dir`` receives each lease's final screenshot and
    ``evidence.json``; None: ``default_evidence_dir()``.
    """

    executable_path: str = DEFAULT_EXECUTABLE
    proxies: ProxyResolver | None = None
    prompt_patterns: Sequence[str] = DEFAULT_PROMPT_PATTERNS
    evidence_dir: str | os.PathLike[str] | None = None
    screenshot_timeout_ms: float = 5_000
    launch_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """``InvalidInput`` for a setting every launch would fail on (a proxy that is not
        Playwright's proxy settings, launch options that are not a mapping of its options, a
        timeout that is not a positive number, an executable named that is not one), and for
        prompt patterns that are not a list of regular expressions: found here, before any
        checkout, not by a lease already granted, whose profile its failure sends to review."""
        _check_executable(self.executable_path)
        _check_proxies(self.proxies)
        _check_prompt_patterns(self.prompt_patterns)
        evidence_dir = self.evidence_dir
        if evidence_dir is not None and not isinstance(evidence_dir, str | os.PathLike):
            raise InvalidInput("evidence_dir", f"must be a path or None, got {evidence_dir!r}")
        timeout = self.screenshot_timeout_ms
        if not _is_number(timeout) or not 0 < timeout < math.inf:
            raise InvalidInput(
                "screenshot_timeout_ms",
                f"must be a positive number of milliseconds, got {timeout!r}",
            )
        _check_launch_options(self.launch_options)

    def resolve_proxy(self, proxy_id: str) -> Proxy:
        """The proxy to launch with for ``proxy_id``; ``LaunchRefused`` if this worker has no
        configuration for it (never a silent direct connection), or one that is not Playwright's
        proxy settings (``proxy_problem``)."""
        resolver = self.proxies if self.proxies is not None else _proxies_from_environment()
        try:
            proxy = resolver[proxy_id] if isinstance(resolver, Mapping) else resolver(proxy_id)
        except LookupError:
            msg = (
                f"this worker has no proxy configured for {proxy_id!r}: map it in "
                f"BrowserSettings(proxies=...) or in the file ${PROXIES_ENV_VAR} names"
            )
            raise LaunchRefused(msg) from None
        problem = proxy_problem(proxy)
        if problem is not None:  # from a callable, or $CUSTODY_PROXIES: known only now
            raise LaunchRefused(f"the proxy configured for {proxy_id!r} {problem}")
        return proxy

    def prompt_matcher(self) -> Callable[[str], bool]:
        """A predicate: does this URL look like a login or verification prompt?"""
        patterns = [re.compile(p, re.IGNORECASE) for p in self.prompt_patterns]
        return lambda url: any(p.search(url) for p in patterns)

    def launch_arguments(self, proxy: Proxy, options: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``launch_persistent_context`` (all but the directory):
        defaults, then this worker's ``launch_options``, then the call's, then the proxy (for
        a direct connection, ``DIRECT_SWITCH``: a direct profile goes direct, never through a
        proxy its environment or Playwright's ``env`` names, which the ledger would not know);
        ``GUARD_SWITCHES`` after the caller's switches. ``LaunchRefused`` for an option or a
        Chromium switch (``RESERVED_SWITCHES``) that would choose the directory, the proxy or
        the WebRTC policy, for ``ignore_default_args=True`` (it drops the proxy and directory
        Playwright passes) and for an ``ignore_default_args`` list naming a ``GUARD_SWITCHES``."""
        for given in (self.launch_options, options):
            _refuse_reserved(given)
        arguments = {**LAUNCH_DEFAULTS, "executable_path": self.executable_path}
        arguments.update(self.launch_options)
        arguments.update(options)
        arguments["args"] = [*arguments.get("args", ()), *GUARD_SWITCHES]
        if proxy is not None:
            arguments["proxy"] = proxy
        else:  # direct, whatever proxy the environment names (Chromium reads http_proxy etc.)
            arguments["args"] = [*arguments.get("args", ()), DIRECT_SWITCH]
        return arguments


# What Playwright's proxy settings may hold (``server`` required), each a string.
PROXY_KEYS = frozenset(ProxySettings.__optional_keys__ | ProxySettings.__required_keys__)


def proxy_problem(proxy: object) -> str | None:
    """What is wrong with ``proxy`` as a proxy to launch with (``DIRECT``, or a dict of
    Playwright's proxy settings with a ``server``), said to follow its name; None if nothing."""
    if proxy is DIRECT:
        return None
    shape = "must be None (a direct connection) or a dict like {'server': 'http://host:port'}"
    if not isinstance(proxy, dict):
        return f"{shape}, not {proxy!r}"
    unknown = sorted(str(key) for key in proxy if key not in PROXY_KEYS)
    if unknown:
        return f"{shape}: {', '.join(unknown)} is not a proxy setting"
    if not isinstance(proxy.get("server"), str) or not proxy["server"]:
        return f"{shape}: its server is missing"
    if any(not isinstance(value, str | None) for value in proxy.values()):
        return f"{shape}, each setting a string"
    return None


def _check_proxies(proxies: object) -> None:
    if proxies is None or (callable(proxies) and not isinstance(proxies, Mapping)):
        return
    if not isinstance(proxies, Mapping):
        raise InvalidInput(
            "proxies", f"must map proxy ids to proxies, or be a callable, not {proxies!r}"
        )
    for proxy_id, proxy in proxies.items():
        if not isinstance(proxy_id, str):
            raise InvalidInput("proxies", f"a proxy id is a string, not {proxy_id!r}")
        problem = proxy_problem(proxy)
        if problem is not None:
            raise InvalidInput("proxies", f"{proxy_id!r} {problem}")


def _check_prompt_patterns(patterns: object) -> None:
    if isinstance(patterns, str | bytes) or not isinstance(patterns, Sequence):
        raise InvalidInput("prompt_patterns", "must be a list of regular expressions")
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise InvalidInput("prompt_patterns", f"{pattern!r} is not a regular expression")
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as wrong:
            raise InvalidInput("prompt_patterns", f"{pattern!r}: {wrong}") from None


def _check_executable(path: object) -> None:
    """A path; one named other than the default must be an executable file. The default is a
    guess at where Chromium lives, left unchecked: a worker that never launches a browser (the
    fleet demo without --browser) opens on a host without one."""
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise InvalidInput("executable_path", f"must be the path of Chromium, got {path!r}")
    if os.fspath(path) != DEFAULT_EXECUTABLE and not (
        os.path.isfile(path) and os.access(path, os.X_OK)
    ):
        raise InvalidInput("executable_path", f"{os.fspath(path)!r} is not an executable file")


def _check_launch_options(options: object) -> None:
    if not isinstance(options, Mapping):
        raise InvalidInput("launch_options", f"must be a mapping of options, not {options!r}")
    if not _strings(options.get("args", [])):
        raise InvalidInput("launch_options", "args must be a list of strings")
    ignored = options.get("ignore_default_args", False)
    if not isinstance(ignored, bool) and not _strings(ignored):
        raise InvalidInput("launch_options", "ignore_default_args must be a list of strings")
    try:
        _refuse_reserved(options)
    except LaunchRefused as refused:
        raise InvalidInput("launch_options", str(refused)) from None
    known = inspect.signature(BrowserType.launch_persistent_context).parameters
    unknown = sorted(str(name) for name in options if name not in known or name == "self")
    if unknown:
        raise InvalidInput(
            "launch_options",
            f"{', '.join(unknown)}: not an option of Playwright's launch_persistent_context",
        )


def _strings(value: object) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str | bytes)
        and all(isinstance(item, str) for item in value)
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _refuse_reserved(options: Mapping[str, Any]) -> None:
    for name in RESERVED_OPTIONS:
        if name in options:
            raise LaunchRefused(f"{name} comes from the lease's profile, not a launch option")
    if options.get("ignore_default_args") is True:
        raise LaunchRefused(
            "ignore_default_args=True would drop the lease's proxy and profile directory: "
            "name the default arguments to drop instead"
        )
    ignored = options.get("ignore_default_args") or ()
    for arg in ignored:
        if arg in GUARD_SWITCHES:
            raise LaunchRefused(
                f"{arg!r} keeps every request of the browser passing the lease's guard: "
                "not a default argument to drop"
            )
    for arg in [*options.get("args", ()), *ignored]:
        if switch_name(arg) in RESERVED_SWITCHES:
            raise LaunchRefused(
                f"{arg!r} would change the browser's proxy, profile directory or WebRTC policy, "
                "which come from the lease's profile and this SDK: not a launch argument"
            )


def switch_name(arg: str) -> str | None:
    """The Chromium switch ``arg`` names (``--proxy-server=x`` and ``-proxy-server=x`` both
    name ``proxy-server``), lower-cased; None for an argument that is not a switch."""
    if not isinstance(arg, str) or not arg.startswith("-") or arg == "--":
        return None
    return arg.lstrip("-").split("=", 1)[0].strip().lower()


def default_evidence_dir() -> Path:
    """Where evidence goes unless the settings name a directory, always absolute:
    ``$CUSTODY_EVIDENCE_DIR`` (a relative one from the working directory, read now), else
    ``$XDG_STATE_HOME/custody/evidence`` when that is absolute (the XDG spec ignores a relative
    one), else ``~/.local/state/custody/evidence``: evidence is state a user keeps, and a
    worker's working directory depends on how it was started."""
    named = environment_setting(EVIDENCE_ENV_VAR, os.environ.get(EVIDENCE_ENV_VAR), STATE_DIR)
    if named is not None:
        return Path(named).absolute()
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "custody" / "evidence"


def _proxies_from_environment() -> Mapping[str, Proxy]:
    try:
        path = environment_setting(PROXIES_ENV_VAR, os.environ.get(PROXIES_ENV_VAR), "no proxies")
    except InvalidInput as e:
        raise LaunchRefused(f"${PROXIES_ENV_VAR} {e.problem}") from None
    if path is None:
        return {}
    try:
        loaded = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise LaunchRefused(f"cannot read ${PROXIES_ENV_VAR} ({path}): {e}") from None
    if not isinstance(loaded, dict):
        raise LaunchRefused(f"${PROXIES_ENV_VAR} ({path}) must hold a JSON object")
    return loaded
