"""``custody``: the command line. Thin: parse, call the ledger, render, map errors to exit codes.

Exit codes: 0 done, 2 bad input, 3 checkout denied, 4 lease lost, 6 store unavailable, 1
anything else (such as a command the profile's state does not allow). An error is one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from custody import render
from ledger import (
    RELEASE_POLICIES,
    InvalidInput,
    Ledger,
    LedgerError,
    Outcome,
    ProfileState,
    ReviewDecision,
    rebuild_availability,
)
from projections import explain, status, timeline, who

Handler = Callable[[Ledger, argparse.Namespace], Any]

# Commands with nothing to do on a store that does not exist: on a missing SQLite file they
# say so rather than create one (a mistyped --store must not make an empty ledger).
NEED_EXISTING_STORE = frozenset({"status", "why", "who", "timeline", "rebuild", "sweep"})


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad usage is bad input, reported like any other (``main`` renders it)."""
        raise InvalidInput("arguments", f"{message} (see custody --help)")


def _init(ledger: Ledger, a: argparse.Namespace) -> Any:
    Ledger.init(a.store).close()
    return {"initialised": ledger.settings.describe()}


def _register(ledger: Ledger, a: argparse.Namespace) -> Any:
    return ledger.register_profile(
        a.profile,
        account_id=a.account,
        proxy_id=a.proxy,
        region=a.region,
        user_data_dir=a.user_data_dir,
        release_policy=a.policy,
    )


def _checkout(ledger: Ledger, a: argparse.Namespace) -> Any:
    return ledger.checkout(
        a.profile,
        worker_id=a.worker,
        run_id=a.run,
        task_type=a.task,
        ttl_seconds=a.ttl,
        account_id=a.account,
        proxy_id=a.proxy,
        command_id=a.command_id,
    )


def _heartbeat(ledger: Ledger, a: argparse.Namespace) -> Any:
    return ledger.heartbeat(
        a.lease,
        fencing_token=a.token,
        step=a.step,
        url=a.url,
        safe=a.safe,
        mutating=a.mutating,
        command_id=a.command_id,
    )


def _extend(ledger: Ledger, a: argparse.Namespace) -> Any:
    return ledger.extend(a.lease, fencing_token=a.token, ttl_seconds=a.ttl, command_id=a.command_id)


def _release(ledger: Ledger, a: argparse.Namespace) -> Any:
    if a.screenshot is not None and not Path(a.screenshot).is_file():
        raise InvalidInput("screenshot", f"no file at {a.screenshot!r}")
    return ledger.release(
        a.lease,
        fencing_token=a.token,
        outcome=a.outcome,
        reason=a.reason,
        final_url=a.final_url,
        screenshot=a.screenshot,
        prompt_seen=a.prompt_seen,
        observed_proxy=a.observed_proxy,
        observed_account=a.observed_account,
        command_id=a.command_id,
    )


def _operator(method: str) -> Handler:
    def run(ledger: Ledger, a: argparse.Namespace) -> Any:
        command = getattr(ledger, method)
        return command(a.profile, actor=a.actor, reason=a.reason, command_id=a.command_id)

    return run


def _review(ledger: Ledger, a: argparse.Namespace) -> Any:
    return ledger.review(
        a.profile, reviewer=a.reviewer, decision=a.decision, note=a.note, command_id=a.command_id
    )


def _status(ledger: Ledger, a: argparse.Namespace) -> Any:
    state = ProfileState(a.state) if a.state else None
    return status(ledger, account_id=a.account, state=state)


def _rebuild(ledger: Ledger, a: argparse.Namespace) -> Any:
    return rebuild_availability(ledger)


def _demo(ledger: Ledger, a: argparse.Namespace) -> Any:
    from custody.demo import play

    # Under --json the narration goes to stderr and stdout carries the story's events.
    store = play(a.db, out=sys.stderr if a.json else sys.stdout)
    if not a.json:
        return None
    with Ledger.open(store) as played:
        return {"store": store, "timeline": timeline(played, "profile_shop_17")}


def _parser() -> _Parser:
    p = _Parser(prog="custody", description="Leases for browser automation profiles.")
    p.add_argument("--store", help="sqlite:///path.db or postgresql://user@host:port/db")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def cmd(name: str, handler: Handler, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.set_defaults(handler=handler)
        return sp

    def with_command_id(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--command-id", help="resending the same id applies the command once")

    cmd("init", _init, "create the store's schema (idempotent)")
    sp = cmd("register", _register, "register a profile with its account context")
    sp.add_argument("profile")
    sp.add_argument("--account", required=True)
    sp.add_argument("--proxy", required=True)
    sp.add_argument("--region")
    sp.add_argument("--user-data-dir")
    sp.add_argument(
        "--policy",
        default="manual_review_on_unknown_state",
        choices=RELEASE_POLICIES,
        help="; ".join(f"{name}: {p.description}" for name, p in RELEASE_POLICIES.items()),
    )

    sp = cmd("checkout", _checkout, "lease a profile before launching a browser")
    sp.add_argument("profile")
    sp.add_argument("--worker", required=True)
    sp.add_argument("--run", required=True)
    sp.add_argument("--task", required=True)
    sp.add_argument("--ttl", type=int, default=300, help="renewal deadline in seconds")
    sp.add_argument("--account")
    sp.add_argument("--proxy")
    with_command_id(sp)

    sp = cmd("heartbeat", _heartbeat, "renew a lease and record the step and URL")
    sp.add_argument("lease")
    sp.add_argument("--token", type=int, required=True)
    sp.add_argument("--step")
    sp.add_argument("--url")
    sp.add_argument("--safe", action="store_true", help="the account is in a known state")
    sp.add_argument("--mutating", action="store_true", help="this step changes the account")
    with_command_id(sp)

    sp = cmd("extend", _extend, "give a live lease a new TTL")
    sp.add_argument("lease")
    sp.add_argument("--token", type=int, required=True)
    sp.add_argument("--ttl", type=int, required=True)
    with_command_id(sp)

    sp = cmd("release", _release, "end a lease and report how the run ended")
    sp.add_argument("lease")
    sp.add_argument("--token", type=int, required=True)
    sp.add_argument("--outcome", required=True, choices=[o.value for o in Outcome])
    sp.add_argument("--reason")
    sp.add_argument("--final-url")
    sp.add_argument("--screenshot")
    sp.add_argument("--prompt-seen", action="store_true")
    sp.add_argument("--observed-proxy")
    sp.add_argument("--observed-account")
    with_command_id(sp)

    for name, help_ in (
        ("force-release", "end a live lease by hand (the profile goes to review)"),
        ("quarantine", "quarantine a profile until a reviewer clears it"),
        ("disable", "take a profile out of rotation"),
        ("enable", "bring a disabled profile back"),
    ):
        sp = cmd(name, _operator(name.replace("-", "_")), help_)
        sp.add_argument("profile")
        sp.add_argument("--actor", required=True)
        sp.add_argument("--reason", required=True)
        with_command_id(sp)

    sp = cmd("review", _review, "a reviewer's decision on a blocked profile")
    sp.add_argument("profile")
    sp.add_argument("--reviewer", required=True)
    sp.add_argument("--decision", required=True, choices=[d.value for d in ReviewDecision])
    sp.add_argument("--note", required=True)
    with_command_id(sp)

    cmd("sweep", lambda ledger, a: ledger.sweep().settled, "mark overdue leases stale and decide")
    sp = cmd("status", _status, "availability of every profile")
    sp.add_argument("--account")
    sp.add_argument("--state", choices=[s.value for s in ProfileState])
    for name, handler, help_ in (
        ("why", lambda ledger, a: explain(ledger, a.profile), "why a profile is blocked"),
        ("who", lambda ledger, a: who(ledger, a.profile), "who holds or last held a profile"),
        ("timeline", lambda ledger, a: timeline(ledger, a.profile), "a profile's events"),
    ):
        cmd(name, handler, help_).add_argument("profile")
    cmd("rebuild", _rebuild, "recompute availability from the events and compare")
    sp = cmd("demo", _demo, "play the article's failure story on a fresh SQLite file")
    sp.add_argument("--db", help="SQLite file to write (default: a new temporary file)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except InvalidInput as e:
        return _fail(e, "--json" in argv)
    try:
        ledger = Ledger.open(args.store, create=args.command not in NEED_EXISTING_STORE)
    except LedgerError as e:
        return _fail(e, args.json)
    try:
        result = args.handler(ledger, args)
        render.emit(args.command, result, as_json=args.json, out=sys.stdout)
        sys.stdout.flush()
    except LedgerError as e:
        return _fail(e, args.json)
    except BrokenPipeError:
        # The reader went away (``custody status | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("custody: interrupted\n")
        return 130
    except Exception as e:  # a bug of ours: still one line for the person, never a traceback
        sys.stderr.write(
            f"custody: internal error: {render.one_line(f'{type(e).__name__}: {e}')}\n"
        )
        return 1
    finally:
        ledger.close()
    return 0


def _fail(error: LedgerError, as_json: bool) -> int:
    sys.stderr.write(f"custody: {render.one_line(render.error_line(error))}\n")
    if as_json:
        render.emit_error(error, out=sys.stdout)
    return error.exit_code


def run() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":
    run()
