"""Files the command line writes whole or not at all: the exports, the HTML report, digests
and signing keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def written_whole(path: Path, *, mode: int = 0o666) -> Iterator[BinaryIO]:
    """A new file beside ``path`` to write in; when the block ends it replaces ``path``. A
    failure leaves ``path`` as it was and nothing beside it. ``mode`` is narrowed by the umask,
    as ``open()`` narrows it."""
    part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
        part.replace(path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
