"""Adapters from settings to a store: SQLite, PostgreSQL, or one in memory for tests."""

from __future__ import annotations

from ledger.stores.settings import StoreSettings
from ledger.stores.store import Store


def connect(settings: StoreSettings, *, create: bool = True) -> Store:
    """An open, initialised store (see ``SqlStore.connect`` for what ``create`` allows)."""
    if settings.kind == "memory":
        from ledger.stores.memory import MemoryStore

        return MemoryStore.connect(settings)
    from ledger.stores.sql import SqlStore

    return SqlStore.connect(settings, create=create)


def initialise(settings: StoreSettings) -> Store:
    """Create the schema (idempotent) and return the open store."""
    if settings.kind == "memory":
        return connect(settings)
    from ledger.stores.sql import SqlStore

    return SqlStore.initialise(settings)
