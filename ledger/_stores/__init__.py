"""Adapters from settings to a store: SQLite or PostgreSQL."""

from __future__ import annotations

from ledger._stores.settings import StoreSettings
from ledger._stores.sql import SqlStore


def connect(settings: StoreSettings, *, create: bool = True) -> SqlStore:
    """An open, initialised store (see ``SqlStore.connect`` for what ``create`` allows)."""
    return SqlStore.connect(settings, create=create)


def initialise(settings: StoreSettings) -> SqlStore:
    """Create the schema (idempotent) and return the open store."""
    return SqlStore.initialise(settings)
