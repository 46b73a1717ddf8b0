"""A worker's settings that come from its environment: where evidence goes by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers import BrowserSettings
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
