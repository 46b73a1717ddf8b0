"""The base of a result that prints itself (the report commands' answers)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import ClassVar, TextIO, TypeVar

_Page = TypeVar("_Page")


class Printed:
    """A result that prints itself (the report commands' answers)."""

    # Whether the output is the whole of what the command did: one that changed nothing and
    # kept nothing elsewhere (``digest`` without ``--out``) failed if it cannot be written,
    # even where its command, given a file, is carried out before its output.
    only_in_its_output: ClassVar[bool] = False

    def write(self, out: TextIO, *, as_json: bool) -> None:
        raise NotImplementedError

    def failed(self) -> tuple[int, str] | None:
        """The exit code and one line, when the answer itself means failure (``checklist
        --strict`` with an answer needing attention); None otherwise."""
        return None


class Streamed(Printed):
    """An answer read from the store while it is written (an export of any length, a page at
    a time): the command's store stays open until it is written (``hold``), then closes.
    ``began``: its first page was read for standard output, so a failure after it (a later
    page) finds part of the answer printed already."""

    _closing: contextlib.ExitStack | None = None
    began = False

    def pages_begun(self, pages: Iterable[_Page]) -> Iterator[_Page]:
        """``pages``, ``began`` set once the first is read: what prints comes after it."""
        for page in pages:
            self.began = True
            yield page

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
