"""How the command line is wired: click's classes as custody wants them, and the bridge from a
command's parameters to the ledger.

Nothing here imports the ledger at import time: choices the ledger defines are read from it
when a value is checked or a command's help is shown, and the ledger is opened by the command
that runs. Whichever of those comes first imports the ledger with the garbage collector paused
(``first_import_of_the_ledger``).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import click

from custody._printed import Streamed
from custody._words import check_words

# Commands with nothing to do on a store that does not exist: on a missing SQLite file they
# say so rather than create one (a mistyped --store must not make an empty ledger).
NEED_EXISTING_STORE = frozenset(
    {
        *("status", "why", "who", "timeline", "usage", "replay", "rebuild", "run", "sweep"),
        *("inspect", "fleet", "health", "checklist", "report", "digest", "verify"),
        *("grant", "list"),  # custody access
    }
)
# Where a command that was given no --command-id keeps the one made for it, so that a failure to
# write its output can say how to get the result again.
RESEND_KEY = "custody.resend"


@contextlib.contextmanager
def first_import_of_the_ledger() -> Iterator[None]:
    """Run what imports the ledger for the first time in this process with the garbage
    collector paused, then leave every object alive at its end (what it made, and the little
    the command line made before it) out of every later collection (``gc.freeze``).

    That import (pydantic, the domain's models and events, the store's library) is most of a
    command's start-up: tens of thousands of objects that live as long as the process, and
    next to no garbage. Collections while they are made, and every later one, would go over
    them to free nothing: about 10 ms of a read command. Once the ledger is imported (as in a
    process that already uses it) this does nothing, and the collector runs as before.

    Before that import, pydantic's plugins are made cheap to look for where there are none
    (``custody._pydantic_plugins``): another 11 to 14 ms of every command."""
    if "ledger" in sys.modules or not gc.isenabled():
        yield
        return
    from custody import _pydantic_plugins

    _pydantic_plugins.install()  # before the ledger's first model is built
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
class Options(NamedTuple):
    """The global options, given before the command."""

    store: str | None
    as_json: bool


def _write_usage(command: click.Command, ctx: click.Context, fmt: click.HelpFormatter) -> None:
    pieces = " ".join(command.collect_usage_pieces(ctx))
    fmt.write_usage(ctx.command_path, pieces, prefix="usage: ")


def _parsed(
    command: click.Command,
    ctx: click.Context,
    args: list[str],
    parse: Callable[[click.Context, list[str]], list[str]],
) -> list[str]:
    """``command``'s words parsed by click (``parse``) once custody has checked them
    (``check_words``). What click's parser refuses on its own (an option's missing value, a
    value given to a flag) names no command, and is given ``ctx``: the line pointed at
    ``custody --help`` (rev40: ``checkout ... --ttl``), it now names the command's own help."""
    check_words(command, ctx, args)
    try:
        return parse(ctx, args)
    except click.UsageError as refused:
        if refused.ctx is None:
            refused.ctx = ctx
        raise


class Command(click.Command):
    """A subcommand whose usage line reads ``usage: custody COMMAND ...``, and whose words
    are checked before click parses them (``custody._words``)."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _write_usage(self, ctx, formatter)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return _parsed(self, ctx, args, super().parse_args)


class Group(click.Group):
    """The ``custody`` group: ``usage:`` in lower case (as scripts have read it since argparse),
    commands listed in the order they are defined, which is a lease's life; its words checked as a
    command's are."""

    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Without its command, a group says so in one line, as ``custody`` alone does: click's
        # default (its help as the error) was one squashed line (rev40: ``custody projections``
        # was "invalid arguments: usage: ... (41 characters left out)").
        kwargs.setdefault("no_args_is_help", False)
        super().__init__(*args, **kwargs)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        _write_usage(self, ctx, formatter)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return _parsed(self, ctx, args, super().parse_args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


class CommandsGroup(Group):
    """A group whose commands are defined in several modules, ``homes`` naming the module of
    each command the group's own module does not define, in the order they are listed. A
    module is imported when one of its commands runs, or when every command is listed
    (``--help``, an unknown name), so a command pays for its own module's imports alone."""

    def __init__(self, *args: Any, homes: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.homes = dict(homes)

    def _import_all(self) -> None:
        for module in dict.fromkeys(self.homes.values()):
            importlib.import_module(module)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._import_all()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            home = self.homes.get(cmd_name)
            if home is not None:
                importlib.import_module(home)
            else:  # unknown here: click's error then suggests from every command
                self._import_all()
        return super().get_command(ctx, cmd_name)


class LedgerChoice(click.ParamType[Any]):
    """One of a set of names the ledger defines, read from it only when needed (to check a
    value or to show a command's help), so that ``custody --help`` never imports the ledger.
    The value given is the ledger's own (an enum member, or the name itself)."""

    name = "choice"

    def __init__(self, load: Callable[[], Mapping[str, object]]) -> None:
        self._load = load

    @functools.cached_property
    def choices(self) -> Mapping[str, object]:
        with first_import_of_the_ledger():
            return self._load()

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return f"[{'|'.join(self.choices)}]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value not in self.choices:
            self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))}", param, ctx)
        return self.choices[value]


class MomentType(click.ParamType[datetime]):
    """A time in ISO 8601 (``2026-11-27T09:45:00Z``; without an offset, UTC), read by the
    reports' own rule (``reports._frames.moment``): a date alone means the whole day, from its
    first instant, or with ``until`` through its last; a time with no UTC instant is bad
    input. The reports are imported only when a value is read."""

    name = "time"

    def __init__(self, *, until: bool = False) -> None:
        self.until = until

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        with first_import_of_the_ledger():
            from ledger import InvalidInput
            from reports import moment

        try:
            read = moment("time", value, until=self.until)
        except InvalidInput as refused:
            self.fail(refused.problem, param, ctx)
        assert read is not None
        return read


MOMENT = MomentType()
UNTIL = MomentType(until=True)


def _plainly(value: str, *, fraction: bool = False) -> bool:
    """Whether ``value`` is a number written plainly (``ledger.rules.plain_number``, the rule
    the service's query numbers keep too): imported when a value typed is checked."""
    with first_import_of_the_ledger():
        from ledger.rules import plain_number

    return plain_number(value, fraction=fraction)


def _plain(
    kind: click.ParamType[Any], value: Any, param: click.Parameter | None, ctx: click.Context | None
) -> Any:
    """``value`` if it is a whole number spelled plainly (or one already, as a default is),
    else bad input. Python's ``int()``, which click's integers use, also reads ``0_1`` as 1,
    ``1_0`` as 10 (the refusal then quoting a number never typed), other scripts' digits and
    spaces around them (rev37: ``--token 1_0``, Arabic-Indic ``--ttl`` were accepted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or not _plainly(value):
        kind.fail(f"{value!r} is not a valid integer.", param, ctx)
    return value


class Whole(click.types.IntParamType):
    """A whole number written in ASCII digits (``_plain``); click's ``int`` otherwise."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(_plain(self, value, param, ctx), param, ctx)


class WholeRange(click.IntRange):
    """``click.IntRange`` of whole numbers written in ASCII digits (``_plain``)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(_plain(self, value, param, ctx), param, ctx)


WHOLE = Whole()


class FileName(click.ParamType[Any]):
    """A file's name as the OS takes it, the bytes typed (``ledger.rules.os_name``): every
    argument else is the text typed (``custody._text.typed``). Then checked as ``path``
    checks it, if given."""

    name = "file"

    def __init__(self, path: click.Path | None = None) -> None:
        self.path = path

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        name = value
        if isinstance(value, str) and not value.isascii():  # else the ledger need not load
            from ledger.rules import os_name

            name = os_name(value)
        return name if self.path is None else self.path.convert(name, param, ctx)


class CountType(click.ParamType[int]):
    """A count an option takes, bounded by the Python API's own rule (``bound``: a
    ``projections.Bound`` named ``module.NAME``, ``projections.LAST_EVENTS``,
    ``reports.FAILING_AT``), so the command line and the API refuse the same numbers. Its
    module is imported only when a value is read."""

    name = "integer"

    def __init__(self, bound: str) -> None:
        self.bound = bound

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = WHOLE.convert(value, param, ctx)
        module, _, name = self.bound.rpartition(".")
        with first_import_of_the_ledger():
            from ledger import InvalidInput

            home = importlib.import_module(module)
        try:
            checked: int = getattr(home, name).checked(number)
        except InvalidInput as refused:
            self.fail(refused.problem, param, ctx)
        return checked


class Seconds(click.FloatRange):
    """A number of seconds in ``[low, high]``, written plainly (``_plainly``; a negative the
    range then refuses): Python's
    ``float()``, which click's numbers use, also reads ``1_0`` as 10, ``+1``, `` 2``, other
    scripts' digits (rev40: ``--interval \u0661`` was a second), ``1e1``, ``inf`` and ``nan``:
    each is bad input, as whole numbers refuse them (``_plain``). A ``nan`` handed over as a
    number (a default) is refused as out of range, where ``click.FloatRange`` lets it through
    (every comparison with it is false): a sweep ``--interval nan`` ran a pass without a pause,
    a ``--grace nan`` never sent SIGKILL."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not _plainly(value, fraction=True):
            self.fail(f"{value!r} is not a valid number of seconds.", param, ctx)
        try:
            seconds = super().convert(value, param, ctx)
        except click.BadParameter:  # out of range, told as typed, not as the float read
            if not isinstance(value, str):  # (rev42: 400 ones refused as "inf")
                raise
            self.fail(f"{value} is not in the range {self._describe_range()}.", param, ctx)
        if seconds != seconds:  # nan: the only value unequal to itself
            self.fail(f"{seconds} is not in the range {self._describe_range()}.", param, ctx)
        return seconds


def outcomes() -> dict[str, object]:
    from ledger import Outcome

    return {o.value: o for o in Outcome}


def decisions() -> dict[str, object]:
    from ledger import ReviewDecision

    return {d.value: d for d in ReviewDecision}


def states() -> dict[str, object]:
    from ledger import ProfileState

    return {s.value: s for s in ProfileState}


def policies() -> dict[str, object]:
    from ledger import RELEASE_POLICIES

    return {name: name for name in RELEASE_POLICIES}


def options() -> Options:
    """The global options of the command line being run."""
    found = click.get_current_context().find_object(Options)
    if found is None:
        raise RuntimeError("a custody command runs under the custody group")
    return found


def owners_only(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make a command the store's owner alone may run say so when PostgreSQL refuses its
    login: "permission denied for schema public" (or "to create role") pointed at granting
    the login CREATE or CREATEROLE, which ``custody access grant`` then takes back (rev26)."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def run(**params: Any) -> Any:
            try:
                return command(**params)
            except Exception as e:
                ledger = sys.modules.get("ledger")
                # The database's refusal of this login, not the ledger's role check.
                if ledger is None or not getattr(e, "by_database", False):
                    raise
                # The owner itself may lack the attribute making logins needs (rev29: the
                # set-up page made it without, and this line seemed to forbid giving it).
                logins = (
                    "; making logins needs the owner to have CREATEROLE (a superuser runs "
                    "ALTER ROLE <owner> CREATEROLE)"
                    if "create role" in str(e)
                    else ""
                )
                msg = (
                    f"{e}: custody {name} is the store owner's command: run it as the login that "
                    "owns the store's tables (for a new store, one that may create them), never "
                    f"by granting a custody role's login CREATE or CREATEROLE{logins}"
                )
                raise ledger.Forbidden(msg, by_database=True) from None

        return run

    return decorate


def on_ledger(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``handler(ledger, **params)`` a command's callback: it gets the ledger named by
    ``--store`` (a read-only command never creates one) and returns the result to render."""

    @functools.wraps(handler)
    def callback(**params: Any) -> Any:
        with first_import_of_the_ledger():
            from ledger import Ledger

        ctx = click.get_current_context()
        if "command_id" in params:
            # Every carried-out command can be resent for its result: give it an id if the
            # caller did not (a resend with the same id appends nothing).
            # None alone is "none given": an empty id is refused where it is read.
            if params["command_id"] is None:
                params["command_id"] = uuid.uuid4().hex
            ctx.meta[RESEND_KEY] = f"--command-id {params['command_id']}"
        create = ctx.info_name not in NEED_EXISTING_STORE
        with contextlib.ExitStack() as stack:
            ledger = stack.enter_context(Ledger.open(options().store, create=create))
            result = handler(ledger, **params)
            if isinstance(result, Streamed):  # read while it is written: closed after that
                result.hold(stack.pop_all())
            return result

    return callback
