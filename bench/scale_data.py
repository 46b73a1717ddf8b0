"""A fleet's worth of history, written fast: real domain events, bulk-inserted.

Each profile's stream is made by the ``Profile`` aggregate itself (register, then cycles of
checkout, heartbeats and a clean release, on a clock the generator moves), so every event is
one the aggregate decided and folds; the streams are written through the store's own recorder in
multi-profile batches of about ``BATCH`` events, with each profile's availability row and a
snapshot every ``SNAPSHOT_INTERVAL`` versions, as the ledger writes them. One command per event
would take an hour for a million events; this takes minutes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ledger import Ledger
from ledger._domain.directories import normalised
from ledger._domain.events import ProfileEvent
from ledger._domain.model import Outcome, ProfileRecord, Role
from ledger._domain.policies import (
    DEFAULT_RELEASE_POLICY,
    DEFAULT_UNCLEAN_LIMIT,
    DEFAULT_UNCLEAN_WINDOW_SECONDS,
    ReleaseReport,
)
from ledger._domain.profile import CheckoutRequest, Context, Profile
from ledger._domain.snapshot import ProfileSnapshot
from ledger._domain.view import Availability, availability_of
from ledger._stores.store import SNAPSHOT_INTERVAL

BATCH = 5_000
HEARTBEATS_PER_LEASE = 20
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Layout:
    """How many events each profile gets: one long stream, one of 100, the rest shared."""

    profiles: int
    events: int
    long: int | None = None  # the long stream's events (default: a tenth, at most 100,000)
    big: str = "scale_big"
    small: str = "scale_small"
    settled: bool = False  # each stream ends with its lease released (a checkout may follow)

    @property
    def big_events(self) -> int:
        if self.long is not None:
            return self.long
        return min(100_000, max(self.events // 10, 200))

    def streams(self) -> Iterator[tuple[str, int]]:
        yield self.big, self.big_events
        yield self.small, 100
        others = self.profiles - 2
        rest = max(self.events - self.big_events - 100, others * 2)
        for n in range(others):
            yield f"scale_{n:05d}", rest // others + (1 if n < rest % others else 0)


class _Stream:
    """One profile driven by hand; ``take`` returns the events made since the last take."""

    def __init__(self, profile_id: str, start: datetime) -> None:
        self.now = start
        self.n = 0
        record = ProfileRecord(
            profile_id=profile_id,
            account_id=f"acct_{zlib.crc32(profile_id.encode()) % 100:02d}",
            proxy_id="proxy_1",
            user_data_dir=f"/profiles/{profile_id}",
            release_policy=DEFAULT_RELEASE_POLICY,
            unclean_limit=DEFAULT_UNCLEAN_LIMIT,
            unclean_window_seconds=DEFAULT_UNCLEAN_WINDOW_SECONDS,
        )
        self.profile = Profile.register(record, self._ctx("ops", Role.OPERATOR))

    def _ctx(self, actor: str, role: Role = Role.WORKER) -> Context:
        self.n += 1
        self.now += timedelta(seconds=1)
        command_id = f"{self.n:08x}{'0' * 24}"
        return Context(
            actor_id=actor,
            role=role,
            now=self.now,
            command_id=command_id,
            correlation_id=command_id,
            causation_id=command_id,
            command=f"bench:{self.n:016x}",
        )

    def step(self) -> None:
        """One command: check out, heartbeat, or release after ``HEARTBEATS_PER_LEASE``."""
        p = self.profile
        lease = p.lease
        if lease is None:
            request = CheckoutRequest("worker_1", f"run_{self.n}", "inventory_check", 3600)
            p.checkout(request, self._ctx("worker_1"))
        elif p.version % (HEARTBEATS_PER_LEASE + 3) == 0:
            report = ReleaseReport(Outcome.SUCCESS, final_url="https://shop.example/done")
            p.release(lease.lease_id, lease.fencing_token, report, self._ctx("worker_1"))
        else:
            ctx = self._ctx("worker_1")
            p.heartbeat(
                lease.lease_id, lease.fencing_token, ctx, step=f"s{self.n}", url=None,
                safe=False, mutating=False,
            )  # fmt: skip


@dataclass
class _Batch:
    events: list[ProfileEvent] = field(default_factory=list)
    rows: dict[str, Availability] = field(default_factory=dict)
    snapshots: list[ProfileSnapshot] = field(default_factory=list)
    # Each registration's directory, as a registration writes it beside its event (verify
    # checks the table against the registrations: rev36).
    directories: list[tuple[str, str]] = field(default_factory=list)


def generate(ledger: Ledger, layout: Layout) -> int:
    """Write every stream of ``layout``; returns the events written."""
    app = ledger.store.app
    batch, written = _Batch(), 0

    def flush() -> None:
        nonlocal batch, written
        if batch.events:
            app.events.put(
                batch.events,
                availability=list(batch.rows.values()),
                directories=batch.directories,
            )
            written += len(batch.events)
        if batch.snapshots:
            assert app.snapshots is not None
            app.snapshots.put(batch.snapshots)
        batch = _Batch()

    for index, (profile_id, length) in enumerate(layout.streams()):
        stream = _Stream(profile_id, T0 + timedelta(minutes=index))
        shadow = Profile(stream.profile.id)  # folds event by event, to snapshot exact versions
        directory = stream.profile.registration().user_data_dir
        if directory is not None:
            batch.directories.append((profile_id, normalised(directory)))
        while True:
            events = list(stream.profile.collect_events())
            for event in events:
                shadow.apply(event)
                if shadow.version % SNAPSHOT_INTERVAL == 0:
                    batch.snapshots.append(ProfileSnapshot.take(shadow))
            batch.events += events
            if len(batch.events) >= BATCH:
                batch.rows[profile_id] = availability_of(stream.profile)
                flush()
            if stream.profile.version >= length and not (
                layout.settled and stream.profile.lease is not None
            ):
                break
            stream.step()
        batch.rows[profile_id] = availability_of(stream.profile)
    flush()
    return written
