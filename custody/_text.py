"""Text for a person: one printable line, a time. Nothing here knows a result's shape, so every
module that writes text (rendering, tables, reports) can use it without importing the others."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TextIO


def printable(text: str, *, repr_quoted: bool = False) -> str:
    """``text`` with every character a terminal would act on or show nothing for (controls,
    escapes, line separators, invisible format characters, variation selectors, fillers)
    written as its escape, and a typed backslash that begins what reads as one doubled: the
    ledger's one rule (``ledger.rules.shown``), as the HTML report and the console have it;
    ``repr_quoted`` for an error line, whose values ``repr`` quoted already. Printable ASCII
    without a backslash, which holds none of them, never imports the ledger: a usage error is
    said before it loads, and its first import is made apart
    (``custody._wiring.first_import_of_the_ledger``)."""
    if text.isascii() and text.isprintable() and (repr_quoted or "\\" not in text):
        return text
    from ledger.rules import shown

    return shown(text, repr_quoted=repr_quoted)


def typed(arg: str) -> str:
    """A command-line argument as the text typed, where its bytes are UTF-8: in a locale that
    is not (LC_ALL=C with PYTHONUTF8=0), Python hands each byte past ASCII over as a
    surrogate, and a name typed as "acc_é" was refused as bytes that were not UTF-8. Other
    bytes stay as they came (the ledger refuses them, naming the field). A file's name goes
    back to the OS as typed (``ledger.rules.os_name``)."""
    try:
        return arg.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return arg


# An error line quotes at most this much of anything: a 1 MB URL is not echoed whole. Its
# end is kept too: what was wrong is often said after the value quoted (click's "'999...' is
# not a valid integer").
MAX_LINE, KEPT_END = 400, 120
# A denial's hint, the steps that unblock a profile, is custody's own text: kept whole up to
# this much (two commands naming a profile id of 128 characters), cut apart from what the
# denial quotes (rev28: a long reason cut the hint mid-instruction).
MAX_HINT = 800


def one_line(message: str, limit: int = MAX_LINE) -> str:
    """Errors are one short, printable line, whatever a driver or a user's input put in them:
    a driver's lines are joined by a space (their indentation dropped), a long one keeps its
    beginning and its end, and says how much was left out between. Spaces inside a line are
    kept: a value quoted back (``got '   '``) shows as it was given."""
    joined = " ".join(filter(None, (part.strip() for part in message.splitlines())))
    line = printable(joined, repr_quoted=True)
    if len(line) <= limit:
        return line
    head, tail = line[: limit - KEPT_END], line[-KEPT_END:]
    return f"{head} ...({len(line) - len(head) - len(tail)} characters left out)... {tail}"


def moment(value: datetime | None) -> str:
    """A time to the second (ISO 8601, with its offset), or ``-`` for none."""
    return value.isoformat(timespec="seconds") if value else "-"


def instant(value: datetime | None) -> str:
    """A time exactly, to the microsecond (ISO 8601, with its offset), or ``-`` for none."""
    return value.isoformat(timespec="microseconds") if value else "-"


def for_a_person(out: TextIO) -> bool:
    """Whether ``out`` is a terminal: its ``isatty`` alone. What is written follows this and
    nothing else: CSV escaped or exact, a table fitted to a width or one line per row, the
    status summary unasked, the fleet demo's live table. ``FORCE_COLOR`` and
    ``TTY_COMPATIBLE``, which CI runners set, may colour a pipe's table (``colour_asked``),
    never make a pipe or a file a terminal (rev29: with either set, CSV redirected to a file
    was escaped, not exact, and a piped status was an 80-column table wrapping long ids)."""
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def colour_asked() -> bool:
    """Whether the environment asks for colour where ``isatty`` says no, as rich reads it:
    ``TTY_COMPATIBLE=1``, or ``FORCE_COLOR`` set to anything but empty (``TTY_COMPATIBLE=0``
    first says no)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    return os.environ.get("FORCE_COLOR", "") != ""
