"""Files written whole or not at all, for every package that keeps one: the command line's
exports, HTML report, digests and keys (``custody``), the worker SDK's evidence and the
WebRTC policy it pins in a profile's preferences (``workers``)."""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["NOT_A_FILE", "a_standard_stream", "part_name", "stat_or_none", "written_whole"]

# What ``written_whole`` says of a path that is no regular file.
NOT_A_FILE = "not a regular file (a device, a FIFO, a directory): name a file to write"


@contextmanager
def written_whole(path: Path, *, mode: int = 0o666, durable: bool = False) -> Iterator[BinaryIO]:
    """A new file beside ``path`` to write in; when the block ends it replaces ``path``. A
    failure (an error, a full disk, Ctrl-C or SIGTERM raised in the block or just after the
    open) leaves ``path`` as it was and nothing beside it. ``mode`` is narrowed by the umask,
    as ``open()`` narrows it; a file replaced keeps its own mode. ``durable``: on the disk
    (``fsync``) before it replaces ``path``, for a record a crash must not leave empty (rev44:
    a full disk left a 0-byte ``evidence.json`` beside a release that said it was kept).

    Through a symbolic link, the file it names is replaced and the link stays (``latest.csv ->
    2026-12.csv``); a path that is not a regular file (``/dev/stdout``, a FIFO, a device) is
    ``OSError``, never replaced (as root, ``/dev/stdout``, a link, was replaced by a file);
    so is the file this process's standard output or error is (``a_standard_stream``).
    """
    found = _regular_or_none(path)
    if found is not None and (stream := a_standard_stream(found)) is not None:
        raise OSError(errno.EINVAL, f"{stream}, a redirect: name another file", str(path))
    target = Path(os.path.realpath(path))
    part = target.with_name(part_name(target.name, uuid.uuid4().hex[:8]))
    try:  # the open inside: a signal just after it still removes the part
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as file:
            if found is not None:
                os.fchmod(fd, stat.S_IMODE(found.st_mode))
            yield file
            if durable:
                file.flush()
                os.fsync(fd)
        part.replace(target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def part_name(name: str, tag: str) -> str:
    """The name of the file ``written_whole`` writes beside ``name`` before renaming it."""
    return f".{name}.{tag}.part"


def _regular_or_none(path: Path) -> os.stat_result | None:
    """``path``'s file, through any link, or None when there is none (a dangling link too);
    ``OSError`` (EINVAL) when it is there but no regular file."""
    found = stat_or_none(path)
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise OSError(errno.EINVAL, NOT_A_FILE, str(path))
    return found


def stat_or_none(path: Path) -> os.stat_result | None:
    """``path``'s file, through any link, or None when there is none (a dangling link too)."""
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def a_standard_stream(found: os.stat_result) -> str | None:
    """Which of this process's standard outputs is the regular file ``found``, or None: a
    file named both as the file to write and as the stream the shell opened (``--output
    /dev/stdout >> kept.csv``, ``--output kept.csv >> kept.csv``) would be replaced under the
    stream, and what it held lost (rev40: ``/dev/stdout`` through a redirect to a file was
    followed to the file, which was replaced, even under ``>>``)."""
    for fd, stream in ((1, "output"), (2, "error")):  # a file read as input may be replaced
        try:
            held = os.fstat(fd)
        except OSError:  # closed
            continue
        if (held.st_dev, held.st_ino) == (found.st_dev, found.st_ino):
            return f"this command's standard {stream}"
    return None
