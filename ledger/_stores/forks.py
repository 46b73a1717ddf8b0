"""SQLite and ``os.fork``: a fork waits until no other thread of the process is using SQLite.

A fork copies SQLite's state in the process as it is at that instant, with only the forking
thread to carry on. A thread of the parent inside SQLite then leaves the child its mutexes held
(the allocator's is process-wide: the child's next ``sqlite3.connect`` waited for ever) and its
transaction's locks on the WAL index recorded as held by a connection no thread will finish
(the child's writes were told "database is locked" though no process held a lock): rev41, a
child forked while three threads shared a ``Ledger`` failed or hung one time in two.

So every use of SQLite by a store (a connection taken from its pool until it is given back; a
connection of its own opened, until closed) is counted here, and a fork made by ``os.fork``
(``multiprocessing``'s default start method on Linux) first waits until every other thread's
use has ended, new ones held off meanwhile. The forking thread's own use, if any, goes on in
both processes: a fork inside one of its transactions copies that transaction, which this
cannot help. A fork that waited ``WAIT_AT_MOST`` seconds in vain goes on, and SQLite is refused
in its child (``StoreUnavailable``) rather than left to hang."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ledger._domain.errors import StoreUnavailable

# How long a fork waits for other threads to end their use of SQLite: a command's transaction
# takes milliseconds, one waiting for a lock another process holds at most the store's timeout.
WAIT_AT_MOST = 60.0


def refusal() -> str:
    """What a child forked after a wait in vain is told when it would use SQLite."""
    return (
        "SQLite unavailable in this process: it was forked while another thread of its parent "
        f"was using SQLite, and the fork waited {WAIT_AT_MOST:g} s in vain for that use to end; "
        "open the store in a process started with 'spawn' or 'forkserver', or fork while no "
        "other thread of the process is using the store"
    )


class _Uses:
    """Who is using SQLite now (a token for each use, with its thread's id), and forks under
    way; one for the process, made again in a forked child."""

    def __init__(self, held: dict[object, int] | None = None, *, refused: bool = False) -> None:
        # Re-entrant: the collector may run a ``__del__`` that closes a store (a use) on a
        # thread inside ``begin_use`` or ``end_use``, which held a plain lock and waited for
        # itself for ever (rev41: a worker's heartbeat and revocation threads stopped with it).
        self.changed = threading.Condition(threading.RLock())
        self.held: dict[object, int] = held or {}
        self.forking = 0
        self.others_in_use = False  # at this fork: the child must not use SQLite
        self.refused = refused


_uses = _Uses()


def begin_use() -> object:
    """A use of SQLite by this thread begins; the token ends it (``end_use``). Waits while a
    fork is under way, unless this thread is already using SQLite (the fork waits for it)."""
    uses, me, token = _uses, threading.get_ident(), object()
    if uses.refused:
        raise StoreUnavailable(refusal())
    with uses.changed:
        if me not in uses.held.values():
            uses.changed.wait_for(lambda: not uses.forking)
        uses.held[token] = me
    return token


def end_use(token: object) -> None:
    """The use ``begin_use`` gave ``token`` for has ended (on whatever thread)."""
    uses = _uses
    with uses.changed:
        if uses.held.pop(token, None) is not None:
            uses.changed.notify_all()


@contextmanager
def using_sqlite() -> Iterator[None]:
    """A block that uses SQLite: a fork waits for it to end."""
    token = begin_use()
    try:
        yield
    finally:
        end_use(token)


def _before_fork() -> None:
    """Wait until no other thread uses SQLite, and hold the count (its lock) across the fork."""
    uses, me = _uses, threading.get_ident()
    with uses.changed:
        uses.forking += 1
    uses.changed.acquire()
    alone = uses.changed.wait_for(lambda: set(uses.held.values()) <= {me}, WAIT_AT_MOST)
    uses.others_in_use = not alone


def _after_in_parent() -> None:
    uses = _uses
    uses.forking -= 1
    uses.others_in_use = False
    uses.changed.notify_all()
    uses.changed.release()


def _after_in_child() -> None:
    """The forking thread's uses are the child's own; any other thread's is not there to end."""
    global _uses
    parent, me = _uses, threading.get_ident()
    mine = {token: me for token, thread in parent.held.items() if thread == me}
    _uses = _Uses(mine, refused=parent.refused or parent.others_in_use)


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_in_parent, after_in_child=_after_in_child
)
