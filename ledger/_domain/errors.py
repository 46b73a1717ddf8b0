"""One error hierarchy rooted in ``LedgerError``: the errors are part of the API.

Each class carries the CLI exit code it maps to, so the CLI never decides on its own.
"""

from __future__ import annotations

from datetime import datetime

from ledger._domain.model import Denial, DenialReason, Holder


class LedgerError(Exception):
    """Base of every error custody raises on purpose. Each pickles and unpickles whole (its
    message, its class and its attributes: a denial's reason, a field's name), so that a
    process pool hands it to the scheduler as raised (rev31: unpickling called each class's
    own constructor with the message alone, and failed: a pool broke on its first denial)."""

    exit_code = 1

    def __reduce__(self) -> tuple[object, ...]:
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(kind: type[LedgerError], args: tuple[object, ...], state: dict[str, object]) -> object:
    """``kind``'s error with these ``args`` and attributes, its constructor not called."""
    error = kind.__new__(kind, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


_NAMED_BY_VERIFY = "so nothing that folds it can be answered; custody verify names it"


class UnreadableEvent(LedgerError):
    """A stored event no read can decode (put there outside custody; ``custody verify``
    names it): nothing that folds it (a load of its profile, a read model) can be answered.
    Events are never rewritten, so only the store's owner can act on it."""

    exit_code = 1

    def __init__(self, event: str, problem: str, *, then: str = _NAMED_BY_VERIFY) -> None:
        super().__init__(f"{event} cannot be read ({problem}), {then}")
        self.event, self.problem = event, problem


class UnreadableSnapshot(UnreadableEvent):
    """A stored snapshot no load can decode (edited outside custody; ``custody verify`` names
    it): a load of its profile starts from it, so nothing that loads the profile can be
    answered until the row is deleted, which loses nothing (snapshots are a cache of the
    events). ``profile_id``: whose it is, where known (the load's, or the snapshot's own)."""

    def __init__(self, version: object, problem: str, profile_id: str | None = None) -> None:
        self.version = version
        of = f" of profile {profile_id!r}" if profile_id is not None else ""
        super().__init__(
            f"the snapshot{of} at v{version}",
            problem,
            then=(
                "so nothing that loads the profile can be answered; custody verify names it, "
                "and deleting that snapshot row repairs it (snapshots are a cache: loads fold "
                "the events instead)"
            ),
        )

    def of(self, profile_id: str) -> UnreadableSnapshot:
        """The same error naming ``profile_id``."""
        return UnreadableSnapshot(self.version, self.problem, profile_id)


class NeverDecided(UnreadableEvent):
    """A stored event the ledger never decides (a lease on a profile that was not available,
    or with another token than the next), appended past the ledger with a link anyone can
    compute: no load folds past it, and ``custody verify`` names it."""


class InvalidInput(LedgerError):
    """A field of a command is malformed or out of range; nothing was written."""

    exit_code = 2

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid {field}: {problem}")
        self.field = field
        self.problem = problem


def environment_setting(variable: str, value: str | None, default: str) -> str | None:
    """An environment variable's value as custody takes it: None when it is unset (``default``
    applies); set but empty, or spaces alone, ``InvalidInput`` naming it, never the default
    (rev45: ``CUSTODY_STORE=``, as a unit file's ``Environment=CUSTODY_STORE=${UNSET}`` writes
    it, quietly made ./custody.db). The one rule for every ``CUSTODY_*`` setting."""
    if value is not None and not value.strip():
        msg = f"is set but empty: unset it for the default ({default}), or give a value"
        raise InvalidInput(variable, msg)
    return value


class UnknownProfile(InvalidInput):
    """The command names a profile that was never registered."""

    def __init__(self, profile_id: str) -> None:
        super().__init__("profile", f"no profile {profile_id!r} is registered")
        self.profile_id = profile_id


class CheckoutDenied(LedgerError):
    """The profile cannot be leased now; ``denial`` says why and what unblocks it."""

    exit_code = 3

    def __init__(self, denial: Denial) -> None:
        what = f"checkout of {denial.profile_id}" if denial.profile_id is not None else "checkout"
        super().__init__(f"{what} denied ({denial.reason}): {denial.message}")
        self.denial = denial

    @property
    def reason(self) -> DenialReason:
        return self.denial.reason

    @property
    def holder(self) -> Holder | None:
        return self.denial.holder

    @property
    def since(self) -> datetime | None:
        return self.denial.since

    @property
    def until(self) -> datetime | None:
        return self.denial.until

    @property
    def remediation(self) -> str:
        return self.denial.remediation


class LeaseLost(LedgerError):
    """The presented lease id or fencing token is no longer the live lease: stop working.
    ``ended``: the ledger ended the lease or marked it stale (a release, a force-release, an
    operator's quarantine or disable, the sweep), so its holder did not lose it on its own; a
    holder that never sends after its own release reads it as a revocation. False when the lease
    may be lost by its holder's own doing: its renewal deadline or hard limit passed, a fencing
    token not the lease's, a lease never issued, a deadline the store's clock refused."""

    exit_code = 4
    # One pickled before ``ended`` was added is rebuilt without calling ``__init__``
    # (``_rebuilt``): it reads this (rev39: AttributeError).
    ended: bool = False

    def __init__(self, lease_id: str, why: str, *, ended: bool = False) -> None:
        super().__init__(f"lease lost: {lease_id}: {why}")
        self.lease_id = lease_id
        self.why = why
        self.ended = ended


class NotAllowed(LedgerError):
    """The command is well formed but the profile's state or the actor's role forbids it."""

    exit_code = 1  # the contract: "1 anything else"


class RowConflict(LedgerError):
    """A read model's row was written where its table holds one with the same key already:
    the read model's checkpoint was set back behind its rows (``ledger.feed``). The read
    model's own code names the read model and its repair (``ReadModelDamaged``)."""


class StoreUnavailable(LedgerError):
    """The event store cannot be reached or is not initialised; ``busy`` when it answered but
    what was asked waited the store's timeout out (a lock, a transaction left open): another
    try may succeed once the holder ends; ``lost`` when the session ended while a statement
    ran (a PostgreSQL server restarted, a backend terminated): a write may have committed
    with only its answer lost."""

    exit_code = 6

    def __init__(self, message: str, *, busy: bool = False, lost: bool = False) -> None:
        super().__init__(message)
        self.busy = busy
        self.lost = lost


class OlderSnapshot(Exception):
    """A stored snapshot without a field the fold now keeps: no load starts from it
    (``ledger._stores.store.CurrentSnapshots``), and verify does not hold it to the fold."""
