"""The commands: each names its options after the ledger's keyword arguments (``--worker`` is
``worker_id``) and hands them over as parsed; the result goes back to ``custody.cli`` to render.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from custody._wiring import (
    Group,
    LedgerChoice,
    Options,
    decisions,
    on_ledger,
    options,
    outcomes,
    policies,
    states,
)

if TYPE_CHECKING:
    from custody._printed import Printed
    from ledger import (
        Availability,
        Lease,
        Ledger,
        ProfileRecord,
        RebuildReport,
        ReleaseResult,
        SweepReport,
    )
    from projections import Explanation, StatusRow, Usage
    from workers import Inspection

# Commands that change the store: if their output cannot be written they were still carried out.
WRITING_COMMANDS = frozenset(
    {
        "init",
        "register",
        "checkout",
        "heartbeat",
        "extend",
        "release",
        "force-release",
        "quarantine",
        "disable",
        "enable",
        "review",
        "sweep",
        "rebuild",
        "inspect",
    }
)

_profile = click.argument("profile_id", metavar="PROFILE")
_lease = click.argument("lease_id", metavar="LEASE")
_token = click.option(
    "--token", "fencing_token", type=int, required=True, metavar="N", help="the lease's token"
)
_command_id = click.option(
    "--command-id", metavar="ID", help="resending the same id applies the command once"
)


@click.group(
    cls=Group,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--store", metavar="URL", help="sqlite:///path.db or postgresql://user@host:port/db")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def cli(ctx: click.Context, store: str | None, as_json: bool) -> None:
    """Leases for browser automation profiles."""
    ctx.obj = Options(store=store, as_json=as_json)


@cli.command()
def init() -> dict[str, Any]:
    """create the store's schema, or migrate an older one (idempotent)"""
    from ledger import Ledger
    from projections import READ_MODELS, install, upgrade

    with Ledger.init(options().store) as ledger:
        for model in READ_MODELS.values():  # once, here, not raced for by readers
            install(ledger, model)
        # A read model whose columns changed since its table was made is rebuilt, beside any
        # writers, and swapped in.
        rebuilt = upgrade(ledger, READ_MODELS.values())
        done: dict[str, Any] = {"initialised": ledger.settings.describe()}
        if rebuilt:
            done["rebuilt"] = ", ".join(f"{r.name} ({r.rows} rows)" for r in rebuilt)
        if ledger.store.notes:  # what a migration found (directories shared before schema 5)
            done["notes"] = ledger.store.notes
        return done


@cli.command()
@_profile
@click.option("--account", "account_id", required=True, metavar="ACCOUNT")
@click.option("--proxy", "proxy_id", required=True, metavar="PROXY")
@click.option("--region", metavar="REGION")
@click.option("--user-data-dir", metavar="DIR")
@click.option(
    "--policy",
    "release_policy",
    type=LedgerChoice(policies),
    default="manual_review_on_unknown_state",
    show_default=True,
    help="where a release that proves nothing sends the profile (README: Release rules)",
)
@click.option(
    "--max-lease",
    "max_lease_seconds",
    type=int,
    metavar="SECONDS",
    help="hard limit of every lease: no renewal past it",
)
@on_ledger
def register(ledger: Ledger, **params: Any) -> ProfileRecord:
    """register a profile with its account context"""
    from ledger import RegisterProfile

    return ledger.handle(RegisterProfile(**params))


@cli.command()
@_profile
@click.option("--worker", "worker_id", required=True, metavar="WORKER")
@click.option("--run", "run_id", required=True, metavar="RUN")
@click.option("--task", "task_type", required=True, metavar="TASK")
@click.option(
    "--ttl",
    "ttl_seconds",
    type=int,
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="renewal deadline",
)
@click.option("--account", "account_id", metavar="ACCOUNT", help="deny unless it is this account's")
@click.option("--proxy", "proxy_id", metavar="PROXY", help="deny unless it uses this proxy")
@click.option(
    "--max-duration",
    "max_duration_seconds",
    type=int,
    metavar="SECONDS",
    help="hard limit of this lease: no renewal past it",
)
@_command_id
@on_ledger
def checkout(ledger: Ledger, **params: Any) -> Lease:
    """lease a profile before launching a browser"""
    from ledger import Checkout

    return ledger.handle(Checkout(**params))


@cli.command()
@_lease
@_token
@click.option("--step", metavar="STEP")
@click.option("--url", metavar="URL")
@click.option("--safe", is_flag=True, help="the account is in a known state")
@click.option("--mutating", is_flag=True, help="this step changes the account")
@_command_id
@on_ledger
def heartbeat(ledger: Ledger, **params: Any) -> Lease:
    """renew a lease and record the step and URL"""
    from ledger import Heartbeat

    return ledger.handle(Heartbeat(**params))


@cli.command()
@_lease
@_token
@click.option("--ttl", "ttl_seconds", type=int, required=True, metavar="SECONDS")
@_command_id
@on_ledger
def extend(ledger: Ledger, **params: Any) -> Lease:
    """give a live lease a new TTL, counted from now"""
    from ledger import Extend

    return ledger.handle(Extend(**params))


@cli.command()
@_lease
@_token
@click.option("--outcome", type=LedgerChoice(outcomes), required=True)
@click.option("--reason", metavar="TEXT", help="why it ended so")
@click.option("--final-url", metavar="URL")
@click.option("--screenshot", metavar="FILE", help="the final screenshot; its sha256 is recorded")
@click.option("--prompt-seen", is_flag=True, help="a login or verification prompt appeared")
@click.option("--observed-proxy", metavar="PROXY")
@click.option("--observed-account", metavar="ACCOUNT")
@click.option("--evidence-problem", metavar="TEXT", help="why the evidence could not be collected")
@_command_id
@on_ledger
def release(ledger: Ledger, screenshot: str | None, **params: Any) -> ReleaseResult:
    """end a lease and report how the run ended"""
    from ledger import InvalidInput, Release

    if screenshot is None:
        return ledger.handle(Release(**params))
    if not os.path.isfile(screenshot):
        raise InvalidInput("screenshot", f"no file at {screenshot!r}")
    # The file is hashed where it is: the ledger records the digest, never reads the disk.
    with open(screenshot, "rb") as shot:
        digest = hashlib.file_digest(shot, "sha256").hexdigest()
    return ledger.handle(Release(screenshot=screenshot, screenshot_sha256=digest, **params))


def _operator_command(name: str, help_: str) -> None:
    @cli.command(name, help=help_)
    @_profile
    @click.option("--actor", required=True, metavar="NAME")
    @click.option("--reason", required=True, metavar="TEXT")
    @_command_id
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
@_profile
@click.option("--reviewer", required=True, metavar="NAME")
@click.option("--decision", type=LedgerChoice(decisions), required=True)
@click.option("--note", required=True, metavar="TEXT")
@_command_id
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
    type=click.FloatRange(0.1, 3600),
    metavar="SECONDS",
    help="with --watch: the pause between passes  [default: 5]",
)
@on_ledger
def sweep(ledger: Ledger, watch: bool, interval: float | None) -> SweepReport | None:
    """mark overdue leases stale and decide (a profile that fails is reported, the rest swept)"""
    if not watch:
        if interval is not None:
            raise click.UsageError("--interval is for --watch")
        from ledger import Sweep

        return ledger.handle(Sweep())
    from custody._watch import watch_sweeps

    watch_sweeps(ledger, interval=5.0 if interval is None else interval, as_json=options().as_json)
    return None


@cli.command()
@_profile
@click.option(
    "--stop-orphan",
    is_flag=True,
    help="stop its browser if no lease holds the profile (SIGHUP, then SIGKILL of its group); "
    "recorded as browser_stopped",
)
@click.option("--actor", metavar="NAME", help="who stops it (needed with --stop-orphan)")
@click.option(
    "--grace",
    type=click.FloatRange(0.1, 60),
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


@cli.command()
@click.option("--account", "account_id", metavar="ACCOUNT", help="only this account's profiles")
@click.option("--state", type=LedgerChoice(states), help="only profiles in this state")
@click.option(
    "--summary/--no-summary", default=None,
    help="the fleet summary below the table (default: on a terminal only; with --json, an "
    "object {profiles, fleet} instead of the list)",
)  # fmt: skip
@on_ledger
def status(ledger: Ledger, summary: bool | None, **params: Any) -> list[StatusRow] | Printed:
    """availability of every profile (and, for a person, the fleet summary below)"""
    from custody._fleet_output import StatusAnswer, for_a_person
    from projections import status as status_rows

    rows = status_rows(ledger, **params)
    if summary is None:  # a program reading a pipe or --json gets the table or list alone
        summary = not options().as_json and for_a_person(sys.stdout)
    if not summary:
        return rows
    from reports import fleet

    return StatusAnswer(rows, fleet(account=params["account_id"], ledger=ledger))


@cli.command()
@_profile
@on_ledger
def why(ledger: Ledger, profile_id: str) -> Explanation:
    """why a profile is blocked (with its browser, when its directory is on this host)"""
    from projections import explain
    from workers import inspect_profile

    seen = inspect_profile(ledger, profile_id)
    shown = seen.browser is not None and seen.browser.alive and not seen.orphan
    return explain(
        ledger, profile_id, browser=seen.browser, not_ours=seen.shared if shown else None
    )


@cli.command()
@_profile
@on_ledger
def who(ledger: Ledger, profile_id: str) -> Usage:
    """who holds or last held a profile"""
    from projections import who as usage

    return usage(ledger, profile_id)


@cli.command()
@on_ledger
def rebuild(ledger: Ledger) -> RebuildReport:
    """report how availability differs from the events, then repair it"""
    from ledger import rebuild_availability

    return rebuild_availability(ledger)


@cli.command()
@click.option("--db", metavar="FILE", help="SQLite file to write (default: a new temporary file)")
@click.option(
    "--workers", type=click.IntRange(1, 16), metavar="N",
    help="run a fleet of N worker processes instead of the story",
)  # fmt: skip
@click.option(
    "--tasks", type=click.IntRange(1, 20), default=3, show_default=True, metavar="M",
    help="tasks per worker (with --workers)",
)  # fmt: skip
@click.option("--browser", is_flag=True, help="the workers drive Chromium (with --workers)")
@click.option("--seed", type=int, default=17, show_default=True, help="where faults fall")
@click.option(
    "--ttl", type=click.IntRange(1, 600), default=3, show_default=True, metavar="SECONDS",
    help="the fleet's lease TTL (with --workers)",
)  # fmt: skip
@click.pass_context
def demo(ctx: click.Context, /, db: str | None, workers: int | None, **fleet: Any) -> Any:
    """play the article's failure story, or run a small fleet (--workers), on a fresh SQLite
    file"""
    as_json = options().as_json
    if workers is None:
        for name in ("tasks", "browser", "seed", "ttl"):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"--{name} needs --workers N")
        return _story(db, as_json)
    return _fleet(db, workers, as_json, **fleet)


def _story(db: str | None, as_json: bool) -> dict[str, Any] | None:
    from custody._demo import PROFILE, play
    from ledger import Ledger
    from projections import timeline as rows

    # Under --json the narration goes to stderr and stdout carries the story's events.
    store = play(db, out=sys.stderr if as_json else sys.stdout)
    if not as_json:
        return None
    with Ledger.open(store) as played:
        return {"store": store, "timeline": rows(played, PROFILE)}


def _fleet(
    db: str | None, workers: int, as_json: bool, *, tasks: int, browser: bool, seed: int, ttl: int
) -> dict[str, Any] | None:
    from custody._fleet.plan import make_plan
    from custody._fleet.summary import summary_json, write_summary
    from custody._fleet.supervisor import run_fleet
    from workers import BrowserSettings

    plan = make_plan(workers, tasks, seed=seed, ttl_seconds=ttl)
    out = sys.stderr if as_json else sys.stdout
    executable = BrowserSettings().executable_path
    result = run_fleet(plan, db=db, browser=browser, out=out, executable=executable)
    if as_json:
        return summary_json(result)
    write_summary(result, out)
    return None
