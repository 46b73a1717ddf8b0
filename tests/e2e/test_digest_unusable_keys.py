"""A key file custody cannot use is bad input (exit 2, one line, nothing written), whatever the
digest it would check and whatever makes it unusable.

Guarantee (docs/reference/exit-codes.md: bad input is exit 2; docs/how-to/audit-the-ledger.md:
``--public-key`` demands the digests be signed with that key). Observed: an empty
``--public-key`` file was taken for "no key given", so ``verify`` accepted an unsigned digest
anyone with the database can make (exit 0); an EC key on a curve this OpenSSL does not offer
(brainpoolP160r1) made ``digest --key`` and ``verify --public-key`` exit 1 "internal error:
UnsupportedAlgorithm" (``ledger._audit.digest``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import Run, custody, ok

REGISTER = ["register", "p1", "--account", "a1", "--proxy", "x1"]
# Made with ``openssl ecparam -name brainpoolP160r1 -genkey -noout`` (and ``openssl ec
# -pubout``): valid PEM, on a curve the cryptography package refuses to load.
BRAINPOOL_PRIVATE = b"""-----BEGIN EC PRIVATE KEY-----
MFQCAQEEFHgLzZFdxLC5ijX4X0F2OOPlnzcooAsGCSskAwMCCAEBAaEsAyoABKqN
XlVPMkbiSJYs186PIKnwlsN+OCKo+uwk7ddB1f8poiUE/scf6I8=
-----END EC PRIVATE KEY-----
"""
BRAINPOOL_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MEIwFAYHKoZIzj0CAQYJKyQDAwIIAQEBAyoABLqDNWJQkHB0Z8a0WXMyDIC8EabS
pC0C8ASI+JarcwHj1MjN6n/g8lc=
-----END PUBLIC KEY-----
"""


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("--store", url, "init", cwd=tmp_path))
    ok(custody("--store", url, *REGISTER, cwd=tmp_path))
    return url


def _bad_input(run: Run, field: str) -> None:
    assert run.code == 2, (run.code, run.err)
    assert len(run.err.splitlines()) == 1, run.err
    assert f"invalid {field}:" in run.err, run.err
    assert "internal error" not in run.err, run.err


@pytest.mark.parametrize("signed", [False, True])
def test_an_empty_public_key_file_is_bad_input_not_no_key(
    store: str, tmp_path: Path, signed: bool
) -> None:
    """An empty ``--public-key`` file is refused as bad input, for an unsigned (forgeable)
    digest as for a signed one: it is never taken for "no key given"."""
    ok(custody("keygen", "audit.key", cwd=tmp_path))
    key = ["--key", "audit.key"] if signed else []
    ok(custody("--store", store, "digest", "--out", "d.json", *key, cwd=tmp_path))
    (tmp_path / "empty.pub").write_bytes(b"")
    args = ["verify", "--digest", "d.json", "--public-key", "empty.pub"]
    _bad_input(custody("--store", store, *args, cwd=tmp_path), "public_key")


def test_a_key_on_a_curve_openssl_lacks_is_bad_input(store: str, tmp_path: Path) -> None:
    """A brainpoolP160r1 key given to ``digest --key`` or ``verify --public-key`` is refused
    as bad input naming the key, not an internal error, and ``digest`` writes no file."""
    (tmp_path / "bp.pem").write_bytes(BRAINPOOL_PRIVATE)
    (tmp_path / "bp.pub").write_bytes(BRAINPOOL_PUBLIC)
    run = custody("--store", store, "digest", "--key", "bp.pem", "--out", "s.json", cwd=tmp_path)
    _bad_input(run, "key")
    assert not (tmp_path / "s.json").exists()
    ok(custody("--store", store, "digest", "--out", "d.json", cwd=tmp_path))
    args = ["verify", "--digest", "d.json", "--public-key", "bp.pub"]
    _bad_input(custody("--store", store, *args, cwd=tmp_path), "public_key")


def test_a_key_file_of_two_keys_is_bad_input(store: str, tmp_path: Path) -> None:
    """Review 266: a file of two PEM keys was taken as its first: ``digest --key`` signed with
    it, exit 0, and ``verify --public-key`` given the public halves the other way round said
    the digest was forged (exit 5), not that its file is no one key. Each is refused as bad
    input naming the key, and ``digest`` writes no file."""
    for name in ("a", "b"):
        ok(custody("keygen", f"{name}.key", cwd=tmp_path))
    (tmp_path / "both.key").write_bytes(
        (tmp_path / "b.key").read_bytes() + (tmp_path / "a.key").read_bytes()
    )
    (tmp_path / "both.pub").write_bytes(
        (tmp_path / "a.key.pub").read_bytes() + (tmp_path / "b.key.pub").read_bytes()
    )
    run = custody("--store", store, "digest", "--key", "both.key", "--out", "s.json", cwd=tmp_path)
    _bad_input(run, "key")
    assert "holds 2 PEM blocks" in run.err, run.err
    assert not (tmp_path / "s.json").exists()
    # A note after the key naming such a line is text outside the block, as RFC 7468 allows.
    noted = (tmp_path / "b.key").read_bytes() + b"note: the old '-----BEGIN ' line was removed\n"
    (tmp_path / "noted.key").write_bytes(noted)
    ok(custody("--store", store, "digest", "--key", "noted.key", "--out", "d.json", cwd=tmp_path))
    args = ["verify", "--digest", "d.json", "--public-key", "both.pub"]
    _bad_input(custody("--store", store, *args, cwd=tmp_path), "public_key")
    ok(custody("--store", store, "verify", "--digest", "d.json", "--public-key", "b.key.pub",
               cwd=tmp_path))  # fmt: skip
