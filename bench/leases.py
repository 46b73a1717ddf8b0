"""The custody side of each figure: real ``Ledger`` commands on real stores.

Every timed loop goes through the public ``Ledger`` API. Only ``grow_history`` reaches below it,
to build thousands of real heartbeat events quickly: it lets the ``Profile`` aggregate decide
them in memory and saves them in a few transactions, instead of one command (and one full
replay) per event, which would take minutes at 5,000 events.
"""

from __future__ import annotations

import uuid

from ledger import Checkout, Heartbeat, Lease, Ledger, RegisterProfile, Release, Role
from ledger._domain.profile import Context
from ledger._domain.view import availability_of

WORKER = "bench-worker"
TTL = 86_400  # the longest TTL the ledger accepts: no lease expires during a run


def unique(prefix: str) -> str:
    """A profile id nobody has used in this store."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def register(ledger: Ledger, profile_id: str) -> str:
    ledger.handle(
        RegisterProfile(profile_id=profile_id, account_id="bench-account", proxy_id="bench-proxy")
    )
    return profile_id


def checkout(ledger: Ledger, profile_id: str, ttl_seconds: int = TTL) -> Lease:
    return ledger.handle(
        Checkout(
            profile_id=profile_id,
            worker_id=WORKER,
            run_id=f"run-{profile_id}",
            task_type="bench",
            ttl_seconds=ttl_seconds,
        )
    )


def release(ledger: Ledger, lease: Lease) -> None:
    ledger.handle(
        Release(
            lease_id=lease.lease_id,
            fencing_token=lease.fencing_token,
            outcome="success",
            final_url=f"https://shop.example.test/{lease.profile_id}/done",
        )
    )


def fresh_lease(ledger: Ledger, prefix: str) -> Lease:
    """A newly registered profile, checked out with the longest TTL."""
    return checkout(ledger, register(ledger, unique(prefix)))


def heartbeats(ledger: Ledger, lease: Lease, n: int) -> None:
    for i in range(n):
        ledger.handle(
            Heartbeat(
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                step=f"step-{i}",
                url=f"https://shop.example.test/cart/{i}",
            )
        )


def cycles(ledger: Ledger, profile_id: str, n: int) -> None:
    """Checkout then clean release with a final URL, ``n`` times on one profile."""
    for _ in range(n):
        release(ledger, checkout(ledger, profile_id, ttl_seconds=300))


def grow_history(ledger: Ledger, lease: Lease, count: int, chunk: int = 1_000) -> None:
    """Append ``count`` real heartbeat events to the lease's profile, ``chunk`` per save."""
    done = 0
    while done < count:
        profile = ledger.uow.load(lease.profile_id)
        now = ledger.now()
        for i in range(done, min(count, done + chunk)):
            cid = uuid.uuid4().hex
            ctx = Context(WORKER, Role.WORKER, now, cid, lease.run_id, cid)
            profile.heartbeat(
                lease.lease_id,
                lease.fencing_token,
                ctx,
                step=f"step-{i}",
                url=f"https://shop.example.test/cart/{i}",
                safe=False,
                mutating=False,
            )
        done += len(profile.pending_events)
        ledger.store.save(profile, availability_of(profile))


def event_sizes(ledger: Ledger) -> dict[str, float]:
    """Mean stored size in bytes of each event type (to keep the raw rows the same size)."""
    table = "stored_events" if ledger.settings.kind == "sqlite" else "custody_events"
    rows = ledger.store.query(
        f"SELECT topic, avg(length(state)) AS size FROM {table} GROUP BY topic ORDER BY topic"
    )
    return {row["topic"]: float(row["size"]) for row in rows}
