"""The base of a result that prints itself (the report commands' answers)."""

from __future__ import annotations

from typing import TextIO


class Printed:
    """A result that prints itself (the report commands' answers)."""

    def write(self, out: TextIO, *, as_json: bool) -> None:
        raise NotImplementedError

    def failed(self) -> tuple[int, str] | None:
        """The exit code and one line, when the answer itself means failure (``checklist
        --strict`` with an answer needing attention); None otherwise."""
        return None
