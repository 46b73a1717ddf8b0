"""A ledger used, then inherited by forked children, serves parent and children at once, each
on sessions of its own (rev31 library review: on PostgreSQL a child used the parent's session,
after which the parent's next command failed on a prepared statement the child had made, and
parent and children working at once hung)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

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


def _aio_child(leases: object, profile_id: str) -> None:
    import asyncio

    async def use() -> None:
        async with leases.checkout(profile_id, run_id="c", task_type="t") as held:  # type: ignore[attr-defined]
            await held.step("x", safe=True)

    asyncio.run(asyncio.wait_for(use(), 60))


def test_a_forked_child_uses_the_asyncio_sdk_s_leases_on_a_thread_of_its_own(
    store_url: str, tmp_path: Path
) -> None:
    """The asyncio SDK's leases, used in the parent, then in a forked child: the child's
    lease is checked out, stepped and handed back (rev31 reread: the child waited for ever on
    the parent's ledger thread, which a fork does not copy)."""
    import asyncio

    from workers import BrowserSettings, aio

    with Ledger.open(store_url) as ledger:
        for n in range(2):
            register(ledger, f"p{n}")
    settings = BrowserSettings(evidence_dir=str(tmp_path / "evidence"))
    leases = aio.ProfileLeases.open(store_url, worker_id="w", settings=settings)

    async def use() -> None:
        async with leases.checkout("p0", run_id="r", task_type="t") as held:
            await held.step("x", safe=True)

    asyncio.run(use())
    child = multiprocessing.get_context("fork").Process(target=_aio_child, args=(leases, "p1"))
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    with Ledger.open(store_url) as ledger:
        kinds = [e.event_type for e in ledger.history("p1")]
    assert kinds[1:4] == ["lease_acquired", "lease_heartbeat", "lease_release_requested"], kinds
