"""What a person watches while the fleet runs: on a terminal, a live table of the workers and
the tallies; in a pipe, one line per thing that happened (a log that ``grep`` can read)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from custody._text import for_a_person, printable

_TALLIES = ("granted", "clean", "expected failure", "review", "quarantine", "denied", "crashed")


@dataclass
class WorkerRow:
    run: str = "-"
    profile: str = "-"
    step: str = "starting"


@dataclass
class Progress:
    """The fleet so far, from the workers' and the sweeper's reports."""

    started: float = field(default_factory=time.monotonic)
    workers: dict[str, WorkerRow] = field(default_factory=dict)
    tally: Counter[str] = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def worker(self, worker_id: str, said: dict[str, Any]) -> str | None:
        """Take one line a worker said; return the log line it makes, if any."""
        row = self.workers.setdefault(worker_id, WorkerRow())
        event, run = said.get("event"), said.get("run", "-")
        if event == "granted":
            row.run, row.profile, row.step = run, said["profile"], "checked out"
            self.tally["granted"] += 1
            return f"{worker_id} {run} checked out {said['profile']} (token {said['token']})"
        if event == "step":
            row.step = said["step"] + (" (mutating)" if said.get("mutating") else "")
            return None
        if event == "released":
            return self._released(worker_id, row, said)
        if event == "denied":
            row.step = "denied"
            self.tally["denied"] += 1
            return f"{worker_id} {run} denied: {said['reason']}"
        if event == "crashing":
            row.step = "CRASHED (SIGKILL)"
            self.tally["crashed"] += 1
            return f"{worker_id} {run} crashes on {said['profile']} mid-submission"
        if event in ("lost", "failed"):
            row.step = event
            return f"{worker_id} {run} {event}: {said.get('why') or said.get('error')}"
        if event == "done":
            row.step = "done"
        return None

    def _released(self, worker_id: str, row: WorkerRow, said: dict[str, Any]) -> str:
        state, cause = said.get("state"), said.get("cause")
        if state == "available":
            kind = "expected failure" if said.get("outcome") == "expected_failure" else "clean"
        else:
            kind = "quarantine" if state == "quarantined" else "review"
        self.tally[kind] += 1
        row.step = f"released: {kind}"
        because = f" ({cause})" if cause else ""
        error = f"; {said['error']}" if said.get("error") else ""
        return f"{worker_id} {said['run']} released {said['profile']}: {kind}{because}{error}"

    def swept(self, line: str) -> str:
        self.tally["swept"] += 1
        return f"sweeper: {line}"

    def stamp(self, line: str) -> str:
        return f"{time.monotonic() - self.started:6.1f}s {printable(line)}"

    def summary(self) -> str:
        return ", ".join(f"{self.tally[k]} {k}" for k in (*_TALLIES, "swept"))


class Display:
    """Shows ``Progress`` as it changes: live on a terminal, line by line elsewhere."""

    def __init__(self, out: TextIO, progress: Progress) -> None:
        self.progress = progress
        self._out = out
        self._console = Console(file=out)
        self._live: Live | None = None
        if for_a_person(out) and self._console.is_terminal:  # FORCE_COLOR: a pipe gets the log
            self._live = Live(self._render(), console=self._console, refresh_per_second=4)

    def __enter__(self) -> Display:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)

    def log(self, line: str | None) -> None:
        if line is None:
            return
        stamped = self.progress.stamp(line)
        self.progress.lines.append(stamped)
        if self._live is None:
            self._out.write(stamped + "\n")
            self._out.flush()
        else:
            self._live.update(self._render())

    def _render(self) -> Group:
        table = Table("WORKER", "RUN", "PROFILE", "STEP", title="custody fleet demo")
        for worker_id, row in sorted(self.progress.workers.items()):
            table.add_row(worker_id, row.run, row.profile, row.step)
        recent = [Text(line, style="dim") for line in self.progress.lines[-8:]]
        return Group(table, Text(self.progress.summary()), *recent)
