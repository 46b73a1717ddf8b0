"""The report commands (timeline, usage, replay) and the read models' upkeep (projections).

Each report command prints what the ``reports`` function of the same name returns; pandas is
imported only by these commands. Every report brings its read model up to date first.
"""

from __future__ import annotations

import json
import signal
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

import click

from custody._commands import cli
from custody._export import checked_format
from custody._output import PagedAnswer, ReplayAnswer, TimelineAnswer, UsageAnswer
from custody._printed import Printed
from custody._wiring import (
    MOMENT,
    UNTIL,
    CountType,
    FileName,
    Group,
    LedgerChoice,
    Seconds,
    WholeRange,
    on_ledger,
    options,
    owners_only,
)

if TYPE_CHECKING:
    from ledger import Ledger, RebuildReport
    from projections import ReadModelStatus, Rebuilt

_format = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
    help="table for a person, csv or json for a program (--json implies json); parquet "
    "needs --output",
)
_output = click.option(
    "--output",
    "named",
    type=FileName(click.Path(dir_okay=False)),  # as given: checked_format reads it, as root too
    metavar="FILE",
    help="write the rows to FILE (csv, json or parquet) and a one-line summary to stdout",
)
_since = click.option(
    "--since", type=MOMENT, metavar="TIME",
    help="from this time (ISO 8601, UTC without an offset; a date alone means the whole day: "
    "from its first instant)",
)  # fmt: skip
_until = click.option(
    "--until", type=UNTIL, metavar="TIME",
    help="up to this time, itself included to its precision: a date alone means the whole day, "
    "a time to the second the whole second (through its last instant)",
)  # fmt: skip


@cli.command()
@click.argument("profile_id", metavar="[PROFILE]", required=False)
@click.option("--account", "account_id", metavar="ACCOUNT", help="only this account's profiles")
@_since
@_until
@click.option(
    "--last",
    type=CountType("projections.LAST_EVENTS"),
    metavar="N",
    help="only the last N of these events (a long profile's, straight from its index)",
)
@_format
@_output
@on_ledger
def timeline(
    ledger: Ledger,
    profile_id: str | None,
    account_id: str | None,
    since: datetime | None,
    until: datetime | None,
    last: int | None,
    fmt: str,
    named: str | None,
) -> PagedAnswer | TimelineAnswer:
    """events of a profile, an account or every profile, oldest first"""
    as_json = options().as_json
    fmt, output = checked_format(fmt, named, as_json=as_json)
    # Read a page at a time, each written as it comes (a fleet's timeline read whole held
    # about 6 KB an event: rev42); a refusal comes with the first page, before any output.
    if fmt == "table" and output is None and not as_json:
        # Lines for a person need no DataFrame: the same read (``read_timeline``) as rows,
        # so the command answers at a prompt's pace without importing pandas.
        from projections import timeline_pages as rows

        found = rows(ledger, profile_id, account_id=account_id, since=since, until=until, last=last)
        return TimelineAnswer(found, one_profile=profile_id is not None)
    from reports import timeline_pages as frames

    pages = frames(
        profile_id, account=account_id, since=since, until=until, last=last, ledger=ledger
    )
    return PagedAnswer("timeline", pages, fmt, output=output)


@cli.command()
@click.option("--account", "account_id", required=True, metavar="ACCOUNT")
@_since
@_until
@click.option(
    "--at", type=MOMENT, metavar="TIME",
    help="as the events stood at this moment (ISO 8601, UTC without an offset; a date alone: "
    "its first instant), not after the store's time: a lease live then reads as live, one "
    "past its deadline then as overdue",
)  # fmt: skip
@_format
@_output
@on_ledger
def usage(
    ledger: Ledger,
    account_id: str,
    since: datetime | None,
    until: datetime | None,
    at: datetime | None,
    fmt: str,
    named: str | None,
) -> PagedAnswer | UsageAnswer:
    """every lease on an account's profiles in a window, and how each ended (or, with --at,
    how each stood at a moment)"""
    as_json = options().as_json
    fmt, output = checked_format(fmt, named, as_json=as_json)
    if fmt == "table" and output is None and not as_json:
        # A table for a person needs no DataFrame: the same read (``read_usage``) as rows,
        # so the command answers at a prompt's pace without importing pandas.
        from projections import usage as rows

        return UsageAnswer(rows(ledger, account_id, since=since, until=until, at=at))
    from reports import usage as leases

    frame = leases(account_id, since=since, until=until, at=at, ledger=ledger)
    return PagedAnswer("usage", iter([frame]), fmt, output=output)


@cli.command()
@click.argument("profile_id", metavar="PROFILE")
@click.option(
    "--at", required=True, type=MOMENT, metavar="TIME",
    help="the moment (ISO 8601, UTC without an offset; a date alone: its first instant), "
    "not after the store's time",
)  # fmt: skip
@click.option(
    "--events", type=CountType("projections.EVENTS_AROUND"), default=5, show_default=True,
    metavar="N",
    help="events shown before and after the moment",
)  # fmt: skip
@on_ledger
def replay(ledger: Ledger, profile_id: str, at: datetime, events: int) -> ReplayAnswer:
    """a profile as it stood at a moment: state, holder or last user, deadline, reason, events
    around it, every time to the microsecond"""
    from reports import replay as replayed

    return ReplayAnswer(replayed(profile_id, at=at, events=events, ledger=ledger))


def _names() -> dict[str, object]:
    from projections import READ_MODELS

    return {"availability": "availability", **{name: name for name in READ_MODELS}}


# A SIGTERM that came while ``projections run`` or ``rebuild`` started up, before its handler
# (rev37: the process died of it, -15, no line, where cli.md says run's SIGTERM exits 0 and
# rebuild's stops it as Ctrl-C does, exit 130).
_TERMINATED: list[int] = []


@cli.group(cls=Group)
@click.pass_context
def projections(ctx: click.Context) -> None:
    """the read models fed from the event log: status, rebuild, run"""
    # As early as the command is known: run stops at once, rebuild is interrupted at once.
    if ctx.invoked_subcommand in ("run", "rebuild"):
        _TERMINATED.clear()
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: _TERMINATED.append(signum))
        # Put back when the command ends: run in a process that goes on (click's CliRunner, a
        # test session), the handler stayed, and a child forked later swallowed SIGTERM (the
        # fresh-clone CI at ab152c1).
        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))


@projections.command("status")
@on_ledger
def projections_status(ledger: Ledger) -> list[ReadModelStatus]:
    """each read model's position in the event log and how far it lags, and what is wrong
    with its rows (the availability table's too)"""
    from projections import READ_MODELS, availability_status, read_model_status

    return [availability_status(ledger), *read_model_status(ledger, READ_MODELS.values())]


@projections.command("rebuild")
@click.argument("name", type=LedgerChoice(_names), required=False)
@owners_only("projections rebuild")
@on_ledger
def projections_rebuild(
    ledger: Ledger, name: str | None
) -> list[Rebuilt | RebuildReport] | PartlyRebuilt:
    """rebuild a read model (all without NAME) beside live writers, then swap it in"""
    from custody._watch import terminate_as_interrupt
    from ledger import rebuild_availability
    from projections import READ_MODELS, rebuild

    done: list[Rebuilt | RebuildReport] = []
    todo = [str(name)] if name else list(_names())
    with terminate_as_interrupt():  # SIGTERM as Ctrl-C: a rebuild under way drops its copy
        if _TERMINATED:  # while it started up: as a Ctrl-C then, nothing begun
            raise KeyboardInterrupt
        for n, each in enumerate(todo):
            try:
                if each == "availability":  # written with the events: repaired in place
                    done.append(rebuild_availability(ledger))
                else:
                    done.append(rebuild(ledger, READ_MODELS[each]))
            except (Exception, KeyboardInterrupt) as error:
                # Nothing done yet, or the database refusing this login (which may repair
                # nothing: said as the owner's command, as before), speaks for the command.
                if not done or getattr(error, "by_database", False):
                    raise
                return PartlyRebuilt(done, each, error, todo[n + 1 :])
    return done


class PartlyRebuilt(Printed):
    """``projections rebuild`` (every read model) that failed on one after others were
    rebuilt: those are printed as they would have been, and the line names the one that failed,
    its exit code (the command's) and those not tried (rev37: the error line alone spoke for
    the whole command, "nothing was written", after availability had been repaired and leases
    rebuilt)."""

    def __init__(
        self,
        done: list[Rebuilt | RebuildReport],
        failed: str,
        error: BaseException,
        rest: list[str],
    ) -> None:
        from custody import INTERRUPTED
        from custody._render import unfinished
        from custody._text import one_line

        self.done, self.failed_at, self.rest = done, failed, rest
        self.error = type(error).__name__
        if isinstance(error, KeyboardInterrupt):  # named as every interruption is (exit-codes.md)
            self.code, said, self.error = INTERRUPTED, "interrupted", "Interrupted"
        else:
            self.code = int(getattr(error, "exit_code", 1))  # a LedgerError's; 1: a bug of ours
            said = str(error)
            if not hasattr(error, "exit_code"):
                said = f"internal error: {type(error).__name__}: {error}"
        # The store's "nothing was written" is true of this read model only.
        said = one_line(said.replace("nothing was written", f"nothing of {failed} was written"))
        names = ", ".join(getattr(d, "name", "availability") for d in done)
        self.message = (
            f"projections rebuild stopped at {failed} (exit {self.code}): {said}; "
            f"done before it (above): {names}"
        )
        if rest:
            self.message += f"; not tried: {', '.join(rest)}"
        if (left := unfinished(done)) is not None:
            self.message += f"; {left}"

    def write(self, out: TextIO, *, as_json: bool) -> None:
        from custody import _render as render
        from custody._text import printable

        if as_json:  # the error object every failure gives, with what was done before it
            body = {
                "error": self.error,
                "exit_code": self.code,
                "message": self.message,
                "read_model": self.failed_at,
                "rebuilt": render._plain(self.done),
                "not_tried": self.rest,
            }
            out.write(json.dumps(body, indent=2) + "\n")
            return
        for line in render.list_lines("projections rebuild", list(self.done)):
            out.write(printable(line) + "\n")

    def failed(self) -> tuple[int, str] | None:
        return self.code, self.message


@projections.command("run")
@click.option(
    "--interval", type=Seconds(0.05, 3600), default=1.0, show_default=True,
    metavar="SECONDS", help="the polling interval: the longest wait between catch-ups",
)  # fmt: skip
@click.option("--rounds", type=WholeRange(1), metavar="N", help="stop after N catch-ups")
@click.option(
    "--batch", type=WholeRange(1, 100_000), default=500, show_default=True, metavar="N",
    help="events applied per transaction",
)  # fmt: skip
@on_ledger
def projections_run(ledger: Ledger, **params: Any) -> dict[str, int]:
    """keep every read model current for other readers (until Ctrl-C or SIGTERM, or --rounds):
    PostgreSQL wakes it on each commit, and every store is polled every --interval"""
    from custody._text import one_line
    from custody._watch import stop_on_signals
    from projections import READ_MODELS, run

    def announce(line: str) -> None:  # each switch between push and polling, on stderr
        sys.stderr.write(f"custody: projections run: {one_line(line)}\n")
        sys.stderr.flush()

    with stop_on_signals() as stop:
        if _TERMINATED:
            stop.set()
        applied = run(ledger, READ_MODELS.values(), stop=stop, announce=announce, **params)
    return {"applied": applied}
