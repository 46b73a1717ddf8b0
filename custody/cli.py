"""``custody``: the command line. Thin: parse, call the ledger, render, map errors to exit codes.

Exit codes: 0 done, 2 bad input (usage errors included), 3 checkout denied, 4 lease lost, 5 the
checklist needs attention (``checklist --strict`` only), 6 store unavailable or busy, 130
interrupted, 1 anything else (such as a command the profile's state does
not allow). An error is one line on stderr, and under ``--json`` also a JSON object on stdout;
never a traceback.

Start-up: importing this module imports click and nothing else of weight. A command's module is
imported when it runs (``custody._commands.HOMES``), and the ledger, the read side and rich by
the commands that need them, so ``custody --help`` pays for no pydantic model, and only a
PostgreSQL store imports psycopg.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from custody import ignore_interrupts, interrupted
from custody._commands import WRITING_COMMANDS, cli
from custody._text import one_line, printable, typed
from custody._wiring import RESEND_KEY

if TYPE_CHECKING:
    from ledger import LedgerError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line (default: ``sys.argv``); return its exit code."""
    # An argument as UTF-8 text where its bytes are UTF-8 (``custody._text.typed``); a file's
    # name goes back to the OS as the bytes typed (``custody._wiring.FileName``).
    args = [typed(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    # A name the terminal's encoding cannot show is escaped, never a failed command.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    # What the read side warns of is a note while the command runs and while its answer is
    # written: a timeline is read a page at a time as it is printed (rev43: its note came out
    # as a Python warning, source line and all).
    with _notes():
        return _run(args)


def _run(args: list[str]) -> int:
    # Until the line parses, a --json anywhere asks for a JSON error, even if misplaced.
    json_anywhere = as_json = "--json" in args
    ctx: click.Context | None = None
    try:
        with cli.make_context("custody", list(args)) as ctx:
            as_json = ctx.params["as_json"]
            result = cli.invoke(ctx)
            command = ctx.invoked_subcommand or ""
            resend = ctx.meta.get(RESEND_KEY, "")
    except click.exceptions.Exit as done:  # --help
        return done.exit_code
    except click.UsageError as e:
        return _fail(_usage_error(e), json_anywhere)
    except KeyboardInterrupt:
        return interrupted(as_json, _perhaps_carried_out(ctx))
    except BrokenPipeError:  # the reader went away (custody --help | head, demo | head -1)
        _silence_stdout()
        return 0
    except Exception as e:
        if _interrupted(e):
            return interrupted(as_json, _perhaps_carried_out(ctx))
        return _fail_unexpected(_lost_answer(e, ctx), as_json)
    try:
        return _answer(command, result, as_json, resend)
    except KeyboardInterrupt:  # while its answer was written: the command was carried out
        if not _carried_out_first(command, result):
            return interrupted(as_json and not _part_printed(result))
        ignore_interrupts()
        _carried_out(command, "interrupted", resend, result)
        return _outcome(result)  # a rebuild that left rows as they were still exits 1


def _lost_answer(error: Exception, ctx: click.Context | None) -> Exception:
    """A writing command whose session ended under it (``StoreUnavailable.lost``) may have
    committed: its line says so and names the id that tells (rev32: a checkout whose backend
    was terminated at its COMMIT was exit 6 'server closed the connection', and the lease had
    been granted)."""
    perhaps = _perhaps_carried_out(ctx, "the session ended")
    if not getattr(error, "lost", False) or not perhaps:
        return error
    from ledger import StoreUnavailable

    return StoreUnavailable(f"{error}; {perhaps}", lost=True)


def _perhaps_carried_out(ctx: click.Context | None, before: str = "it was") -> str:
    """What a writing command cut short after it was given its id may have done: its write
    may have committed before the Ctrl-C landed (rev25: 'interrupted', exit 130, and the lease
    granted, which the user's next checkout was then denied for), or before ``before``. Its id
    tells."""
    command = ctx.invoked_subcommand if ctx is not None else None
    resend = ctx.meta.get(RESEND_KEY, "") if ctx is not None else ""
    if command not in WRITING_COMMANDS or not resend:
        return ""
    return (
        f"{command} may have been carried out before {before}: the same command with {resend} "
        "answers as it did if so (recording nothing again), or carries it out if not"
    )


@contextlib.contextmanager
def _notes() -> Any:
    """While a command runs, what the read side warns of (``ledger.feed.ReadModelBehind``: an
    answer that leaves out events this login may not fold; ``StrayRegistrations``: one that
    leaves out registrations outside their profile's stream) is one ``custody: note:`` line on
    stderr, once however many reads warn it (rev42: ``who`` and ``why`` under a worker's login
    read the timeline twice and said its note twice); any other warning is shown as Python
    shows it."""
    import warnings

    shown = warnings.showwarning
    said: set[str] = set()

    def note(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
        if category.__name__ not in ("ReadModelBehind", "StrayRegistrations"):
            shown(message, category, *args, **kwargs)
            return
        line = f"custody: note: {one_line(str(message))}\n"
        if line in said:
            return
        said.add(line)
        with contextlib.suppress(OSError):
            sys.stderr.write(line)

    with warnings.catch_warnings():
        warnings.filterwarnings("always", message=r"the \w+ read model has \d+ event")
        warnings.filterwarnings("always", message=r"\d+ registration\(s\) in a stream not")
        warnings.showwarning = note
        yield


def _interrupted(error: BaseException) -> bool:
    """A Ctrl-C that a library wrapped in its own error (pydantic does, while it builds a
    model's schema at first use)."""
    cause = error.__cause__ or error.__context__
    return isinstance(cause, KeyboardInterrupt) or "KeyboardInterrupt" in str(error)


def _answer(command: str, result: Any, as_json: bool, resend: str) -> int:
    """Write the result of a command that ran. The exit code says what happened to the
    command: if only its output failed, a command that was carried out still exits 0, and
    stderr says so and how to get the result again."""
    from custody import _render as render

    if result is None:  # the command wrote its own output (sweep --watch)
        return 0
    try:
        if sys.stdout is None:
            raise OSError("standard output is closed")
        render.emit(command, result, as_json=as_json, out=sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        if not _carried_out_first(command, result):
            return 0  # the reader went away (``custody status | head``): not an error of ours
        _carried_out(command, "the reader of its output went away", resend, result)
    except (OSError, ValueError) as e:
        _silence_stdout()
        if not _carried_out_first(command, result):
            sys.stderr.write(f"custody: could not write the output: {one_line(str(e))}\n")
            return 1
        _carried_out(command, one_line(str(e)), resend, result)
    except Exception as e:  # the file an export writes refused it (a full disk: bad input)
        return _fail_unexpected(e, as_json and not _part_printed(result))
    return _outcome(result)


def _carried_out_first(command: str, result: Any) -> bool:
    """Whether the command did its work before its output (``WRITING_COMMANDS``), so that
    its output failing leaves it carried out: not one whose output is all it did."""
    return command in WRITING_COMMANDS and not getattr(result, "only_in_its_output", False)


def _part_printed(result: Any) -> bool:
    """Whether part of the answer is on standard output already (a timeline's pages before
    the one that failed): under ``--json`` the error is not written after it as an object of
    its own, which no reader could parse (rev43); stderr and the exit code say it."""
    from custody._printed import Streamed

    return isinstance(result, Streamed) and result.began


def _outcome(result: Any) -> int:
    """The exit code a command's result says, whether or not its output was written: what
    it failed to do or left unfinished, on stderr."""
    from custody import _render as render
    from custody._printed import Printed

    failed = result.failed() if isinstance(result, Printed) else None
    if failed is not None:
        with contextlib.suppress(OSError):
            sys.stderr.write(f"custody: {one_line(failed[1])}\n")
        return failed[0]
    unfinished = render.unfinished(result)
    if unfinished is None:
        return 0
    with contextlib.suppress(OSError):
        sys.stderr.write(f"custody: {one_line(unfinished)}\n")
    return 1


# Where a command that writes files says it wrote them (keygen, digest --out, report --html):
# its result is there, and running it again would refuse (a key is never overwritten) or make
# another (a digest following the first): rev48.
_FILES_WRITTEN = ("key", "public_key", "digest", "written")


def _carried_out(command: str, problem: str, resend: str, result: object = None) -> None:
    again = f"resend it with {resend} to get the result" if resend else "run it again to see it"
    files = [
        printable(str(result[k]))
        for k in _FILES_WRITTEN
        if isinstance(result, dict) and k in result
    ]
    if files:
        again = f"its result is in {' and '.join(files)}"
    if isinstance(result, dict) and "token" in result:  # access token: shown once, never again
        token_id = result.get("token_id")
        again = (
            f"token {token_id} is live and nobody saw it: revoke it with custody access revoke "
            f"--token-id {token_id}, then issue another"
        )
    with contextlib.suppress(OSError):
        sys.stderr.write(
            f"custody: {command} was carried out, but its output could not be written "
            f"({problem}); {again}\n"
        )


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


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

    described = one_line(f"{type(error).__name__}: {error}")
    with contextlib.suppress(OSError):
        sys.stderr.write(f"custody: internal error: {described}\n")
    if as_json:  # a program reading stdout gets an object here too, as the docs promise
        import json

        body = {"error": "InternalError", "exit_code": 1, "message": f"internal error: {described}"}
        _json_error(lambda out: out.write(json.dumps(body, indent=2) + "\n"))
    return 1


def _fail(error: LedgerError, as_json: bool) -> int:
    from custody import _render as render

    with contextlib.suppress(OSError):
        sys.stderr.write(f"custody: {render.error_line(error)}\n")
    if as_json:
        _json_error(lambda out: render.emit_error(error, out=out))
    return error.exit_code


def _json_error(write: Callable[[TextIO], object]) -> None:
    """An error's JSON object on stdout (``--json``); stdout closed or full, silenced."""
    try:
        write(sys.stdout)
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        _silence_stdout()
