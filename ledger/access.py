"""Who may do what, enforced where the data lives (PostgreSQL).

``grant`` makes a login act in exactly one custody role: ``worker`` (checkout, heartbeat,
extend, release), ``scheduler`` (sweep, mark stale), ``reviewer`` (review) or ``operator``
(register, force-release, quarantine, disable, enable). Run it with the store owner's URL (the
login ``custody init`` ran as; it needs CREATEROLE). A ledger opened with the granted login's URL
refuses a command of another role (``Forbidden``, exit 7, nothing written), and so does the
database: its insert trigger refuses an event the login's role may not record, and no custody
role may UPDATE, DELETE or TRUNCATE events (``ledger._stores.access``).

On SQLite there are no logins: the file's permissions and the ledger's own checks are the
boundary; whoever can write the file can act in every role (and ``custody verify`` names what
they rewrote).

The lease service (``custody serve``) knows its callers by bearer tokens: ``issue_token`` makes
one for an actor in one role (shown once, stored hashed), ``token_holder`` says whose a token
is, ``revoke_tokens`` ends an actor's tokens or one token (``revoke`` also names the leases
it leaves held by a worker without a token). Its review console keeps a session for a signed-in
reviewer instead of their token (``start_session``, ``session_holder``, ``end_session``): a
session is never a bearer token, and ends at sign-out, at its end, or with its token. The
service's own store login must hold the roles its callers act in; the database still refuses
what that login may not record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from ledger._application import Ledger
from ledger._domain.acting import Forbidden
from ledger._domain.authority import ROLE_EVENTS
from ledger._domain.errors import InvalidInput
from ledger._domain.model import Frozen, Identity, ProfileState, Role, storable
from ledger._door import Door, checked
from ledger._stores import access, sessions, tokens
from ledger._stores.sql import SqlStore

__all__ = [
    "ROLE_EVENTS",
    "Forbidden",
    "Granted",
    "HeldLease",
    "IssuedToken",
    "LoginRole",
    "Revocation",
    "StartedSession",
    "TokenHolder",
    "TokenRow",
    "end_session",
    "grant",
    "issue_token",
    "logins",
    "revoke",
    "revoke_tokens",
    "session_holder",
    "start_session",
    "token_holder",
    "tokens_issued",
]


class Granted(Frozen):
    login: str
    role: Role  # the first of ``roles``
    roles: tuple[Role, ...]
    created: bool


class LoginRole(Frozen):
    login: str
    role: Role
    # What the login holds beyond its custody roles (an attribute, another role, a privilege
    # granted to it directly): empty for a login that holds exactly its role.
    also: tuple[str, ...] = ()


def grant(
    ledger: Ledger,
    login: str,
    role: Role | str | Sequence[Role | str],
    password: str | None = None,
) -> Granted:
    """Create or update ``login`` with exactly the privileges of ``role`` (or of each of
    several roles: a lease service's login acts for its callers in theirs); ``password``, if
    given, replaces its password (a login without one authenticates as the server's pg_hba
    allows). Privileges granted to an existing login directly on custody's objects are
    revoked; ``InvalidInput`` (nothing changed) when it holds more than that, an attribute
    or another role's membership (``ledger._stores.holdings``)."""
    login = checked("login", str, login)
    if password is not None:
        password = checked("password", str, password, secret=True)
    asked = [role] if isinstance(role, str) else list(role)
    if not asked:
        raise InvalidInput("role", "give at least one custody role")
    chosen = tuple(dict.fromkeys(_role(r) for r in asked))
    store = _postgres(ledger)
    # Refused before anything is written: a reviewer's login that ran it had left default
    # privileges of its own behind, and DROP ROLE of it then failed (rev46).
    access.refuse_not_owner(store, store.tables.events)
    with store.one_transaction() as one:  # all of it, or nothing (``access.grant``)
        done = access.grant(one, store.tables, login, frozenset(chosen), password)
    return Granted(login=done["login"], role=chosen[0], roles=chosen, created=done["created"])


def logins(ledger: Ledger) -> list[LoginRole]:
    """Every login that holds a custody role, with it and whatever it holds beyond."""
    store = _postgres(ledger)
    found = access.logins(store, store.tables.events)
    return [LoginRole(login=r["login"], role=Role(r["role"]), also=tuple(r["also"])) for r in found]


class TokenHolder(Frozen):
    """Who a bearer token speaks for: the actor and the one role it acts in."""

    token_id: str
    actor: str
    role: Role


class IssuedToken(TokenHolder):
    token: str  # shown once: the store keeps its SHA-256 only


class TokenRow(TokenHolder):
    issued_at: str
    revoked_at: str | None


def issue_token(ledger: Ledger, actor: str, role: Role | str) -> IssuedToken:
    """A new bearer token for ``actor`` acting as ``role`` (on PostgreSQL, run with the owner's
    URL: custody's group roles may only read the tokens)."""
    chosen = _role(role)
    who = _actor(actor)
    store = ledger.store
    _refuse_read_only(store, "issuing a token")
    groups = list(access.GROUP_ROLES.values()) if store._pg and access.groups_exist(store) else []
    made = tokens.issue(store, who, chosen.value, ledger.now(), groups, store.tables.events)
    return IssuedToken.model_validate(made)


def token_holder(ledger: Ledger, token: str) -> TokenHolder | None:
    """Whose ``token`` is, or None when it is unknown or revoked."""
    found = tokens.holder(ledger.store, _secret("token", token), ledger.store.tables.events)
    return TokenHolder.model_validate(found) if found is not None else None


# The longest console session ``start_session`` starts: a week (the service's is 8 hours),
# its end computable from any store clock short of year 9999's last week.
MAX_SESSION_SECONDS = 7 * 86_400
SessionSeconds = Annotated[int, Field(ge=1, le=MAX_SESSION_SECONDS)]


class StartedSession(TokenHolder):
    """A review console session just started: its secret (shown once: the store keeps its
    SHA-256) and when it ends on the store's clock, for the reviewer token it acts as."""

    session: str
    expires_at: str


def start_session(ledger: Ledger, token: str, seconds: int) -> StartedSession | None:
    """A console session for the live reviewer ``token``, ending ``seconds`` from now on the
    store's clock; None when ``token`` is not a live reviewer's. Sessions already ended are
    deleted. ``InvalidInput`` when on PostgreSQL a custody table is not the store owner's,
    and naming ``token`` or ``seconds`` for a token that is no text or a length that is not a
    whole number of seconds from 1 to ``MAX_SESSION_SECONDS`` (rev48: an AttributeError, and
    for NaN a ValueError)."""
    hashed = tokens.digest(_secret("token", token))
    span: int = checked("seconds", SessionSeconds, seconds)
    store = ledger.store
    made = sessions.start(store, hashed, ledger.now(), span, store.tables.events)
    return StartedSession.model_validate(made) if made is not None else None


def session_holder(ledger: Ledger, session: str) -> TokenHolder | None:
    """The reviewer token a live console session acts as, or None: unknown, ended (signed
    out, or past its end on the store's clock), or its token revoked. A bearer token is no
    session, and a session is no bearer token (``token_holder`` never takes one)."""
    secret = _secret("session", session)
    found = sessions.holder(ledger.store, secret, ledger.now(), ledger.store.tables.events)
    return TokenHolder.model_validate(found) if found is not None else None


def end_session(ledger: Ledger, session: str) -> None:
    """End a console session (signed out): no replica takes it again."""
    sessions.end(ledger.store, _secret("session", session))


def revoke_tokens(ledger: Ledger, *, actor: str | None = None, token_id: str | None = None) -> int:
    """Revoke every live token of ``actor``, or the token ``token_id``; how many were live.
    ``InvalidInput`` naming ``actor`` or ``token_id`` when no token was ever issued to it (a
    typo must not pass for a revocation while the real token stays live)."""
    if (actor is None) == (token_id is None):
        said = "not both" if actor is not None else "none was given"
        raise InvalidInput("token", f"name an actor or a token id (--token-id), {said}")
    if actor is not None:
        field, named = "actor", f"to {_actor(actor)!r}"
    else:
        field, named = "token_id", f"with the id {token_id!r}"
    never = f"no token was ever issued {named} (custody access tokens lists those issued)"
    if token_id is not None and storable(checked(field, str, token_id)) != token_id:
        raise InvalidInput(field, never)
    _refuse_read_only(ledger.store, "revoking a token")
    live, ever = tokens.revoke(ledger.store, ledger.now(), actor=actor, token_id=token_id)
    if not ever:
        raise InvalidInput(field, never)
    return live


class HeldLease(Frozen):
    profile_id: str
    lease_id: str


class Revocation(Frozen):
    """What ``revoke`` did: how many live tokens it ended, and the leases it left held by a
    worker that can no longer renew or release them through the service."""

    revoked: int
    leases_held: tuple[HeldLease, ...] = ()


def revoke(ledger: Ledger, *, actor: str | None = None, token_id: str | None = None) -> Revocation:
    """``revoke_tokens``, and the live leases of the actors whose last live worker token it
    took (rev43: a worker's token revoked mid-lease left its leases held, and nothing said
    why until they went stale). A rotation (the new worker token issued first) leaves none;
    an operator's or a scheduler's token holds no lease. Such a lease ends by a force-release
    once its worker has stopped, else it goes stale at its deadline."""

    def workers_live() -> list[TokenRow]:
        return [t for t in tokens_issued(ledger) if t.revoked_at is None and t.role is Role.WORKER]

    taken = {
        t.actor
        for t in workers_live()
        if actor in (None, t.actor) and token_id in (None, t.token_id)
    }
    revoked = revoke_tokens(ledger, actor=actor, token_id=token_id)
    actors = taken - {t.actor for t in workers_live()}
    held = tuple(
        HeldLease(profile_id=row.profile_id, lease_id=row.lease_id)
        for row in ledger.availability()
        if row.state is ProfileState.LEASED
        and row.holder_worker in actors
        and row.lease_id is not None
    )
    return Revocation(revoked=revoked, leases_held=held)


def tokens_issued(ledger: Ledger) -> list[TokenRow]:
    """Every token issued on this store, live or revoked (never the token itself)."""
    return [TokenRow.model_validate(r) for r in tokens.listed(ledger.store)]


def _refuse_read_only(store: SqlStore, doing: str) -> None:
    """``Forbidden`` (exit 7) before a token is written on a SQLite file this user may only
    read, as every writing command there is refused (``Feed.refuse_read_only``): its write
    failed as the store unavailable (rev47: exit 6, "attempt to write a readonly database",
    which tells a script to retry). On PostgreSQL the database refuses a login that is not
    the owner."""
    if not store._pg:
        from ledger.feed import Feed

        Feed(store).refuse_read_only("the store's tokens table", doing=doing)


class _Actor(Door):
    """A token's actor, checked at the same door as a command's."""

    kind = "token"
    actor: Identity


def _secret(field: str, given: object) -> str:
    """A token or a session as text, or ``InvalidInput`` naming ``field`` that quotes none of
    it (a secret's bytes are the secret still)."""
    text: str = checked(field, str, given, secret=True)
    return text


def _actor(actor: str) -> str:
    return _Actor(actor=actor).actor


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidInput("role", f"{role!r} is not a custody role ({roles})") from None


def with_logins(ledger: Ledger) -> None:
    """``InvalidInput`` naming the store unless it has logins (PostgreSQL's)."""
    _postgres(ledger)


def _postgres(ledger: Ledger) -> SqlStore:
    if ledger.settings.kind != "postgresql":
        msg = "logins and roles are PostgreSQL's; on SQLite the file's permissions are the boundary"
        raise InvalidInput("store", msg)
    return ledger.store
