"""Who is calling: a bearer token names an actor and the one role it acts in
(``custody access token``). The actor comes from the token, never from a request's body.

Tokens are looked up in the store and remembered for ``TOKEN_CACHE_SECONDS``: a revoked token
stops working within that time on every replica, and a busy worker's heartbeats cost no
token read each."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from ledger import Ledger, Role
from ledger.access import TokenHolder, token_holder

TOKEN_CACHE_SECONDS = 5.0
# A bound on the cache; past it the oldest half is forgotten (a flood of made-up tokens must
# not grow the process).
TOKEN_CACHE_SIZE = 50_000
# An issued token is 47 characters (custody access token); a longer one is no token, and is
# not remembered: the cache's bound in entries is then a bound in bytes too.
MAX_TOKEN_LENGTH = 100


class Unauthorised(Exception):
    """No token, or one the store does not know (or has revoked): 401."""


class Refused(Exception):
    """A known caller whose role may not do this, or a worker speaking under another's lease:
    403, with the sentence that says why."""


Read = Callable[[Callable[[Ledger], TokenHolder | None]], Awaitable[TokenHolder | None]]


class Tokens:
    """Whose a bearer token is, read from the store and remembered for ``ttl`` seconds; at
    most ``size`` tokens are remembered (known or not), past which the oldest half is
    forgotten, to be read again when next sent."""

    def __init__(
        self, read: Read, *, ttl: float = TOKEN_CACHE_SECONDS, size: int = TOKEN_CACHE_SIZE
    ) -> None:
        self._read = read
        self._ttl = ttl
        self._size = size
        self._known: dict[str, tuple[TokenHolder | None, float]] = {}

    async def caller(self, authorization: str | None) -> TokenHolder:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorised("send Authorization: Bearer TOKEN (custody access token ACTOR)")
        token = token.strip()
        if len(token) > MAX_TOKEN_LENGTH:  # never issued: neither looked up nor remembered
            raise Unauthorised("the token is unknown or revoked")
        now = time.monotonic()
        known = self._known.get(token)
        if known is None or known[1] <= now:
            holder = await self._read(lambda ledger: token_holder(ledger, token))
            if len(self._known) >= self._size:
                for stale in list(self._known)[: self._size // 2]:
                    del self._known[stale]
            known = self._known[token] = (holder, now + self._ttl)
        if known[0] is None:
            raise Unauthorised("the token is unknown or revoked")
        return known[0]


def require(caller: TokenHolder, *roles: Role) -> None:
    if caller.role not in roles:
        needed = " or ".join(r.value for r in roles)
        raise Refused(f"{caller.actor} acts as {caller.role.value}; this needs the {needed} role")
