"""The review console's sessions: what its cookie carries instead of the reviewer's token.

A session is a random secret shown once, to the browser that signed in; the store keeps only
its SHA-256, the id of the reviewer's token it was started with, and when it ends, judged on
the store's clock (every replica of the service reads the same rows). A session holds only
while its row is there, its end has not come, and its token is live and a reviewer's: signing
out deletes the row, and revoking the token ends it at once. A session is never a bearer token:
its prefix is not a token's and it is never in ``custody_tokens``, so the JSON API refuses it.

The table is made by ``custody init``, as the store's owner (rev45: the cookie held the
reviewer's token itself, which a browser sends to every port of the host). On PostgreSQL only
``custody_reviewer`` may read or write it (``access.Tables.privileges``): a worker's login
cannot start a session that acts as a reviewer. A table another login made first is that
login's to write: a session is neither started nor taken from it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from ledger._domain.model import Role
from ledger._stores.access import GROUP_ROLES
from ledger._stores.holdings import refuse_squatted
from ledger._stores.tokens import TOKENS_TABLE, Executing

SESSIONS_TABLE = "custody_console_sessions"
PREFIX = "ccs_"

SESSIONS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SESSIONS_TABLE} (session_hash TEXT PRIMARY KEY, "
    "token_id TEXT NOT NULL, started_at TEXT NOT NULL, expires_at TEXT NOT NULL)"
)
# The role a session acts in: the console is the reviewer's.
_ROLE = Role.REVIEWER.value
_GROUPS = tuple(GROUP_ROLES.values())


def sessions_ddl(postgres: bool) -> str:
    """The table, made as the caller (init: the owner). On PostgreSQL its privileges are set
    in the same transaction: made under the schema's default privileges (what a read model
    gets), the scheduler's and operator's logins could otherwise insert a session, acting as
    a reviewer, before init's grants take them back."""
    if not postgres:
        return SESSIONS_DDL
    groups = ", ".join(_GROUPS)
    named = ", ".join(f"'{g}'" for g in _GROUPS)
    return (
        f"{SESSIONS_DDL}; DO $$ BEGIN REVOKE ALL ON {SESSIONS_TABLE} FROM PUBLIC; "
        f"IF (SELECT count(*) FROM pg_roles WHERE rolname IN ({named})) = {len(_GROUPS)} THEN "
        f"REVOKE ALL ON {SESSIONS_TABLE} FROM {groups}; "
        f"GRANT SELECT, INSERT, DELETE ON {SESSIONS_TABLE} TO {GROUP_ROLES[Role.REVIEWER]}; "
        "END IF; END $$"
    )


def digest(session: str) -> str:
    return hashlib.sha256(f"custody console session\n{session}".encode()).hexdigest()


def moment(when: datetime) -> str:
    """A time in one fixed form (UTC, microseconds, ``Z``), so that the store compares two
    as text in their order."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _owned(store: Executing, events: str) -> tuple[str, tuple[str, ...]]:
    """On PostgreSQL, the condition that both tables are the owner's of ``events``."""
    if not store._pg:
        return "", ()
    same = "(SELECT relowner FROM pg_class WHERE oid = to_regclass(?))"
    return f" AND {same} = {same} AND {same} = {same}", (
        SESSIONS_TABLE, events, TOKENS_TABLE, events,
    )  # fmt: skip


def start(
    store: Executing, token_hash: str, now: datetime, seconds: int, events: str
) -> dict[str, str] | None:
    """A new session for the live reviewer token whose hash is ``token_hash``, ending
    ``seconds`` after ``now`` (the store's clock): its secret, the token's id and actor, and
    its end; None when the token is not a live reviewer's. Sessions already ended are deleted.
    ``InvalidInput`` (nothing written) when on PostgreSQL a custody table is another login's."""
    if store._pg:
        refuse_squatted(store, events, "no console session was started")
    store.execute(f"DELETE FROM {SESSIONS_TABLE} WHERE expires_at <= ?", (moment(now),))
    session = PREFIX + secrets.token_urlsafe(32)
    ends = moment(now + timedelta(seconds=seconds))
    store.execute(
        f"INSERT INTO {SESSIONS_TABLE} (session_hash, token_id, started_at, expires_at) "
        f"SELECT ?, token_id, ?, ? FROM {TOKENS_TABLE} "
        "WHERE token_hash = ? AND revoked_at IS NULL AND role = ?",
        (digest(session), moment(now), ends, token_hash, _ROLE),
    )
    found = holder(store, session, now, events)
    if found is None:
        return None
    return {**found, "session": session, "expires_at": ends}


def holder(store: Executing, session: str, now: datetime, events: str) -> dict[str, str] | None:
    """The token a live session was started with (its id, actor and role), or None: unknown,
    signed out, past its end at ``now`` (the store's clock), its token revoked or no longer a
    reviewer's, or on PostgreSQL either table not the store owner's."""
    if not session.startswith(PREFIX):
        return None
    owned, params = _owned(store, events)
    rows = store.query(
        f"SELECT t.token_id, t.actor, t.role FROM {SESSIONS_TABLE} s "
        f"JOIN {TOKENS_TABLE} t ON t.token_id = s.token_id "
        "WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL "
        f"AND t.role = ?{owned}",
        (digest(session), moment(now), _ROLE, *params),
    )
    return {k: str(v) for k, v in rows[0].items()} if rows else None


def end(store: Executing, session: str) -> None:
    """The session ended: its row deleted, so no replica takes it again."""
    store.execute(f"DELETE FROM {SESSIONS_TABLE} WHERE session_hash = ?", (digest(session),))
