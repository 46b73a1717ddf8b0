"""One worker process holding N leases through the SDK (no browser): registers profiles
``held_0`` .. ``held_<N-1>``, checks each out with a short TTL (so the renewal hub renews them
while they are held), prints ``holding`` and holds them until a line arrives on its standard
input, then reports a page for each and releases them, printing ``lost <count>``.

Run as a separate process by test_connections_per_process.py, which counts its PostgreSQL
sessions by the ``application_name`` it gives it (``PGAPPNAME``).
"""

from __future__ import annotations

import sys
from contextlib import ExitStack

from ledger import Ledger, RegisterProfile
from workers import ProfileLeases

TTL = 3  # renewed every second: the hub's ledger is in use while the leases are held


def main(store: str, count: int) -> None:
    with Ledger.open(store, create=False) as ledger:
        for n in range(count):
            ledger.handle(RegisterProfile(profile_id=f"held_{n}", account_id="a", proxy_id="x"))
    leases = ProfileLeases.open(store, worker_id="holder")
    with leases, ExitStack() as stack:
        held = [
            stack.enter_context(
                leases.checkout(f"held_{n}", run_id=f"r{n}", task_type="t", ttl_seconds=TTL)
            )
            for n in range(count)
        ]
        print("holding", flush=True)
        sys.stdin.readline()
        for lease in held:
            lease.visited("https://example.test/")
        print("lost", sum(lease.lost.is_set() for lease in held), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
