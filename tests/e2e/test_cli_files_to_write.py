"""End to end: every command that writes a file (``keygen``, ``digest --out``, ``report
--html``, ``timeline``'s and ``usage``'s ``--output``, ``demo --db``) reads the name it is given
the same way: one that names no file is bad input (exit 2), one line naming the option, and
nothing is written."""

from __future__ import annotations

from pathlib import Path

from cli_process import custody, error_line


def test_keygen_with_an_empty_name_is_bad_input(tmp_path: Path) -> None:
    """rev34: ``keygen ''`` was an internal error (exit 1: pathlib reads '' as ".", which has
    no name to add ".pub" to); ``keygen ' '`` wrote a key named ' '."""
    for name in ("", " "):
        run = custody("keygen", name, cwd=tmp_path)
        assert run.code == 2, (name, run)
        assert "invalid key_file: FILE is empty" in error_line(run)
    assert list(tmp_path.iterdir()) == []
