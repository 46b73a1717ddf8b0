"""``custody inspect --stop-orphan`` against a real Chromium: bad input is refused
before anything is done, and a stop that was carried out is recorded (every transition is an
event; a refused command does nothing)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from chromium_process import launch, still_running, stop
from cli_process import Run, custody, error_line, ok

pytestmark = pytest.mark.slow

PROFILE = "profile_shop_17"


def _cli(store: str, cwd: Path, *args: str) -> Run:
    return custody("--store", store, *args, cwd=cwd)


def _orphan(tmp_path: Path, directory: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """A store with the profile registered on ``directory`` (never leased), and a Chromium
    running there: an orphan ``--stop-orphan`` may stop."""
    directory.mkdir(parents=True)
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(_cli(store, tmp_path, "register", PROFILE, "--account", "a", "--proxy", "x",
            "--user-data-dir", str(directory)))  # fmt: skip
    return store, launch(directory, tmp_path / "chromium.log")


@pytest.fixture
def stopped_later() -> Iterator[list[subprocess.Popen[bytes]]]:
    browsers: list[subprocess.Popen[bytes]] = []
    yield browsers
    for browser in browsers:
        stop(browser)


def _events(store: str, cwd: Path) -> list[str]:
    return [r["event_type"] for r in ok(_cli(store, cwd, "--json", "timeline", PROFILE)).json()]


def test_a_bad_actor_is_refused_before_the_browser_is_stopped(
    tmp_path: Path, stopped_later: list[subprocess.Popen[bytes]]
) -> None:
    """``--actor ' ops'`` is bad input (exit 2), found before any signal: the browser still
    runs and nothing is recorded (it was found only when the stop was recorded, after the
    browser was killed)."""
    store, browser = _orphan(tmp_path, tmp_path / "profiles" / PROFILE)
    stopped_later.append(browser)
    before = _events(store, tmp_path)

    run = _cli(store, tmp_path, "inspect", PROFILE, "--stop-orphan", "--actor", " ops")

    assert run.code == 2, run
    assert "actor" in error_line(run)
    assert _events(store, tmp_path) == before
    assert still_running(browser), "the browser was stopped by a refused command"


def test_a_stop_on_a_long_directory_is_recorded(
    tmp_path: Path, stopped_later: list[subprocess.Popen[bytes]]
) -> None:
    """The stop's record (``RecordBrowserStop.user_data_dir``) takes a directory as long as a
    registration does: it took a ``Name`` of at most 200 characters, so on a longer directory
    the browser was stopped, then the record refused as bad input (exit 2), and no
    ``browser_stopped`` written."""
    directory = tmp_path / ("d" * 120) / ("e" * 120) / PROFILE
    store, browser = _orphan(tmp_path, directory)
    stopped_later.append(browser)

    run = _cli(store, tmp_path, "inspect", PROFILE, "--stop-orphan", "--actor", "ops")

    assert run.code == 0, run.err
    assert _events(store, tmp_path)[-1] == "browser_stopped"
