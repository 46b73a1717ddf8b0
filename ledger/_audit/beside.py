"""The snapshot check in a process of its own, beside the walk.

Both are read-only passes over the same store, each on a connection of its own, and neither
needs the other's answer: on a machine with two cores the check (which folds each profile with
snapshots through the domain's own decoding and ``Profile.apply``) runs while the walk hashes.

The child is a fresh interpreter (``python -P -m ledger._audit.beside``), never a fork: a forked
child would share the parent's database connections (closing a PostgreSQL connection there ends
the parent's session) and the locks its threads held. It reads the store's settings from its
stdin (never its command line, which others can read), writes what it found to its stdout as
JSON, and runs in a session of its own, so a Ctrl-C at the terminal reaches the parent alone,
which stops it.

It runs this very custody: ``-P`` keeps the working directory off its import path (a ``ledger``
package there, another checkout or a planted one, would otherwise be imported first), the
ledger's root is put on it only if the parent's path lacks it, and the child names the ledger
it imported: another than the parent's, and its answer is not taken. And it ends with the
parent: the parent holds the child's stdin open while it runs, and the child exits when that
pipe closes, as it does when the parent is killed (SIGTERM, SIGKILL: no ``finally`` of the
parent's runs then).

The child takes the streams up to a point (``share``) and the parent, after its walk, the rest,
so that both end about together; the child's problems come first, as one check in stream order
would give them.

Whatever keeps the child from answering (it cannot start, the store refuses it, it dies) makes
``result`` None, and the caller runs the check itself, where what went wrong is reported as it
always was: the child can make verify faster, never change what it says.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

from ledger._audit.snapshots import SnapshotCheck
from ledger._audit.walk import Problem
from ledger._stores.settings import StoreSettings

# The directory this ledger package is in: the child must import the ledger from there.
LEDGER_ROOT = str(Path(__file__).resolve().parents[2])
# What walking one event costs against folding one in the snapshot check, and what starting the
# child costs, in folded events (bench/verify.py on SQLite: about 8 and 22 us an event, 0.2 s;
# since the walk decodes every event as a read does, about 28 and 36 us on a slower day).
WALK_COST = 0.8
START_COST = 9_000


def share(extents: list[tuple[str, int]], events: int) -> str | None:
    """The first stream verify's own process checks after its walk of ``events`` events
    (None: the child checks them all), given each stream's last snapshot (``extents``, in
    stream order): the child folds what the walk and the rest cost, so both end together. The
    child checks at least the first stream."""
    child = (WALK_COST * events + sum(v for _, v in extents) - START_COST) / 2
    folded = 0
    for n, (stream, version) in enumerate(extents):
        if folded >= child and n > 0:
            return stream
        folded += version
    return None


class SnapshotsBeside:
    """The snapshot check of the store ``settings`` name, of the streams before ``until``
    (None: all), started in a child process at once; ``result`` waits for it. A context
    manager: leaving stops a child still running."""

    def __init__(self, settings: StoreSettings, until: str | None = None) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        env = dict(os.environ)
        if LEDGER_ROOT not in {_resolved(p) for p in sys.path}:  # this very ledger, in the child
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (LEDGER_ROOT, env.get("PYTHONPATH")) if p
            )
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-P", "-m", "ledger._audit.beside"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
            assert self._child.stdin is not None
            asked = {"settings": settings.model_dump(mode="json"), "until": until}
            self._child.stdin.write(json.dumps(asked).encode() + b"\n")
            self._child.stdin.flush()  # held open: the child ends when it closes
        except (OSError, ValueError):
            self.stop()

    def result(self) -> tuple[int, list[Problem]] | None:
        """How many snapshots the child checked and what it found, or None: it did not say."""
        child = self._child
        if child is None:
            return None
        try:
            assert child.stdout is not None
            out = child.stdout.read()  # to its end: the child has answered, or died
            if child.wait() != 0:
                return None
            answer = json.loads(out)
            if answer["ledger"] != LEDGER_ROOT:  # another custody answered: not taken
                return None
            problems = [Problem(p, v, str(w)) for p, v, w in answer["problems"]]
            return int(answer["checked"]), problems
        except (OSError, ValueError, KeyError, TypeError):
            return None
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the child, if it still runs, and close its pipes."""
        child, self._child = self._child, None
        if child is None:
            return
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        if child.poll() is None:
            child.kill()
        child.wait()

    def __enter__(self) -> SnapshotsBeside:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def main() -> None:
    """The child: the check on the store and streams its stdin names; its answer, as JSON, on
    stdout (a failure of any kind: nothing, and exit status 1)."""
    from ledger._stores import connect

    asked = json.loads(sys.stdin.buffer.readline())
    threading.Thread(target=_end_with_the_parent, daemon=True).start()
    settings = StoreSettings.model_validate(asked["settings"])
    store = connect(settings, create=False)
    try:
        done = SnapshotCheck(store, streams=(None, asked["until"])).run()
    finally:
        store.close()
    problems = [(p.profile_id, p.version, p.what) for p in done.problems]
    answer = {"ledger": LEDGER_ROOT, "checked": done.checked, "problems": problems}
    sys.stdout.write(json.dumps(answer))


def _end_with_the_parent() -> None:
    """Exit once the parent's end of stdin closes: it has stopped the check, or it died. The
    descriptor is read, not ``sys.stdin``: a thread blocked in a buffered read holds its lock,
    which the interpreter's exit then waits for, and aborts."""
    while os.read(0, 4096):
        pass
    os._exit(1)


def _resolved(entry: str) -> str:
    return str(Path(entry or ".").resolve())


if __name__ == "__main__":
    main()
