"""The commands that say where profiles stand: status (with the fleet summary for a person),
why a profile is blocked, who used it last, and the availability table's repair."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

import click

from custody._commands import cli, profile_argument
from custody._printed import Printed
from custody._wiring import LedgerChoice, on_ledger, options, owners_only, states

if TYPE_CHECKING:
    from ledger import Forbidden, Ledger, RebuildReport, RowDifference
    from projections import Explanation, StatusRow, Usage


@cli.command()
@click.option("--account", "account_id", metavar="ACCOUNT", help="only this account's profiles")
@click.option(
    "--state", type=LedgerChoice(states),
    help="only profiles in this state (stale: also a lease past its deadline, not yet swept)",
)  # fmt: skip
@click.option(
    "--summary/--no-summary", default=None,
    help="the fleet summary below the table (default: on a terminal only; with --json, an "
    "object {profiles, fleet} instead of the list)",
)  # fmt: skip
@on_ledger
def status(ledger: Ledger, summary: bool | None, **params: Any) -> list[StatusRow] | Printed:
    """availability of every profile (and, for a person, the fleet summary below)"""
    from custody._text import for_a_person
    from projections import status as status_rows

    rows = status_rows(ledger, **params)
    if summary is None:  # a program reading a pipe or --json gets the table or list alone
        summary = not options().as_json and for_a_person(sys.stdout)
    if not summary:
        return rows
    from custody._fleet_output import StatusAnswer
    from reports import fleet

    return StatusAnswer(rows, fleet(account=params["account_id"], ledger=ledger))


@cli.command()
@profile_argument
@on_ledger
def why(ledger: Ledger, profile_id: str) -> Explanation:
    """why a profile is blocked (with its browser, when its directory is on this host)"""
    from projections import explain_view
    from workers import inspect_view

    view, problem = ledger.checked_view(profile_id)  # the one load of the profile
    seen = inspect_view(ledger, view)
    shown = seen.browser is not None and seen.browser.alive and not seen.orphan
    not_ours = seen.shared if shown else None
    return explain_view(ledger, view, problem, browser=seen.browser, not_ours=not_ours)


@cli.command()
@profile_argument
@on_ledger
def who(ledger: Ledger, profile_id: str) -> Usage:
    """who holds or last held a profile"""
    from projections import who as usage

    return usage(ledger, profile_id)


@cli.command()
@owners_only("rebuild")  # rev29: a role's login was refused in the trigger's words alone
@on_ledger
def rebuild(ledger: Ledger) -> RebuildReport | NotRepaired:
    """report how availability differs from the events, then repair it"""
    from ledger import Forbidden, availability_differences, rebuild_availability

    found = availability_differences(ledger)
    try:
        return rebuild_availability(ledger, found)
    except Forbidden as refused:
        if refused.by_database:  # PostgreSQL's refusal: the owner's command (``owners_only``)
            raise
        return NotRepaired(found, refused)


class NotRepaired(Printed):
    """``custody rebuild`` on a store this login may write nothing to (a SQLite file this user
    may only read): the differences it found, printed as a rebuild prints them, then refused
    (exit 7) in one line (rev39: it failed as the store unavailable, exit 6, having reported
    none of them). Under ``--json``, the error object with the ``differences``."""

    def __init__(self, differences: list[RowDifference], refused: Forbidden) -> None:
        self.differences, self.error, self.code = differences, type(refused).__name__, 7
        count = len(differences)
        self.message = (
            f"{refused}; none of the {count} difference(s) above was repaired"
            if differences
            else f"{refused}; availability agrees with the events: nothing to repair"
        )

    def write(self, out: TextIO, *, as_json: bool) -> None:
        from custody._render import _plain, difference_lines
        from custody._text import printable

        if as_json:  # the error object every failure gives, with what the rebuild found
            body = {"error": self.error, "exit_code": self.code, "message": self.message}
            body["differences"] = _plain(self.differences)
            out.write(json.dumps(body, indent=2) + "\n")
            return
        for line in difference_lines(self.differences):
            out.write(printable(line) + "\n")

    def failed(self) -> tuple[int, str] | None:
        return self.code, self.message
