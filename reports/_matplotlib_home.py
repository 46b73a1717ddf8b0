"""Where matplotlib keeps its configuration and font cache, settled before it is imported.

matplotlib keeps both under the home directory (``~/.config/matplotlib``, ``~/.cache/
matplotlib``). Where that cannot be written (a service account's read-only home, a container's
``HOME=/nonexistent``) it printed a two-line warning on every report, breaking the command
line's one-line promise, and where the home did not exist it made one (as root,
``/nonexistent/.config``). Such a run uses a private temporary directory instead, quietly, as
matplotlib itself falls back to one; ``MPLCONFIGDIR`` set by the user always wins.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def settle() -> None:
    """Point ``MPLCONFIGDIR`` at a temporary directory when matplotlib's own would fail."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    try:
        home = Path.home()
    except RuntimeError:  # no HOME and no password entry
        home = None
    wanted = [_xdg("XDG_CONFIG_HOME", home, ".config"), _xdg("XDG_CACHE_HOME", home, ".cache")]
    if all(where is not None and _can_make(where / "matplotlib", home) for where in wanted):
        return
    private = tempfile.mkdtemp(prefix="custody-matplotlib-")
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = private


def _xdg(variable: str, home: Path | None, default: str) -> Path | None:
    given = os.environ.get(variable)
    if given:
        return Path(given)
    return None if home is None else home / default


def _can_make(directory: Path, home: Path | None) -> bool:
    """True when ``directory`` is, or can be made, writable without making a missing home."""
    if home is not None and not home.is_dir() and home in directory.parents:
        return False
    existing = directory
    while not existing.exists():
        if existing.parent == existing:
            return False
        existing = existing.parent
    return existing.is_dir() and os.access(existing, os.W_OK | os.X_OK)
