"""The fleet commands: the summary (fleet), its health, the article's checklist, and the HTML
report for operators. Each prints what the ``reports`` function of the same name returns;
pandas (and, for the report, matplotlib) is imported only by these commands.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from custody._commands import cli
from custody._fleet_output import ChecklistAnswer, FleetAnswer, HealthAnswer
from custody._text import typed
from custody._whole import file_to_write, kept_apart, refuse_read_only, refused_as
from custody._wiring import CountType, FileName, on_ledger

if TYPE_CHECKING:
    from ledger import Ledger

_account = click.option(
    "--account", "account", metavar="ACCOUNT", help="only this account's profiles"
)


@cli.command()
@_account
@on_ledger
def fleet(ledger: Ledger, account: str | None) -> FleetAnswer:
    """counts by state and account, the profiles stuck the longest, time in review"""
    from reports import fleet as summary

    return FleetAnswer(summary(account=account, ledger=ledger))


@cli.command()
@_account
@click.option(
    "--last", type=CountType("reports.LEASES_JUDGED"), default=5, show_default=True, metavar="N",
    help="a profile keeps failing when --failing-at of its last N ended leases ended unclean",
)  # fmt: skip
@click.option(
    "--failing-at", type=CountType("reports.FAILING_AT"), default=2, show_default=True,
    metavar="N",
    help="unclean endings that make a profile one that keeps failing",
)  # fmt: skip
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
    show_default=True, help="table for a person; csv (one table column) or json for a program",
)  # fmt: skip
@on_ledger
def health(
    ledger: Ledger, account: str | None, last: int, failing_at: int, fmt: str
) -> HealthAnswer:
    """unclean endings by profile, account, proxy and worker; durations; heartbeat gaps"""
    from reports import health as assessed, reachable

    reachable(last, failing_at, named=("--failing-at", "--last"))
    found = assessed(account=account, last=last, failing_at=failing_at, ledger=ledger)
    return HealthAnswer(found, fmt)


@cli.command()
@_account
@click.option("--strict", is_flag=True, help="exit 5 when any answer needs attention")
@on_ledger
def checklist(ledger: Ledger, account: str | None, strict: bool) -> ChecklistAnswer:
    """the article's eleven questions answered for the fleet, with the evidence"""
    from reports import checklist as answered

    return ChecklistAnswer(answered(account=account, ledger=ledger), strict)


@cli.command()
@click.option("--html", "html_path", type=FileName(), required=True, metavar="FILE",
              help="the page to write (replaced if it exists)")  # fmt: skip
@_account
@on_ledger
def report(ledger: Ledger, html_path: str, account: str | None) -> dict[str, Any]:
    """one self-contained HTML page for operators: fleet, blocked, chart, health, checklist"""
    target = _target(html_path)
    from reports import report_html

    page = report_html(account=account, ledger=ledger)
    _write_whole(target, page.html)
    return {
        "written": typed(str(target)),
        "bytes": len(page.html.encode()),
        "profiles": page.profiles,
        "leases": page.leases,
        "leases_drawn": page.leases_drawn,
        "attention": page.attention,
    }


def _target(html_path: str) -> Path:
    """Where the page goes; ``InvalidInput`` naming --html if it cannot go there."""
    from ledger import InvalidInput

    instead = "name the page's file"
    target = file_to_write(html_path, field="--html", named="--html", instead=instead)
    if target.is_dir():
        raise InvalidInput("--html", f"{html_path!r} is a directory, not a file to write")
    parent = target.parent
    if not parent.is_dir():
        raise InvalidInput("--html", f"directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise InvalidInput("--html", f"directory {str(parent)!r} is not writable")
    if (held := kept_apart(target)) is not None:
        msg = f"{html_path[:200]!r} holds {held}; the report never replaces it: name another file"
        raise InvalidInput("--html", msg)
    refuse_read_only("--html", target)
    return target


def _write_whole(target: Path, html: str) -> None:
    """A failure leaves the old page (or none), never half of a new one."""
    with refused_as("--html", target) as out:  # a full disk: nothing half written is left
        out.write(html.encode("utf-8"))
