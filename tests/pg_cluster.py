"""A throwaway PostgreSQL cluster for the test run, and fresh databases on it.

`PostgresCluster.start()` runs `initdb` into a new directory, starts the server with `pg_ctl` on a
free TCP port of 127.0.0.1 with durability switched off (test speed, not safety), and creates the
database `custody_test`. `stop()` kills it and removes the directory. As root, `initdb`/`pg_ctl`
run as the `postgres` OS user, because PostgreSQL refuses to run as root.

A process that starts a cluster takes SIGTERM as a KeyboardInterrupt (where SIGTERM still has
its default action), so that a run stopped by `timeout`, a cancelled job or `kill` stops its
server and deletes its directory in the `finally` or fixture that started it: the server runs
in a session of its own, and the signal never reaches it.

`PostgresCluster.attach(admin_url)` wraps a server somebody else runs: nothing is started or
stopped. `create_database`/`drop_database` make and remove fresh databases on either kind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_DATABASE = "custody_test"
SUPERUSER = "postgres"
OS_USER = "postgres"
PG_ROOT = Path("/usr/lib/postgresql")

_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}
_START_ATTEMPTS = 3  # the free port we picked can be taken before the server binds it
_START_TIMEOUT_S = 60
_LOG_TAIL_LINES = 40
# Memory-backed parent for the cluster dir when it has room: on this project's machines
# CREATE DATABASE takes ~20 ms on tmpfs against ~350 ms on ext4, and start ~1.2 s against ~2.8 s.
_TMPFS = Path("/dev/shm")  # noqa: S108 - only a parent: the dir itself comes from mkdtemp
# The temporary directory as the process found it: the test session later points TMPDIR into
# its own base directory (tests/conftest.py), which only root may enter.
_TEMP = Path(tempfile.gettempdir())
_TMPFS_MIN_FREE = 1 << 30


def find_pg_bin() -> Path:
    """The newest `/usr/lib/postgresql/<version>/bin` with `initdb`, else the one on PATH."""
    candidates = [b for b in PG_ROOT.glob("*/bin") if (b / "initdb").is_file()]
    if candidates:
        return max(candidates, key=lambda b: _version_key(b.parent.name))
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    raise RuntimeError(
        f"no PostgreSQL server binaries: nothing under {PG_ROOT}/*/bin and no initdb on PATH "
        "(run `scripts/bootstrap.sh --with-postgres`)"
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def database_url(server_url: str, name: str) -> str:
    """`server_url` (URL or key=value conninfo) pointed at database `name` instead."""
    if server_url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(server_url)
        return urlunsplit(parts._replace(path="/" + quote(name, safe="")))
    return make_conninfo(server_url, dbname=name)


def create_database(admin_url: str, name: str) -> str:
    """Create the empty database `name` on the server of `admin_url`; return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # template0: nobody can be connected to it, so parallel creates never collide on it.
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
    return database_url(admin_url, name)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting whoever is still connected to it."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


class PostgresCluster:
    """A PostgreSQL server for tests: `url` is database `custody_test`, `admin_url` `postgres`."""

    url: str
    admin_url: str
    port: int

    def __init__(
        self,
        *,
        admin_url: str,
        port: int,
        base_dir: Path | None = None,
        pg_bin: Path | None = None,
    ) -> None:
        self.admin_url = admin_url
        self.url = database_url(admin_url, DEFAULT_DATABASE)
        self.port = port
        self.base_dir = base_dir
        self._pg_bin = pg_bin
        self._running = base_dir is not None
        self._owner = os.getpid()  # the process that started it: the only one that stops it

    @property
    def owned(self) -> bool:
        """True when this object started the server and `stop()` will shut it down."""
        return self.base_dir is not None

    @classmethod
    def start(cls, base_dir: Path | None = None) -> PostgresCluster:
        """initdb into `base_dir/data`, start the server, create `custody_test`.

        `base_dir` must not exist or be empty; it belongs to the cluster and `stop()` deletes it.
        Without it, a new directory is made directly under /dev/shm (if it has 1 GiB free) or
        else the temp dir (usually /tmp): as root the server runs as `postgres`, which must be
        able to reach the directory, and pytest's own tmp dirs are 0700 root.
        """
        pg_bin = find_pg_bin()
        as_root = os.geteuid() == 0
        _interrupt_on_sigterm()
        if base_dir is None:
            base_dir = Path(tempfile.mkdtemp(prefix="custody-pg-", dir=_default_parent()))
        else:
            base_dir.mkdir(parents=True, exist_ok=True)
            if any(base_dir.iterdir()):
                raise RuntimeError(f"PostgreSQL base dir {base_dir} is not empty")
        base_dir = base_dir.resolve()
        try:
            if as_root:
                _hand_to_os_user(base_dir)
            port = _init_and_start(pg_bin, base_dir, as_root=as_root)
            cluster = cls(
                admin_url=f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres",
                port=port,
                base_dir=base_dir,
                pg_bin=pg_bin,
            )
        except BaseException:
            _pg_ctl_stop(pg_bin, base_dir, as_root=as_root)
            shutil.rmtree(base_dir, ignore_errors=True)
            raise
        try:
            create_database(cluster.admin_url, DEFAULT_DATABASE)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    @classmethod
    def attach(cls, admin_url: str) -> PostgresCluster:
        """Use a running server (`admin_url` with superuser rights); `stop()` leaves it alone.

        Creates `custody_test` on it if it is missing.
        """
        params = conninfo_to_dict(admin_url)
        port_text = str(params.get("port") or "5432").split(",")[0]
        cluster = cls(admin_url=admin_url, port=int(port_text))
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DEFAULT_DATABASE,)
            ).fetchone()
        if row is None:
            create_database(admin_url, DEFAULT_DATABASE)
        return cluster

    def stop(self) -> None:
        """Kill the server (`pg_ctl -m immediate`) and delete its directory. Safe to repeat.
        Only in the process that started it: a forked child running its parent's `finally`
        or fixtures leaves the server alone (rev36: a test's forked helper ended by SIGTERM
        stopped the session's server). A SIGTERM meanwhile is delivered once both are done
        (rev36: a second one left the directory behind)."""
        if not self._running or self.base_dir is None or self._pg_bin is None:
            return
        if os.getpid() != self._owner:
            return
        with _sigterm_held():
            _pg_ctl_stop(self._pg_bin, self.base_dir, as_root=os.geteuid() == 0)
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self._running = False

    def __repr__(self) -> str:
        return f"PostgresCluster(admin_url={self.admin_url!r}, owned={self.owned})"


def _interrupt_on_sigterm() -> None:
    """SIGTERM raised as KeyboardInterrupt in this process, where it still has its default
    action (which ends the process at once, before any ``finally`` stops the server)."""
    global _INTERRUPTED_IN
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        _INTERRUPTED_IN = os.getpid()
        signal.signal(signal.SIGTERM, _interrupted)


_INTERRUPTED_IN = 0  # the process that took SIGTERM as KeyboardInterrupt


def _interrupted(signum: int, frame: object) -> None:
    if os.getpid() != _INTERRUPTED_IN:
        # A forked child inherits the handler, and its parent's fixtures and finally blocks:
        # it ends as SIGTERM ends a process, running none of them.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    signal.signal(signum, signal.SIG_IGN)  # a second one would cut short what the first runs
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def _sigterm_held() -> Iterator[None]:
    """A SIGTERM that comes while the block runs (in the main thread, where handlers run)
    delivered when it has ended, to the handler there was before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: came.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        if came:
            os.kill(os.getpid(), signal.SIGTERM)


def _default_parent() -> Path:
    try:
        usage = shutil.disk_usage(_TMPFS)
    except OSError:
        return _TEMP
    if usage.free >= _TMPFS_MIN_FREE and os.access(_TMPFS, os.W_OK | os.X_OK):
        return _TMPFS
    return _TEMP


def _hand_to_os_user(base_dir: Path) -> None:
    try:
        user = pwd.getpwnam(OS_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root, but there is no OS user {OS_USER!r} to run PostgreSQL as "
            "(install the `postgresql` package: scripts/bootstrap.sh --with-postgres)"
        ) from None
    base_dir.chmod(0o755)
    os.chown(base_dir, user.pw_uid, user.pw_gid)
    probe = subprocess.run(
        ["runuser", "-u", OS_USER, "--", "test", "-w", str(base_dir)],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        raise RuntimeError(
            f"OS user {OS_USER!r} cannot write {base_dir}: a parent directory is not "
            "traversable; start the cluster without base_dir to use a dir under /tmp"
        )


def _command(pg_bin: Path, tool: str, *args: str, as_root: bool) -> list[str]:
    command = [str(pg_bin / tool), *args]
    return ["runuser", "-u", OS_USER, "--", *command] if as_root else command


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def _init_and_start(pg_bin: Path, base_dir: Path, *, as_root: bool) -> int:
    data = base_dir / "data"
    log = base_dir / "log"
    init = _run(
        _command(
            pg_bin,
            "initdb",
            "--pgdata",
            str(data),
            "--username",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
            as_root=as_root,
        ),
        base_dir,
    )
    if init.returncode != 0:
        raise RuntimeError(
            f"initdb failed (exit {init.returncode}) in {data}:\n{init.stdout}{init.stderr}"
        )
    failures: list[str] = []
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        settings = {"port": str(port), "unix_socket_directories": str(base_dir)}
        settings.update(_SERVER_SETTINGS)
        options = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings.items())
        start = _run(
            _command(
                pg_bin,
                "pg_ctl",
                "--pgdata",
                str(data),
                "--log",
                str(log),
                "--options",
                options,
                "--wait",
                "--timeout",
                str(_START_TIMEOUT_S),
                "start",
                as_root=as_root,
            ),
            base_dir,
        )
        if start.returncode == 0:
            return port
        tail = _log_tail(log)
        failures.append(
            f"pg_ctl start on port {port} failed (exit {start.returncode}):\n"
            f"{start.stdout}{start.stderr}--- tail of {log} ---\n{tail}"
        )
        if "could not bind" not in tail and "already in use" not in tail:
            break
        _pg_ctl_stop(pg_bin, base_dir, as_root=as_root)
    raise RuntimeError("PostgreSQL did not start:\n" + "\n".join(failures))


def _pg_ctl_stop(pg_bin: Path, base_dir: Path, *, as_root: bool) -> None:
    data = base_dir / "data"
    if not (data / "postmaster.pid").exists():
        return
    _run(
        _command(
            pg_bin,
            "pg_ctl",
            "--pgdata",
            str(data),
            "--mode",
            "immediate",
            "--wait",
            "stop",
            as_root=as_root,
        ),
        base_dir,
    )


def _log_tail(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(lines[-_LOG_TAIL_LINES:])
