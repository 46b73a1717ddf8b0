"""Read models that check themselves: each read model's rows and position against the log.

A position alone says nothing about the rows: with rows deleted or edited by hand, or a
position set ahead or behind, a catch-up finds nothing to do and a read answers from the
damaged rows. So ``check`` compares, at one moment of the database (``Feed.snapshot``):

- the position with the log's head (ahead of it: events it claims were never written) and
  with the rows (behind a row already written: the next catch-up would apply it twice);
- per profile, the rows up to the position with the events up to it, one SQL aggregate of the
  log (how many events, the last version, how many leases acquired): a row deleted or
  inserted changes the count, a profile's rows ending at another version say so;
- every row with its digest (``Table.digest``, written with the row): a row edited in any
  column no longer matches. This reads the rows, never the events: no replay;
- of the leases, each row's version with the last event naming its lease (one more aggregate
  of the log): a genuine older copy of a row (restored from a backup) is behind it.

Each problem is one line naming the read model, the profile where it applies, and the command
that repairs it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ledger import Ledger
from ledger.feed import FeedSnapshot, cell_shown
from projections._base import ReadModel, layout_problem

PAGE = 5000  # rows read at a time: the whole read model is never held in memory


@dataclass
class _Rows:
    """One profile's rows up to the position, as the scan found them."""

    count: int = 0
    last_version: int = 0
    edited: int = 0
    beyond: int = 0  # rows recording a position past the read model's
    # Cells holding what no row written holds, by column: how many, and the first value.
    junk: dict[str, tuple[int, Any]] = field(default_factory=dict)
    # Of a read model with one row per lease: each row's fencing token, version and key.
    leases: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class _Scan:
    """What the scan of a read model's rows found."""

    rows: int = 0
    top: int = 0  # the highest position a row records
    beyond: int = 0  # rows recording a position past the read model's
    profiles: dict[str, _Rows] = field(default_factory=lambda: defaultdict(_Rows))


def repair(model: ReadModel) -> str:
    return f"custody projections rebuild {model.name}"


def check(snapshot: FeedSnapshot, model: ReadModel, position: int) -> tuple[int, list[str]]:
    """The read model's rows and what is wrong with them (one line each, empty when it agrees
    with the log), at ``position``, its position in this snapshot."""
    table = model.table
    found = snapshot.columns(table.name)
    if found != list(table.stored_names):
        return 0, [_line(model, None, layout_problem(table, found))]
    scan = _scan(snapshot, model, position)
    head = snapshot.head()
    problems = []
    if position > head:
        said = f"its position {position} is ahead of the log's head {head}"
        problems.append(_line(model, None, said))
    if scan.beyond:
        said = (
            f"its position {position} is behind rows already written ({scan.beyond} row(s) "
            f"up to position {scan.top})"
        )
        problems.append(_line(model, None, said))
    counts = snapshot.stream_counts(position)
    leases = snapshot.lease_versions(position, model.lease_topics) if model.lease_topics else {}
    for profile_id in sorted(set(counts) | set(scan.profiles)):
        rows = scan.profiles.get(profile_id, _Rows())
        count = counts.get(profile_id)
        found = _profile_problems(model, rows, count)
        if not found and model.lease_topics and not _counted_elsewhere(model, rows):
            found = _behind_their_events(rows, leases.get(profile_id, {}))
        for said in [*found, *_junk_lines(model, rows)]:
            problems.append(_line(model, profile_id, said))
    return scan.rows, problems


def _junk_lines(model: ReadModel, rows: _Rows) -> list[str]:
    """One line per column of a profile's rows holding what no row written holds: the table,
    the column, how many rows and the first value (rev36: an internal error of ``status``)."""
    return [
        f"its table {model.table.name}'s column {column} holds {cell_shown(value)} in {count} "
        "row(s), which no row it writes holds (written there by hand?)"
        for column, (count, value) in sorted(rows.junk.items())
    ]


def _behind_their_events(rows: _Rows, lasts: dict[int, int]) -> list[str]:
    """A profile's lease rows (as many as its leases) whose version is below the last event
    that names their lease: a genuine older copy of the row (a table restored from a backup,
    a row put back as it was), which its digest and the count cannot tell. The n-th lease by
    fencing token is the n-th acquired; ``lasts`` gives each one's last such event."""
    behind = [
        (key, version, lasts[n])
        for n, (_, version, key) in enumerate(sorted(rows.leases), start=1)
        if version < lasts.get(n, 0)
    ]
    if not behind:
        return []
    key, version, last = behind[0]
    return [
        f"{len(behind)} row(s) behind their events (lease {key} at version {version}, its "
        f"events at {last})"
    ]


def _line(model: ReadModel, profile_id: str | None, said: str) -> str:
    where = f" profile {profile_id}:" if profile_id is not None else ""
    return f"{model.name}:{where} {said}: {repair(model)}"


def _profile_problems(model: ReadModel, rows: _Rows, count: Any) -> list[str]:
    """What differs between a profile's rows and its events (``count``: a ``StreamCount``, or
    None when it has no events up to the position)."""
    kind = model.counts
    wanted = 0 if count is None else getattr(count, kind)
    last = 0 if count is None else count.last_version
    found = []
    if _counted_elsewhere(model, rows):
        pass  # the position's own line names it
    elif rows.count < wanted:
        found.append(f"{wanted - rows.count} row(s) missing ({rows.count} for {wanted} {kind})")
    elif rows.count > wanted:
        found.append(f"{rows.count - wanted} row(s) too many ({rows.count} for {wanted} {kind})")
    elif "version" in rows.junk:
        pass  # its junk's own line names it
    elif rows.count and model.one_row_per_event and rows.last_version != last:
        found.append(f"its rows end at version {rows.last_version}, its events at {last}")
    elif rows.last_version > last:
        found.append(f"a row at version {rows.last_version}, past its events ({last})")
    if rows.edited:
        found.append(f"{rows.edited} row(s) edited (unlike the digest written with them)")
    return found


def _counted_elsewhere(model: ReadModel, rows: _Rows) -> bool:
    """Whether the profile's rows cannot be counted against its events up to the position:
    a row per lease records the lease's last event, past the position, while the events up
    to it count the lease from its acquisition. The position's own line ("behind rows
    already written") names that (rev28: "1 row(s) missing" of a lease whose row was there)."""
    return bool(rows.beyond) and not model.one_row_per_event


def _scan(snapshot: FeedSnapshot, model: ReadModel, position: int) -> _Scan:
    """Every row, a page at a time in key order: counted by profile, checked by digest."""
    table = model.table
    names = table.stored_names  # the columns, then the digest: a row's last value
    at, profile, version, key = (names.index(c) for c in ("position", "profile_id", "version",
                                                          table.key))  # fmt: skip
    token = names.index("fencing_token") if model.lease_topics else None
    select = f"SELECT {', '.join(names)} FROM {table.name}"
    scan = _Scan()
    after: Any = None
    while True:
        where = "" if after is None else f" WHERE {table.key} > ?"
        page = snapshot.tuples(
            f"{select}{where} ORDER BY {table.key} LIMIT {PAGE}", () if after is None else (after,)
        )
        for row in page:
            rows = scan.profiles[str(row[profile])]
            scan.rows += 1
            bad: set[str] = set()
            if table.digest(row[:-1]) != row[-1]:  # only an edited row can hold junk
                for column, value in model.unreadable(row):
                    bad.add(column)
                    count, first = rows.junk.get(column, (0, value))
                    rows.junk[column] = (count + 1, first)
                rows.edited += not bad  # a row holding junk is said by its junk
            # A number column holding junk is not compared (rev36: 'v' > 1 was a TypeError):
            # the row is counted as within the position, its junk said by ``_junk_lines``.
            if "position" not in bad and row[at] > position:  # not counted against the events
                scan.beyond += 1
                rows.beyond += 1
                scan.top = max(scan.top, row[at])
                continue
            rows.count += 1
            if "version" not in bad:
                rows.last_version = max(rows.last_version, row[version])
            if token is not None and not bad:
                rows.leases.append((row[token], row[version], str(row[key])))
        if len(page) < PAGE:
            return scan
        after = page[-1][key]


def unfinished(ledger: Ledger, model: ReadModel, shadow: str) -> str | None:
    """A rebuild's position left behind by a process that died (no rebuild holds its lock):
    the problem line, or None when a rebuild is under way."""
    from ledger import NotAllowed

    try:
        with ledger.feed.exclusive(f"rebuild-{model.name}"):
            # Looked at again under the lock: a rebuild may have finished since the snapshot.
            left = shadow in ledger.feed.checkpoints()
    except NotAllowed:
        return None
    if not left:
        return None
    said = f"a rebuild was left unfinished (its position {shadow} remains)"
    return f"{model.name}: {said}: {repair(model)}"
