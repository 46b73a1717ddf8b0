"""Stores the command line refuses, each in one line with its exit code, writing nothing: a
URL that names no store, a directory, a store a newer custody migrated (``init`` included),
and an unreachable server whatever its password."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_process import custody, error_line, ok


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@[::1/db",  # an unbalanced IPv6 bracket
        "postgresql://u@[zz]:1/db",  # a bracketed host that is no IPv6 address
        "sqlite:////",  # the root directory as the file
        "sqlite:///{tmp}/a%00b.db",  # a NUL in the path
        "postgresql://u@db..example:1/db",  # an empty label in the host (rev38)
        f"postgresql://u@{'a' * 64}:1/db",  # a label over 63 characters (rev38)
    ],
)
def test_a_malformed_store_url_is_bad_input_not_an_internal_error(tmp_path: Path, url: str) -> None:
    """A store URL that names no store is bad input naming the store (exit 2, one line), as a
    malformed port or scheme is; the first four were "custody: internal error: ValueError: ..."
    with exit 1 (``StoreSettings.from_url`` let urlsplit's and the path's ValueError through),
    the hosts "internal error: UnicodeError: encoding with 'idna' codec failed" (rev38)."""
    run = custody(
        "--store", url.format(tmp=tmp_path), "register", "p1", "--account", "a", "--proxy", "x",
        cwd=tmp_path,
    )  # fmt: skip
    line = error_line(run)
    assert "internal error" not in line, line
    assert run.code == 2, line
    assert line.startswith("custody: invalid store: "), line
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["", " ", "\t"])
def test_custody_store_set_but_empty_is_bad_input_naming_it_and_makes_no_file(
    tmp_path: Path, value: str
) -> None:
    """rev45: ``CUSTODY_STORE=`` (a unit file's ``Environment=CUSTODY_STORE=${UNSET}``) quietly
    meant ./custody.db and made it, while ``--store ''`` was refused: set but empty, the
    variable is bad input naming it (exit 2, one line), for a write, a read and init, and no
    file is made."""
    for args in (["register", "p1", "--account", "a", "--proxy", "x"], ["status"], ["init"]):
        run = custody(*args, cwd=tmp_path, store=value)
        line = error_line(run)
        assert run.code == 2, line
        assert line == (
            "custody: invalid CUSTODY_STORE: is set but empty: unset it for the default "
            "(./custody.db), or give a value"
        ), line
        assert not any(tmp_path.iterdir())


def test_a_store_url_repeating_an_option_is_bad_input_and_makes_no_file(tmp_path: Path) -> None:
    """rev39: ``sqlite:///r.db?timeout=1&timeout=4`` opened r.db waiting 4 s, the last value
    winning silently: it is bad input naming the option (exit 2, one line), and no file is
    made, for a write, a read and init alike."""
    url = f"sqlite:///{tmp_path}/r.db?timeout=1&timeout=4"
    for args in (["register", "p1", "--account", "a", "--proxy", "x"], ["status"], ["init"]):
        run = custody("--store", url, *args, cwd=tmp_path)
        line = error_line(run)
        assert run.code == 2, line
        assert line.startswith("custody: invalid store: option 'timeout' given more than once")
        assert not any(tmp_path.iterdir())


def test_a_directory_given_as_the_sqlite_file_is_named_so(tmp_path: Path) -> None:
    """An existing directory as the SQLite file: bad input saying it is a directory, for a
    read and for init (it was "unavailable: unable to open database file", exit 6)."""
    directory = tmp_path / "stores"
    directory.mkdir()
    for args in (["status"], ["init"], ["register", "p1", "--account", "a", "--proxy", "x"]):
        run = custody("--store", f"sqlite:///{directory}", *args, cwd=tmp_path)
        assert run.code == 2, run.err
        assert error_line(run).endswith(f"{directory} is a directory: give a file path")
    assert list(directory.iterdir()) == []


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as c:
        return list(c.iterdump())


def test_init_refuses_a_store_of_a_newer_schema_and_writes_nothing(tmp_path: Path) -> None:
    """docs/operations/upgrades.md: a store whose schema is newer than the custody reading it
    is refused ("upgrade custody"), by ``init`` as by every command (``init`` said
    "initialised", exited 0 and wrote to the newer store)."""
    db = tmp_path / "custody.db"
    store = f"sqlite:///{db}"
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path, store=store))
    with sqlite3.connect(db) as c:
        c.execute("UPDATE custody_schema SET version = version + 1")
    before = _dump(db)
    status = custody("status", cwd=tmp_path, store=store)
    assert status.code == 6
    assert "upgrade custody" in error_line(status)

    run = custody("init", cwd=tmp_path, store=store)
    assert (run.code, run.err.strip()) != (0, ""), f"init accepted a newer store: {run.out!r}"
    assert run.code == 6
    assert "upgrade custody" in error_line(run)
    assert _dump(db) == before


def test_an_unreachable_postgresql_is_one_readable_line_whatever_the_password(
    tmp_path: Path,
) -> None:
    """``ledger._stores.connections.store_failure`` hides the password where it stands alone in
    the driver's message: replacing every occurrence, a password ``o`` made the line read
    "c***nnecti***n failed: ... C***nnecti***n refused" (and showed where its letters were)."""
    run = custody("--store", "postgresql://u:o@127.0.0.1:1/x", "status", cwd=tmp_path)
    line = error_line(run)
    assert run.code == 6, line
    assert "Connection refused" in line, line


def test_init_of_an_older_custody_does_not_rebuild_a_newer_stores_read_models(
    tmp_path: Path,
) -> None:
    """A newer custody's timeline table (here: one more column) on a store of a newer schema
    is left as it is: this custody's ``init`` answered ``rebuilt: timeline``, swapped in its
    own, older layout, dropping the newer column and its values, and exited 0."""
    db = tmp_path / "custody.db"
    store = f"sqlite:///{db}"
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path, store=store))
    ok(custody("timeline", "p1", cwd=tmp_path, store=store))  # the timeline table is made
    with sqlite3.connect(db) as c:
        c.execute("UPDATE custody_schema SET version = version + 1")
        c.execute("ALTER TABLE custody_timeline ADD COLUMN newer TEXT")
        c.execute("UPDATE custody_timeline SET newer = 'kept'")

    run = custody("--json", "init", cwd=tmp_path, store=store)

    with sqlite3.connect(db) as c:
        columns = [r[1] for r in c.execute("PRAGMA table_info(custody_timeline)")]
    assert "newer" in columns, f"init (exit {run.code}) rebuilt the newer table: {run.out!r}"


@pytest.mark.parametrize(
    "url",
    [
        b"sqlite:///x.db?timeout=\xff",
        b"postgresql://u:p\xe4ss@127.0.0.1:1/db",
        b"postgresql://u@h\xff/db",
        b"postgresql://u@127.0.0.1:1/d\xe4",
    ],
    ids=["sqlite-option", "password", "host", "database"],
)
def test_bytes_that_are_not_utf8_in_a_store_url_are_bad_input(tmp_path: Path, url: bytes) -> None:
    """rev24: a store URL given (a Latin-1 terminal's argument) with a byte that is not UTF-8
    in an option, the user, the password, the host or the database was an internal error
    (UnicodeEncodeError, exit 1). It is bad input naming the store, never quoting the bytes (a
    password's); a SQLite file's name may hold them (a file of those bytes)."""
    import subprocess
    import sys

    argv = [sys.executable.encode(), b"-m", b"custody", b"--store", url, b"status"]
    run = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60, check=False)
    err = run.stderr.decode("utf-8", "replace")
    assert (run.returncode, err) == (
        2,
        "custody: invalid store: holds bytes that are not UTF-8 outside a SQLite file's name (a "
        "user, a password, a host, a database or an option): give them in UTF-8\n",
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "listen",
    ["shop..example.com:8420", f"{'a' * 64}.example:8420", "127.0.0.1:\u00b2", "127.0.0.1:-1"],
    ids=["empty-label", "long-label", "superscript-port", "negative-port"],
)
def test_serve_on_an_address_no_host_can_have_is_bad_input(tmp_path: Path, listen: str) -> None:
    """rev24: ``custody serve --listen`` with a host no name can be (an empty label, a label
    over 63 characters) or a port of digits int() refuses (``²``) was an internal error
    (UnicodeError, ValueError), exit 1, where cli.md promises exit 2 naming the address."""
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path))
    run = custody("serve", "--listen", listen, cwd=tmp_path)
    assert run.code == 2, run.err
    assert error_line(run).startswith("custody: invalid listen: "), run.err


@pytest.mark.parametrize(
    ("given", "named"),
    [("300.1.1.1", "300.1.1.1"), ("10.0.0.5,,", ""), ("10.0.0.0/33", "10.0.0.0/33"),
     ("10.0.0.1/8", "10.0.0.1/8"), (" ", ""), ("[::1]", "[::1]")],
)  # fmt: skip
@pytest.mark.parametrize("through", ["option", "environment"])
def test_serve_trusting_a_proxy_no_address_can_be_is_bad_input(
    tmp_path: Path, given: str, named: str, through: str
) -> None:
    """rev47 review: ``--forwarded-allow-ips`` took any text, and the service started; uvicorn
    takes an entry that is no address or network for a Unix socket's name, which a service on
    TCP never sees, so a mistyped proxy's X-Forwarded-Proto went silently unbelieved. Refused,
    exit 2, naming the entry and where it came from; ``*`` and well-formed lists still start."""
    ok(custody("register", "p1", "--account", "a", "--proxy", "x", cwd=tmp_path))
    if through == "option":
        run = custody(
            "serve", "--listen", "127.0.0.1:0", "--forwarded-allow-ips", given, cwd=tmp_path
        )
        field = "forwarded_allow_ips"
    else:
        run = custody(
            "serve", "--listen", "127.0.0.1:0", cwd=tmp_path, env={"FORWARDED_ALLOW_IPS": given}
        )
        field = "FORWARDED_ALLOW_IPS"
    assert run.code == 2, run.err
    assert error_line(run).startswith(f"custody: invalid {field}: {named!r} is not"), run.err
