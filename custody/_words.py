"""The words of a command line as custody reads them, before click parses them: what click
takes without a question and argparse refused.

Checked for the custody group, each subgroup and each command, by their ``parse_args``
(``custody._wiring``), before any parameter is converted or any command runs, so a refusal
writes nothing: one ``click.UsageError`` naming the option, which ``custody.cli`` makes bad
input (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import click


def check_words(command: click.Command, ctx: click.Context, args: Sequence[str]) -> None:
    """Refuse a word taken as an option's value that is itself an option's name, of
    ``command`` or of a group it runs under: ``release ... --reason --prompt-seen`` recorded the
    reason "--prompt-seen" and no prompt, which sent the profile back to the pool (rev40). The
    value given with ``=`` (``--reason=--prompt-seen``) is that text, as typed.

    Refuse an option that takes one value given twice (click kept the last, silently: ``status
    --state review_required --state quarantined`` listed the quarantined alone, ``release
    --outcome failure ... --outcome success`` released cleanly); one that takes several
    (``multiple``) is given once for each. A flag given twice says the same thing twice, and
    is taken once.

    The words are walked as click's parser walks them: ``--`` ends the options, an unknown
    option ends the walk (click refuses it), and a group's walk ends at its command's name."""
    if ctx.resilient_parsing:
        return
    options = _options(command, ctx)
    known = _names(ctx) | options.keys()
    given: set[click.Option] = set()
    at = 0
    while at < len(args):
        word = args[at]
        at += 1
        if word == "--":
            return
        if not word.startswith("-") or word == "-":
            if not ctx.allow_interspersed_args:
                return
            continue
        name, equals, _ = word.partition("=") if word.startswith("--") else (word, "", "")
        option = options.get(name)
        if option is None:
            return
        if option.is_flag or option.count:
            continue
        if option in given and not option.multiple:
            raise click.BadOptionUsage(name, f"{name} is given more than once: give it once", ctx)
        given.add(option)
        if equals or at == len(args):
            continue
        value = args[at]
        at += 1
        if _option_name(value) in known:
            raise click.BadOptionUsage(
                name, f"{name} needs a value (got the option {value})", ctx=ctx
            )


def _options(command: click.Command, ctx: click.Context) -> Mapping[str, click.Option]:
    """Each name of ``command``'s options (its help option's too), and the option."""
    return {
        name: param
        for param in command.get_params(ctx)
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }


def _names(ctx: click.Context) -> set[str]:
    """The names of the options of the groups ``ctx``'s command runs under."""
    names: set[str] = set()
    parent = ctx.parent
    while parent is not None:
        names.update(_options(parent.command, parent))
        parent = parent.parent
    return names


def _option_name(word: str) -> str:
    """The option ``word`` would name on its own: ``--reason=x`` names ``--reason``."""
    return word.partition("=")[0] if word.startswith("--") else word
