"""The sync worker SDK is generated from the asyncio one (``scripts/unasync.py``): the files in
the repository are what the script makes now, and the script says so when they are not."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "unasync.py"
GENERATED = ("workers/_leases.py", "workers/_browser.py")
SOURCES = ("workers/aio/_leases.py", "workers/aio/_browser.py")
PACKAGES = ("ledger", "projections", "workers", "reports", "custody")


def unasync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )


def copy_of_the_sdk(tmp_path: Path) -> Path:
    """The packages and the ruff settings, in a repository of their own (ruff tells the
    project's imports from others' by the packages it finds there)."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in PACKAGES:
        ignored = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignored)
    return tmp_path


def test_the_sync_sdk_is_the_asyncio_sdk_rewritten() -> None:
    """``unasync.py --check`` finds each generated sync module up to date, and each says at its
    top that it is generated and from what."""
    checked = unasync("--check")
    assert (checked.returncode, checked.stderr) == (0, "")
    for generated, source in zip(GENERATED, SOURCES, strict=True):
        top = (ROOT / generated).read_text().splitlines()[0]
        assert top.startswith(f"# Generated from {source} by scripts/unasync.py"), top


def test_a_change_to_the_source_makes_the_sync_file_stale_until_regenerated(
    tmp_path: Path,
) -> None:
    """A fix made in the asyncio source only: the check fails naming the sync file; running
    the script writes the fix there (without ``await``), and the check passes again."""
    root = copy_of_the_sdk(tmp_path)
    source = root / "workers/aio/_leases.py"
    fixed = source.read_text().replace(
        "        await self._ensure_held()\n        url =",
        "        await self._ensure_held()\n        await self._close_browser()\n        url =",
    )
    assert fixed != source.read_text()
    source.write_text(fixed)

    stale = unasync("--check", "--root", str(root))
    assert stale.returncode == 1
    assert "workers/_leases.py is stale" in stale.stderr
    assert "_browser.py" not in stale.stderr
    assert "self._close_browser()\n        url =" not in (root / "workers/_leases.py").read_text()

    assert unasync("--root", str(root)).returncode == 0
    assert "        self._close_browser()\n        url =" in (root / GENERATED[0]).read_text()
    assert unasync("--check", "--root", str(root)).returncode == 0


def test_an_asyncio_word_left_after_the_rewrite_stops_the_script(tmp_path: Path) -> None:
    """What only asyncio can do belongs in the flavour module: a source that would keep
    ``asyncio`` after the rewrite is refused with exit 2 naming the line, and nothing is
    written."""
    root = copy_of_the_sdk(tmp_path)
    source = root / "workers/aio/_browser.py"
    source.write_text(
        source.read_text().replace(
            "        if self.closed:\n", "        if self.closed:\n            asyncio.sleep(0)\n"
        )
    )
    before = (root / "workers/_browser.py").read_text()
    refused = unasync("--root", str(root))
    assert refused.returncode == 2
    assert "workers/aio/_browser.py" in refused.stderr
    assert "'asyncio.sleep(0)'" in refused.stderr
    assert (root / "workers/_browser.py").read_text() == before
