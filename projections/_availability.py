"""Current availability as a person asks for it: filtered, and judged at a moment."""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import TYPE_CHECKING

from ledger import Availability, DenialReason, InvalidInput, Ledger, ProfileState
from ledger.feed import StrayRegistrations

if TYPE_CHECKING:
    from ledger.feed import FeedSnapshot
    from projections._runner import ReadModelStatus

AVAILABILITY = "availability"  # its name where the read models are listed and rebuilt


class StatusRow(Availability):
    """An availability row judged at a moment: ``overdue`` when a lease missed its deadline
    (its ``reason`` then ``stale`` and its ``since`` the deadline, as a checkout is denied: the
    row records the state's);
    ``damaged`` says what was wrong with a stored row that could not be read (the row shown is
    then the one the events give; ``custody rebuild`` repairs the table)."""

    overdue: bool
    damaged: str | None = None

    @property
    def row_missing(self) -> bool:
        """The profile has no stored row at all (``damaged`` is then ``MISSING_ROW``)."""
        return self.damaged == MISSING_ROW


# What a registered profile without an availability row is said to have.
MISSING_ROW = "missing: custody projections rebuild availability writes it from the events"


def status(
    ledger: Ledger, *, account_id: str | None = None, state: ProfileState | str | None = None
) -> list[StatusRow]:
    """Every profile's availability, optionally for one account or one state;
    ``InvalidInput`` naming ``account`` for an account no profile was registered under, and
    naming ``state`` and the states for what is not one (an empty list would say no profile
    is in it)."""
    state = _state(state)
    now = ledger.now()
    readable, damaged = ledger.availability_rows()
    # Read after the rows: a row read is of a profile registered by now, so rows of profiles
    # never registered are junk (rebuild drops them), readable or not (rev36: a made-up row
    # was shown and counted as a profile).
    ids, stray = ledger.registrations()
    registered = set(ids)
    if stray:  # rev37: said, and the rest answered (not the whole fleet refused as bad input)
        warnings.warn(StrayRegistrations(stray), stacklevel=2)
    rows: list[tuple[Availability, str | None]] = [
        (r, None) for r in readable if r.profile_id in registered
    ]
    rows += [
        (ledger.availability_from_events(pid), problem)
        for pid, problem in damaged.items()
        if pid in registered
    ]
    # A registered profile without a row (deleted by hand) is shown from its events, marked
    # (rev36: status left it out, and its fleet summary below counted it); one registered
    # after the rows were read has its row by now.
    for pid in sorted(registered - {r.profile_id for r in readable}.union(damaged)):
        row = ledger.stored_availability(pid)
        if isinstance(row, Availability):
            rows.append((row, None))
        else:
            problem = MISSING_ROW if row is None else row
            rows.append((ledger.availability_from_events(pid), problem))
    return _judged(ledger, rows, now, account_id, state)


def _state(state: ProfileState | str | None) -> ProfileState | None:
    """``state`` as the ``ProfileState`` it names (its value, as the command line takes it)."""
    if state is None or isinstance(state, ProfileState):
        return state
    try:
        return ProfileState(state)
    except ValueError:
        names = ", ".join(s.value for s in ProfileState)
        raise InvalidInput("state", f"{state!r} is not one of {names}") from None


def status_at(
    ledger: Ledger,
    snapshot: FeedSnapshot,
    position: int,
    at: datetime,
    *,
    account_id: str | None = None,
    junk: list[str] | None = None,
) -> list[StatusRow]:
    """``status`` judged at ``at``, as the log stood at ``position``, from the rows
    ``snapshot`` sees: the row of a profile with events after ``position`` (written beside
    them) gives way to the one its events gave then, and a profile registered after
    ``position`` is left out. So it agrees with read models whose checkpoint is ``position``,
    read in the same snapshot. Rows of profiles never registered are left out, their ids
    added to ``junk`` when given (where a report names damage)."""
    readable, damaged = snapshot.availability()
    # Rows of profiles never registered are junk (rebuild drops them); a registered profile
    # without a row (deleted by hand) is answered from its events and named as damaged
    # (rev33: the checklist answered "2 of 2" of 3 profiles, --strict exit 0, without a word).
    registered = set(ledger.profile_ids())
    # Read after the rows: a row of a profile not registered by now is junk, readable or not
    # (rev36: a made-up row was counted by fleet, and the checklist asked for its profile).
    if junk is not None:
        junk += sorted({r.profile_id for r in readable}.union(damaged) - registered)
    readable = [r for r in readable if r.profile_id in registered]
    damaged = {pid: problem for pid, problem in damaged.items() if pid in registered}
    unheld = registered - {r.profile_id for r in readable}.union(damaged)
    if unheld:  # a row deleted, or a profile registered since the snapshot began (rev33)
        in_snapshot = snapshot.versions_after(0, unheld)
        damaged.update(dict.fromkeys(sorted(p for p in unheld if p in in_snapshot), MISSING_ROW))
    later = snapshot.versions_after(position, [*(r.profile_id for r in readable), *damaged])
    rows: list[tuple[Availability, str | None]] = []
    for pid, row, problem in [
        *((r.profile_id, r, None) for r in readable),
        *((pid, None, problem) for pid, problem in damaged.items()),
    ]:
        version = later.get(pid)
        if version == 1:  # registered after ``position``
            continue
        if version is not None or row is None:
            row = ledger.availability_from_events(pid, None if version is None else version - 1)
        rows.append((row, problem))
    return _judged(ledger, rows, at, account_id, None)


def _judged(
    ledger: Ledger,
    rows: list[tuple[Availability, str | None]],
    now: datetime,
    account_id: str | None,
    state: ProfileState | None,
) -> list[StatusRow]:
    if account_id is not None:
        rows = [(r, problem) for r, problem in rows if r.account_id == account_id]
        if not rows:  # no row says so, but a row may be missing: the events decide
            # Imported here: the timeline and its catch-up are what this rare case alone
            # reads, so a plain ``custody status`` brings no read model up to date.
            from projections._timeline import require_account

            require_account(ledger, account_id)
    from ledger.rules import reason_at

    judged = []
    for r, problem in sorted(rows, key=lambda pair: pair[0].profile_id):
        overdue = r.overdue_at(now)
        # The reason a checkout now would be denied for: stale once the deadline passed, so
        # asked for the stale profiles, a lease past its deadline before the sweep is one.
        reason = reason_at(r.reason, overdue)
        # Stale since the deadline it missed, as ``why``, ``fleet`` and a refused checkout say
        # (rev37: status said since the lease began).
        since = r.until if overdue else r.since
        stale = state is ProfileState.STALE and reason is DenialReason.STALE
        if state is None or r.state is state or stale:
            row = {**r.model_dump(), "reason": reason, "since": since}
            judged.append(StatusRow(**row, overdue=overdue, damaged=problem))
    return judged


def availability_status(ledger: Ledger) -> ReadModelStatus:
    """The availability table as ``custody projections status`` lists it beside the read
    models fed from the log: written with the events (no checkpoint, never behind), its rows
    checked against every profile's events (``ledger.availability_differences``): a row
    missing, unreadable, unlike its events or of no registered profile is one problem each,
    naming the repair. ``custody status`` and ``fleet`` read the rows as they stand."""
    from ledger import availability_differences
    from projections._runner import ReadModelStatus

    head = ledger.feed.head()
    readable, damaged = ledger.store.scan_availability()
    problems = [
        f"{AVAILABILITY}: profile {d.profile_id}: its row is {_worded(d.problem)}: "
        f"custody projections rebuild {AVAILABILITY}"
        if d.repairable
        # Its events cannot be folded (appended past the ledger): a rebuild leaves the row as
        # it is, and advising one sent the operator round in a loop (rev25).
        else f"{AVAILABILITY}: profile {d.profile_id}: {d.problem}; {UNREPAIRABLE}"
        for d in availability_differences(ledger)
    ]
    return ReadModelStatus(
        name=AVAILABILITY,
        position=head,
        head=head,
        lag=0,
        rows=len(readable) + len(damaged),
        rebuilding=False,
        problems=problems,
    )


UNREPAIRABLE = "no rebuild repairs its row (the log is append-only)"


def _worded(problem: str) -> str:
    """``ledger.availability_differences``' words after "its row is"."""
    if problem == "no such profile is registered":
        return "of no registered profile"
    if problem.startswith("version "):  # "version 5 is ahead of the events (3)"
        return "at " + problem.replace(" is ", ", ", 1)
    return problem.replace("differs in ", "unlike its events in ", 1)
