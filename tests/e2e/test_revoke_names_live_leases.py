"""``custody access revoke`` names the live leases of the worker it leaves without a token,
and what an operator does about them.

Found by review 43: a worker's token revoked mid-lease left its lease held (the worker can no
longer renew or release it through the service), and the ledger said "wait for the holder to
release" until the lease went stale; nothing said why, and a routine rotation sent every
in-flight profile to review under a misleading cause. The revocation now says which leases it
orphans and how to end them; a rotation (a new worker token issued first) orphans none.
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_process import custody, ok


def test_a_revocation_names_the_leases_its_worker_can_no_longer_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'custody.db'}"

    def run(*args: str) -> str:
        return ok(custody("--store", url, *args, cwd=tmp_path)).out

    run("init")
    for profile in ("p1", "p2"):
        run("register", profile, "--account", "a1", "--proxy", "x1")
    run("access", "token", "w2", "--role", "worker")
    old = run("--json", "access", "token", "w3", "--role", "worker")
    run("access", "token", "w3", "--role", "worker")  # w3's rotation: its new token first
    lease = run("--json", "checkout", "p1", "--worker", "w2", "--run", "r1", "--task", "t")
    run("checkout", "p2", "--worker", "w3", "--run", "r1", "--task", "t")

    said = run("access", "revoke", "w2")
    lease_id = json.loads(lease)["lease_id"]
    assert f"leases_held:\n  p1 ({lease_id})\n" in said
    assert "custody force-release PROFILE" in said
    assert "leases_held" not in run("--json", "access", "revoke", "w2")  # none live: none taken
    rotated = run("--json", "access", "revoke", "--token-id", json.loads(old)["token_id"])
    assert "leases_held" not in rotated

    # An operator's token of an actor who also runs a worker from the command line: its
    # revocation orphans no lease (rev43's second review).
    run("register", "p3", "--account", "a1", "--proxy", "x1")
    made = json.loads(run("--json", "access", "token", "ana", "--role", "operator"))
    run("checkout", "p3", "--worker", "ana", "--run", "r1", "--task", "t")
    operator = run("--json", "access", "revoke", "--token-id", made["token_id"])
    assert "leases_held" not in operator
