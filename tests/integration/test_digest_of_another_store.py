"""``verify --digest D`` with D made of another store says so, when it finds problems.

Observed (rev27 audit, finding 7): a digest of store b checked against store a was named (exit
5) only as tampering of a ("the log's first events differ: edited, deleted, reordered or
inserted into the past"); the digest's ``store`` was never compared, so an auditor handed the
wrong file concluded the ledger was rewritten. A restored copy differs in its description too,
so that alone refuses nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from audit_scene import custody

from ledger import Ledger


def _store(path: Path) -> str:
    url = f"sqlite:///{path}"
    Ledger.init(url).close()
    assert custody(url, "register", "p1", "--account", "a1", "--proxy", "x1").code == 0
    return url


def test_a_digest_of_another_store_is_said_to_be_one(tmp_path: Path) -> None:
    """Problems found against a digest whose store differs: the first line names both stores,
    before the differences."""
    a, b = _store(tmp_path / "a.db"), _store(tmp_path / "b.db")
    assert custody(b, "digest", "--out", tmp_path / "b.json").code == 0
    said = custody(a, "verify", "--digest", tmp_path / "b.json")
    assert said.code == 5, said
    lines = said.out.splitlines()
    assert lines[1] == (
        f"  the digest was made of another store, {b} (this is {a}): unless this one is a copy "
        "of it, what follows compares two stores, not this log with its past"
    ), lines
    assert "the log's first events differ" in lines[2], lines


def test_a_copy_that_holds_is_not_told_about_its_origin(tmp_path: Path) -> None:
    """The digest of a store checked against a copy of it (another path, the same log): exit 0,
    nothing said of the other description."""
    a = _store(tmp_path / "a.db")
    assert custody(a, "digest", "--out", tmp_path / "a.json").code == 0
    shutil.copy(tmp_path / "a.db", tmp_path / "copy.db")
    said = custody(f"sqlite:///{tmp_path / 'copy.db'}", "verify", "--digest", tmp_path / "a.json")
    assert said.code == 0, said
    assert "another store" not in said.out


def test_the_login_that_described_a_postgresql_store_does_not_make_it_another() -> None:
    """A digest the owner made, checked under a reviewer's login, is of the same database;
    another database or server is another store."""
    from ledger.audit import _place

    assert _place("postgresql://custody@db:5432/c") == _place("postgresql://alice@db:5432/c")
    assert _place("postgresql://custody@db:5432/c") != _place("postgresql://custody@db:5432/d")
    assert _place("postgresql://custody@db:5432/c") != _place("postgresql://custody@db2:5432/c")


def test_a_sqlite_store_is_the_file_whatever_path_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev29: the digest recorded the URL as typed, ``sqlite:///custody.db`` for the default
    store, compared as text: the same file named by its absolute path was "another store", and
    another directory's ``custody.db`` was this one, its differences read as tampering. The
    digest records the file's real absolute path; a relative one is taken from here."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        _store(Path("custody.db"))
        assert custody("sqlite:///custody.db", "digest", "--out", "d.json").code == 0
    made = json.loads((tmp_path / "b" / "d.json").read_text())
    assert made["store"] == f"sqlite:///{os.path.realpath(tmp_path / 'b' / 'custody.db')}"
    assert (
        custody("sqlite:///custody.db", "register", "p2", "--account", "a1", "--proxy", "x1").code
        == 0
    )
    absolute = f"sqlite:///{tmp_path / 'b' / 'custody.db'}"
    same = custody(absolute, "verify", "--digest", "d.json")  # the same file, named otherwise
    assert same.code == 0, same
    assert "another store" not in same.out
    other = custody("sqlite:///custody.db", "verify", "--digest", tmp_path / "a" / "d.json")
    assert other.code == 5, other
    assert "the digest was made of another store" in other.out.splitlines()[1], other.out


def test_digest_out_over_another_store_s_digest_says_so_first(tmp_path: Path) -> None:
    """``digest --out FILE`` where FILE holds another store's digest (its previous, so the
    log is compared with it): refused, exit 5, FILE as it was; the line says every chain holds
    and names the other store first (rev31: "the log does not verify", then the differences
    read as events deleted and inserted into the past, of a log that verifies)."""
    a, b = _store(tmp_path / "a.db"), _store(tmp_path / "b.db")
    assert custody(b, "register", "p2", "--account", "a2", "--proxy", "x2").code == 0
    out = tmp_path / "audit.json"
    assert custody(b, "digest", "--out", out).code == 0
    kept = out.read_bytes()
    said = custody(a, "digest", "--out", out)
    assert (said.code, said.out) == (5, ""), said
    assert said.err.startswith(
        "custody: every chain holds, but the log no longer holds what the previous digest "
        "recorded, so no digest was made: the previous digest was made of another store, "
        "sqlite:///"  # the line is cut in its middle past 300 characters
    ), said.err
    assert "does not verify" not in said.err
    assert out.read_bytes() == kept
