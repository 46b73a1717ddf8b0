"""The count of SQLite uses a fork waits for (``ledger._stores.forks``)."""

from __future__ import annotations

import threading

from ledger._stores import forks


def test_a_use_begun_by_the_thread_that_holds_the_count_does_not_wait_for_itself() -> None:
    """rev41: the collector ran a store's ``__del__`` (its close, a use of SQLite) on a thread
    inside ``begin_use``, which held the count's lock; a plain lock made that thread wait for
    itself for ever, and every other thread's next use behind it (a worker's heartbeat and
    revocation threads stopped). Guard: the count's lock is re-entrant."""
    done = threading.Event()

    def collected_inside_the_count() -> None:
        with forks._uses.changed, forks.using_sqlite():  # as a __del__ run by the collector
            done.set()

    thread = threading.Thread(target=collected_inside_the_count, daemon=True)
    thread.start()
    assert done.wait(5), "a use begun inside the count's lock waited for itself"
    thread.join(5)
    assert forks._uses.held == {}
