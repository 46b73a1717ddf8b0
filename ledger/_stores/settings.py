"""Store URLs: ``sqlite:///path/custody.db`` (the default, one host) or
``postgresql://user@host:port/db`` (many hosts; TLS with libpq's own ``?sslmode=...``)."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qs, parse_qsl, unquote, urlencode, urlsplit

from pydantic import BaseModel, ConfigDict, Field

from ledger._domain.errors import InvalidInput, StoreUnavailable, environment_setting
from ledger._domain.model import os_name

DEFAULT_SQLITE_FILE = "custody.db"
STORE_ENV_VAR = "CUSTODY_STORE"
APPLICATION_NAME = "custody"
DEFAULT_TIMEOUT_SECONDS = 5
MAX_PATH, MAX_NAME = 4096, 255  # what Linux accepts for a path and for one name in it
MAX_TIMEOUT_SECONDS = 3600
DEFAULT_CACHED_PROFILES = 1000


class StoreSettings(BaseModel):
    """A parsed store URL. Passwords never appear in ``describe()``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    kind: Literal["sqlite", "postgresql"]
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = Field(default="", repr=False)  # never in a repr, a log or a traceback
    dbname: str = ""
    connect_timeout: int = DEFAULT_TIMEOUT_SECONDS
    # How long any one store call may wait (a lock, a busy file, an unreachable server) before
    # the command fails as StoreUnavailable: short enough to fit inside the shortest sensible TTL.
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    # PostgreSQL: libpq's TLS parameters from the URL (``TLS_OPTIONS``), in the URL's order,
    # given to every session the store opens; none leaves them to libpq's own defaults
    # (``PGSSLMODE`` and the like, else ``prefer``).
    tls: tuple[tuple[str, str], ...] = ()
    # How many profiles a ledger keeps loaded between its commands (not from the URL: a
    # process serving many leases, the lease service's writer, asks for more).
    cached_profiles: int = DEFAULT_CACHED_PROFILES
    # The working directory a relative SQLite path was given in, taken when the URL is parsed
    # (empty: an absolute path, or a directory gone): every open, check and read of the file
    # names it against this directory, whatever directory the process is in by then (rev33:
    # a report's read in a process that had changed directory opened another file).
    directory: str = ""

    @classmethod
    def resolve(cls, store_url: str | None) -> StoreSettings:
        """The explicit URL, else ``$CUSTODY_STORE``, else an SQLite file in the working dir;
        ``InvalidInput`` naming ``store`` for one that is no text (rev48: ``Ledger.open(5)``
        and ``reports.timeline(ledger=5)`` were an AttributeError)."""
        if store_url is None:
            named = environment_setting(
                STORE_ENV_VAR, os.environ.get(STORE_ENV_VAR), "./custody.db"
            )
            store_url = named if named is not None else f"sqlite:///{DEFAULT_SQLITE_FILE}"
        if not isinstance(store_url, str):
            # rev48: a Path, bytes or a number raised AttributeError from ``strip``. Named by
            # its type alone: a URL's bytes may hold its password.
            kind = type(store_url).__name__
            form = "sqlite:///FILE or postgresql://..."
            msg = f"must be a URL as a str ({form}), got one of type {kind}"
            raise InvalidInput("store", msg)
        if not store_url.strip():
            raise InvalidInput("store", "is empty: give sqlite:///FILE or postgresql://...")
        return cls.from_url(store_url)

    @classmethod
    def from_url(cls, url: str) -> StoreSettings:
        """Parse a store URL; ``InvalidInput`` (never quoting a password) when malformed."""
        try:
            url.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            # A lone surrogate that is no undecodable byte (\ud800, which only a program can
            # put in a str): no file's name and no server can hold it (rev48: Ledger.open took
            # it and the first command raised a raw UnicodeEncodeError). The bytes an argument
            # that is not UTF-8 brings (\udc80 to \udcff) encode, as a file's name may hold
            # them. Not quoted: it may be in a password.
            msg = "holds a character UTF-8 cannot encode (a lone surrogate): give the URL in UTF-8"
            raise InvalidInput("store", msg) from None
        if url and (url[-1].isspace() or unicodedata.category(url[-1]) in ("Cc", "Cf")):
            # Space before a URL goes (urlsplit's rule), space after it would stay in a file's
            # name: sqlite:///fleet.db followed by a space quietly made a second store (rev31),
            # and so did a DEL or a zero-width space (rev31 reread2).
            # Not quoted: the URL may end in a password.
            msg = "ends with a space, a control or an invisible character: take it off"
            raise InvalidInput("store", msg)
        if "#" in url:
            # A URL ends at '#': sqlite:///fleet#2.db was the file fleet, and fleet#3.db the
            # same store. Not quoted: what follows may be the rest of a password.
            msg = "a '#' ends a URL (what follows is a fragment): write a '#' as %23"
            raise InvalidInput("store", msg)
        try:
            parts = urlsplit(url)
            parts.hostname  # noqa: B018  (a bracketed host is checked when read)
        except ValueError:  # an unbalanced or non-address bracketed host
            # Not quoted, nor Python's words, which quote the bracketed part: a URL that does
            # not split cannot be told apart from its password (rev29: Xk3[9QpZ]).
            msg = (
                "malformed URL (an unbalanced '[' or ']', or a bracketed host that is no IPv6 "
                "address): write a '[' or ']' in a password as %5B or %5D"
            )
            raise InvalidInput("store", msg) from None
        outside = parts.netloc + parts.query + ("" if parts.scheme == "sqlite" else parts.path)
        if any("\udc80" <= c <= "\udcff" for c in outside):
            # Bytes of an argument that are not UTF-8 (a Latin-1 terminal's): a file's name
            # may hold them (sqlite:///Müller.db), nothing else in a URL may. Not quoted: the
            # bytes may be a password's.
            msg = (
                "holds bytes that are not UTF-8 outside a SQLite file's name (a user, a "
                "password, a host, a database or an option): give them in UTF-8"
            )
            raise InvalidInput("store", msg)
        after_at = parts.path if parts.scheme != "sqlite" else ""  # a file's '@' is its own
        in_options = "@" not in parts.netloc and "@" in parts.query  # not a file's in an option
        if parts.netloc and ("@" in after_at or in_options):
            # An '@' after the first '/' or '?': a password (or user) holding one of them
            # unencoded, which would be read as the host, port, database or options (rev29:
            # ab@cd/ef sent "ab" to a host named "cd"). Not quoted: what precedes the '@' is
            # the password's. A database named with an '@' writes it %40.
            msg = (
                "the user and password must end with '@' before the first '/' or '?': "
                "write a '/', '?' or '@' in a password as %2F, %3F or %40"
            )
            raise InvalidInput("store", msg)
        shown = _redacted(url)
        postgres = parts.scheme in ("postgresql", "postgres")
        query = _options(parts.query, shown, TLS_OPTIONS if postgres else ())
        timeout = _timeout(query)
        tls = _tls(query, shown) if postgres else ()
        if parts.scheme == "sqlite":
            # Bytes that are not UTF-8 (%FF) name the file of those bytes, as the OS spells it.
            path = (
                os_name(unquote(parts.path, errors="surrogateescape")[1:])
                if parts.path[:1] == "/"
                else ""
            )
            if parts.netloc or not path:
                raise InvalidInput("store", f"expected sqlite:///path/to/file.db, got {shown}")
            if not url.lstrip().partition(":")[2].startswith("//"):
                # sqlite:/abs/a.db names /abs/a.db as RFC 3986 reads it; taken as ./abs/a.db
                # it quietly made a second store (rev29).
                msg = (
                    f"{shown} has one '/' after 'sqlite:': write an absolute path with four, "
                    "sqlite:////abs/path.db, a relative one with three, sqlite:///rel/path.db"
                )
                raise InvalidInput("store", msg)
            if "\0" in path:
                raise InvalidInput("store", f"a NUL byte in the path of {shown}")
            if path.endswith("/") or Path(path).name in ("", ".", ".."):
                raise InvalidInput("store", f"{shown} names a directory: give a file path")
            if path == ":memory:" or path.startswith("file:"):
                msg = f"{shown} would keep nothing between commands: give a file path"
                raise InvalidInput("store", msg)
            if len(path) > MAX_PATH or any(len(part) > MAX_NAME for part in path.split("/")):
                msg = (
                    f"path too long ({len(path)} characters; at most {MAX_PATH}, {MAX_NAME} a name)"
                )
                raise InvalidInput("store", msg)
            return cls(kind="sqlite", path=path, timeout=timeout, directory=_here(path))
        if parts.scheme in ("postgresql", "postgres"):
            return cls._postgres(parts, shown, timeout, tls)
        raise InvalidInput(
            "store", f"unsupported scheme in {shown}: use sqlite:// or postgresql://"
        )

    @classmethod
    def _postgres(
        cls, parts: SplitResult, shown: str, timeout: int, tls: tuple[tuple[str, str], ...]
    ) -> StoreSettings:
        dbname = unquote(parts.path.lstrip("/"))
        try:
            port = parts.port if parts.port is not None else 5432
        except ValueError:
            # Not quoted without an '@': what stands in the port's place may be a password
            # whose user forgot the host (postgresql://custody:Xk3/9QpZ).
            where = f" in {shown}" if "@" in parts.netloc else " (after the host's ':')"
            raise InvalidInput("store", f"malformed port{where}") from None
        if port == 0:
            raise InvalidInput("store", f"port 0 in {shown}: give the server's port")
        if not parts.hostname or not dbname or not parts.username:
            raise InvalidInput("store", "expected postgresql://user[:password]@host[:port]/dbname")
        user, password = unquote(parts.username), unquote(parts.password or "")
        named = {"user": user, "password": password, "database": dbname, "host": parts.hostname}
        for field, value in named.items():
            if "\0" in value:
                # libpq takes C strings: the value ended at the NUL, and store1%00prod opened
                # store1 (rev38 review). Not quoted: the value may be the password.
                raise InvalidInput("store", f"a NUL byte (%00) in the {field} of {shown}")
        return cls(
            kind="postgresql",
            host=_host_name(parts.hostname, shown),
            port=port,
            user=user,
            password=password,
            dbname=dbname,
            connect_timeout=timeout,
            timeout=timeout,
            tls=tls,
        )

    def describe(self) -> str:
        """The store as a URL that, given back, names the same store (without its password,
        its timeout and TLS options): a SQLite path with what a URL would read otherwise
        percent-encoded (``_path_in_url``), as it was given otherwise."""
        if self.kind == "sqlite":
            return f"sqlite:///{_path_in_url(self.path)}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def sqlite_file(self) -> Path:
        """The SQLite file, named against the directory its URL was given in
        (``sqlite_opened``)."""
        return Path(self.sqlite_opened())

    def sqlite_real(self) -> Path:
        """The SQLite file with every symlink resolved, as the system resolves it now: a loop
        of links is left as it is, for the open to say the file cannot be opened (rev34:
        ``Path.resolve`` raised RuntimeError, an internal error, exit 1)."""
        return Path(os.path.realpath(self.sqlite_opened()))

    def anchored_url(self) -> str:
        """A URL of this SQLite store that names it from any working directory: the path as
        ``sqlite_opened`` names it, percent-encoded as ``from_url`` reads it back, with the
        timeout kept."""
        from urllib.parse import quote

        url = "sqlite:///" + quote(os.fsencode(self.sqlite_opened()), safe="/")
        return url + ("" if self.timeout == DEFAULT_TIMEOUT_SECONDS else f"?timeout={self.timeout}")

    def sqlite_opened(self) -> str:
        """The SQLite file's path as the store opens it: absolute, so that a process that
        changes its directory later still writes the same file, and otherwise as given, so
        that the system resolves it at each open and each check (``refuse_another_file``):
        ``..`` after a symlinked directory as the reads resolve it (rev33: a lexical
        ``abspath`` wrote one file and read another), and a symlinked directory or file
        swapped to another is seen (rev33: resolved once at the open, it was not). Absolute
        against the directory the URL was given in (``directory``), not the one the process
        is in when it asks (rev34: a directory deleted since is a ``StoreUnavailable``)."""
        if os.path.isabs(self.path):
            return self.path
        if self.directory:
            return os.path.join(self.directory, self.path)
        try:
            return os.path.join(os.getcwd(), self.path)
        except OSError:  # no working directory left to name the path against
            raise StoreUnavailable(
                f"store {self.describe()} unavailable: its path is relative, and this "
                "process's working directory no longer exists (give an absolute path)"
            ) from None

    def sqlite_read_uri(self) -> str:
        """The URI that opens the SQLite file for reads only: read-only, as any SQLite reader,
        which sees what writers commit; immutable (no lock, no ``-shm`` file needed or made)
        only for a file nobody may change, with nothing beside it (read-only media, or a copy
        with no write permission on it or its directory: an auditor's evidence). A file
        someone else may still write is never read as immutable: a writer appending meanwhile
        would leave the reader's pages stale and at odds with each other."""
        from urllib.parse import quote

        path = self.sqlite_real()
        immutable = not self.sqlite_journal_beside() and path.exists() and _frozen(path)
        return f"file:{quote(os.fsencode(path))}?mode=ro" + ("&immutable=1" if immutable else "")

    def sqlite_unreadable_here(self) -> str | None:
        """Why this process cannot read the SQLite store it may not write, or None. A reader of
        a file in WAL mode (custody's) that someone may still write needs its ``-shm`` file:
        SQLite makes one if the directory lets it, or reads the one a connected process made.
        With no process connected there is none, and in a directory this user may not write
        none can be made: SQLite fails ("attempt to write a readonly database")."""
        path = self.sqlite_real()
        if not path.exists():
            return None
        shm, wal = (path.with_name(f"{path.name}-{kind}") for kind in ("shm", "wal"))
        frozen = _frozen(path)
        if frozen and wal.exists() and not shm.exists() and _in_wal_mode(path):
            # rev29: "unable to open database file", exit 6: a copy of a live store taken
            # with its -wal (which holds committed pages) but not its -shm.
            return (
                f"store {self.describe()} cannot be read here: it may not be written, and "
                f"beside it is its {wal.name} file without the {shm.name} file SQLite reads "
                "it through; copy both to a directory of your own, make them writable "
                "(chmod u+w), and read the copy"
            )
        if frozen or shm.exists():
            return None
        if os.access(path.parent, os.W_OK):
            return self._shm_left_behind(path)
        import sqlite3
        from contextlib import closing

        try:  # asked of SQLite, not guessed: a file not in WAL mode (VACUUM INTO's) is read
            with closing(sqlite3.connect(self.sqlite_read_uri(), uri=True, timeout=1)) as conn:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as e:
            if "readonly" not in str(e) and "unable to open" not in str(e):
                return None  # another trouble: the open says it, as for any store
        else:
            return None
        return (
            f"store {self.describe()} cannot be read by this user while no process has it "
            f"open: SQLite reads it through a {path.name}-shm file, none is beside it, and "
            f"this user may not make one in {path.parent}; read it while its owner's process "
            "has it open, or read a copy (cp it to a directory of your own)"
        )

    def _shm_left_behind(self, path: Path) -> str | None:
        """Why this process may not read the SQLite store it may not write (another user's),
        in a directory it may write, while no process has it open: SQLite would make the
        ``-shm`` and ``-wal`` files the read needs, this user's (the superuser's are given the
        file's owner by SQLite itself), and a reader may not remove them after, so every
        later write by the owner would fail ("attempt to write a readonly database"; rev29:
        an auditor's ``status`` in a shared directory blocked the owner's writes for good)."""
        if os.geteuid() == 0 or not _in_wal_mode(path):  # no -shm for a rollback journal's
            return None
        return (
            f"store {self.describe()} is another user's to write, and no process has it open: "
            f"reading it now would leave a {path.name}-shm file of this user's beside it, "
            "which would block every later write to it; read it while a writer's process has "
            "it open, or read a copy (cp it to a directory of your own)"
        )

    def sqlite_journal_beside(self) -> bool:
        """A ``-wal`` or ``-journal`` file is beside the SQLite file: another connection's, or
        one of an application that died, whose pages a reader must see."""
        path = self.sqlite_real()
        return any(path.with_name(f"{path.name}-{k}").exists() for k in ("wal", "journal"))

    def sqlite_unwritable(self) -> bool:
        """This process may not write the SQLite store: the file (or, for a new one, its
        directory), a file nobody may change (``_frozen``: root may write it all the same), a
        ``-wal`` or ``-shm`` beside it this user may not write (another user's process has the
        store open), or, where it may not write the directory, the ``-wal`` and ``-shm`` files
        a write needs beside the file (a directory it may not write cannot get them)."""
        path = self.sqlite_real()
        if not path.exists():
            return not os.access(path.parent, os.W_OK)
        if not os.access(path, os.W_OK) or _frozen(path):
            return True  # rev33: root may write any file, so a chmod 444 one is asked of itself
        beside = [path.with_name(f"{path.name}-{kind}") for kind in ("wal", "shm")]
        # rev39: another user's process holds the store open and made them, which a write
        # needs to write too ("attempt to write a readonly database", exit 6, retried for ever).
        if any(p.exists() and not os.access(p, os.W_OK) for p in beside):
            return True
        if os.access(path.parent, os.W_OK):
            return False
        return not all(p.exists() and os.access(p, os.W_OK) for p in beside)

    def libpq_tls(self) -> dict[str, Any]:
        """The URL's TLS parameters as libpq takes them (empty: libpq's defaults)."""
        return dict(self.tls)

    def postgres_options(self) -> str:
        """libpq's ``options`` for every PostgreSQL session the store opens (see
        ``session_options``)."""
        return session_options(self.timeout)

    def environment(self, *, create_table: bool) -> dict[str, str]:
        """The eventsourcing environment for this store (never read from ``os.environ``)."""
        create = "y" if create_table else "n"
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "ledger._stores.recorders:SQLiteLedgerFactory",
                # Where the path leads now: a process that changes its directory later
                # still writes the same file (rev33: a relative path was stat'ed again from
                # the new directory, and every write refused as to a replaced file).
                "SQLITE_DBNAME": self.sqlite_opened(),
                "SQLITE_LOCK_TIMEOUT": str(self.timeout),
                "CREATE_TABLE": create,
            }
        return {
            "PERSISTENCE_MODULE": "ledger._stores.postgres:BoundedPostgresFactory",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_CONNECT_TIMEOUT": str(self.connect_timeout),
            "POSTGRES_LOCK_TIMEOUT": str(self.timeout),
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_PRE_PING": "n",  # our own check replaces it: check_before_lending
            TLS_ENV: urlencode(self.tls),  # read by BoundedPostgresFactory
            "CREATE_TABLE": create,
        }


def _in_wal_mode(path: Path) -> bool:
    """The SQLite file's header says WAL mode (its read and write versions are 2): a reader
    needs a ``-shm`` file beside it. A backup by ``VACUUM INTO`` is not, and needs none."""
    try:
        with path.open("rb") as file:
            head = file.read(20)
    except OSError:
        return True  # the open that follows names what is wrong
    return len(head) < 20 or head[18] == 2


def _frozen(path: Path) -> bool:
    """Nobody may change the file as it stands: it is on a read-only file system, or it has
    no write permission for anyone (its owner would have to make it writable first). Read
    otherwise, a file in a directory this user may write got ``-shm`` and ``-wal`` files of
    its read-only mode beside it, which blocked every write once it was writable again
    (rev29); whether the directory too had no write permission was asked before."""
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        return True
    return not path.stat().st_mode & 0o222


# The client encoding of every PostgreSQL session a store opens, given as libpq's own
# parameter (a ``-c`` in ``options`` loses to PGCLIENTENCODING): the texts custody sends and
# reads are UTF-8 whatever the environment says (with PGCLIENTENCODING=LATIN1 an emoji in a
# URL was an internal error). The database itself must be UTF8 (``_postgres_session``).
CLIENT_ENCODING = "UTF8"


def session_options(timeout: int) -> str:
    """libpq's ``options`` for every PostgreSQL session a store opens (the library's pool,
    direct connections, LISTEN, ADBC), which win over the server's, the database's and the
    role's settings:
    - any wait for a lock, by a read as much as by a write, gives up after ``timeout`` seconds
      (a session holding the events table, such as a migration or a VACUUM FULL, would
      otherwise stall every command behind it);
    - a float reads back exactly as it was written: with ``extra_float_digits`` 0 or below
      (PostgreSQL 11's default, kept in many a server's configuration) the server rounds it to
      15 digits, and every lease row of the read models read back unlike the digest written
      with it, "edited by hand", after a few heartbeats (rev39);
    - a string literal reads its backslashes as written (``standard_conforming_strings`` off
      made a PL/pgSQL function's bytea literals "invalid byte sequence", and every operator
      login's register failed);
    - a transaction is READ COMMITTED unless custody asks for another (a database's
      ``default_transaction_isolation`` serializable made concurrent commands fail "could not
      serialize access"; custody's statements are written for READ COMMITTED);
    - the server sends warnings and errors only (``client_min_messages`` debug or log printed
      the server's lines, SQL text among them, on a report's standard error).
    ``default_transaction_read_only`` is left as it is: a database made read-only on purpose
    (or a standby) stays so (rev39)."""
    return (
        f"-c lock_timeout={timeout * 1000} -c extra_float_digits=3"
        " -c standard_conforming_strings=on"
        r" -c default_transaction_isolation=read\ committed"
        " -c client_min_messages=warning"
    )


def _here(path: str) -> str:
    """The working directory a relative ``path`` is named against (empty for an absolute
    one, or where the directory no longer exists: the open then says what is wrong)."""
    if os.path.isabs(path):
        return ""
    try:
        return os.getcwd()
    except OSError:
        return ""


# What a SQLite URL's path cannot hold as it is: '%' (read as an escape), '?' and '#' (which
# end the path), and the tab and line ends ``urlsplit`` drops.
_NOT_AS_IT_IS = r"[%?#\t\n\r\udc80-\udcff]"  # compiled by re on first use, never at import


def _path_in_url(path: str) -> str:
    """``path`` as a ``sqlite:///`` URL names it for ``from_url``: what it would read otherwise
    percent-encoded (and a last character a URL may not end with), the rest as it is, so an
    ordinary path reads as typed. rev38: ``init`` on ``sqlite:///up.db%3Ftimeout=1`` answered
    ``sqlite:///up.db?timeout=1``, which pasted back opened ``up.db``, another store. The
    bytes of a name the OS was given (``os_name``: Python's surrogates) are its characters
    where they are UTF-8, else percent-encoded (%E9): a URL is text, and ``init --json``
    answered lone surrogates that a strict JSON reader refuses (rev40)."""
    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    shown = re.sub(_NOT_AS_IT_IS, lambda found: _escaped(found.group()), text)
    if shown and (shown[-1].isspace() or unicodedata.category(shown[-1]) in ("Cc", "Cf")):
        shown = shown[:-1] + _escaped(shown[-1])
    return shown


def _escaped(character: str) -> str:
    return "".join(f"%{byte:02X}" for byte in character.encode("utf-8", "surrogateescape"))


def _host_name(host: str, shown: str) -> str:
    """``host`` if a connection can look it up: psycopg resolves a name with Python's
    ``socket.getaddrinfo``, which encodes it with the IDNA codec, and that refuses a name with
    an empty label or one over 63 characters (rev38 review: ``db..example`` was an internal
    error, exit 1, at the first connection, the pool's as much as a command's)."""
    try:
        host.encode("idna")
    except UnicodeError:
        msg = (
            f"the host {host} of {shown} is no host name: a part between dots is empty or "
            "longer than 63 characters"
        )
        raise InvalidInput("store", msg) from None
    return host


def _redacted(url: str) -> str:
    """The URL as an error may quote it: no password (nor the value of an option custody does
    not know, which may be one: libpq takes ``?password=``), at most a short prefix. Whatever
    the URL's shape, everything between its ``scheme:`` (and ``//``) and its last ``@`` is
    the user and password: a password holding an unencoded ``/`` or ``?`` ends the authority
    early as ``urlsplit`` reads it (rev29: such a password was quoted whole). Only the user
    is shown, and only when nothing in it could be a password's."""
    scheme, colon, rest = url.partition(":")
    if "=" in url and not _SCHEME.match(url):
        # libpq's "host=... password=..." (rev29: quoted whole): not a URL, and not quoted.
        return "(a text that is no URL: not quoted, it may hold a password)"
    if not colon:  # no scheme, no '=': nothing in it can be a password
        return _quoted(url)
    head = f"{scheme}:" + ("//" if rest.startswith("//") else "")
    body = url[len(head) :]
    userinfo, at, tail = body.rpartition("@")
    if scheme == "sqlite" and body.startswith("/"):  # no authority: an '@' is the file's
        userinfo, at, tail = "", "", body
    location, question, query = tail.partition("?")
    if question:
        known = {"timeout", *TLS_OPTIONS}
        options = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, v if k in known else "***") for k, v in options], safe="*/")
    if "?" in userinfo:  # the options began before the last '@': any of what follows is theirs
        return _quoted(f"{head}***@***")
    user, secret, _ = userinfo.partition(":")
    who = f"{user}{':***' if secret else ''}@" if at else ""
    if any(c in user for c in "/#[]"):
        who = "***@"
    return _quoted(head + who + location + (f"?{query}" if question else ""))


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _quoted(url: str) -> str:
    return repr(url) if len(url) <= 120 else f"{url[:120]!r}..."


# libpq's TLS parameters a PostgreSQL store URL may carry, as libpq names them: how to
# encrypt and whom to trust (files on the host that runs custody). A client key's passphrase
# is not one of them: a URL is shown and logged; use a key without one, or libpq's
# PGSSLPASSWORD-free alternatives (an agent, a key readable only by the worker's user).
TLS_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# The environment key that hands the TLS parameters to the library's pool (urlencoded).
TLS_ENV = "POSTGRES_TLS_PARAMETERS"


def _options(query: str, shown: str, others: tuple[str, ...]) -> dict[str, str]:
    """A store URL's options by name: ``timeout`` and ``others``. ``InvalidInput`` naming an
    option neither, or one given twice: the last of a repeated one won silently
    (``?timeout=1&timeout=4`` waited 4 s, a repeated sslmode chose one of two trusts), where
    the lease service refuses a repeated query parameter (rev39)."""
    given = parse_qs(query, keep_blank_values=True)
    unknown = set(given) - {"timeout", *others}
    if unknown:
        raise InvalidInput("store", f"unknown option {sorted(unknown)[0]!r} in {shown}")
    repeated = sorted(name for name, values in given.items() if len(values) > 1)
    if repeated:
        msg = f"option {repeated[0]!r} given more than once in {shown}: give it once"
        raise InvalidInput("store", msg)
    return {name: values[0] for name, values in given.items()}


def _tls(query: dict[str, str], shown: str) -> tuple[tuple[str, str], ...]:
    """A PostgreSQL URL's TLS parameters (``TLS_OPTIONS``); ``InvalidInput`` for a mode libpq
    does not know or a file name that cannot be one."""
    found = []
    for name in TLS_OPTIONS:
        if name not in query:
            continue
        value = query[name]
        if name == "sslmode" and value not in SSL_MODES:
            msg = f"sslmode must be one of {', '.join(SSL_MODES)}, got {value[:40]!r} in {shown}"
            raise InvalidInput("store", msg)
        if name != "sslmode" and (not value or "\0" in value or len(value) > MAX_PATH):
            raise InvalidInput("store", f"{name} must name a file, got {value[:40]!r} in {shown}")
        found.append((name, value))
    return tuple(found)


def _timeout(query: dict[str, str]) -> int:
    """``?timeout=SECONDS``: the bounded wait of every store call (1 to 3600)."""
    value = query.get("timeout", str(DEFAULT_TIMEOUT_SECONDS))
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= MAX_TIMEOUT_SECONDS:
        msg = f"timeout must be whole seconds from 1 to {MAX_TIMEOUT_SECONDS}, got {value!r}"
        raise InvalidInput("store", msg)
    return int(value)
