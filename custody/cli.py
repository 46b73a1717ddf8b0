"""``custody``: the command line. Thin: parse, call the ledger, render, map errors to exit codes.

Exit codes: 0 done, 2 bad input (usage errors included), 3 checkout denied, 4 lease lost, 6 store
unavailable or busy, 130 interrupted, 1 anything else (such as a command the profile's state does
not allow). An error is one line on stderr, and under ``--json`` also a JSON object on stdout;
never a traceback.

Start-up: importing this module imports click and nothing else of weight. The ledger, the read
side and rich are imported by the commands that need them, so ``custody --help`` pays for no
pydantic model, and only a PostgreSQL store imports psycopg.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from custody.commands import cli

if TYPE_CHECKING:
    from ledger import LedgerError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line (default: ``sys.argv``); return its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # Until the line parses, a --json anywhere asks for a JSON error, even if misplaced.
    json_anywhere = as_json = "--json" in args
    try:
        with cli.make_context("custody", list(args)) as ctx:
            as_json = ctx.params["as_json"]
            result = cli.invoke(ctx)
            command = ctx.invoked_subcommand or ""
        _emit(command, result, as_json)
    except click.exceptions.Exit as done:  # --help
        return done.exit_code
    except click.UsageError as e:
        return _fail(_usage_error(e), json_anywhere)
    except BrokenPipeError:
        # The reader went away (``custody status | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("custody: interrupted\n")
        return 130
    except Exception as e:
        return _fail_unexpected(e, as_json)
    return 0


def _emit(command: str, result: Any, as_json: bool) -> None:
    from custody import render

    render.emit(command, result, as_json=as_json, out=sys.stdout)
    sys.stdout.flush()


def _usage_error(error: click.UsageError) -> LedgerError:
    from ledger import InvalidInput

    message = error.format_message().rstrip(".")
    message = message[:1].lower() + message[1:]
    where = error.ctx.command_path if error.ctx is not None else "custody"
    return InvalidInput("arguments", f"{message} (see {where} --help)")


def _fail_unexpected(error: Exception, as_json: bool) -> int:
    # Only a ledger that was imported can have raised a LedgerError; anything else is a bug of
    # ours, still one line for the person and never a traceback.
    ledger = sys.modules.get("ledger")
    if ledger is not None and isinstance(error, ledger.LedgerError):
        return _fail(error, as_json)
    described = " ".join(f"{type(error).__name__}: {error}".split())
    sys.stderr.write(f"custody: internal error: {described}\n")
    return 1


def _fail(error: LedgerError, as_json: bool) -> int:
    from custody import render

    sys.stderr.write(f"custody: {render.one_line(render.error_line(error))}\n")
    if as_json:
        render.emit_error(error, out=sys.stdout)
    return error.exit_code


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
