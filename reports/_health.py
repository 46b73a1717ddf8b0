"""Fleet health: where leases end unclean, how long they last, how long workers go silent,
why profiles are blocked, and which profiles keep failing.

An ending is *unclean* when the run did not end explainably: ``review``, ``quarantine``,
``stale``, ``forced`` or ``revoked`` (``clean`` and ``expected_failure`` are explainable). A
lease not ended yet is ``live``, or ``overdue`` past its deadline: no worker may end it any
more, so it will end unknown, and counts as unclean already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from ledger import InvalidInput
from ledger.rules import OVERDUE
from projections import EXPLAINABLE_ENDINGS, UNCLEAN_ENDINGS, Bound
from reports._frames import Source, opened
from reports._sources import Sources, read_sources

EXPLAINABLE = EXPLAINABLE_ENDINGS
UNCLEAN = UNCLEAN_ENDINGS
ENDINGS = (*EXPLAINABLE, *UNCLEAN)
# The window ``health`` judges a profile by, as ``custody health --last`` / ``--failing-at``
# take it (``custody._wiring.CountType``): its last ended leases, and the unclean endings
# among them that make it one that keeps failing.
LEASES_JUDGED = Bound("last", 1, 1_000)
FAILING_AT = Bound("failing_at", 1, 1_000)
BY = {"profile": "profile_id", "account": "account_id", "proxy": "proxy_id", "worker": "worker_id"}


@dataclass(frozen=True)
class Health:
    """The health tables, each a DataFrame (see ``health``)."""

    at: datetime
    endings: dict[str, pd.DataFrame]
    durations: pd.DataFrame
    heartbeat_gaps: pd.DataFrame
    causes: pd.DataFrame
    failing: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name: ``endings_by_profile`` .. ``endings_by_worker``,
        ``durations``, ``heartbeat_gaps``, ``causes``, ``failing``."""
        named = {f"endings_by_{k}": v for k, v in self.endings.items()}
        return {
            **named,
            "durations": self.durations,
            "heartbeat_gaps": self.heartbeat_gaps,
            "causes": self.causes,
            "failing": self.failing,
        }


def health(
    *, account: str | None = None, last: int = 5, failing_at: int = 2, ledger: Source = None
) -> Health:
    """The health tables after bringing the read models up to date (``account``'s profiles
    only, when given). A profile *keeps failing* when at least ``failing_at`` of its ``last``
    ended leases ended unclean. ``InvalidInput`` for a ``last`` out of ``LEASES_JUDGED``
    (1 to 1,000), a ``failing_at`` out of ``FAILING_AT`` or above ``last`` (never met)."""
    LEASES_JUDGED.checked(last)
    FAILING_AT.checked(failing_at)
    reachable(last, failing_at)
    with opened(ledger) as source:
        return assess(read_sources(source, account=account), last=last, failing_at=failing_at)


def reachable(
    last: int, failing_at: int, *, named: tuple[str, str] = ("failing_at", "last")
) -> None:
    """``InvalidInput`` naming ``failing_at`` when it is more than ``last``: no profile could
    ever keep failing (``named``: how the caller calls the two, the command line's options)."""
    if failing_at > last:
        raise InvalidInput(named[0], f"{failing_at} is more than {named[1]} {last}: never met")


def assess(sources: Sources, *, last: int = 5, failing_at: int = 2) -> Health:
    """The health tables of an already-read ``Sources``."""
    leases = sources.leases
    return Health(
        at=sources.at,
        endings={name: endings(leases, column) for name, column in BY.items()},
        durations=durations(leases),
        heartbeat_gaps=heartbeat_gaps(leases, sources.at),
        causes=causes(sources.events),
        failing=failing(leases, last=last, failing_at=failing_at),
    )


def endings(leases: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per ``column`` value: leases, each ending's count, the overdue ones (past
    their deadline, not ended: ``Sources.leases`` judged them), the live ones, and
    ``unclean`` (the unclean endings and the overdue leases), the most unclean first."""
    open_ = leases["status"].where(leases["status"].eq(OVERDUE), "live")
    kinds = leases["ending"].fillna(open_).astype("string")
    table = pd.crosstab(leases[column].astype("string"), kinds)
    table = table.reindex(columns=[*ENDINGS, OVERDUE, "live"], fill_value=0)
    table.insert(0, "leases", table.sum(axis=1))
    table["unclean"] = table[[*UNCLEAN, OVERDUE]].sum(axis=1)
    table = table.astype("Int64").rename_axis(index=column, columns=None).reset_index()
    table[column] = table[column].astype("string")
    return table.sort_values(["unclean", column], ascending=[False, True], ignore_index=True)


def _seconds(end: pd.Series, start: pd.Series) -> pd.Series:
    return (end - start).dt.total_seconds().astype("float64")


def durations(leases: pd.DataFrame) -> pd.DataFrame:
    """Ended leases' durations in seconds by ending, and ``all``: count, median, p95, max."""
    ended = leases.loc[leases["ended_at"].notna()]
    seconds = _seconds(ended["ended_at"], ended["started_at"])
    groups = [("all", seconds), *((k, seconds[ended["ending"] == k]) for k in ENDINGS)]
    rows = [
        {
            "ending": name,
            "count": len(values),
            "median_seconds": values.median() if len(values) else None,
            "p95_seconds": values.quantile(0.95) if len(values) else None,
            "max_seconds": values.max() if len(values) else None,
        }
        for name, values in groups
    ]
    frame = pd.DataFrame(rows, columns=list(rows[0]))
    frame["ending"] = frame["ending"].astype("string")
    frame["count"] = frame["count"].astype("Int64")
    for column in ("median_seconds", "p95_seconds", "max_seconds"):
        frame[column] = frame[column].astype("float64")
    return frame


def heartbeat_gaps(leases: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """One row per lease, the longest silence first: heartbeats, TTL (the last one set), the
    longest gap between renewals (checkout, heartbeat, extend: the leases read model's), and
    the silence after the last renewal (``silent_seconds``: until the lease ended, or until
    now for a live one; a stale lease's is how long it went unrenewed before the sweep).
    ``worst_share_of_ttl`` is the largest share of the deadline in force that a gap or the
    silence took, each measured against the window its renewal granted (the TTL then in
    force, or less under a hard limit: an ``extend`` rejudges no earlier gap): above 1, a
    deadline passed in silence. A lease that reached its hard limit is silent only up to it."""
    frame = leases.loc[
        :, ["lease_id", "profile_id", "worker_id", "ending", "heartbeats", "ttl_seconds"]
    ].copy()
    frame["longest_gap_seconds"] = leases["longest_gap_seconds"]
    until = leases["ended_at"].fillna(pd.Timestamp(now))
    # A lease that reached its hard limit was silenced by it, not by its worker: the time after
    # the limit is no gap of the worker's (rev30: it read as a deadline passed in silence).
    # A live lease whose last renewal was granted less than its TTL was cut at its hard limit:
    # the sweep will end it so (rev31: until then it read as a worker silent past its deadline).
    granted = leases["last_renewal_at"] + pd.to_timedelta(leases["ttl_seconds"], unit="s")
    capped = leases["ended_at"].isna() & (leases["expires_at"] < granted)
    limited = leases["cause"].eq("hard_limit_reached").fillna(False).astype(bool) | capped
    until = until.mask(limited, until.where(until <= leases["expires_at"], leases["expires_at"]))
    frame["silent_seconds"] = _seconds(until, leases["last_renewal_at"]).clip(lower=0.0)
    worst = frame[["longest_gap_seconds", "silent_seconds"]].max(axis=1)
    # The last renewal set the deadline in force since (a window of 0 counts as 1 us, as in
    # the read model's worst_gap_share).
    window = _seconds(leases["expires_at"], leases["last_renewal_at"]).clip(lower=1e-6)
    shares = pd.concat([leases["worst_gap_share"], frame["silent_seconds"] / window], axis=1)
    share = shares.max(axis=1)
    # Rounded, but a deadline that passed stays above 1 (a day's TTL missed by 3 s read 1.0).
    frame["worst_share_of_ttl"] = share.round(3).mask((share > 1) & (share.round(3) <= 1), 1.001)
    order = frame.assign(_worst=worst).sort_values(
        ["_worst", "lease_id"], ascending=[False, True], ignore_index=True
    )
    return order.drop(columns="_worst")


def causes(events: pd.DataFrame) -> pd.DataFrame:
    """Why profiles were sent to review or quarantine: one row per (where, cause) with how
    many times, on how many profiles, and the last time; most frequent first."""
    sent = events.loc[events["event_type"].isin(["review_requested", "profile_quarantined"])]
    where = sent["event_type"].map(
        {"review_requested": "review", "profile_quarantined": "quarantine"}
    )
    frame = sent.assign(sent_to=where.astype("string"), cause=sent["cause"].fillna("unknown"))
    table = (
        frame.groupby(["sent_to", "cause"], as_index=False)
        .agg(times=("position", "size"), profiles=("profile_id", "nunique"), last_at=("at", "max"))
        .sort_values(
            ["times", "sent_to", "cause"], ascending=[False, True, True], ignore_index=True
        )
    )
    for column in ("times", "profiles"):
        table[column] = table[column].astype("Int64")
    for column in ("sent_to", "cause"):
        table[column] = table[column].astype("string")
    return table.loc[:, ["sent_to", "cause", "times", "profiles", "last_at"]]


def failing(leases: pd.DataFrame, *, last: int, failing_at: int) -> pd.DataFrame:
    """Profiles with at least ``failing_at`` unclean endings among their ``last`` ended
    leases: how many, the endings oldest first, and the unclean leases' ids. A profile's
    leases in the order they were taken, its fencing tokens, whatever their times say: leases
    taken at one instant, or stamped earlier than the one before (the store's clock held while
    the server's stepped back), are read as they came (rev48, fixrev 294)."""
    ended = leases.loc[leases["ended_at"].notna()].sort_values(["profile_id", "fencing_token"])
    rows = []
    for pid, group in ended.groupby("profile_id", sort=True):
        recent = group.tail(last)
        bad = recent.loc[recent["ending"].isin(UNCLEAN)]
        if len(bad) >= failing_at:
            rows.append(
                {
                    "profile_id": str(pid),
                    "account_id": str(recent["account_id"].iloc[-1]),
                    "leases": len(recent),
                    "unclean": len(bad),
                    "endings": ", ".join(recent["ending"].astype(str)),
                    "unclean_leases": ", ".join(bad["lease_id"].astype(str)),
                    "last_unclean_at": bad["ended_at"].max(),
                }
            )
    columns = ["profile_id", "account_id", "leases", "unclean", "endings", "unclean_leases"]
    frame = pd.DataFrame(rows, columns=[*columns, "last_unclean_at"])
    frame = frame.astype({"leases": "Int64", "unclean": "Int64"})
    for column in ("profile_id", "account_id", "endings", "unclean_leases"):
        frame[column] = frame[column].astype("string")
    frame["last_unclean_at"] = pd.to_datetime(frame["last_unclean_at"], utc=True)
    return frame.sort_values(["unclean", "profile_id"], ascending=[False, True], ignore_index=True)
