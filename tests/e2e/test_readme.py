"""The README's examples run, so they cannot rot."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python examples run as written, in order, against a new SQLite file: the API
    example makes the ledger the reports example reads."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUSTODY_STORE", raising=False)
    api, reports_example = _blocks("python")
    exec(compile(api, "README.md", "exec"), {})  # noqa: S102 - our own README
    assert (tmp_path / "custody.db").exists()
    exec(compile(reports_example, "README.md", "exec"), {})  # noqa: S102 - our own README


def test_cli_example_runs(tmp_path: Path) -> None:
    """The command-line example runs as written, each command exiting 0."""
    cli_block = next(b for b in _blocks("sh") if "custody register" in b)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("CUSTODY_STORE", None)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", cli_block],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"fencing_token": 1' in done.stdout
    assert "released cleanly" in done.stdout
    assert "lease_released_cleanly" in done.stdout
