"""The README's examples run, so they cannot rot."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from local_site import CountingProxy, LocalSite

from ledger import Ledger, RegisterProfile

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def _python_block(marker: str) -> str:
    (block,) = [b for b in _blocks("python") if marker in b]
    return block


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python examples run as written, in order, against a new SQLite file: the API
    example makes the ledger the reports example reads."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUSTODY_STORE", raising=False)
    api = _python_block("    CheckoutDenied,")
    reports_example = _python_block("import reports")
    exec(compile(api, "README.md", "exec"), {})  # noqa: S102 - our own README
    assert (tmp_path / "custody.db").exists()
    exec(compile(reports_example, "README.md", "exec"), {})  # noqa: S102 - our own README


@pytest.mark.browser
def test_worker_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Workers example runs as written, with what the text before it asks for: the profile
    registered with its directory in ./custody.db, its proxy id mapped in $CUSTODY_PROXIES (to a
    local proxy wanting credentials), and ``url`` a local page. It releases cleanly through
    that proxy, with a screenshot on file in the default evidence directory (under
    $XDG_STATE_HOME, never the working directory)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CUSTODY_STORE", raising=False)
    monkeypatch.delenv("CUSTODY_EVIDENCE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    with Ledger.open() as ledger:
        ledger.handle(
            RegisterProfile(
                profile_id="profile_shop_17",
                account_id="account_shop_17",
                proxy_id="proxy_us_east_12",
                user_data_dir=str(tmp_path / "profiles" / "profile_shop_17"),
            )
        )
    site, proxy = LocalSite(), CountingProxy("w3", "pw")
    try:
        proxies = {"proxy_us_east_12": {"server": proxy.server, "username": "w3", "password": "pw"}}
        (tmp_path / "proxies.json").write_text(json.dumps(proxies))
        monkeypatch.setenv("CUSTODY_PROXIES", str(tmp_path / "proxies.json"))
        example = _python_block("ProfileLeases.open(")
        namespace = {"url": f"{site.url}/dashboard"}
        exec(compile(example, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    finally:
        site.close()
        proxy.close()
    assert proxy.requests == [f"{site.url}/dashboard"]
    with Ledger.open(create=False) as ledger:
        assert ledger.view("profile_shop_17").state == "available"
    evidence = tmp_path / "state" / "custody" / "evidence" / "profile_shop_17"
    assert list(evidence.glob("lease-1/final.png"))
    assert not (tmp_path / "evidence").exists()


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
