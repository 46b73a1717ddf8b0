"""The custody command line run as a real subprocess, the way a person or a script runs it.

`custody(...)` runs one command and waits; `custody_all(...)` starts independent commands at
once and waits for all of them (each process spends ~0.4 s starting Python, so a batch of
read-only or refused commands costs little more than one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

TIMEOUT_S = 60


class Run(NamedTuple):
    """A finished command: exit code, stdout and stderr."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


MODULE = (sys.executable, "-m", "custody")
SCRIPT = (str(Path(sys.executable).parent / "custody"),)  # the installed console script


# Variables that change how output looks (rich reads them): unset unless a test sets them, so
# output is what a pipe gets whatever the developer's shell exports.
LOOKS = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES")


def start(
    *args: str,
    cwd: Path,
    store: str | None = None,
    program: Sequence[str] = MODULE,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start ``python -m custody ARGS`` (or ``program ARGS``) in ``cwd``, with
    ``$CUSTODY_STORE`` set to ``store`` or unset (so the default ``./custody.db`` applies) and
    the variables in ``env`` set."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_STORE", *LOOKS)}
    if store is not None:
        environ["CUSTODY_STORE"] = store
    environ.update(env or {})
    return subprocess.Popen(
        [*program, *args],
        cwd=cwd,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> Run:
    """Wait for a started command (killing it after ``TIMEOUT_S``)."""
    with proc:
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    return Run(proc.returncode, out, err)


def custody(
    *args: str,
    cwd: Path,
    store: str | None = None,
    program: Sequence[str] = MODULE,
    env: Mapping[str, str] | None = None,
) -> Run:
    """Run one command to completion."""
    return finish(start(*args, cwd=cwd, store=store, program=program, env=env))


def custody_all(
    commands: Sequence[Sequence[str]], *, cwd: Path, store: str | None = None
) -> list[Run]:
    """Run independent commands at the same time; results in the order given."""
    procs = [start(*args, cwd=cwd, store=store) for args in commands]
    return [finish(proc) for proc in procs]


def ok(run: Run) -> Run:
    """Assert the command succeeded, showing its stderr otherwise."""
    assert run.code == 0, f"exit {run.code}: {run.err}"
    return run


def error_line(run: Run) -> str:
    """Assert stderr is exactly one ``custody:`` line with no traceback; return that line."""
    lines = run.err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {run.err!r}"
    assert lines[0].startswith("custody:"), lines[0]
    assert "Traceback" not in run.err
    return lines[0]


def event_types(timeline_json: Any) -> list[str]:
    """The event types of a ``timeline --json`` answer, oldest first."""
    return [row["event_type"] for row in timeline_json]


def on_a_terminal(
    *args: str, cwd: Path, store: str | None = None, env: Mapping[str, str] | None = None
) -> Run:
    """Run one command with its stdout a real pseudo-terminal (stderr a pipe), as a person
    at a prompt runs it; ``out`` is what the terminal received (its line ends ``\\n``).
    ``FORCE_COLOR`` is no stand-in: it colours a pipe and leaves it a pipe."""
    import pty

    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_STORE", *LOOKS)}
    if store is not None:
        environ["CUSTODY_STORE"] = store
    environ.update({"TERM": "xterm-256color", **(env or {})})
    proc = subprocess.Popen(
        [*MODULE, *args], cwd=cwd, env=environ, stdin=subprocess.DEVNULL, stdout=follower,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(follower)
    shown = read_terminal(leader)
    with proc:
        err = proc.stderr.read() if proc.stderr else ""
        code = proc.wait(timeout=TIMEOUT_S)
    return Run(code, shown.decode().replace("\r\n", "\n"), err)


def read_terminal(leader: int) -> bytes:
    """Everything written to the pseudo-terminal whose ``leader`` end this is, until the
    other end closes (the command is done); closes ``leader``."""
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return shown
