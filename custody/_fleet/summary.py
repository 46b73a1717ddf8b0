"""How the fleet ended: its status, and why each blocked profile is blocked."""

from __future__ import annotations

from typing import Any, TextIO

from custody import _render as render
from custody._fleet.supervisor import FleetResult
from custody._tables import write_status
from custody._text import printable


def write_summary(result: FleetResult, out: TextIO) -> None:
    crashed = sorted(w for w, code in result.exits.items() if code < 0)
    out.write("\nworkers: " + ", ".join(f"{k} {v}" for k, v in sorted(result.tally.items())))
    out.write(f"; killed: {', '.join(crashed) or 'none'}\n")
    out.write("\n-- custody status --\n")
    write_status(result.status, out=out)
    out.write(f"\n-- custody why: {len(result.blocked)} blocked profile(s) --\n")
    for explanation in result.blocked:
        for line in render.explanation_lines(explanation):
            out.write(printable(line) + "\n")
        out.write("\n")
    out.write(f"Look closer: custody --store {result.store} timeline PROFILE\n")


def summary_json(result: FleetResult) -> dict[str, Any]:
    return {
        "store": result.store,
        "workdir": str(result.workdir),
        "tally": result.tally,
        "exits": result.exits,
        "status": [r.model_dump(mode="json") for r in result.status],
        "blocked": [e.model_dump(mode="json") for e in result.blocked],
    }
