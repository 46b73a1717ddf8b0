"""``ledger.access.revoke`` names the leases its revocation leaves without a worker token, for
any program (the CLI's ``access revoke`` only prints them): rev43 found a revoked worker's
leases held with nothing saying why; the rule moved out of the CLI into the ledger."""

from __future__ import annotations

from pathlib import Path

from ledger import Checkout, Ledger, RegisterProfile, Role
from ledger.access import HeldLease, issue_token, revoke


def test_revoke_names_the_leases_of_the_worker_it_leaves_without_a_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url)
    with Ledger.open(url) as ledger:
        for profile in ("p1", "p2", "p3"):
            ledger.handle(RegisterProfile(profile_id=profile, account_id="a", proxy_id="x"))
        issue_token(ledger, "w1", Role.WORKER)
        rotated = issue_token(ledger, "w2", Role.WORKER)
        issue_token(ledger, "w2", Role.WORKER)  # w2's rotation: the new token first
        operator = issue_token(ledger, "w3", Role.OPERATOR)
        leases = {
            worker: ledger.handle(
                Checkout(profile_id=p, worker_id=worker, run_id="r", task_type="t", ttl_seconds=60)
            )
            for p, worker in (("p1", "w1"), ("p2", "w2"), ("p3", "w3"))
        }

        done = revoke(ledger, actor="w1")
        assert done.revoked == 1
        assert done.leases_held == (HeldLease(profile_id="p1", lease_id=leases["w1"].lease_id),)
        assert revoke(ledger, actor="w1").leases_held == ()  # nothing live was taken
        assert revoke(ledger, token_id=rotated.token_id).leases_held == ()  # w2 keeps one
        assert revoke(ledger, token_id=operator.token_id).leases_held == ()  # holds no lease
