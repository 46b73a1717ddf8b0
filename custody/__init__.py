"""custody's composition root: the command line and its wiring."""

import sys

INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C


def interrupted() -> int:
    """Say that the command was interrupted, in one line, and return its exit status.

    A Ctrl-C can land while a library builds its objects (a store's connection pool, say);
    their finalizers then fail as the interpreter exits, and Python would print each of those
    as "Exception ignored ... Traceback" after our line. They are the interrupt's own debris,
    so they are not reported."""
    sys.stderr.write("custody: interrupted\n")
    sys.unraisablehook = lambda _: None
    return INTERRUPTED
