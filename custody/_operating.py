"""The operators' and reviewers' commands: force-release, quarantine, disable, enable, review,
sweep (once, or watching), and inspect (a profile's browser on this host)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from custody._commands import cli, command_id_option, profile_argument
from custody._wiring import LedgerChoice, Seconds, WholeRange, decisions, on_ledger, options

if TYPE_CHECKING:
    from ledger import Availability, Ledger, ReleaseResult, SweepReport
    from workers import Inspection


def _operator_command(name: str, help_: str) -> None:
    @cli.command(name, help=help_)
    @profile_argument
    @click.option("--actor", required=True, metavar="NAME")
    @click.option("--reason", required=True, metavar="TEXT")
    @command_id_option
    @on_ledger
    def operate(ledger: Ledger, **params: Any) -> ReleaseResult | Availability:
        import ledger as commands

        command = getattr(commands, _OPERATOR_COMMANDS[name])
        result: ReleaseResult | Availability = ledger.handle(command(**params))
        return result


# Each operator's command line, and the ledger's command it builds.
_OPERATOR_COMMANDS = {
    "force-release": "ForceRelease",
    "quarantine": "Quarantine",
    "disable": "Disable",
    "enable": "Enable",
}
for _name, _help in (
    ("force-release", "end a live lease by hand (the profile goes to review)"),
    ("quarantine", "quarantine a profile until a reviewer clears it"),
    ("disable", "take a profile out of rotation"),
    ("enable", "bring a disabled profile back"),
):
    _operator_command(_name, _help)


@cli.command()
@profile_argument
@click.option("--reviewer", required=True, metavar="NAME")
@click.option("--decision", type=LedgerChoice(decisions), required=True)
@click.option("--note", required=True, metavar="TEXT")
@click.option(
    "--expected-version",
    type=WholeRange(min=1, max=2**63 - 1),
    metavar="N",
    help="the profile's version you judged (status --json, or why's last #N): refused if it "
    "has moved on since",
)
@command_id_option
@on_ledger
def review(ledger: Ledger, **params: Any) -> Availability:
    """a reviewer's decision on a blocked profile (no return while its browser still runs)"""
    from ledger import Review
    from workers import inspect_here

    # The ledger judges the browser on this host as the reviewer's command observes it.
    directory = ledger.view(params["profile_id"]).record.user_data_dir
    return ledger.handle(Review(browser=inspect_here(directory), **params))


@cli.command()
@click.option("--watch", is_flag=True, help="sweep until SIGINT or SIGTERM, one line a transition")
@click.option(
    "--interval",
    type=Seconds(0.1, 3600),
    metavar="SECONDS",
    help="with --watch: the pause between passes  [default: 5]",
)
@command_id_option
@on_ledger
def sweep(
    ledger: Ledger, watch: bool, interval: float | None, command_id: str
) -> SweepReport | None:
    """mark overdue leases stale and decide (a profile that fails is reported, the rest swept)"""
    if not watch:
        if interval is not None:
            raise click.UsageError("--interval is for --watch")
        from ledger import Sweep

        return ledger.handle(Sweep(command_id=command_id))
    given = click.get_current_context().get_parameter_source("command_id")
    if given is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--command-id is for one sweep, not --watch")
    from custody._watch import watch_sweeps

    watch_sweeps(ledger, interval=5.0 if interval is None else interval, as_json=options().as_json)
    return None


@cli.command()
@profile_argument
@click.option(
    "--stop-orphan",
    is_flag=True,
    help="stop its browser if no lease holds the profile (SIGHUP, then SIGKILL of its group); "
    "recorded as browser_stopped",
)
@click.option("--actor", metavar="NAME", help="who stops it (needed with --stop-orphan)")
@click.option(
    "--grace",
    type=Seconds(0.1, 60),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="how long SIGHUP has before SIGKILL",
)
@on_ledger
def inspect(
    ledger: Ledger, profile_id: str, stop_orphan: bool, actor: str | None, grace: float
) -> Inspection:
    """is a browser still running on the profile's directory (on this host)"""
    from workers import inspect_profile, stop_orphan as stop

    if not stop_orphan:
        return inspect_profile(ledger, profile_id)
    if actor is None:
        raise click.UsageError("--stop-orphan needs --actor NAME")
    return stop(ledger, profile_id, actor=actor, grace_seconds=grace)
