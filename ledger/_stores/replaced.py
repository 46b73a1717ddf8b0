"""What a process may trust of the profiles it holds after a connection to PostgreSQL was lost:
a count kept beside the store's pool (``ledger._stores.postgres.check_before_lending``), read
by ``Store`` before it uses what it holds. No driver is imported here: SQLite's commands load
this module too."""

from __future__ import annotations

from typing import Any


class Replaced:
    """How many of the store's connections were found dead or ended broken (a restart of the
    server, a failover, a backend ended), and how many of those the process's profiles were
    last trusted across (``trusted``, which ``Store`` moves when it drops them).

    A profile a process holds may be ahead of a server that lost what it acknowledged (with
    ``synchronous_commit`` off, or a standby that had not received the last commits when it
    was promoted): a decision on it appended past the server's head (rev24: v5 after v3, the
    profile unreadable for good). So a connection lost or replaced makes the process forget
    what it holds, and an append lent a connection after such a loss, on a decision made
    before it, is refused as a conflict (``refuse_if_replaced``): decided again, on the profile
    as the server has it."""

    __slots__ = ("count", "trusted")

    def __init__(self) -> None:
        self.count = 0
        self.trusted = 0


def replaced_of(datastore: Any) -> Replaced | None:
    """The store's ``Replaced`` (None: not a PostgreSQL store custody configured)."""
    found = getattr(datastore, "custody_replaced", None)
    return found if isinstance(found, Replaced) else None


def refuse_if_replaced(replaced: Replaced | None) -> None:
    """``StreamConflict`` when a connection was lost or replaced since the process last
    trusted the profiles it holds: nothing is sent (``Replaced``)."""
    if replaced is not None and replaced.count != replaced.trusted:
        from ledger.ports import StreamConflict

        raise StreamConflict("the store's connections were replaced: decided again")
