"""A task a process pool's worker runs (``test_errors_cross_processes``): in a module of its
own, importing no ``conftest``, since a spawned worker imports the task's module by name and
finds the first ``conftest`` on its path, another directory's in a whole run."""

from __future__ import annotations

from ledger import Checkout, Ledger


def checkout(url: str, run: str) -> str:
    with Ledger.open(url) as ledger:
        return ledger.handle(
            Checkout(profile_id="profile_shop_17", worker_id=run, run_id=run, task_type="t")
        ).lease_id
