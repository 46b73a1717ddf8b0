"""Granting a login its role on PostgreSQL leaves every other login's privileges in place.

Guarantee (docs/operations/roles.md, "Logins, enforced in PostgreSQL": ``custody access grant``
is how each process gets its login, run while the fleet runs; a refused write is exit 7, "a
write the database refuses", which no worker retries).

Found by review 9: ``apply_privileges`` (run by every ``access grant`` and ``init``) revoked
each table's privileges from every custody group role and granted them again, each statement
a transaction of its own. A worker's heartbeat that came between them was refused, "permission
denied for table custody_events" (``Forbidden``): 11 of about 2,600 heartbeats in 8 s while
another login was granted 8 times.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from owned_store import granted

from ledger import Checkout, Heartbeat, Ledger, LedgerError, RegisterProfile, Role
from ledger.access import grant

pytestmark = pytest.mark.postgres

PROFILE = "profile_shop_17"


def test_a_grant_refuses_no_live_worker_a_heartbeat(owner_url: str, tmp_path: Path) -> None:
    """Heartbeats sent while another login is granted its role, again and again, all land."""
    owner = Ledger.open(owner_url)
    worker = Ledger.open(granted(owner_url, "worker", tmp_path))
    try:
        owner.handle(RegisterProfile(profile_id=PROFILE, account_id="a1", proxy_id="x1"))
        lease = worker.handle(
            Checkout(profile_id=PROFILE, worker_id="w1", run_id="r1", task_type="t")
        )
        refused: list[str] = []
        granting = threading.Event()

        def beat() -> None:
            while granting.is_set():
                try:
                    worker.handle(
                        Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token)
                    )
                except LedgerError as e:
                    refused.append(str(e))

        granting.set()
        beating = threading.Thread(target=beat)
        beating.start()
        try:
            for _ in range(12):
                grant(owner, "another_login", Role.REVIEWER)
        finally:
            granting.clear()
            beating.join()
        assert refused == []
    finally:
        worker.close()
        owner.close()


def test_a_table_gone_between_the_look_and_its_grant_is_passed_over(
    owner_url: str, tmp_path: Path
) -> None:
    """``init`` and ``access grant`` list the store's tables, then grant each: a table that
    another init's read-model rebuild swapped away meanwhile is passed over, not a failed
    init (rev32: three inits at once on a schema-4 store, one failed exit 6, 'relation
    "custody_timeline__next" does not exist'). The tables still there get their grants."""
    from typing import Any

    from ledger._stores.access import apply_privileges

    granted(owner_url, "worker", tmp_path)  # the group roles exist

    class Vanished:
        """The store, with a table listed that is gone by the time it is granted."""

        def __init__(self, store: Any) -> None:
            self.store = store

        def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
            rows = self.store.query(statement, params)
            if "FROM pg_tables" in statement:
                rows = [{"t": "custody_gone"}, *rows]
            return rows

        def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
            self.store.execute(statement, params)

    with Ledger.open(owner_url) as owner:
        store: Any = owner.store
        store.execute("REVOKE ALL ON custody_events FROM custody_worker")
        apply_privileges(Vanished(store), store.tables)
        held = store.query(
            "SELECT has_table_privilege('custody_worker', 'custody_events', 'SELECT') AS s"
        )
    assert held == [{"s": True}]  # granted again after the table gone
