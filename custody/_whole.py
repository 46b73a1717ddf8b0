"""Files the command line writes whole or not at all (``ledger.files.written_whole``): the
exports, the HTML report, digests and signing keys, a failure to write one said as bad input
or the disk's (``refused_as``); and what an export never replaces (``kept_apart``).

The ledger is imported inside each function, never here: the command line imports this module
at start-up, and the ledger's first import is the one ``custody._wiring`` times and freezes
(``first_import_of_the_ledger``: with the package imported first, it did neither)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO


@contextmanager
def removed_if_failed(path: Path, *, field: str = "db", directory: bool = False) -> Iterator[None]:
    """A new SQLite file ``path``, made here before the block (``O_EXCL``), for the block to
    write: if the block fails (an error, Ctrl-C, SIGTERM as ``terminate_as_interrupt`` makes
    it), the file and the journals SQLite made beside it are removed, only those that were
    not there before it began, and with ``directory`` its directory too, if that leaves it
    empty (rev39: a demo cut short by a limit on file sizes left its partial store and its
    ``-wal`` and ``-shm``, and its rerun was refused, "already exists").

    Refused before the block, naming ``field``: a name that is there already, a symbolic link
    too, dangling or not (``InvalidInput``: rev39, two demos on one file at once, the one
    refused removed the other's finished store; a link's target was left behind), or one this
    user may not make (a directory it may not write: ``InvalidInput``, as ``refused_as``; the
    disk's errors ``LedgerError``). A reader of the output gone (``BrokenPipeError``) is no
    failure: the store holds what was written until then, and is kept (rev39: ``demo | head
    -1`` exited 0 and removed the store its first line named)."""
    from ledger import InvalidInput, LedgerError

    if not path.name or os.path.isdir(path):  # "." has no name to put journals beside
        raise InvalidInput(field, f"{str(path)[:200]!r} is a directory: give the demo a new file")
    made = [path, *(path.with_name(path.name + j) for j in JOURNALS)]
    there = {p for p in made if os.path.lexists(p)}
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except FileExistsError:
        link = " (a symbolic link)" if os.path.islink(path) else ""
        msg = f"{path}{link} already exists: give the demo a new file"
        raise InvalidInput(field, msg) from None
    except OSError as e:
        msg = f"cannot write {str(path)[:200]!r}: {e.strerror or e}"
        if e.errno in _THE_DISKS:
            raise LedgerError(f"{msg}; nothing was written") from None
        raise InvalidInput(field, msg) from None
    try:
        yield
    except BrokenPipeError:
        raise
    except BaseException:
        for p in made:
            if p not in there:
                with suppress(OSError):
                    p.unlink()
        if directory:
            with suppress(OSError):
                path.parent.rmdir()
        raise


@contextmanager
def refused_as(field: str, path: Path, *, mode: int = 0o666) -> Iterator[BinaryIO]:
    """``written_whole``, a failure to write being bad input naming ``field`` and the file
    (a path that is no file, a directory it may not write in), not an internal error or a
    failure of standard output; one of the disk's (full, a quota, an I/O error), which no
    other argument would mend, is ``LedgerError`` (exit 1), not bad input (rev25: a full disk
    was exit 2, which a script reads as "fix your arguments" and does not retry)."""
    from ledger import InvalidInput, LedgerError
    from ledger.files import written_whole

    try:
        with written_whole(path, mode=mode) as file:
            yield file
    except OSError as e:
        msg = f"cannot write {str(path)[:200]!r}: {e.strerror or e}"
        if e.errno in _THE_DISKS:
            raise LedgerError(f"{msg}; the file is as it was, nothing half written") from None
        raise InvalidInput(field, msg) from None


# What a disk refuses whatever the path: not the caller's argument.
_THE_DISKS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})


def file_to_write(given: str, *, field: str, named: str, instead: str) -> Path:
    """The file an option or argument names for a command to write (``keygen``'s FILE,
    ``digest --out``, ``report --html``, the exports' ``--output``, ``demo --db``), checked the
    same way for every one of them before any work: ``InvalidInput`` naming ``field`` (``named``
    is how the line spells it: ``--out``, ``FILE``) when it names no file. An empty name, or
    one of spaces only, is read by pathlib as ".", which has no name (rev34: ``keygen ''`` was
    an internal error, ``demo --db ''`` played in a temporary file, the others wrote a file
    named ' '). "-" is standard output to many tools, and no file here: ``instead`` says what
    to do (rev34: ``digest --out -`` and ``keygen -`` wrote a file named "-"). A name the
    system refuses as too long (a part over 255 bytes, the whole over 4,096), itself or that of
    the file written beside it first (``written_whole``), is refused too: it was an internal
    error (rev34), or bad input only once the work was done; so is a relative name when the
    current directory was removed under the shell."""
    from ledger import InvalidInput
    from ledger.files import part_name

    if not given.strip():
        raise InvalidInput(field, f"{named} is empty: name the file to write")
    if given == "-":
        raise InvalidInput(field, f"{named} - names no file: {instead}")
    if given.endswith("/"):  # rev34: pathlib drops the slash, and the file was written so
        raise InvalidInput(field, f"{named} {given[:200]!r} ends with '/': name a file to write")
    path = Path(given)
    if not path.is_absolute():
        try:
            os.getcwd()
        except FileNotFoundError:  # rev40: kept_apart's realpath failed, an internal error
            msg = f"cannot write {named} {given[:200]!r}: the current directory was removed"
            raise InvalidInput(field, f"{msg}; give a full path or change directory") from None
    # "." or "/" has no name to write beside: what follows says it is a directory.
    beside = [path.with_name(part_name(path.name, "0" * 8))] if path.name else []
    for name in (path, *beside):
        try:
            os.stat(name)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                shown = f"{given[:200]!r} ({len(given)} characters)"
                raise InvalidInput(field, f"cannot write {named} {shown}: {e.strerror}") from None
    return path


def refuse_read_only(field: str, path: Path) -> None:
    """A file its owner made read-only is never replaced (the HTML report and a digest's
    ``--out`` turned a 0444 file into a new one): ``InvalidInput`` naming ``field`` before any
    work. Read-only is a file this user may not write, or one with no write bit for anyone:
    root may write any file, and as root (the documented set-up) ``os.access`` alone let
    ``--output``, ``report --html`` and ``digest --out`` replace a 0444 file (rev29)."""
    from ledger import InvalidInput
    from ledger.files import stat_or_none

    found = stat_or_none(path)
    if found is not None and (not found.st_mode & WRITE_BITS or not os.access(path, os.W_OK)):
        msg = f"{str(path)[:200]!r} is read-only: make it writable or name another file"
        raise InvalidInput(field, msg)


WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def refuse_no_directory(field: str, path: Path) -> None:
    """A file to write in a directory that is not there: ``InvalidInput`` naming ``field``
    before any work, as the write would refuse it after (rev32: ``digest --out nowhere/x.json
    --previous FORGED`` walked the log and answered 5 for the digest, where the same command
    with a good digest was 2 for the path)."""
    from ledger import InvalidInput

    parent = path.parent
    if not parent.is_dir():
        msg = f"cannot write {str(path)[:200]!r}: {str(parent)[:200]!r} is no directory"
        raise InvalidInput(field, msg)


# The first bytes of every SQLite database file (a store: an export over it erases its log).
SQLITE_HEADER = b"SQLite format 3\x00"
JOURNALS = ("-wal", "-shm", "-journal")


# A file this command's standard streams are: replaced by a new one, what the shell wrote there
# (``>> kept.csv``) was lost and the summary line went to the file unlinked.
TO_PRINT = "a redirect; to print, leave the option out"


def _kind(mode: int) -> str:
    """What a file that is not a regular one is, in a word or two."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (a pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a socket or another special file"


def kept_apart(path: Path) -> str | None:
    """What ``path`` holds that an export must never replace, or None (no such file, or one
    an export may replace): an SQLite database (the store itself, named by mistake: its
    events would be gone without a trace) or the journal beside one, or a PEM key or
    certificate (``keygen`` writes keys and never replaces one). Only the first bytes are read;
    a file that cannot be read is left to the write, which says why."""
    from ledger.files import a_standard_stream, stat_or_none

    try:
        found = stat_or_none(path)
    except OSError as e:  # a loop of links, a name too long: it cannot be followed
        return f"a path that cannot be followed ({e.strerror})"
    if found is not None and not stat.S_ISREG(found.st_mode):
        return f"{_kind(found.st_mode)}, not a regular file"
    if found is not None and (stream := a_standard_stream(found)) is not None:
        return f"{stream} ({TO_PRINT})"
    # What a write replaces is the file at the end of any links: judged by its own name, so
    # that a link to a store's -wal file is its journal (rev23: written through, it was lost).
    path = Path(os.path.realpath(path))
    journal = next((s for s in JOURNALS if path.name.endswith(s)), None)
    if journal is not None and _head(path.with_name(path.name[: -len(journal)])).startswith(
        SQLITE_HEADER
    ):
        return "the journal of an SQLite database"
    head = _head(path)
    if head.startswith(SQLITE_HEADER):
        return "an SQLite database (a custody store?)"
    if head.lstrip().startswith(b"-----BEGIN "):
        return "a PEM key or certificate"
    return None


def _head(path: Path) -> bytes:
    """The first bytes of the regular file ``path``, or none: a FIFO or a device is opened
    without waiting for a writer and never read (it holds no store or key)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return b""
    try:
        return os.read(fd, 64) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)
