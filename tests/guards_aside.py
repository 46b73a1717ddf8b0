"""A PostgreSQL session that the store's guard triggers do not stop, as a superuser who owns the
database could have: tests forge with it what ``custody verify`` must then name.

The guards are enabled ALWAYS (``ledger._stores.migrations._always``): ``session_replication_role
= replica`` alone no longer passes them over. Within the session's transaction each ALWAYS
trigger is made an ordinary one, which the replica role skips, and made ALWAYS again before the
commit (a rollback leaves it as it was): no other session sees the guards otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_ALWAYS = (
    "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
    "WHERE NOT t.tgisinternal AND t.tgenabled = 'A' "
    "AND c.relnamespace = 'public'::regnamespace ORDER BY 1, 2"
)


@contextmanager
def guards_aside(session: Any) -> Iterator[None]:
    """``session`` (a psycopg connection or cursor, in a transaction, as a superuser) with the
    store's guard triggers passed over until the end of the block; the caller commits."""
    triggers = session.execute(_ALWAYS).fetchall()
    session.execute("SET session_replication_role = replica")
    for table, name in triggers:
        session.execute(f"ALTER TABLE {table} ENABLE TRIGGER {name}")
    yield
    session.execute("SET session_replication_role = DEFAULT")
    kept = set(session.execute(_ALWAYS.replace("'A'", "'O'")).fetchall())  # the block may drop
    for table, name in triggers:
        if (table, name) in kept:
            session.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")
