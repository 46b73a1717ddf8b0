"""The command line files a screenshot as evidence: its path and the sha256 of its bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cli_process import custody, ok

from ledger import Ledger
from ledger._domain.events import LeaseReleaseRequested


def test_release_with_a_screenshot_records_the_digest_of_its_bytes(tmp_path: Path) -> None:
    """``release --screenshot FILE`` hashes the file it names (the CLI computes the digest;
    there is no option to state one) and the release event carries path and digest."""
    shot = tmp_path / "final.png"
    shot.write_bytes(b"\x89PNG not really, but bytes all the same")
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path))
    ok(custody("checkout", "p1", "--worker", "w", "--run", "r", "--task", "t", cwd=tmp_path))
    release = ["release", "lease-1@p1", "--token", "1", "--outcome", "success"]
    ok(
        custody(
            *release, "--final-url", "https://x.example/", "--screenshot", str(shot), cwd=tmp_path
        )
    )

    with Ledger.open(f"sqlite:///{tmp_path / 'custody.db'}", create=False) as ledger:
        (event,) = [e for e in ledger.history("p1") if isinstance(e, LeaseReleaseRequested)]
    assert event.screenshot == str(shot)
    assert event.screenshot_sha256 == hashlib.sha256(shot.read_bytes()).hexdigest()
