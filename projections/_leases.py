"""The leases read model: one row per lease, from checkout to how it ended.

``ending`` says how a lease ended, in one word a report can group by, and ``cause`` the cause
beside it: the domain's own rule decides both (``ledger.lease_ending``: clean,
expected_failure, review, quarantine, stale, forced, revoked), so a row says what the ended
lease in the ledger says. ``profile_state_after`` is where the ending sent the profile.

The heartbeat gap counts every renewal (checkout, heartbeat, extend), as the lease's deadline
does; ``worst_gap_share`` judges each gap against the deadline in force during it (set by the
renewal before it: its TTL, or less under a hard limit), so an ``extend`` never rejudges an
earlier gap. ``mutating_step`` is a mutating step no later safe step confirmed, as the rules
judge it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from ledger import Ledger, ReadModelDamaged
from ledger.feed import FeedTransaction, LoggedEvent
from ledger.rules import lease_ending
from projections._base import (
    DIGEST,
    Index,
    ReadModel,
    ReadResult,
    Table,
    iso,
    require_window,
)
from projections._runner import catch_up
from projections._timeline import Found, readable_account, require_account

if TYPE_CHECKING:
    from ledger import ProfileEvent

# Leases oldest first, and a profile's in the order they were taken: its fencing tokens, since
# two leases of one profile may start at one instant (the store's clock held while the server's
# stepped back) and "lease-10" sorts before "lease-1" as text (rev48: health's failing read a
# profile's five latest leases as five clean ones, and missed it).
LEASE_ORDER = ("started_at", "profile_id", "fencing_token")
LEASES = Table(
    name="custody_leases",
    columns=(
        ("lease_id", "TEXT"),
        ("profile_id", "TEXT NOT NULL"),
        ("account_id", "TEXT NOT NULL"),
        ("proxy_id", "TEXT NOT NULL"),
        ("worker_id", "TEXT NOT NULL"),
        ("run_id", "TEXT NOT NULL"),
        ("task_type", "TEXT NOT NULL"),
        ("fencing_token", "BIGINT NOT NULL"),
        ("ttl_seconds", "BIGINT NOT NULL"),
        ("started_at", "TEXT NOT NULL"),
        ("expires_at", "TEXT NOT NULL"),
        ("ended_at", "TEXT"),
        ("status", "TEXT NOT NULL"),
        ("outcome", "TEXT"),
        ("ending", "TEXT"),
        ("cause", "TEXT"),
        ("profile_state_after", "TEXT"),
        ("heartbeats", "BIGINT NOT NULL"),
        ("last_renewal_at", "TEXT NOT NULL"),
        ("longest_gap_seconds", "DOUBLE PRECISION NOT NULL"),
        ("worst_gap_share", "DOUBLE PRECISION NOT NULL"),
        ("last_step", "TEXT"),
        ("last_url", "TEXT"),
        ("last_safe_step", "TEXT"),
        ("mutating_step", "TEXT"),
        ("marked_stale_at", "TEXT"),
        ("ending_command_id", "TEXT"),
        ("version", "BIGINT NOT NULL"),
        ("position", "BIGINT NOT NULL"),
    ),
    key="lease_id",
    indexes=(
        Index("account_started", ("account_id", "started_at")),
        Index("profile_started", ("profile_id", "started_at")),
    ),
)

_AFTER = {
    "lease_released_cleanly": "available",
    "review_requested": "review_required",
    "profile_quarantined": "quarantined",
    "profile_disabled": "disabled",
}
# An event that names no lease but may end where the command that ended one sent the profile
# (``disable`` of a leased profile: lease_revoked, review_requested, then profile_disabled).
_AFTER_UNNAMED = "profile_disabled"


@functools.cache
def _lease_fields() -> dict[str, str | None]:
    """Where each event type names its lease: the whole lease record, a lease id, or nowhere.
    Read by type, not by trying attributes (a missing attribute costs pydantic an exception);
    from the events on the first fold, so that a read with nothing new to fold imports none."""
    from ledger import EVENT_CLASSES

    return {
        event_type: next((f for f in ("lease", "lease_id") if f in cls.model_fields), None)
        for event_type, cls in EVENT_CLASSES.items()
    }


def _lease_of(event: ProfileEvent) -> str | None:
    field = _lease_fields()[event.event_type]
    if field is None:
        return None
    if field == "lease":
        return str(event.lease.lease_id)  # type: ignore[attr-defined]
    lease_id = event.lease_id  # type: ignore[attr-defined]
    return None if lease_id is None else str(lease_id)


def _acquired(event: Any) -> dict[str, Any]:
    lease = event.lease
    return {
        "lease_id": lease.lease_id,
        "profile_id": lease.profile_id,
        "account_id": lease.account_id,
        "proxy_id": lease.proxy_id,
        "worker_id": lease.worker_id,
        "run_id": lease.run_id,
        "task_type": lease.task_type,
        "fencing_token": lease.fencing_token,
        "ttl_seconds": lease.ttl_seconds,
        "started_at": iso(lease.lease_started_at),
        "expires_at": iso(lease.expires_at),
        "ended_at": None,
        "status": "active",
        "outcome": None,
        "ending": None,
        "cause": None,
        "profile_state_after": None,
        "heartbeats": 0,
        "last_renewal_at": iso(lease.heartbeat_at),
        "longest_gap_seconds": 0.0,
        "worst_gap_share": 0.0,
        "last_step": None,
        "last_url": None,
        "last_safe_step": None,
        "mutating_step": None,
        "marked_stale_at": None,
        "ending_command_id": None,
    }


# While a batch folds, a lease's renewal times are kept as datetimes (the next gap is measured
# from the last one) and turned into text once per batch (``_as_text``), not once per heartbeat.
_RENEWAL_TIMES = ("last_renewal_at", "expires_at")


def _time(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _renewed(row: dict[str, Any], at: datetime, expires_at: datetime) -> None:
    last = _time(row["last_renewal_at"])
    gap = (at - last).total_seconds()
    row["longest_gap_seconds"] = max(row["longest_gap_seconds"], gap)
    # The window the last renewal granted (its TTL, or less under a hard limit): above 1, the
    # gap outlasted the deadline then in force. A window of 0 counts as 1 microsecond.
    window = max((_time(row["expires_at"]) - last).total_seconds(), 1e-6)
    row["worst_gap_share"] = max(row["worst_gap_share"], gap / window)
    row["last_renewal_at"] = at
    row["expires_at"] = expires_at


def _as_text(row: dict[str, Any]) -> dict[str, Any]:
    for name in _RENEWAL_TIMES:
        if isinstance(row[name], datetime):
            row[name] = iso(row[name])
    return row


def _end(row: dict[str, Any], event: Any, ending: str) -> None:
    row.update(
        ended_at=iso(event.at),
        status="ended",
        ending=ending,
        ending_command_id=event.envelope.command_id,
    )


_HEARTBEAT = "lease_heartbeat"


def _fold_heartbeat(row: dict[str, Any], heartbeat: dict[str, Any]) -> None:
    """Fold a heartbeat into its lease's row, from its stored JSON (``LoggedEvent.data``):
    most of a log is heartbeats, and decoding each into its model was most of a catch-up."""
    row["heartbeats"] += 1
    at = datetime.fromisoformat(heartbeat["envelope"]["at"])
    _renewed(row, at, datetime.fromisoformat(heartbeat["expires_at"]))
    step, url = heartbeat["step"], heartbeat["url"]
    row["last_step"] = step if step is not None else row["last_step"]
    row["last_url"] = url if url is not None else row["last_url"]
    if heartbeat["mutating"]:
        row["mutating_step"] = step
    elif heartbeat["safe"]:  # a safe step confirms the account, even after a mutation
        row["last_safe_step"], row["mutating_step"] = step, None


def evolve(row: dict[str, Any], event: Any) -> None:
    """Fold one of the lease's other events into its row (the row of ``lease_acquired``
    exists)."""
    kind = event.event_type
    if kind == "lease_extended":
        _renewed(row, event.at, event.expires_at)
        row["ttl_seconds"] = event.ttl_seconds
    elif kind == "lease_release_requested":
        row["outcome"] = event.outcome.value
        row["last_url"] = event.final_url or row["last_url"]
    elif kind == "lease_marked_stale":
        row.update(status="stale", marked_stale_at=iso(event.at))
    elif row["ending"] is None:
        _first_ending(row, event)
    if kind in _AFTER and row["ending_command_id"] == event.envelope.command_id:
        # Where the command that ended the lease sent the profile: its last such event (a
        # disable sends it to review, then to disabled); a later command's review is not it.
        row["profile_state_after"] = _AFTER[kind]


def _first_ending(row: dict[str, Any], event: ProfileEvent) -> None:
    ended = lease_ending(event, stale=row["status"] == "stale")
    if ended is not None:
        _end(row, event, ended.ending.value)
        row["cause"] = ended.cause.value if ended.cause is not None else None


class LeasesReadModel(ReadModel):
    name = "leases"
    table = LEASES
    counts = "leases"
    lease_topics = (
        "lease_acquired",
        _HEARTBEAT,
        "lease_extended",
        "lease_release_requested",
        "lease_released_cleanly",
        "lease_marked_stale",
        "lease_revoked",
    )

    def row_model(self) -> type[ReadResult]:
        return LeaseRow

    def fold(self, tx: FeedTransaction, table: str, batch: Sequence[LoggedEvent]) -> None:
        """Fold each event once into its lease's row. A row knows the last version of its
        profile's stream folded into it (``version``): an event at or below it is not folded
        again, so a checkpoint moved back (a restored or edited checkpoint) re-reads events
        without counting them twice. A stored row unlike its digest is never built on:
        ``ReadModelDamaged`` (``_load``)."""
        named = self._named(tx, table, batch)
        rows = self._load(tx, table, named)
        touched: dict[str, dict[str, Any]] = {}
        for n, heartbeat, lease_id in named:
            if lease_id is None:
                continue
            if n.event_type == "lease_acquired":  # a row starts afresh from its acquisition
                rows[lease_id] = _acquired(n.event)
            row = rows.get(lease_id)
            if row is None:  # an event naming a lease this log never acquired: nothing to fold
                continue
            if n.event_type != "lease_acquired" and n.version <= row["version"]:
                continue  # folded into this row already
            if heartbeat is not None:
                _fold_heartbeat(row, heartbeat)
            elif n.event_type != "lease_acquired":
                evolve(row, n.event)
            row["version"], row["position"] = n.version, n.position
            touched[lease_id] = row
        written = [self.table.params(_as_text(r)) for r in touched.values()]
        self.table.write(tx, table, written, upsert=True)

    def _named(
        self, tx: FeedTransaction, table: str, batch: Sequence[LoggedEvent]
    ) -> list[tuple[LoggedEvent, dict[str, Any] | None, str | None]]:
        """Each event with its heartbeat's JSON (heartbeats are folded from it, every other
        event from its model) and the lease it is folded into: the one it names, or for a
        profile_disabled the lease its command ended (in this batch, or already stored)."""
        named: list[tuple[LoggedEvent, dict[str, Any] | None, str | None]] = []
        # By profile and command id, as ``_ended_by`` looks a stored lease up: one sweep's id
        # is on the events of every profile it settled (rev30: a disable that took the id of a
        # sweep still running was folded into a swept profile's lease).
        by_command: dict[tuple[str, str], str] = {}
        for n in batch:
            heartbeat = n.data() if n.event_type == _HEARTBEAT else None
            if heartbeat is not None:
                lease = heartbeat["lease_id"]
            elif n.event_type == _AFTER_UNNAMED:
                lease = by_command.get(_command_of(n.event)) or _ended_by(tx, table, n.event)
            else:
                lease = _lease_of(n.event)
                if lease is not None:
                    by_command[_command_of(n.event)] = lease
            named.append((n, heartbeat, lease))
        return named

    def _load(
        self,
        tx: FeedTransaction,
        table: str,
        named: Sequence[tuple[LoggedEvent, dict[str, Any] | None, str | None]],
    ) -> dict[str, dict[str, Any]]:
        """The stored rows of the leases this batch continues. ``ReadModelDamaged`` for one
        unlike the digest written with it (edited by hand): folding onto it would write the
        edit again under a fresh digest, and no check could find it afterwards."""
        wanted = sorted(
            {lease for n, _, lease in named if lease and n.event_type != "lease_acquired"}
        )
        rows: dict[str, dict[str, Any]] = {}
        columns = ", ".join(self.table.stored_names)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in tx.query(
                f"SELECT {columns} FROM {table} WHERE lease_id IN ({marks})", chunk
            ):
                digest = row.pop(DIGEST)
                if self.table.digest(self.table.params(row)) != digest:
                    said = (
                        f"the row of lease {row['lease_id']} (profile {row['profile_id']}) "
                        "is unlike the digest written with it (edited by hand)"
                    )
                    raise ReadModelDamaged(self.name, said)
                row["longest_gap_seconds"] = float(row["longest_gap_seconds"])
                row["worst_gap_share"] = float(row["worst_gap_share"])
                rows[str(row["lease_id"])] = row
        return rows


def _command_of(event: Any) -> tuple[str, str]:
    """The profile and command id an event names: what ties a profile_disabled to the lease
    its command ended (a sweep's id is on the events of every profile it settled)."""
    return (event.profile_id, event.envelope.command_id)


def _ended_by(tx: FeedTransaction, table: str, event: Any) -> str | None:
    """The stored lease whose ending command is this event's (None: no lease ended by it)."""
    found = tx.query(
        f"SELECT lease_id FROM {table} WHERE profile_id = ? AND ending_command_id = ?",
        (event.profile_id, event.envelope.command_id),
    )
    return str(found[0]["lease_id"]) if found else None


LEASES_READ_MODEL = LeasesReadModel()


def select_usage(
    account_id: str | None, since: datetime | None, until: datetime | None
) -> tuple[str, tuple[Any, ...]]:
    """Every lease on a profile of the account (of every account: None) that overlaps
    [since, until], oldest first."""
    where: list[str] = ["1 = 1"]
    params: list[str] = []
    if account_id is not None:
        where.append("account_id = ?")
        params.append(readable_account(account_id))
    if until is not None:
        where.append("started_at <= ?")
        params.append(str(iso(until)))
    if since is not None:
        where.append("(ended_at IS NULL OR ended_at >= ?)")
        params.append(str(iso(since)))
    columns = ", ".join(LEASES.column_names)
    sql = (
        f"SELECT {columns} FROM {LEASES.name} WHERE {' AND '.join(where)} "
        f"ORDER BY {', '.join(LEASE_ORDER)}"
    )
    return sql, tuple(params)


def read_usage(
    ledger: Ledger,
    read: Callable[[str, Sequence[Any]], Found],
    *,
    account_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Found:
    """The one definition of a usage answer, whatever shape it is read in: every lease on a profile
    of ``account_id`` (of every account: None) live at any moment of [since, until] (started by
    ``until``, not ended before ``since``), oldest first (``in_lease_order``: by start, then
    profile, then fencing token), brought up to date first. ``read`` runs the query
    (``Feed.query`` for rows, ``Feed.read_frame`` for a DataFrame). ``InvalidInput`` naming
    ``account`` for an account no profile was registered under, ``since`` for a window that ends
    before it starts or starts after the store's time (the events cannot tell what is still to
    come: a lease not ended yet read as live then, its deadline passed or not)."""
    require_window(since, until)
    if since is not None and str(iso(since)) > str(iso(now := ledger.now())):
        from ledger import InvalidInput

        msg = f"{since.isoformat()} is after the store's time {now.isoformat()}"
        raise InvalidInput("since", f"{msg}: the events cannot tell what is still to come")
    catch_up(ledger, LEASES_READ_MODEL)
    found = in_lease_order(read(*select_usage(account_id, since, until)))
    if len(found) == 0 and account_id is not None:
        require_account(ledger, account_id)
    return found


def in_lease_order(found: Found) -> Found:
    """``found`` (rows, or a DataFrame of them) in ``LEASE_ORDER`` by code point, as SQLite
    orders text, whatever the database's collation: an ICU collation on PostgreSQL ordered the
    profile ids of leases started at one instant otherwise (fixrev 294, as rev36 found of the
    availability rows). Stable: the query's order stands where the keys tie."""
    if isinstance(found, list):
        return cast(Found, sorted(found, key=_lease_key))
    frame: Any = found  # a DataFrame (``Feed.read_frame``); pandas orders text by code point
    return cast(Found, frame.sort_values(list(LEASE_ORDER), kind="stable", ignore_index=True))


def _lease_key(row: Mapping[str, Any]) -> tuple[str, str, int]:
    return (str(row["started_at"]), str(row["profile_id"]), int(row["fencing_token"]))


class LeaseRow(ReadResult):
    """One lease, from checkout to how it ended (``ending``: clean, expected_failure, review,
    quarantine, stale, forced, revoked; None while live); ``position``: the log position of
    the last event folded into the stored row."""

    lease_id: str
    profile_id: str
    account_id: str
    proxy_id: str
    worker_id: str
    run_id: str
    task_type: str
    fencing_token: int
    ttl_seconds: int
    started_at: datetime
    expires_at: datetime
    ended_at: datetime | None
    status: str
    outcome: str | None
    ending: str | None
    cause: str | None
    profile_state_after: str | None
    heartbeats: int
    last_renewal_at: datetime
    longest_gap_seconds: float
    worst_gap_share: float
    last_step: str | None
    last_url: str | None
    last_safe_step: str | None
    mutating_step: str | None
    marked_stale_at: datetime | None
    ending_command_id: str | None
    version: int
    position: int | None  # None in a row folded again as of a moment (``usage(at=)``)
