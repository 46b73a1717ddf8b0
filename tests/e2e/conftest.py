"""Fixtures the end-to-end tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from owned_store import owned_store
from pg_cluster import PostgresCluster


@pytest.fixture
def owner_url(pg_cluster: PostgresCluster, tmp_path: Path) -> Iterator[str]:
    """A store owned by a CREATEROLE login (not a superuser), as docs/operations/roles.md has."""
    with owned_store(pg_cluster, tmp_path) as url:
        yield url
