"""The audit commands under random, often wrong, invocations (Hypothesis): keygen, digest and
verify given missing paths, directories, non-JSON, truncated or empty digests, digests forged,
altered or signed by another key, keys of the wrong kind, --since-digest or --public-key
without --digest, unknown options. Each answer is one of the documented exit codes (0 done, 2
bad input, 5 not verified), the one this test's model of the contract expects, with one
``custody:`` line on stderr when it fails and never an internal error; the store is left as it
was, and verifies.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from audit_scene import Said, custody, small_ledger
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings, strategies as st
from raw_log import RawLog


@dataclass(frozen=True)
class Digest:
    """A digest file the commands may be given, and what it is."""

    name: str
    readable: bool = True  # a digest custody reads (else: bad input)
    genuine: bool = False  # records this log truly, and any signature holds
    signer: str | None = None  # whose key signed it
    true: bool = False  # records this log truly, whatever its signature


@dataclass(frozen=True)
class Key:
    """A key file, and what it is: unreadable (missing, a directory), a public key of ours or
    theirs, a private key of ours, theirs or an elliptic curve's (not Ed25519), or junk."""

    name: str
    kind: str


DIGESTS = [
    Digest("good.json", genuine=True, true=True),
    Digest("signed.json", genuine=True, signer="ours", true=True),
    Digest("theirs.json", genuine=True, signer="theirs", true=True),
    Digest("forged.json"),  # its root edited
    Digest("altered.json", signer="ours", true=True),  # signed, then its time edited
    Digest("junk.json", readable=False),  # not JSON
    Digest("truncated.json", readable=False),  # the first half of good.json
    Digest("empty.json", readable=False),
    Digest("list.json", readable=False),  # JSON, but a list
    Digest("negative.json", readable=False),  # a size below zero
    Digest("nothex.json", readable=False),  # a root that is not hex
    Digest("binary.json", readable=False),  # bytes that are not UTF-8
    Digest("missing.json", readable=False),
    Digest("dir", readable=False),
]
KEYS = [
    Key("ours.key.pub", "public-ours"),
    Key("theirs.key.pub", "public-theirs"),
    Key("ours.key", "private-ours"),
    Key("theirs.key", "private-theirs"),
    Key("ec.pem", "private-ec"),
    Key("junk.json", "junk"),
    Key("empty.json", "junk"),  # an empty file is no key, never "no key given"
    Key("missing.key", "unreadable"),
    Key("dir", "unreadable"),
]
# Where digest --out and keygen may write: somewhere new, over a file there that is no digest,
# over a digest there, a directory, a directory that does not exist.
TARGETS = ["fresh", "existing", "digest-there", "dir", "nowhere/x.json"]


@dataclass(frozen=True)
class Verify:
    digest: Digest | None
    since: Digest | None
    key: Key | None

    def args(self) -> list[str]:
        given = [("--digest", self.digest), ("--since-digest", self.since)]
        found = [a for flag, d in given if d is not None for a in (flag, d.name)]
        return ["verify", *found, *(("--public-key", self.key.name) if self.key else ())]

    def expected(self) -> int:
        """verify's contract, spelled out: bad input first, then whether everything holds."""
        d, s, k = self.digest, self.since, self.key
        if d is None:
            return 2 if s is not None or k is not None else 0
        given = [d] if s is None else [d, s]
        if not all(x.readable for x in given) or (k is not None and k.kind == "unreadable"):
            return 2
        if k is not None and not k.kind.startswith("public-"):
            return 2  # a key that is no public PEM is bad input, for an unsigned digest too
        holds = all(x.genuine for x in given)
        if k is not None:
            holds = holds and all(f"public-{x.signer}" == k.kind for x in given)
        return 0 if holds else 5


@dataclass(frozen=True)
class MakeDigest:
    out: str | None
    key: Key | None
    previous: Digest | None

    def args(self) -> list[str]:
        made = ["digest"]
        if self.out is not None:
            made += ["--out", _target(self.out)]
        if self.key is not None:
            made += ["--key", self.key.name]
        if self.previous is not None:
            made += ["--previous", self.previous.name]
        return made

    def expected(self) -> int:
        # --out replaces only a digest (a file there that holds anything else is kept), and a
        # digest follows only a digest.
        if self.out in ("dir", "nowhere/x.json", "existing"):
            return 2
        if self.previous is not None and not self.previous.readable:
            return 2
        if self.key is not None and self.key.kind not in ("private-ours", "private-theirs"):
            return 2
        # The log must still hold what the digest it follows recorded (--previous, else the
        # digest --out replaces: out/d.json is good.json).
        if self.previous is not None and not self.previous.true:
            return 5
        # With --key, the digest it follows must be signed by that key and verify.
        follows = self.previous or (DIGESTS[0] if self.out == "digest-there" else None)
        if self.key is not None and follows is not None:
            signed = follows.genuine and f"private-{follows.signer}" == self.key.kind
            return 0 if signed else 5
        return 0


@dataclass(frozen=True)
class Keygen:
    target: str

    def args(self) -> list[str]:
        return ["keygen", _target(self.target)]

    def expected(self) -> int:
        return 0 if self.target == "fresh" else 2


@dataclass(frozen=True)
class Unknown:
    args_: tuple[str, ...]

    def args(self) -> list[str]:
        return list(self.args_)

    def expected(self) -> int:
        return 2


def _target(kind: str) -> str:
    """``fresh`` is a new name each time (a key is never overwritten, a run never repeats)."""
    if kind == "fresh":
        return f"out/{uuid.uuid4().hex[:8]}"
    return {"existing": "out/x", "digest-there": "out/d.json"}.get(kind, kind)


# Mostly verify, mostly given files: the interesting answers are there.
_maybe_digest = st.sampled_from([None, *DIGESTS])
_maybe_key = st.sampled_from([None, None, None, *KEYS])
_verify = st.builds(Verify, _maybe_digest, st.sampled_from([None] * 8 + DIGESTS), _maybe_key)
_others = st.one_of(
    st.builds(
        MakeDigest,
        st.none() | st.sampled_from(TARGETS),
        st.none() | st.sampled_from(KEYS),
        _maybe_digest,
    ),
    st.builds(Keygen, st.sampled_from(TARGETS)),
    st.builds(
        Unknown,
        st.sampled_from(
            [("verify", "--nope"), ("verify", "extra"), ("digest", "--key"), ("keygen",)]
        ),
    ),
)


@st.composite
def sessions(draw: st.DrawFn) -> list[Verify | MakeDigest | Keygen | Unknown]:
    """One to four verifies and up to two other invocations, in any order."""
    verifies = draw(st.lists(_verify, min_size=1, max_size=4))
    others = draw(st.lists(_others, max_size=2))
    return list(draw(st.permutations([*verifies, *others])))


def _files(store: str, where: Path) -> None:
    """The digests and keys the invocations name, made in ``where``."""
    said = [
        custody(store, "keygen", where / "ours.key"),
        custody(store, "keygen", where / "theirs.key"),
        custody(store, "digest", "--out", where / "good.json"),
        custody(store, "digest", "--key", where / "ours.key", "--out", where / "signed.json"),
        custody(store, "digest", "--key", where / "theirs.key", "--out", where / "theirs.json"),
    ]
    assert [s.code for s in said] == [0] * 5, said
    good = (where / "good.json").read_bytes()
    (where / "forged.json").write_text(json.dumps(_with(good, "root", "0" * 64)))
    signed = json.loads((where / "signed.json").read_bytes())
    signed["at"] = "2020-01-01T00:00:00Z"
    (where / "altered.json").write_text(json.dumps(signed))
    (where / "nothex.json").write_text(json.dumps(_with(good, "root", "not hex")))
    (where / "negative.json").write_text(json.dumps(_with(good, "size", -1)))
    (where / "junk.json").write_text("not a digest {")
    (where / "truncated.json").write_bytes(good[: len(good) // 2])
    (where / "empty.json").write_bytes(b"")
    (where / "list.json").write_text("[]")
    (where / "binary.json").write_bytes(b"\xff\xfe\x00{")
    ec_key = ec.generate_private_key(ec.SECP256R1())
    (where / "ec.pem").write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (where / "dir").mkdir()
    (where / "out").mkdir()
    (where / "out" / "x").write_text("a file that holds no digest: digest --out keeps it")
    (where / "out" / "d.json").write_bytes(good)  # a digest: digest --out replaces it


def _with(digest: bytes, field: str, value: object) -> dict[str, object]:
    recorded = json.loads(digest)
    recorded["tree"][field] = value
    return dict(recorded)


def _answered(said: Said, expected: int, args: list[str]) -> None:
    assert said.code == expected, (args, said)
    assert "internal error" not in said.err, said
    assert "Traceback" not in said.out + said.err, said
    if said.code == 0:
        # A verify that checked a digest without --public-key says, in one note, what that
        # proves (custody/_audit_commands.py); nothing else is said on success.
        noted = args[:1] == ["verify"] and "--digest" in args and "--public-key" not in args
        assert said.err == "" or (noted and _one_note(said.err)), said
    else:
        assert len(said.err.splitlines()) == 1, said
        assert said.err.startswith("custody: "), said


def _one_note(err: str) -> bool:
    lines = err.splitlines()
    return len(lines) == 1 and lines[0].startswith("custody: note: ")


def test_random_audit_invocations_answer_as_documented_and_write_nothing(
    sql_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequences of one to four keygen, digest and verify invocations, valid or not, each
    answer exactly the exit code the contract gives it (0, 2 or 5: a digest following a
    digest that does not record this log is refused), in one line when it
    fails, never an internal error; the store's tables are as before, and it verifies."""
    small_ledger(sql_store_url)
    _files(sql_store_url, tmp_path)
    monkeypatch.chdir(tmp_path)  # the invocations name their files relative to it
    log = RawLog(sql_store_url)
    before = log.tables()

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(sessions())
    def run(invocations: list[Verify | MakeDigest | Keygen | Unknown]) -> None:
        for invocation in invocations:
            args = invocation.args()
            _answered(custody(sql_store_url, *args), invocation.expected(), args)
        assert log.tables() == before

    run()
    # The note a verify of a digest without --public-key gives, drawn or not by the examples.
    checked = ["verify", "--digest", "good.json"]
    said = custody(sql_store_url, *checked)
    _answered(said, 0, checked)
    assert _one_note(said.err)


def test_a_key_whose_public_half_cannot_be_written_is_not_left_half_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev29: ``keygen`` on a disk that filled up between its two files kept the private key
    without its public half ("nothing half written", exit 1), and every retry was refused,
    "exists: a key is never overwritten" (exit 2), until the user deleted it by hand. The disk
    refuses the public half here (ENOSPC at its open); both files or neither are left, and the
    retry makes the key."""
    import errno
    import os

    opened = os.open

    def full_for_the_public_half(path: str | Path, flags: int, mode: int = 0o777) -> int:
        if ".pub." in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return opened(path, flags, mode)

    key = tmp_path / "audit.key"
    with monkeypatch.context() as patched:
        patched.setattr(os, "open", full_for_the_public_half)
        said = custody(f"sqlite:///{tmp_path / 'custody.db'}", "keygen", str(key))
    assert said.code == 1, said
    assert "No space left on device" in said.err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("audit")) == []
    again = custody(f"sqlite:///{tmp_path / 'custody.db'}", "keygen", str(key))
    assert again.code == 0, again
    assert key.exists()
    assert key.with_name("audit.key.pub").exists()


def test_a_key_file_that_cannot_be_written_is_bad_input_naming_the_argument(
    tmp_path: Path,
) -> None:
    """``keygen FILE`` where FILE cannot be made names its own argument, ``key_file``, as its
    refusal of an existing FILE does (rev33: it named ``out``, an option keygen has not)."""
    said = custody(f"sqlite:///{tmp_path / 'custody.db'}", "--json", "keygen", "/proc/custody-key")
    assert said.code == 2, said
    assert json.loads(said.out)["field"] == "key_file"
    assert said.err.startswith("custody: invalid key_file: cannot write '/proc/custody-key'")
