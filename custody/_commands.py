"""The commands: each names its options after the ledger's keyword arguments (``--worker`` is
``worker_id``) and hands them over as parsed; the result goes back to ``custody.cli`` to render.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

import click

from custody._text import typed
from custody._wiring import (
    WHOLE,
    CommandsGroup,
    FileName,
    LedgerChoice,
    Options,
    on_ledger,
    options,
    outcomes,
    owners_only,
    policies,
)

if TYPE_CHECKING:
    from ledger import (
        Lease,
        Ledger,
        ProfileRecord,
        ReleaseResult,
    )

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
        # Whose work is done before their output is written: a key, a digest, a report file,
        # a token issued or revoked (``access``), the demo's store.
        "keygen",
        "digest",
        "report",
        "access",
        "demo",
    }
)

profile_argument = click.argument("profile_id", metavar="PROFILE")
_lease = click.argument("lease_id", metavar="LEASE")
_token = click.option(
    "--token", "fencing_token", type=WHOLE, required=True, metavar="N", help="the lease's token"
)


def _given_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An id given with ``--command-id``, or None when none was (one is then made). An empty
    one is bad input, as the Python API and the service refuse it: it was taken for none and
    replaced by a new id each time, so a resend was applied again (rev37: a second checkout
    denied by its own lease, two heartbeats, a second release refused as lost)."""
    if value == "":
        raise click.BadParameter("must not be empty")
    return value


command_id_option = click.option(
    "--command-id",
    metavar="ID",
    callback=_given_id,
    help="resending the same id applies the command once",
)


# Where each command defined outside this module lives, in the order --help lists them: a
# lease's life, then what reads it. A module is imported when one of its commands runs.
HOMES = {
    **dict.fromkeys(
        ("force-release", "quarantine", "disable", "enable", "review", "sweep", "inspect"),
        "custody._operating",
    ),
    **dict.fromkeys(("status", "why", "who", "rebuild"), "custody._profiles"),
    "demo": "custody._demo_command",
    **dict.fromkeys(("fleet", "health", "checklist", "report"), "custody._fleet_commands"),
    **dict.fromkeys(("timeline", "usage", "replay", "projections"), "custody._reading"),
    **dict.fromkeys(("keygen", "digest", "verify", "access"), "custody._audit_commands"),
    "serve": "custody._serve",
}


@click.group(
    cls=CommandsGroup,
    homes=HOMES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option("--store", metavar="URL", help="sqlite:///path.db or postgresql://user@host:port/db")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def cli(ctx: click.Context, store: str | None, as_json: bool) -> None:
    """Leases for browser automation profiles."""
    ctx.obj = Options(store=store, as_json=as_json)


@cli.command()
@owners_only("init")
def init() -> dict[str, Any]:
    """create the store's schema, or migrate an older one (idempotent)"""
    from ledger import Ledger
    from projections import READ_MODELS, install, upgrade

    with Ledger.init(options().store) as ledger:
        # A read model whose columns changed since its table was made, or whose checkpoint
        # was lost beside its table, is rebuilt, beside any writers, and swapped in.
        rebuilt = upgrade(ledger, READ_MODELS.values())
        for model in READ_MODELS.values():  # once, here, not raced for by readers
            install(ledger, model)
        done: dict[str, Any] = {"initialised": ledger.settings.describe()}
        if rebuilt:
            done["rebuilt"] = ", ".join(f"{r.name} ({r.rows} rows)" for r in rebuilt)
        if ledger.store.notes:  # what a migration found (directories shared before schema 5)
            done["notes"] = ledger.store.notes
        return done


@cli.command()
@profile_argument
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
    help=(
        "where a release that proves nothing sends the profile "
        "(docs/explanation/states-and-endings.md)"
    ),
)
@click.option(
    "--max-lease",
    "max_lease_seconds",
    type=WHOLE,
    metavar="SECONDS",
    help="hard limit of every lease: no renewal past it",
)
@on_ledger
def register(ledger: Ledger, **params: Any) -> ProfileRecord:
    """register a profile with its account context"""
    from ledger import RegisterProfile

    return ledger.handle(RegisterProfile(**params))


@cli.command()
@profile_argument
@click.option("--worker", "worker_id", required=True, metavar="WORKER")
@click.option("--run", "run_id", required=True, metavar="RUN")
@click.option("--task", "task_type", required=True, metavar="TASK")
@click.option(
    "--ttl",
    "ttl_seconds",
    type=WHOLE,
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
    type=WHOLE,
    metavar="SECONDS",
    help="hard limit of this lease: no renewal past it",
)
@command_id_option
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
@command_id_option
@on_ledger
def heartbeat(ledger: Ledger, **params: Any) -> Lease:
    """renew a lease and record the step and URL"""
    from ledger import Heartbeat

    return ledger.handle(Heartbeat(**params))


@cli.command()
@_lease
@_token
@click.option("--ttl", "ttl_seconds", type=WHOLE, required=True, metavar="SECONDS")
@command_id_option
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
@click.option(
    "--screenshot", type=FileName(), metavar="FILE",
    help="the final screenshot; its sha256 is recorded",
)  # fmt: skip
@click.option("--prompt-seen", is_flag=True, help="a login or verification prompt appeared")
@click.option("--observed-proxy", metavar="PROXY")
@click.option("--observed-account", metavar="ACCOUNT")
@click.option("--evidence-problem", metavar="TEXT", help="why the evidence could not be collected")
@command_id_option
@on_ledger
def release(ledger: Ledger, screenshot: str | None, **params: Any) -> ReleaseResult:
    """end a lease and report how the run ended"""
    from ledger import InvalidInput, Release

    if screenshot is None:
        return ledger.handle(Release(**params))
    if not os.path.isfile(screenshot):
        raise InvalidInput("screenshot", f"no file at {typed(screenshot)!r}")
    # The file is hashed where it is: the ledger records the digest, never reads the disk.
    try:
        with open(screenshot, "rb") as shot:
            digest = hashlib.file_digest(shot, "sha256").hexdigest()
    except OSError as e:  # a file this user may not read: bad input, as a missing one is
        msg = f"cannot read {typed(screenshot)!r}: {e.strerror}"
        raise InvalidInput("screenshot", msg) from None
    return ledger.handle(
        Release(screenshot=recorded_path(screenshot), screenshot_sha256=digest, **params)
    )


def recorded_path(screenshot: str) -> str:
    """Where the release records a screenshot given as ``screenshot``: its absolute path when
    that fits the ledger's limit, else its path from the current directory (as the SDK records
    one from its evidence directory). Raises ``InvalidInput`` naming what was typed when even
    that is too long: a deep evidence directory refused any screenshot, and quoted a path
    nobody typed (rev28)."""
    from ledger import InvalidInput
    from ledger.rules import MAX_NAME

    # Recorded where it is from anywhere: a path relative to this shell's directory named no
    # file for the review console or anyone reading the log later (rev26). Recorded as text,
    # the name as typed (``FileName`` gave the OS its bytes).
    where = typed(os.path.abspath(screenshot))
    if len(where) <= MAX_NAME:
        return where
    here = typed(os.path.relpath(screenshot))
    if len(here) <= MAX_NAME:
        return here
    raise InvalidInput(
        "screenshot",
        f"{typed(screenshot)!r} is {len(where)} characters as an absolute path and {len(here)} from"
        f" this directory; the ledger records at most {MAX_NAME}: run the command"
        " nearer the file, or move it",
    )
