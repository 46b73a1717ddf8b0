"""A ledger used, then inherited by forked children, serves parent and children at once, each
on sessions of its own (rev31 library review: on PostgreSQL a child used the parent's session,
after which the parent's next command failed on a prepared statement the child had made, and
parent and children working at once hung)."""

from __future__ import annotations

import multiprocessing

from conftest import register

from ledger import Checkout, Heartbeat, Ledger, Release


def _child(ledger: Ledger, profile_id: str) -> None:
    lease = ledger.handle(
        Checkout(profile_id=profile_id, worker_id="child", run_id="c", task_type="t")
    )
    for step in range(20):
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step=f"s{step}"))
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="u")
    )
    ledger.close()


def test_a_forked_child_uses_the_ledger_on_a_session_of_its_own(store_url: str) -> None:
    """The parent checks out p0 and heartbeats; two children forked from it each lease,
    renew 20 times and release a profile of their own through the inherited ledger, while the
    parent goes on renewing p0; then the parent releases p0. Every command lands, and each
    profile's events are its lease's, in order."""
    fork = multiprocessing.get_context("fork")
    with Ledger.open(store_url) as ledger:
        for n in range(3):
            register(ledger, f"p{n}")
        mine = ledger.handle(
            Checkout(profile_id="p0", worker_id="parent", run_id="r", task_type="t")
        )
        beat = {"lease_id": mine.lease_id, "fencing_token": 1}
        ledger.handle(Heartbeat(**beat, step="before"))
        children = [fork.Process(target=_child, args=(ledger, f"p{n}")) for n in (1, 2)]
        for child in children:
            child.start()
        for step in range(20):
            ledger.handle(Heartbeat(**beat, step=f"during {step}"))
        for child in children:
            child.join(timeout=120)
            assert child.exitcode == 0
        ledger.handle(Heartbeat(**beat, step="after"))
        ledger.handle(Release(**beat, outcome="success", final_url="u"))
        for n, beats in ((0, 22), (1, 20), (2, 20)):
            kinds = [e.event_type for e in ledger.history(f"p{n}")]
            assert kinds.count("lease_heartbeat") == beats, (n, kinds)
            assert kinds[-1] == "lease_released_cleanly"
