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
leaves its SQLite store closed (no ``-wal`` file behind). A command interrupted by Ctrl-C
leaves at once, once it has said so (``_leave_interrupted``).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys


def run() -> None:  # never returns: exits
    from custody import INTERRUPTED, ignore_interrupts, interrupted, keep_interrupts

    keep_interrupts()  # first: every import below runs importlib's callbacks
    _closed_streams_to_nowhere()

    try:
        from custody.cli import main

        code = main()
    except KeyboardInterrupt:  # before the command line could take it: while it loads
        code = interrupted("--json" in sys.argv[1:])
    while True:  # answered: a Ctrl-C now would only kill the process by SIGINT
        try:
            ignore_interrupts()
            break
        except KeyboardInterrupt:  # landed between the answer and the call: the same one
            continue
    if code == INTERRUPTED:
        _leave_interrupted(code)
    gc.freeze()  # the exit collects nothing: see the module's docstring
    sys.exit(code)


def _closed_streams_to_nowhere() -> None:
    """Standard error or input closed by the caller (``2>&-``, ``<&-``), which Python leaves
    None: writes go nowhere and reads find nothing, so every exit code stays the documented
    one (a denied checkout exited 1, not 3, failing on its own error line). Opened first, the
    null device also takes the closed descriptor, which no file the command opens can then
    take (a child process writing to its inherited descriptor 1 would write into it). A closed
    standard output stays None in Python: the commands report it (the resend hint)."""
    for name, flags in (("stdin", os.O_RDONLY), ("stdout", os.O_WRONLY), ("stderr", os.O_WRONLY)):
        if getattr(sys, name) is None:
            held = os.open(os.devnull, flags)  # the lowest free descriptor: the closed one's
            if name != "stdout":  # a closed stdout stays None: the commands report it
                setattr(sys, name, os.fdopen(held, "r" if flags == os.O_RDONLY else "w"))


def _leave_interrupted(code: int) -> None:  # never returns: exits
    """Exit ``code`` (130) at once, the line said. Through the interpreter's own exit, about
    one run in ten of a Ctrl-C during start-up died of SIGINT after the line (a parent saw -2): an
    interrupt the start-up's callbacks had delivered again landed as the interpreter put its
    default signal handlers back. Whatever the command opened was closed on the way here
    (``with``); its output is flushed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
