"""End to end: every command that writes a file (``keygen``, ``digest --out``, ``report
--html``, ``timeline``'s and ``usage``'s ``--output``, ``demo --db``) reads the name it is given
the same way: one that names no file is bad input (exit 2), one line naming the option, and
nothing is written."""

from __future__ import annotations

import os
from pathlib import Path

from cli_process import MODULE, custody, custody_all, error_line, ok


def test_keygen_with_an_empty_name_is_bad_input(tmp_path: Path) -> None:
    """rev34: ``keygen ''`` was an internal error (exit 1: pathlib reads '' as ".", which has
    no name to add ".pub" to); ``keygen ' '`` wrote a key named ' '."""
    for name in ("", " "):
        run = custody("keygen", name, cwd=tmp_path)
        assert run.code == 2, (name, run)
        assert "invalid key_file: FILE is empty" in error_line(run)
    assert list(tmp_path.iterdir()) == []


# Each command that writes a file, with the option (or argument) naming it, as the line names it.
WRITERS = (
    (["keygen"], "invalid key_file: FILE"),
    (["digest", "--out"], "invalid out: --out"),
    (["report", "--html"], "invalid --html: --html"),
    (["timeline", "--format", "csv", "--output"], "invalid output: --output"),
    (["usage", "--account", "a", "--format", "json", "--output"], "invalid output: --output"),
    (["demo", "--db"], "invalid db: --db"),
)


def test_every_command_that_writes_a_file_refuses_an_empty_name_and_a_dash(tmp_path: Path) -> None:
    """rev34: ``report --html`` and ``--output`` refused ' ' and '-' (exit 2), but
    ``timeline --output ' '``, ``digest --out ' '``, ``keygen ' '``, ``digest --out -`` and
    ``keygen -`` wrote files literally named so, and ``demo --db ''`` played in a temporary
    file. Each refuses all three names, one line naming its option, and writes nothing."""
    store = tmp_path / "custody.db"
    url = f"sqlite:///{store}"
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path, store=url))
    before = sorted(p.name for p in tmp_path.iterdir())
    refused = (
        ("", "is empty"),
        (" ", "is empty"),
        ("-", "- names no file"),
        ("new/", "'new/' ends with '/'"),  # rev34 review: written as 'new', the slash dropped
    )
    for name, said in refused:
        runs = custody_all([[*args, name] for args, _ in WRITERS], cwd=tmp_path, store=url)
        for (args, option), run in zip(WRITERS, runs, strict=True):
            assert run.code == 2, (args, name, run)
            assert f"{option} {said}" in error_line(run), (args, name)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_every_command_that_writes_a_file_refuses_a_name_too_long(tmp_path: Path) -> None:
    """rev34: a name over 255 bytes given to ``report --html``, ``digest --out``, ``keygen`` or
    ``demo --db`` was an internal error (exit 1, OSError: File name too long). One of 250 bytes
    fits, but not the file written beside it first (``.NAME.XXXXXXXX.part``), and ``keygen``'s
    ``FILE.pub`` (that of a 238-byte FILE) fits only without it: each is bad input before any
    work, naming the option."""
    store = tmp_path / "custody.db"
    url = f"sqlite:///{store}"
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path, store=url))
    before = sorted(p.name for p in tmp_path.iterdir())
    for size in (300, 250):
        runs = custody_all([[*args, "x" * size] for args, _ in WRITERS], cwd=tmp_path, store=url)
        for (args, option), run in zip(WRITERS, runs, strict=True):
            assert run.code == 2, (args, size, run)
            line = error_line(run)
            assert f"{option.split(': ')[0]}: cannot write {option.split(': ')[1]} 'xxx" in line
            assert f"({size} characters): File name too long" in line, (args, size)
    # A directory has no name to write beside: it is refused for what it is.
    runs = custody_all([[*args, "."] for args, _ in WRITERS], cwd=tmp_path, store=url)
    assert [r.code for r in runs] == [2] * len(WRITERS), [error_line(r) for r in runs]
    run = custody("keygen", "k" * 238, cwd=tmp_path)
    assert run.code == 2, run
    assert "(242 characters): File name too long" in error_line(run)  # FILE.pub's
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_every_command_that_writes_a_file_in_a_removed_directory_says_so(tmp_path: Path) -> None:
    """rev40: in a shell whose directory was removed under it, a relative ``--output`` or
    ``report --html`` was an internal error (exit 1, FileNotFoundError from realpath). Every
    command that writes a file says the directory was removed, as bad input naming its
    option, before any work; a full path still works from there."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path, store=url))
    gone = tmp_path / "gone"
    # A shell that enters the directory, which is then removed, and runs custody from there.
    in_gone = ("sh", "-c", 'cd "$0" && rmdir "$0" && exec "$@"', str(gone), *MODULE)
    for args, option in WRITERS:
        gone.mkdir()
        run = custody(*args, "x.out", cwd=tmp_path, store=url, program=in_gone)
        line = error_line(run)
        assert run.code == 2, (args, run)
        assert f"{option.split(': ')[0]}: cannot write {option.split(': ')[1]} 'x.out'" in line
        assert "the current directory was removed" in line, line
    gone.mkdir()
    full = tmp_path / "t.csv"
    args = ("timeline", "--format", "csv", "--output", str(full))
    ok(custody(*args, cwd=tmp_path, store=url, program=in_gone))
    assert not gone.exists()
    assert full.read_text().startswith("position,")


def test_a_store_path_through_a_loop_of_links_is_one_line(tmp_path: Path) -> None:
    """rev34: a SQLite path through a loop of symlinks (``ln -s loop loop``) was an internal
    error (exit 1, RuntimeError: Symlink loop) for ``init`` and ``demo --db``; for ``init`` it is
    a store that cannot be opened (exit 6), one line; ``demo --db`` refuses any symbolic link as
    a name already there (exit 2, rev39), one line, the link left as it was."""
    (tmp_path / "loop").symlink_to("loop")
    run = custody("--store", f"sqlite:///{tmp_path / 'loop'}", "init", cwd=tmp_path)
    assert run.code == 6, run
    assert "unable to open database file" in error_line(run), run
    run = custody("demo", "--db", "loop", cwd=tmp_path)
    assert run.code == 2, run
    assert "loop (a symbolic link) already exists" in error_line(run), run
    assert os.readlink(tmp_path / "loop") == "loop"
