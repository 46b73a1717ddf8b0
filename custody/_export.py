"""A report's DataFrame written to a file (``--output FILE``): csv, json or parquet.

Parquet is binary, so it goes only to a file, never to a terminal or a pipe. The file appears
whole or not at all: it is written beside its name and renamed over it when complete. Importing
this module imports neither pandas nor pyarrow.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

from custody._whole import file_to_write, kept_apart, refuse_read_only, refused_as

if TYPE_CHECKING:
    import pandas as pd

FILE_FORMATS = ("csv", "json", "parquet")


def checked_format(fmt: str, named: str | None, *, as_json: bool) -> tuple[str, Path | None]:
    """The format a report command writes in, checked before any report runs: parquet needs
    ``--output``, a file takes csv, json or parquet (``--json`` alone means json), and the
    file's directory must exist and be writable, the file, if there is one, not read-only.
    ``InvalidInput`` names ``output`` otherwise. Returns the format and the file (``named``, as
    ``file_to_write`` reads it), or None to print."""
    from ledger import InvalidInput

    if named is None:
        if fmt == "parquet":
            msg = "--format parquet is binary and goes only to a file: give --output FILE"
            raise InvalidInput("output", msg)
        return fmt, None
    if fmt == "table" and as_json:
        fmt = "json"
    if fmt not in FILE_FORMATS:
        raise InvalidInput("output", "a file takes --format csv, json or parquet, not a table")
    to_print = "to print, leave --output out"
    output = file_to_write(named, field="output", named="--output", instead=to_print)
    where = output.parent
    if not where.is_dir() or not os.access(where, os.W_OK | os.X_OK):
        raise InvalidInput("output", f"cannot write a file in {str(where)[:200]!r}")
    if (held := kept_apart(output)) is not None:
        msg = f"{str(output)[:200]!r} holds {held}; an export never replaces it: name another file"
        raise InvalidInput("output", msg)
    refuse_read_only("output", output)
    return fmt, output


def save(
    frames: Iterable[pd.DataFrame], fmt: str, path: Path, write_text: Callable[[TextIO], None]
) -> None:
    """Write a report's ``frames`` (its rows in order, a page each) to ``path``: parquet
    through pyarrow (every dtype kept: times with their zone, nullable integers, strings; a
    row group a page), csv or json by ``write_text``. A failure leaves ``path`` as it was and
    no partial file beside it."""
    with refused_as("output", path) as binary:  # a full disk: the file's, not stdout's
        if fmt == "parquet":
            _parquet(frames, binary)
        else:
            with io.TextIOWrapper(binary, encoding="utf-8", newline="") as text:
                write_text(text)


def _parquet(frames: Iterable[pd.DataFrame], binary: BinaryIO) -> None:
    """The frames as one parquet file, in the first frame's schema (the reports type every
    column, whatever a page holds): what ``DataFrame.to_parquet`` writes of them together."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    try:
        for frame in frames:
            schema = None if writer is None else writer.schema
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(binary, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
