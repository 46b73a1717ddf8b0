"""Text the SDK derives for the ledger (a reason from an exception, a page's URL, what went
wrong with the evidence): always storable, short where it is a reason, and never an error of
its own.

No store keeps a NUL character or a lone surrogate (what ``os.listdir`` makes of a file name
that is not UTF-8), and the ledger refuses both at its door: they are escaped here, as
``\\x00`` and ``\\udcff``, so the text stays readable and the command is never refused for it.
"""

from __future__ import annotations

from ledger.rules import (
    storable as storable,  # the ledger's rule, for the SDK's modules
    without_passwords,
)

MAX_DERIVED = 200  # a reason derived from an exception: its type and first line, at most this
_CUT = "..."


def capped(text: str, limit: int = MAX_DERIVED) -> str:
    """``text`` cut to ``limit`` characters, the cut marked."""
    return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT


def first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0].strip() if stripped else ""


def reason_of(error: BaseException, limit: int = MAX_DERIVED) -> str:
    """``Type: first line of its message``, escaped and capped, a URL's password left out
    (``without_passwords``); just ``Type`` when the message is empty or cannot be read (an
    exception whose ``__str__`` raises)."""
    name = type(error).__name__
    try:
        said = without_passwords(first_line(str(error)))
    except Exception:  # the user's exception must not be replaced by ours
        said = ""
    return capped(storable(f"{name}: {said}" if said else name), limit)
