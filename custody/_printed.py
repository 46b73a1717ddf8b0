"""The base of a result that prints itself (the report commands' answers)."""

from __future__ import annotations

import contextlib
from typing import TextIO


class Printed:
    """A result that prints itself (the report commands' answers)."""

    def write(self, out: TextIO, *, as_json: bool) -> None:
        raise NotImplementedError

    def failed(self) -> tuple[int, str] | None:
        """The exit code and one line, when the answer itself means failure (``checklist
        --strict`` with an answer needing attention); None otherwise."""
        return None


class Streamed(Printed):
    """An answer read from the store while it is written (an export of any length, a page at
    a time): the command's store stays open until it is written (``hold``), then closes."""

    _closing: contextlib.ExitStack | None = None

    def hold(self, closing: contextlib.ExitStack) -> None:
        """Close ``closing`` (the command's open store) once this answer is written."""
        self._closing = closing

    def write(self, out: TextIO, *, as_json: bool) -> None:
        try:
            self.stream(out, as_json=as_json)
        finally:
            if self._closing is not None:
                self._closing.close()

    def stream(self, out: TextIO, *, as_json: bool) -> None:
        raise NotImplementedError
