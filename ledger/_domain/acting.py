"""The roles a store login may act in, and the refusal when it may not (``Forbidden``).

Apart from the table of what each role may record (``ledger._domain.authority``, made from the
events), so that a store opened only to read its tables imports no event.
"""

from __future__ import annotations

from ledger._domain.errors import NotAllowed
from ledger._domain.model import Role

ALL_ROLES = frozenset(Role)


class Forbidden(NotAllowed):
    """The store login may not act in the role a command needs (on PostgreSQL, the login's
    custody roles; the database itself refuses what the ledger would let through), or a
    lease command speaks for a worker the lease is not held by. ``by_database`` when it is
    the database that refused the login (PostgreSQL's insufficient privilege), not the
    ledger's own role check."""

    exit_code = 7

    def __init__(self, message: str, *, by_database: bool = False) -> None:
        super().__init__(message)
        self.by_database = by_database


def check_acts(role: Role, held: frozenset[Role], login: str) -> None:
    """``Forbidden`` unless the store login (``login``, holding ``held``) may act as ``role``."""
    if role not in held:
        have = ", ".join(sorted(r.value for r in held)) or "no custody role"
        msg = f"store login {login} may act as {have}; this command needs the {role.value} role"
        raise Forbidden(msg)
