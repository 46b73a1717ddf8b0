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
"""

from __future__ import annotations

from ledger._application import Ledger
from ledger._domain.authority import ROLE_EVENTS, Forbidden
from ledger._domain.errors import InvalidInput
from ledger._domain.model import Frozen, Role
from ledger._stores import access
from ledger._stores.sql import SqlStore

__all__ = ["ROLE_EVENTS", "Forbidden", "Granted", "LoginRole", "grant", "logins"]


class Granted(Frozen):
    login: str
    role: Role
    created: bool


class LoginRole(Frozen):
    login: str
    role: Role


def grant(ledger: Ledger, login: str, role: Role | str, password: str | None = None) -> Granted:
    """Create or update ``login`` with exactly ``role``'s privileges (``password``, if given,
    replaces its password; a login without one authenticates as the server's pg_hba allows)."""
    chosen = _role(role)
    store = _postgres(ledger)
    done = access.grant(store, store.tables, login, chosen, password)
    return Granted(login=done["login"], role=chosen, created=done["created"])


def logins(ledger: Ledger) -> list[LoginRole]:
    """Every login that holds a custody role, with it."""
    found = access.logins(_postgres(ledger))
    return [LoginRole(login=r["login"], role=Role(r["role"])) for r in found]


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidInput("role", f"{role!r} is not a custody role ({roles})") from None


def _postgres(ledger: Ledger) -> SqlStore:
    if ledger.settings.kind != "postgresql":
        msg = "logins and roles are PostgreSQL's; on SQLite the file's permissions are the boundary"
        raise InvalidInput("store", msg)
    return ledger.store
