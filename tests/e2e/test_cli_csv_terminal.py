"""CSV written to a terminal cannot drive it: a worker's URL holding terminal escapes (a
window-title change, a screen clear) is shown escaped, as the table form shows it, when
``--format csv`` goes to a terminal (a real pseudo-terminal here); a pipe still gets the text
exactly, for a program to read back."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from cli_process import custody, ok, on_a_terminal

HOSTILE_URL = "https://shop.example/\x1b]0;pwned\x07cart\x1b[2J"


def test_csv_to_a_terminal_is_escaped_and_to_a_pipe_is_exact(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("--store", store, "register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path))
    lease = ok(custody("--store", store, "--json", "checkout", "p", "--worker", "w", "--run", "r",
                       "--task", "t", cwd=tmp_path)).json()["lease_id"]  # fmt: skip
    ok(custody("--store", store, "heartbeat", lease, "--token", "1", "--step", "s",
               "--url", HOSTILE_URL, cwd=tmp_path))  # fmt: skip
    for args in (("timeline", "p", "--format", "csv"), ("usage", "--account", "a", "--format",
                 "csv")):  # fmt: skip
        shown = ok(on_a_terminal("--store", store, *args, cwd=tmp_path)).out
        assert "\x1b" not in shown
        assert "\x07" not in shown
        assert "https://shop.example/\\x1b]0;pwned\\x07cart\\x1b[2J" in shown
        piped = ok(custody("--store", store, *args, cwd=tmp_path)).out
        cells = [cell for row in csv.reader(io.StringIO(piped)) for cell in row]
        assert HOSTILE_URL in cells


@pytest.mark.parametrize("looks", ["FORCE_COLOR=1", "TTY_COMPATIBLE=1"])
def test_csv_to_a_pipe_or_a_file_is_exact_when_colour_is_forced(tmp_path: Path, looks: str) -> None:
    """rev29: with FORCE_COLOR or TTY_COMPATIBLE set, as CI runners often have them, CSV
    piped, redirected or written by ``--output`` was escaped as for a terminal: the export no
    longer held the stored text (a worker's URL, an account id), and nothing said so. Colour
    asked for makes no pipe a terminal: each is exact."""
    name, value = looks.split("=")
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    account = "shop\u202eb"
    ok(custody("--store", store, "register", "p", "--account", account, "--proxy", "x",
               cwd=tmp_path))  # fmt: skip
    lease = ok(custody("--store", store, "--json", "checkout", "p", "--worker", "w", "--run", "r",
                       "--task", "t", cwd=tmp_path)).json()["lease_id"]  # fmt: skip
    ok(custody("--store", store, "heartbeat", lease, "--token", "1", "--step", "s",
               "--url", HOSTILE_URL, cwd=tmp_path))  # fmt: skip
    env = {name: value, "TERM": "xterm-256color"}
    saved = tmp_path / "timeline.csv"
    runs = {
        "piped": ("timeline", "p", "--format", "csv"),
        "health": ("health", "--format", "csv"),
        "saved": ("timeline", "p", "--format", "csv", "--output", str(saved)),
    }
    texts = {k: ok(custody("--store", store, *args, cwd=tmp_path, env=env)).out
             for k, args in runs.items()}  # fmt: skip
    texts["saved"] = saved.read_text()
    cells = {k: {c for row in csv.reader(io.StringIO(t)) for c in row} for k, t in texts.items()}
    assert HOSTILE_URL in cells["piped"]
    assert HOSTILE_URL in cells["saved"]
    assert account in cells["health"]
    assert "\\u202e" not in texts["health"]
