"""``custody digest --out FILE`` overwrites whatever FILE holds, a signing key included.

Guarantee (quality bar: bad input gets one clear line and writes nothing; nothing a user did
is ever lost; ``custody keygen``: "a key is never overwritten"). ``digest --previous FILE`` is
documented as "the digest this one follows (default: what --out holds now)", and
``custody/_audit_commands.py``: "``digest --out FILE`` replaces FILE whole, naming the digest it
replaces as its previous one" -- a digest, not any file.

Observed: ``custody digest --out audit.key`` (a slip of the finger beside ``--key audit.key``)
exits 0, replaces the Ed25519 private key with a digest whose ``previous`` is the key's sha256,
and the key is gone for good; a file of notes is overwritten the same way, and an explicit
``--previous notes.txt`` that is no digest is accepted as the digest this one follows.
(``custody._audit_commands``: ``previous = out`` read as bytes, never checked to be a digest.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_process import custody, ok

REGISTER = ["register", "p1", "--account", "a1", "--proxy", "x1"]


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("--store", url, "init", cwd=tmp_path))
    ok(custody("--store", url, *REGISTER, cwd=tmp_path))
    return url


def test_digest_out_naming_the_signing_key_refuses_and_keeps_the_key(
    store: str, tmp_path: Path
) -> None:
    ok(custody("keygen", "audit.key", cwd=tmp_path))
    key = (tmp_path / "audit.key").read_bytes()
    run = custody(
        "--store", store, "digest", "--out", "audit.key", "--key", "audit.key", cwd=tmp_path
    )
    assert (tmp_path / "audit.key").read_bytes() == key, "the private key was overwritten"
    assert run.code == 2, (run.code, run.out, run.err)


def test_digest_out_naming_a_file_that_is_no_digest_refuses_and_keeps_it(
    store: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("what the auditor wrote down\n")
    run = custody("--store", store, "digest", "--out", "notes.txt", cwd=tmp_path)
    assert notes.read_text() == "what the auditor wrote down\n", "the file was overwritten"
    assert run.code == 2, (run.code, run.out, run.err)
    assert "invalid out: 'notes.txt' holds no digest to replace, and is kept" in run.err


def test_digest_previous_that_is_no_digest_is_refused(store: str, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a digest\n")
    run = custody(
        "--store", store, "digest", "--out", "d.json", "--previous", "notes.txt", cwd=tmp_path
    )
    assert run.code == 2, (run.code, run.out, run.err)
    assert "invalid previous: is not a custody digest" in run.err
    assert not (tmp_path / "d.json").exists()


def test_digest_out_in_no_directory_is_bad_input_before_the_log_is_judged(
    store: str, tmp_path: Path
) -> None:
    """An --out whose directory is not there is exit 2 naming --out, whatever the log holds
    against --previous: the path is refused before any work (rev32: a previous digest that
    the log no longer holds answered 5 first, so the same typo gave 2 or 5)."""
    import json

    ok(custody("--store", store, "digest", "--out", "good.json", cwd=tmp_path))
    recorded = json.loads((tmp_path / "good.json").read_text())
    recorded["tree"]["root"] = "0" * 64
    (tmp_path / "forged.json").write_text(json.dumps(recorded))
    run = custody(
        "--store", store, "digest", "--out", "nowhere/x.json", "--previous", "forged.json",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.code == 2, (run.code, run.out, run.err)
    assert "invalid out: cannot write 'nowhere/x.json'" in run.err, run.err


@pytest.mark.parametrize("given", ["/dev/zero", "fifo"])
def test_a_digest_file_that_is_no_regular_file_is_refused_before_it_is_read(
    store: str, tmp_path: Path, given: str
) -> None:
    """``/dev/zero`` never ends (verify read it until memory ran out) and a FIFO waits for a
    writer (verify hung): either is refused at once, naming the option."""
    if given == "fifo":
        os.mkfifo(tmp_path / "fifo")
    run = custody("--store", store, "verify", "--digest", given, cwd=tmp_path)
    assert run.code == 2, (run.code, run.out, run.err)
    assert "invalid digest:" in run.err, run.err
    assert "is not a regular file" in run.err, run.err
