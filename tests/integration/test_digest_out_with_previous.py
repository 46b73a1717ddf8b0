"""review8: ``custody digest --out FILE --previous OTHER`` still overwrites whatever FILE holds,
the Ed25519 signing key included.

Guarantee (c7056fc, "digest --out replaces only a digest": "a FILE holding anything else is
kept and the command refused (exit 2, naming out)"; ``custody keygen``: "a key is never
overwritten"; the quality bar: nothing a user did is ever lost).

Observed: the check that FILE holds a digest runs only when ``--previous`` is not given
(custody/_audit_commands.py ``digest``: ``if previous is None and out is not None and
out.exists()``). With an explicit ``--previous`` -- what an auditor who keeps a chain of dated
digests passes every time -- ``digest --previous d1.json --key audit.key --out audit.key`` (the
slip c7056fc guards against) exits 0 and replaces the private key with a digest: the key is
gone for good. Expected: exit 2 naming ``out``, the key kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _custody(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CUSTODY_STORE"}
    return subprocess.run(
        [sys.executable, "-m", "custody", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_digest_out_with_previous_keeps_a_signing_key_it_names(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    for args in (
        ("--store", url, "init"),
        ("--store", url, "register", "p1", "--account", "a1", "--proxy", "x1"),
        ("keygen", "audit.key"),
        ("--store", url, "digest", "--out", "d1.json", "--key", "audit.key"),
    ):
        done = _custody(*args, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    key = (tmp_path / "audit.key").read_bytes()
    run = _custody(
        "--store", url, "digest", "--previous", "d1.json", "--key", "audit.key",
        "--out", "audit.key", cwd=tmp_path,
    )  # fmt: skip
    assert (tmp_path / "audit.key").read_bytes() == key, (
        f"the private key was overwritten (exit {run.returncode})"
    )
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    assert "out" in run.stderr
