"""``python -m custody`` and the ``custody`` command.

The CLI is imported inside ``run``, so a Ctrl-C while it loads is one line and exit 130, like
one that arrives later, never a traceback.

Once the command has answered, the process exits without the garbage collector's passes over
every object its imports made (``gc.freeze``): at exit CPython collects, then clears every
module and collects again, about 25 ms of a read command's 200 on the machine of
docs/performance.md, to free memory the process gives back whole a moment later. Frozen, the
objects still alive are neither collected nor finalised, as after ``os._exit``; what Python
does at exit otherwise still happens (threads joined, ``atexit`` handlers, stdout and stderr
flushed). Nothing custody opens waits for a finaliser: the ledger's store is closed by the
command (``with Ledger.open(...)``), files by ``with``; the tests check that every command
leaves its SQLite store closed (no ``-wal`` file behind).
"""

from __future__ import annotations

import gc
import sys
from typing import NoReturn


def run() -> NoReturn:
    from custody import interrupted, keep_interrupts

    keep_interrupts()  # first: every import below runs importlib's callbacks

    try:
        from custody.cli import main

        code = main()
    except KeyboardInterrupt:
        code = interrupted()
    gc.freeze()  # the exit collects nothing: see the module's docstring
    sys.exit(code)


if __name__ == "__main__":
    run()
