"""custody's composition root: the command line and its wiring."""

# Nothing here imports more than the interpreter has loaded already: a Ctrl-C during these
# imports, before ``keep_interrupts`` and the command line's handler, would be a traceback
# (``typing`` alone was a few milliseconds of every start-up).
from __future__ import annotations

import _thread
import sys

INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C


def interrupted(as_json: bool = False, perhaps: str = "") -> int:
    """Say that the command was interrupted, in one line (and under ``--json`` in the JSON
    object of every error, on stdout), and return its exit status. ``perhaps`` says what the
    interrupted command may have done (a write committed before the Ctrl-C landed) and how to
    learn it.

    A Ctrl-C can land while a library builds its objects (a store's connection pool, say);
    their finalizers then fail as the interpreter exits, and Python would print each of those
    as "Exception ignored ... Traceback" after our line. They are the interrupt's own debris,
    so they are not reported. Nor is a further interrupt, which would kill the process on its
    way out (a parent would see death by SIGINT after the line): another Ctrl-C, or the one
    ``keep_interrupts`` delivers again from a thread, landing after this one was answered."""
    ignore_interrupts()
    message = f"interrupted; {perhaps}" if perhaps else "interrupted"
    sys.stderr.write(f"custody: {message}\n")
    if as_json:
        import contextlib
        import json

        body = {"error": "Interrupted", "exit_code": INTERRUPTED, "message": message}
        with contextlib.suppress(Exception):  # a closed pipe: nothing more to say
            sys.stdout.write(json.dumps(body, indent=2) + "\n")
            sys.stdout.flush()
    sys.unraisablehook = lambda _: None
    return INTERRUPTED


def ignore_interrupts() -> None:
    """From here on a Ctrl-C changes nothing: the command has answered (or said it was
    interrupted), and an interrupt during the interpreter's exit would kill the process by
    SIGINT after the answer (a parent saw -2 for a granted checkout: rev25). ``SIG_IGN``, not
    a Python function: the interpreter puts a function's signal back to the default as it
    finalises, where a Ctrl-C killed the process still (rev26); an ignored one it leaves."""
    while True:
        try:
            import signal  # 1 ms, inside the try: a Ctrl-C during it is the same one

            signal.signal(signal.SIGINT, signal.SIG_IGN)
            break
        except KeyboardInterrupt:  # one pending is raised before the handler changes: it is
            continue  # the same Ctrl-C, answered here


def keep_interrupts() -> None:
    """Make a Ctrl-C that lands inside a callback Python cannot raise from count all the same.

    A KeyboardInterrupt raised while the interpreter runs a weakref callback or a finalizer
    (importlib runs one each time a module's import lock is dropped, many times a start-up) is
    "unraisable": Python prints "Exception ignored in: ..." with a traceback and goes on as if
    no Ctrl-C had come. This hook prints nothing for it and delivers the interrupt again, so it
    is raised at the next ordinary line of the main thread, where the command line turns it
    into one line and exit 130. Other unraisable errors go to the hook there was before."""
    previous = sys.unraisablehook

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # From another thread: raised here, the interrupt would be unraisable again.
            _thread.start_new_thread(_thread.interrupt_main, ())
            return
        previous(unraisable)

    sys.unraisablehook = hook
