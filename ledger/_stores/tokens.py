"""Bearer tokens for the lease service: an actor and the one role it acts in, stored hashed.

A token is shown once, when it is issued; the store keeps only its SHA-256, so a copy of the
database does not let anyone call the service. Revoking marks the token's row; a revoked row
is kept (who held which role, and until when, is part of the audit). The table is made by
``custody init``, as the store's owner (a store made before that gets it at its next ``init``,
or at its first ``issue``, with the owner's URL); custody's group roles may only read it, so a
worker's database login cannot mint a reviewer's token. A table another login made first (one
that could once CREATE in the schema) is that login's to write: ``issue`` refuses it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any, Protocol

from ledger._stores.holdings import refuse_squatted

TOKENS_TABLE = "custody_tokens"
PREFIX = "cst_"
# How many characters of the hash name a token in listings and revocations.
TOKEN_ID_LENGTH = 12

TOKENS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {TOKENS_TABLE} (token_hash TEXT PRIMARY KEY, "
    "token_id TEXT NOT NULL UNIQUE, actor TEXT NOT NULL, role TEXT NOT NULL, "
    "issued_at TEXT NOT NULL, revoked_at TEXT)"
)


class Executing(Protocol):
    _pg: bool

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...
    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None: ...


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    store: Executing, actor: str, role: str, now: datetime, groups: list[str], events: str
) -> dict[str, str]:
    """A new token for ``actor`` in ``role``; ``groups`` are the database roles that may read
    the table (PostgreSQL: custody's group roles, when they exist). ``InvalidInput`` naming
    the table's owner, and nothing written, when on PostgreSQL another login than the owner
    of ``events`` (the store's owner) owns it: that login writes tokens of any role."""
    store.execute(TOKENS_DDL)
    if store._pg:
        refuse_squatted(store, events, "no token was issued")
    if store._pg and groups:
        every = ", ".join(groups)
        store.execute(f"REVOKE ALL ON {TOKENS_TABLE} FROM {every}")
        store.execute(f"GRANT SELECT ON {TOKENS_TABLE} TO {every}")
    token = PREFIX + secrets.token_urlsafe(32)
    hashed = digest(token)
    token_id = hashed[:TOKEN_ID_LENGTH]
    store.execute(
        f"INSERT INTO {TOKENS_TABLE} (token_hash, token_id, actor, role, issued_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (hashed, token_id, actor, role, now.isoformat()),
    )
    return {"token": token, "token_id": token_id, "actor": actor, "role": role}


def exists(store: Executing) -> bool:
    if store._pg:
        rows = store.query("SELECT to_regclass(?) IS NOT NULL AS found", (TOKENS_TABLE,))
    else:
        rows = store.query(
            "SELECT count(*) > 0 AS found FROM sqlite_master WHERE type = 'table' AND name = ?",
            (TOKENS_TABLE,),
        )
    return bool(rows[0]["found"])


def holder(store: Executing, token: str, events: str) -> dict[str, str] | None:
    """The live token's actor and role, or None (unknown, revoked, or no token issued yet;
    on PostgreSQL also when the table is not the owner's of ``events``, the store's owner: a
    login that made it first writes what it likes there)."""
    if not token.startswith(PREFIX) or not exists(store):
        return None
    owned = ""
    params: tuple[str, ...] = (digest(token),)
    if store._pg:
        owned = (
            " AND (SELECT relowner FROM pg_class WHERE oid = to_regclass(?)) "
            "= (SELECT relowner FROM pg_class WHERE oid = to_regclass(?))"
        )
        params += (TOKENS_TABLE, events)
    rows = store.query(
        f"SELECT token_id, actor, role FROM {TOKENS_TABLE} "
        f"WHERE token_hash = ? AND revoked_at IS NULL{owned}",
        params,
    )
    return {k: str(v) for k, v in rows[0].items()} if rows else None


def revoke(
    store: Executing, now: datetime, *, actor: str | None, token_id: str | None
) -> tuple[int, int]:
    """Revoke the live tokens of ``actor`` or the one named ``token_id``: how many were live,
    and how many were ever issued."""
    if not exists(store):
        return 0, 0
    where, params = ("actor = ?", actor) if actor is not None else ("token_id = ?", token_id)
    found = store.query(
        "SELECT count(*) AS ever, coalesce(sum(CASE WHEN revoked_at IS NULL THEN 1 ELSE 0 END), 0)"
        f" AS live FROM {TOKENS_TABLE} WHERE {where}",
        (params,),
    )
    store.execute(
        f"UPDATE {TOKENS_TABLE} SET revoked_at = ? WHERE {where} AND revoked_at IS NULL",
        (now.isoformat(), params),
    )
    return int(found[0]["live"]), int(found[0]["ever"])


def listed(store: Executing) -> list[dict[str, Any]]:
    if not exists(store):
        return []
    return store.query(
        f"SELECT token_id, actor, role, issued_at, revoked_at FROM {TOKENS_TABLE} "
        "ORDER BY issued_at, token_id"
    )
