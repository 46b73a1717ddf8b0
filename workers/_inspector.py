"""The inspector: is a browser still running on a profile's directory, and stopping an orphan.

Chromium marks an open profile with ``SingletonLock``, a symlink to ``hostname-pid``. A browser
is alive for a profile when the lock names this host, its pid is alive and not a zombie,
``/proc/<pid>/exe`` is Chromium, and its command line holds ``--user-data-dir=D`` where D is
that very directory: the same path once normalised, or, spelled another way (a symlink, a bind
mount, a path relative to the browser's working directory), the same device and inode
(``docs/explanation/browsers-and-the-inspector.md``).
Chromium's lock is not a lease: the ledger decides who may use a profile; the lock only says
whether a browser has it.

Only the host that ran the browser can tell; elsewhere the answer is ``unknown``. The ledger
never reads these facts itself: they are passed to it (``Ledger.review(browser=...)``) or
recorded by it (``BrowserStopped``). Lock files are never deleted here: after a stop, the next
launch on this host takes a stale lock over by itself.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict

from ledger import (
    BrowserCheck,
    BrowserStatus,
    Holder,
    Ledger,
    LedgerError,
    NotAllowed,
    ProfileState,
    ProfileView,
    StopSignal,
    StoreUnavailable,
)
from ledger.rules import holder_of, stop_refusal
from workers._sharing import Sharing, sharing

if TYPE_CHECKING:
    import signal  # imported to stop a browser (``_terminate``), never to inspect one

    from ledger import RecordBrowserStop

LOCK_NAME = "SingletonLock"
# Names ``/proc/<pid>/exe`` has for a Chromium browser (Debian's /usr/bin/chromium is a script
# that execs /usr/lib/chromium/chromium; Playwright's builds are chrome or headless_shell).
CHROMIUM_NAMES = frozenset(
    {"chromium", "chromium-browser", "chrome", "headless_shell", "chrome-headless-shell"}
)
STOP_GRACE_SECONDS = 5.0  # SIGHUP shuts Chromium down cleanly in well under a second
KILL_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.05


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
class Process(NamedTuple):
    """What ``/proc`` says about a process: its state letter (``Z`` zombie), its process group,
    its executable (None when unreadable), its command line, and a path that reaches its
    working directory, against which a relative ``--user-data-dir`` is resolved (None when
    unreadable)."""

    pid: int
    state: str
    pgid: int
    exe: str | None
    cmdline: tuple[str, ...]
    cwd: str | None = None


class Host(Protocol):
    """The inspecting host: its name, the lock in a directory, its processes and signals."""

    def name(self) -> str: ...

    def lock_target(self, user_data_dir: str) -> str | None:
        """Where the directory's SingletonLock points; None without one; OSError if it is not
        a readable link."""

    def process(self, pid: int) -> Process | None:
        """The running (or zombie) process ``pid``, or None when there is none."""

    def send(self, pid: int, sig: signal.Signals, *, group: bool) -> None:
        """Signal the process, or with ``group`` its process group; ProcessLookupError if
        it is gone."""


class LocalHost:
    """This machine, read through ``/proc`` (Linux)."""

    def name(self) -> str:
        # gethostname(2), which Chromium writes into its lock, is uname's nodename on Linux;
        # read here without importing socket (about 2 ms of ``custody why``).
        return os.uname().nodename

    def lock_target(self, user_data_dir: str) -> str | None:
        try:
            return os.readlink(os.path.join(user_data_dir, LOCK_NAME))
        except FileNotFoundError:
            return None

    def process(self, pid: int) -> Process | None:
        proc = Path("/proc") / str(pid)
        try:
            stat = (proc / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            return None
        # The name in parentheses may hold spaces; the fields after it are fixed.
        fields = stat.rpartition(")")[2].split()
        try:
            exe: str | None = os.readlink(proc / "exe").removesuffix(" (deleted)")
        except OSError:
            exe = None
        try:
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            raw = b""
        args = tuple(a.decode(errors="surrogateescape") for a in raw.split(b"\0") if a)
        # The magic link itself, not its text: it reaches the directory even when the text
        # would not (deleted, another mount namespace).
        cwd: str | None = str(proc / "cwd")
        try:
            os.readlink(proc / "cwd")
        except OSError:  # another user's process
            cwd = None
        state, pgid = fields[0], int(fields[2])
        return Process(pid=pid, state=state, pgid=pgid, exe=exe, cmdline=args, cwd=cwd)

    def send(self, pid: int, sig: signal.Signals, *, group: bool) -> None:
        # Only a browser that leads its own group (Playwright makes it so) is killed with its
        # group: the group of a browser started without a new session is its launcher's.
        if group and os.getpgid(pid) == pid and pid != os.getpgrp():
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def inspect(user_data_dir: str, host: Host | None = None) -> BrowserCheck:
    """Whether a Chromium on ``host`` (default: this machine) runs on ``user_data_dir``.

    Never raises for what it finds: an unreadable lock or a lock naming another host is
    ``unknown``; a lock whose browser is gone (dead pid, zombie, pid reused by another program,
    a Chromium on another directory) is ``stale_lock``; no lock is ``not_running``.
    """
    host = host or LocalHost()
    here = host.name()

    def found(status: BrowserStatus, detail: str, **lock: str | int | None) -> BrowserCheck:
        return BrowserCheck(
            user_data_dir=user_data_dir, status=status, host=here, detail=detail, **lock
        )

    try:
        target = host.lock_target(user_data_dir)
    except OSError as e:
        return found(BrowserStatus.UNKNOWN, f"{LOCK_NAME} is unreadable ({e})")
    if target is None:
        return found(BrowserStatus.NOT_RUNNING, f"no {LOCK_NAME}: no browser has it open")
    lock_host, _, number = target.rpartition("-")
    if not lock_host or not number.isdigit() or int(number) < 1:
        return found(BrowserStatus.UNKNOWN, f"{LOCK_NAME} names {target!r}, not host-pid")
    pid = int(number)
    if lock_host != here:
        detail = f"another host (the lock names {lock_host}, pid {pid}; this is {here})"
        return found(BrowserStatus.UNKNOWN, detail, lock_host=lock_host, pid=pid)
    status, detail = _judge(host.process(pid), pid, user_data_dir)
    return found(status, detail, lock_host=lock_host, pid=pid)


def _judge(proc: Process | None, pid: int, user_data_dir: str) -> tuple[BrowserStatus, str]:
    stale = BrowserStatus.STALE_LOCK
    if proc is None:
        return stale, f"pid {pid} is not running"
    if proc.state in ("Z", "X"):
        return stale, f"pid {pid} has exited (zombie)"
    if proc.exe is None:
        return BrowserStatus.UNKNOWN, f"pid {pid} runs, but its executable is unreadable"
    if os.path.basename(proc.exe) not in CHROMIUM_NAMES:
        return stale, f"pid {pid} is now {proc.exe}, not Chromium"
    runs_here = _runs_on(proc, user_data_dir)
    if runs_here is None:
        detail = f"Chromium pid {pid} runs on a relative --user-data-dir in an unreadable cwd"
        return BrowserStatus.UNKNOWN, detail
    if not runs_here:
        return stale, f"Chromium pid {pid} runs on another --user-data-dir"
    return BrowserStatus.ALIVE, f"Chromium pid {pid} runs with --user-data-dir={user_data_dir}"


def _runs_on(proc: Process, user_data_dir: str) -> bool | None:
    """Whether one of the process's ``--user-data-dir=D`` is this very directory; None when
    it cannot tell (a relative D, and the process's working directory unreadable)."""
    unsure = False
    for arg in proc.cmdline:
        flag, sep, value = arg.partition("=")
        if flag != "--user-data-dir" or not sep or not value:
            continue
        if not os.path.isabs(value):
            if proc.cwd is None:
                unsure = True
                continue
            value = os.path.join(proc.cwd, value)
        if _same_directory(value, user_data_dir):
            return True
    return None if unsure else False


def _same_directory(path: str, user_data_dir: str) -> bool:
    """The whole path, never a prefix (``/p/a`` is not ``/p/ab``): spelled the same once
    normalised (``/p/a/`` is ``/p/a``), or another spelling of it (a symlink, a bind mount,
    ``.`` in it): the same device and inode. Chromium opened the directory through the path it
    was given, so a browser through a symlink to the profile's directory has it open."""
    if os.path.normpath(path) == os.path.normpath(user_data_dir):
        return True
    try:
        return os.path.samefile(path, user_data_dir)
    except OSError:  # gone, or not reachable from here: not this directory as far as we see
        return False


class Inspection(BaseModel):
    """A profile, its directory, and what inspecting the directory found here. ``browser`` is
    None when no directory is registered or it is not on this host (``note`` says which);
    ``shared`` says who else may use the directory (``workers._sharing``); ``orphan``: a
    browser runs there that is this profile's and no lease holds it (``--stop-orphan`` would
    stop it); ``stopped`` is the signal that ended an orphan, ``version`` the event that
    records it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_id: str
    user_data_dir: str | None
    state: ProfileState
    holder: Holder | None
    browser: BrowserCheck | None
    note: str
    shared: str | None = None
    orphan: bool = False
    stopped: StopSignal | None = None
    version: int | None = None
    # The renewal deadline the holder's lease missed (stale, not swept yet), if it did.
    overdue_since: datetime | None = None


def inspect_here(user_data_dir: str | None, host: Host | None = None) -> BrowserCheck | None:
    """The inspection of a registered directory, or None when there is none to inspect here
    (no directory registered, or no such directory on this host)."""
    if user_data_dir is None or not os.path.isdir(user_data_dir):
        return None
    return inspect(user_data_dir, host)


def inspect_profile(ledger: Ledger, profile_id: str, host: Host | None = None) -> Inspection:
    """Inspect the profile's registered directory on this host; writes nothing."""
    return inspect_view(ledger, ledger.view(profile_id), host)


def inspect_view(ledger: Ledger, view: ProfileView, host: Host | None = None) -> Inspection:
    """``inspect_profile`` for a profile the caller has viewed already (no second load)."""
    browser = inspect_here(view.record.user_data_dir, host)
    return _inspection(view, browser, sharing(ledger, view), now=ledger.now())


def _inspection(
    view: ProfileView,
    browser: BrowserCheck | None,
    shared: Sharing | None = None,
    stopped: StopSignal | None = None,
    version: int | None = None,
    *,
    now: datetime | None = None,
) -> Inspection:
    holder = holder_of(view.lease)
    shared = shared or Sharing()
    return Inspection(
        profile_id=view.record.profile_id,
        user_data_dir=view.record.user_data_dir,
        state=view.state,
        holder=holder,
        browser=browser,
        note=_note(view.record.user_data_dir, browser),
        shared=shared.said,
        orphan=browser is not None and browser.alive and holder is None and not shared.blocks,
        stopped=stopped,
        version=version,
        overdue_since=_missed(view, now),
    )


def _missed(view: ProfileView, now: datetime | None) -> datetime | None:
    lease = view.lease
    return lease.expires_at if lease is not None and now and lease.overdue_at(now) else None


def _note(directory: str | None, browser: BrowserCheck | None) -> str:
    """What inspecting the directory found, or why nothing was inspected."""
    if browser is not None:
        return browser.detail
    if directory is None:
        return "no user_data_dir is registered for this profile: nothing to inspect"
    return f"{directory} is not a directory on this host: inspect on the host that ran it"


def stop_orphan(
    ledger: Ledger,
    profile_id: str,
    *,
    actor: str,
    host: Host | None = None,
    grace_seconds: float = STOP_GRACE_SECONDS,
) -> Inspection:
    """Stop the browser still running on the profile's directory, if the ledger shows no
    current holder, and record the stop as a ``BrowserStopped`` event.

    The stop is SIGHUP (Chromium closes cleanly, flushing cookies), then after ``grace_seconds``
    SIGKILL of its process group; each signal goes only to a process that is still the browser
    inspected (a reused pid is left alone). Raises ``NotAllowed`` while a lease (live or stale)
    holds the profile, when no directory is registered or it is not on this host, when the
    lock names another host, and when the browser may be another profile's (``sharing``: a
    directory an older store let profiles share); with no browser running it stops nothing
    and records nothing.
    A checkout granted between the ledger's answer and the signal finds Chromium's lock still
    held by the orphan: its launch fails rather than sharing the profile.
    """
    host = host or LocalHost()
    view = ledger.view(profile_id)
    check = _browser_to_stop(view, host, ledger.now())
    shared = sharing(ledger, view)
    if not check.alive or check.pid is None:
        return _inspection(view, check, shared, now=ledger.now())
    if shared.blocks:  # perhaps another profile's browser, perhaps under its lease
        raise NotAllowed(f"cannot stop the browser on {profile_id}'s directory: {shared.said}")
    # The stop's record is checked before any signal (its fields at the door, the login's
    # role): a stop the ledger would refuse to record is not made.
    record = _stop_record(ledger, profile_id, actor, check)
    used = _terminate(check, host, grace_seconds)
    if used is None:
        return _inspection(view, inspect(check.user_data_dir, host), shared, now=ledger.now())
    version = _record_stop(ledger, record.model_copy(update={"signal": used}), check)
    after = inspect(check.user_data_dir, host)
    return _inspection(ledger.view(profile_id), after, shared, used, version, now=ledger.now())


def _browser_to_stop(view: ProfileView, host: Host, now: datetime) -> BrowserCheck:
    """What inspecting the profile's directory here finds. ``NotAllowed`` while a lease (live
    or stale) holds the profile, when no directory is registered or it is not on this host,
    and when the lock names another host."""
    profile_id = view.record.profile_id
    refused = stop_refusal(profile_id, view.lease, now)
    if refused is not None:
        raise NotAllowed(refused)
    check = inspect_here(view.record.user_data_dir, host)
    if check is None:
        raise NotAllowed(f"cannot stop a browser of {profile_id}: {_inspection(view, None).note}")
    if check.status is BrowserStatus.UNKNOWN:
        raise NotAllowed(f"cannot stop a browser of {profile_id} from here: {check.detail}")
    return check


def _stop_record(
    ledger: Ledger, profile_id: str, actor: str, check: BrowserCheck
) -> RecordBrowserStop:
    """The command that will record stopping the browser ``check`` found, built (so checked
    at the door: ``InvalidInput``) with the gentle signal, and the store login's role checked
    (``Forbidden``), before any signal is sent."""
    from ledger import RecordBrowserStop  # the command models: not for ``why``'s look

    assert check.pid is not None
    record = RecordBrowserStop(
        profile_id=profile_id,
        actor=actor,
        host=check.host,
        pid=check.pid,
        user_data_dir=check.user_data_dir,
        signal=StopSignal.SIGHUP,
    )
    ledger.may_record(record)
    return record


def _record_stop(ledger: Ledger, record: RecordBrowserStop, check: BrowserCheck) -> int:
    """Record the stop (``BrowserStopped``); the event's version. A store that cannot take it
    raises ``StoreUnavailable`` saying the browser was stopped all the same."""
    try:
        row = ledger.handle(record)
    except StoreUnavailable as e:  # the stop happened: say so, whatever the store says
        used = record.signal
        msg = f"Chromium pid {check.pid} was stopped with {used}, but could not be recorded: {e}"
        raise StoreUnavailable(msg) from e
    return row.version


def _terminate(check: BrowserCheck, host: Host, grace_seconds: float) -> StopSignal | None:
    """SIGHUP, wait, then SIGKILL the group: the signal that ended the browser, or None when
    it exited on its own before any signal reached it."""
    import signal

    if not _send_if_same(check, host, signal.SIGHUP, group=False):
        return None
    if _gone_within(check, host, grace_seconds):
        return StopSignal.SIGHUP
    if not _send_if_same(check, host, signal.SIGKILL, group=True):
        return StopSignal.SIGHUP  # it went between the wait and the kill: the SIGHUP did it
    if _gone_within(check, host, KILL_WAIT_SECONDS):
        return StopSignal.SIGKILL
    raise LedgerError(f"Chromium pid {check.pid} did not exit after SIGKILL; nothing recorded")


def _same_browser(check: BrowserCheck, host: Host) -> bool:
    again = inspect(check.user_data_dir, host)
    return again.alive and again.pid == check.pid


def _send_if_same(check: BrowserCheck, host: Host, sig: signal.Signals, *, group: bool) -> bool:
    """Signal the inspected browser if it still is that browser; False if it is gone."""
    assert check.pid is not None
    if not _same_browser(check, host):
        return False
    try:
        host.send(check.pid, sig, group=group)
    except ProcessLookupError:
        return False
    return True


def _gone_within(check: BrowserCheck, host: Host, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _same_browser(check, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True
