"""``custody digest --previous D --key K`` signs on only from a previous digest K signed.

Observed (rev27 audit, finding 4): ``digest`` checked that the log still held what the previous
digest recorded, never the previous digest's signature. A history rewritten with its links
made again, and the signed previous digest edited to match it (its signature now broken), got a
validly signed successor (exit 0), which ``verify --digest D2 --public-key K.pub`` then
accepted. Expected: with ``--key``, a previous digest that is unsigned, signed by another key
or altered since it was signed is refused (exit 5), and no digest is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from audit_scene import custody

from ledger import Ledger
from ledger.audit import generate_key


@pytest.fixture
def signed(tmp_path: Path) -> str:
    """A store with one profile, keys k and other, and d1.json signed by k."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    assert custody(url, "register", "p1", "--account", "a1", "--proxy", "x1").code == 0
    for name in ("k", "other"):
        private, public = generate_key()
        (tmp_path / name).write_bytes(private)
        (tmp_path / f"{name}.pub").write_bytes(public)
    assert custody(url, "digest", "--out", tmp_path / "d1.json", "--key", tmp_path / "k").code == 0
    return url


def _edited(path: Path) -> None:
    fields = json.loads(path.read_text())
    fields["at"] = fields["at"].replace("20", "19", 1)
    path.write_text(json.dumps(fields))


def _other_key(path: Path) -> None:
    said = custody(
        f"sqlite:///{path.parent / 'custody.db'}", "digest", "--key", path.parent / "other"
    )
    path.write_text(said.out)


def _unsigned(path: Path) -> None:
    fields = json.loads(path.read_text())
    fields["signature"] = fields["key"] = None
    path.write_text(json.dumps(fields))


@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (_edited, "does not verify with its key: it was altered or forged after it was signed"),
        (_other_key, "is signed by another key than the one given"),
        (_unsigned, "is not signed"),
    ],
    ids=["altered", "other-key", "unsigned"],
)
def test_a_previous_digest_the_key_did_not_sign_is_refused(
    signed: str, tmp_path: Path, spoil: object, named: str
) -> None:
    """The previous digest altered after signing, signed by another key, or unsigned: exit 5,
    one line naming it, and no digest written."""
    spoil(tmp_path / "d1.json")  # type: ignore[operator]
    said = custody(
        signed, "digest", "--out", tmp_path / "d2.json", "--previous", tmp_path / "d1.json",
        "--key", tmp_path / "k",
    )  # fmt: skip
    assert said.code == 5, said
    assert f"custody: the previous digest {named}" in said.err, said
    # And the way on: a job that adds --key to its rotation is told how to begin (rev27).
    assert "write a first signed digest to a new file without --previous" in said.err, said
    assert not (tmp_path / "d2.json").exists()


def test_a_previous_digest_the_key_signed_is_signed_on(signed: str, tmp_path: Path) -> None:
    """The genuine previous digest: exit 0, and the successor verifies with the key."""
    said = custody(
        signed, "digest", "--out", tmp_path / "d2.json", "--previous", tmp_path / "d1.json",
        "--key", tmp_path / "k",
    )  # fmt: skip
    assert said.code == 0, said
    check = custody(
        signed, "verify", "--digest", tmp_path / "d2.json", "--public-key", tmp_path / "k.pub"
    )
    assert check.code == 0, check
