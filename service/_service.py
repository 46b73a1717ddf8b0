"""What one service process holds: the writer thread (group commit), the reader threads, and
the caches of token holders and lease owners."""

from __future__ import annotations

import asyncio
import threading
from typing import TypeVar

from ledger import BrowserCheck, Command, Ledger, Role
from ledger.access import TokenHolder
from ledger.rules import one_part, told_apart
from service._auth import Refused, Tokens
from service._readers import Readers
from service._writer import Writer

T = TypeVar("T")

# How many lease owners one process remembers (a lease's worker never changes).
OWNERS_REMEMBERED = 100_000
# How many profiles the writer keeps loaded between commands: the whole fleet a process serves
# (a ledger's default, 1,000, would reload each of 2,000 round-robin heartbeats' profiles every
# time: p50 460 ms at 2,000 workers in bench/fleet.py). A loaded profile is a few KB.
WRITER_CACHED_PROFILES = 50_000


class Service:
    """What one process holds: the writer, the readers, the token and owner caches."""

    def __init__(self, store_url: str | None) -> None:
        # Named now, whatever directory the process is in when a thread opens it again.
        self.store_url = store_url = Ledger.anchored_url(store_url)
        self.writer = Writer(
            lambda: Ledger.open(store_url, create=False, cached_profiles=WRITER_CACHED_PROFILES)
        )
        self.readers = Readers(self._ledger)
        self.tokens = Tokens(self.readers.run)
        self.owners: dict[str, str] = {}
        # Set when the server begins its graceful stop (``custody serve``): a long poll then
        # answers at once instead of holding the stop (and every request refused meanwhile)
        # for up to its wait (rev25: 24 s, and a Node worker lost its lease over a restart).
        self.stopping = threading.Event()

    def _ledger(self) -> Ledger:
        return Ledger.open(self.store_url, create=False)

    async def write(self, command: Command[T]) -> T:
        answer: T = await asyncio.wrap_future(self.writer.submit(command))
        return answer

    async def own_lease(self, caller: TokenHolder, lease_id: str) -> None:
        """A worker speaks only under its own leases (a fencing token is a small number,
        not a secret). A lease the profile's row does not name passes: the ledger answers
        that it is lost, or, if a checkout made it live since this read, refuses it as
        another worker's with the write (a lease command's ``worker_id``)."""
        if caller.role is not Role.WORKER:
            return
        owner = self.owners.get(lease_id)
        if owner is None:
            owner = await self.readers.run(lambda ledger: ledger.lease_worker(lease_id))
            if owner is not None:
                self.remember(lease_id, owner)
        if owner is not None and owner != caller.actor:
            said = f"lease {lease_id} is held by {one_part(owner)}, not {one_part(caller.actor)}"
            raise Refused(said + told_apart(owner, caller.actor))

    async def browser_here(self, profile_id: str) -> BrowserCheck | None:
        """What an inspection of the profile's directory on this host finds (None: it has no
        directory here): what a review observes, so that the ledger refuses to return a
        profile whose browser still runs, as ``custody review`` does."""
        from workers import inspect_here

        def inspected(ledger: Ledger) -> BrowserCheck | None:
            return inspect_here(ledger.view(profile_id).record.user_data_dir)

        return await self.readers.run(inspected)

    def remember(self, lease_id: str, worker: str) -> None:
        if len(self.owners) >= OWNERS_REMEMBERED:
            for old in list(self.owners)[: OWNERS_REMEMBERED // 2]:
                del self.owners[old]
        self.owners[lease_id] = worker
