"""``custody demo``: the article's failure story, or a small fleet of worker processes."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from custody._commands import cli
from custody._wiring import WHOLE, FileName, WholeRange, options

if TYPE_CHECKING:
    from typing import TextIO


@cli.command()
@click.option(
    "--db", type=FileName(), metavar="FILE",
    help="SQLite file to write (default: a new temporary file)",
)  # fmt: skip
@click.option(
    "--workers", type=WholeRange(1, 16), metavar="N",
    help="run a fleet of N worker processes instead of the story",
)  # fmt: skip
@click.option(
    "--tasks", type=WholeRange(1, 20), default=3, show_default=True, metavar="M",
    help="tasks per worker (with --workers)",
)  # fmt: skip
@click.option("--browser", is_flag=True, help="the workers drive Chromium (with --workers)")
@click.option("--seed", type=WHOLE, default=17, show_default=True, help="where faults fall")
@click.option(
    "--ttl", type=WholeRange(1, 600), default=3, show_default=True, metavar="SECONDS",
    help="the fleet's lease TTL (with --workers)",
)  # fmt: skip
@click.pass_context
def demo(ctx: click.Context, /, db: str | None, workers: int | None, **fleet: Any) -> Any:
    """play the article's failure story, or run a small fleet (--workers), on a fresh SQLite
    file"""
    as_json = options().as_json
    if db is not None:  # '' too: it played in a temporary file (rev34)
        from custody._whole import file_to_write, refuse_no_directory

        instead = "leave --db out, and the demo writes a new temporary file"
        # Bad input before a line of the story (rev39: "a fresh ledger in ...", then the
        # store unavailable, exit 6, for a directory that is not there).
        refuse_no_directory("db", file_to_write(db, field="db", named="--db", instead=instead))
    if workers is None:
        for name in ("tasks", "browser", "seed", "ttl"):
            if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
                raise click.UsageError(f"--{name} needs --workers N")
    from custody._watch import terminate_as_interrupt

    # SIGTERM as Ctrl-C: the demo removes the store it made, says so, exits 130 (rev39:
    # ``timeout`` left half a store, no line, and the rerun was refused as existing).
    with terminate_as_interrupt():
        if workers is None:
            return _story(db, as_json)
        return _fleet(db, workers, as_json, **fleet)


def _story(db: str | None, as_json: bool) -> dict[str, Any] | None:
    from custody._demo import PROFILE, play
    from ledger import Ledger
    from projections import timeline as rows

    # Under --json the narration goes to stderr and stdout carries the story's events.
    store = play(db, out=_told_to(as_json))
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
    out = _told_to(as_json)
    executable = BrowserSettings().executable_path
    result = run_fleet(plan, db=db, browser=browser, out=out, executable=executable)
    if as_json:
        return summary_json(result)
    write_summary(result, out)
    return None


def _told_to(as_json: bool) -> TextIO:
    """Where the demo is told: stderr under --json, else stdout; with that closed (``>&-``),
    the null device, said once on stderr (the demo died of an internal error on its first
    line, the story half played)."""
    out = sys.stderr if as_json else sys.stdout
    if out is not None:
        return out
    sys.stderr.write("custody: standard output is closed: the demo runs untold\n")
    return open(os.devnull, "w")
