"""CSV written to a terminal cannot drive it: a worker's URL holding terminal escapes (a
window-title change, a screen clear) is shown escaped, as the table form shows it, when
``--format csv`` goes to a terminal (a real pseudo-terminal here); a pipe still gets the text
exactly, for a program to read back."""

from __future__ import annotations

import csv
import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from cli_process import LOOKS, custody, ok, read_terminal

HOSTILE_URL = "https://shop.example/\x1b]0;pwned\x07cart\x1b[2J"


def _on_a_terminal(store: str, cwd: Path, *args: str) -> bytes:
    """What ``custody ARGS`` writes to its stdout when that is a terminal."""
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_STORE", *LOOKS)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "custody", "--store", store, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    shown = read_terminal(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return shown


def test_csv_to_a_terminal_is_escaped_and_to_a_pipe_is_exact(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("--store", store, "register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path))
    lease = ok(custody("--store", store, "--json", "checkout", "p", "--worker", "w", "--run", "r",
                       "--task", "t", cwd=tmp_path)).json()["lease_id"]  # fmt: skip
    ok(custody("--store", store, "heartbeat", lease, "--token", "1", "--step", "s",
               "--url", HOSTILE_URL, cwd=tmp_path))  # fmt: skip
    for args in (("timeline", "p", "--format", "csv"), ("usage", "--account", "a", "--format",
                 "csv")):  # fmt: skip
        shown = _on_a_terminal(store, tmp_path, *args)
        assert b"\x1b" not in shown
        assert b"\x07" not in shown
        assert b"https://shop.example/\\x1b]0;pwned\\x07cart\\x1b[2J" in shown
        piped = ok(custody("--store", store, *args, cwd=tmp_path)).out
        cells = [cell for row in csv.reader(io.StringIO(piped)) for cell in row]
        assert HOSTILE_URL in cells
