"""A store URL that names no store is bad input naming the store; a store's failure is one line
that never shows its password (``ledger._stores.settings``, ``ledger._stores.connections``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

from ledger import Forbidden, InvalidInput, LedgerError, StoreUnavailable
from ledger._stores.connections import store_errors, store_failure
from ledger._stores.settings import StoreSettings, _redacted


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://u:pw@[::1/db", "malformed URL (an unbalanced '[' or ']'"),
        ("postgresql://u@[zz]:1/db", "or a bracketed host that is no IPv6 address"),
        ("sqlite:////", "names a directory"),
        # rev29: taken as the relative path tmp/a.db, a second store beside the first
        ("sqlite:/tmp/a.db", "has one '/' after 'sqlite:': write an absolute path with four"),
        ("sqlite:///data/", "names a directory"),
        ("sqlite:///data/..", "names a directory"),
        ("sqlite:///a%00b.db", "a NUL byte in the path"),
        ("sqlite:///a.db?sslmode=require", "unknown option 'sslmode'"),
        ("postgresql://u:pw@h/db?sslmode=verify_full", "sslmode must be one of disable, allow"),
        ("postgresql://u:pw@h/db?sslmode=", "sslmode must be one of"),
        ("postgresql://u:pw@h/db?sslrootcert=", "sslrootcert must name a file, got ''"),
        ("postgresql://u:pw@h/db?sslkey=a%00b", "sslkey must name a file"),
        # rev38: libpq took each up to the NUL, and store1%00prod opened store1
        ("postgresql://u:pw@h/store1%00prod", "a NUL byte (%00) in the database of"),
        ("postgresql://u%00x:pw@h/db", "a NUL byte (%00) in the user of"),
        ("postgresql://u:p%00w@h/db", "a NUL byte (%00) in the password of"),
        ("postgresql://u:pw@h\x00x/db", "a NUL byte (%00) in the host of"),
        # rev38: an internal error (UnicodeError from the IDNA codec) at the first connection
        ("postgresql://u:pw@db..example:5432/db", "the host db..example of"),
        ("postgresql://u:pw@.example/db", "is no host name: a part between dots is empty"),
        (f"postgresql://u:pw@{'a' * 64}.example/db", "or longer than 63 characters"),
        ("postgresql://u:pw@h/db?sslpassword=pw", "unknown option 'sslpassword'"),
        # The file fleet, not fleet#2.db; and fleet#3.db was the same store.
        ("sqlite:///data/fleet#2.db", "a '#' ends a URL"),
        ("sqlite:///data/fleet.db#", "a '#' ends a URL"),
        ("postgresql://u:p#w@h/db", "a '#' ends a URL"),
        # rev31: the file "fleet.db " beside fleet.db, a second store
        ("sqlite:///data/fleet.db ", "ends with a space, a control or an invisible character"),
        ("sqlite:///data/fleet.db\n", "ends with a space, a control or an invisible character"),
        ("postgresql://u:pw@h/db\u00a0", "ends with a space, a control or an invisible"),
        # rev31 reread2: a DEL and a zero-width space made second stores too
        ("sqlite:///data/fleet.db\x7f", "ends with a space, a control or an invisible"),
        ("sqlite:///data/fleet.db\u200b", "ends with a space, a control or an invisible"),
        # rev48: taken, and the first command raised a raw UnicodeEncodeError
        ("sqlite:////tmp/x_\ud800.db", "a character UTF-8 cannot encode (a lone surrogate)"),
        ("postgresql://u:pw\udfff@h/db", "a character UTF-8 cannot encode (a lone surrogate)"),
    ],
)
def test_a_url_naming_no_store_is_invalid_input_naming_why(url: str, said: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        StoreSettings.from_url(url)
    assert refused.value.field == "store"
    assert said in str(refused.value)
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize(
    "host", ["db.example.", f"{'a' * 63}.example", "m\u00fcller.example", "[::1]", "127.0.0.1"]
)
def test_a_host_name_the_idna_codec_takes_is_taken(host: str) -> None:
    """The check of a host's labels (rev38) refuses no name a connection can look up: a
    trailing dot, a 63-character label, a name outside ASCII, an address."""
    settings = StoreSettings.from_url(f"postgresql://u@{host}:5432/db")
    assert settings.host == host.strip("[]")


@pytest.mark.parametrize(
    ("url", "quoted"),
    [
        ("sqlite:////tmp/a.db?bogus=1", "'sqlite:////tmp/a.db?bogus=***'"),
        ("sqlite:///rel.db?bogus=1", "'sqlite:///rel.db?bogus=***'"),
        ("postgresql://u:pw@h/db?bogus=1", "'postgresql://u:***@h/db?bogus=***'"),
    ],
)
def test_a_refused_url_is_quoted_as_the_same_store(url: str, quoted: str) -> None:
    """rev20: the refusal quoted ``sqlite:////tmp/a.db`` as ``sqlite://tmp/a.db`` and
    ``sqlite:///rel.db`` as ``sqlite:/rel.db``, other paths (an empty authority was
    dropped); only a password and an unknown option's value are hidden."""
    with pytest.raises(InvalidInput) as refused:
        StoreSettings.from_url(url)
    assert f"unknown option 'bogus' in {quoted}" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("plain.db", "unsupported scheme in 'plain.db'"),
        ("sqlite:rel.db", "expected sqlite:///path/to/file.db, got 'sqlite:rel.db'"),
        ("mysql://db", "unsupported scheme in 'mysql://db'"),
    ],
)
def test_a_url_with_nothing_to_hide_is_quoted_as_typed(url: str, said: str) -> None:
    """rev22: ``--store plain.db`` was quoted as '://plain.db' and ``sqlite:rel.db`` as
    'sqlite://rel.db': text the user never typed. Without a password or options to hide, the
    refusal quotes the URL as given."""
    with pytest.raises(InvalidInput) as refused:
        StoreSettings.from_url(url)
    assert said in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://custody:Xk3/9QpZ@db.example:5432/custody",
        "postgresql://custody:Xk3?9QpZ@db.example:5432/custody",
        "postgresql://custody:Xk3/9QpZ@db.example:x/custody",
        "postgresql://custody:Xk3/9QpZ",
        "postgresql:custody:Xk3/9QpZ@db.example/custody",
        "postgresql://cu/stody:Xk3/9QpZ@db.example:x/custody",
        "postgresql://u@db.example/custody?sslrootcert=/a@b&bogus=Xk3",
        "postgres://custody:Xk3@9QpZ@db.example:x/custody",
        "mysql://custody:Xk3/9QpZ@db.example/custody",
        # rev29 (docs-pg): libpq's key=value form was quoted whole, "unsupported scheme in"
        "host=db.example user=custody password=Xk3/9QpZ dbname=custody",
        "hostaddr=::1 password=Xk3/9QpZ",
    ],
)
def test_no_refusal_shows_a_password_whatever_the_url_s_shape(url: str) -> None:
    """rev29: a password holding an unencoded '/' or '?' ends the authority early as urlsplit
    reads it, and the refusal quoted it whole ("malformed port in 'postgresql://custody:Xk3/
    9QpZ@...'") or as an unknown option's name ('9QpZ@db.example:5432/custody')."""
    with pytest.raises(InvalidInput) as refused:
        StoreSettings.from_url(url)
    said = str(refused.value)
    assert "Xk3" not in said
    assert "9QpZ" not in said


@pytest.mark.parametrize(
    ("url", "quoted"),
    [
        ("postgresql://custody:Xk3/9QpZ@h:5432/db", "'postgresql://custody:***@h:5432/db'"),
        ("postgresql://custody:Xk3?9QpZ@h/db", "'postgresql://***@***'"),  # options' or not
        ("postgresql://cu/st:Xk3@h/db?x=1", "'postgresql://***@h/db?x=***'"),
        ("postgresql://u@h/db?sslrootcert=/a@b&x=Xk3", "'postgresql://***@***'"),
        ("sqlite:///a@b.db", "'sqlite:///a@b.db'"),
    ],
)
def test_a_quoted_url_hides_all_before_its_last_at(url: str, quoted: str) -> None:
    """What an error quotes of a URL hides everything between its '//' and its last '@' but a
    user that cannot be a password's (and a SQLite file's '@' is its name's)."""
    assert _redacted(url) == quoted


def test_a_password_holding_a_slash_is_refused_saying_how_to_write_it() -> None:
    """The line says what to do: a '/', '?' or '@' in a password is written percent-encoded."""
    with pytest.raises(InvalidInput) as refused:
        StoreSettings.from_url("postgresql://custody:Xk3/9QpZ@db.example:5432/custody")
    assert "write a '/', '?' or '@' in a password as %2F, %3F or %40" in str(refused.value)


@pytest.mark.parametrize(
    ("url", "secret", "said"),
    [
        # rev29 reread: an '@' before the '/' was taken as the password's end: "ab" went to a
        # host named "cd", and every failure quoted the rest as the database.
        ("postgresql://custody:ab@cd/Zq9x@127.0.0.1:1/custody", "Zq9x", "%2F, %3F or %40"),
        ("postgresql://custody:Xk3@9/QpZ@db.example/custody", "QpZ", "%2F, %3F or %40"),
        # Python's own words quoted the bracketed part: '9QpZ' does not appear to be an ...
        ("postgresql://custody:Xk3[9QpZ]@db.example/custody", "9QpZ", "%5B or %5D"),
    ],
)
def test_a_password_of_any_shape_is_refused_without_a_word_of_it(
    url: str, secret: str, said: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        StoreSettings.from_url(url)
    assert secret not in str(refused.value)
    assert said in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@h/db?sslrootcert=/etc/ssl/x@y.pem",  # a file's '@', in an option
        "postgresql://u:p%40q%2Fr@h:5/db",
        "sqlite:////tmp/a@b.db",
        "postgresql://u@[::1]:5432/db",
    ],
)
def test_an_at_where_it_cannot_be_a_password_s_is_taken(url: str) -> None:
    StoreSettings.from_url(url)


@pytest.mark.parametrize(
    ("password", "driver_said", "shown"),
    [
        (
            "o",
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
            'connection to server at "127.0.0.1", port 1 failed: Connection refused',
        ),
        ("s3cret!", "password s3cret! was refused", "password *** was refused"),
        ("s3cret", 'FATAL: password="s3cret" rejected', 'FATAL: password="***" rejected'),
        ("a.b", "user axb: a.b refused", "user axb: *** refused"),
    ],
)
def test_a_store_s_failure_hides_its_password_and_nothing_else(
    password: str, driver_said: str, shown: str
) -> None:
    settings = StoreSettings.from_url(f"postgresql://u:{password}@127.0.0.1:1/x")
    failure = store_failure(settings, OSError(driver_said))
    assert str(failure).endswith(f"unavailable: {shown}")


def test_a_statement_timeout_is_named_as_the_server_s_setting_not_a_lock_wait() -> None:
    """rev29: a role's statement_timeout (1 ms) cut every statement short and the line said
    "busy ... (waited 5 s; nothing was written, retry)" after 0.27 s; a retry failed the same
    way. It names the setting, and is not busy; a lock timeout still is."""
    settings = StoreSettings.from_url("postgresql://u@127.0.0.1:1/x")
    said = "canceling statement due to statement timeout"
    failure = store_failure(settings, OSError(said))
    assert not failure.busy
    assert f"unavailable: {said} (the server's statement_timeout, set for this login" in str(
        failure
    )
    assert "waited" not in str(failure)
    assert store_failure(settings, OSError("canceling statement due to lock timeout")).busy


def test_a_lock_timeout_in_another_language_is_busy() -> None:
    """A server whose lc_messages is not English says a lock timeout in its own words: it is
    told by its SQLSTATE (55P03), busy with "retry", as in English (a review found it said
    "unavailable")."""
    settings = StoreSettings.from_url("postgresql://u@127.0.0.1:1/x")
    said = "Anweisung wird abgebrochen wegen Zeitüberschreitung einer Sperre"
    failure = store_failure(settings, psycopg.errors.LockNotAvailable(said))
    assert failure.busy
    assert str(failure).endswith(f"busy: {said} (waited 5 s; nothing was written, retry)")
    other = store_failure(settings, psycopg.errors.UndefinedTable("Relation existiert nicht"))
    assert not other.busy


def test_a_store_s_settings_never_show_their_password() -> None:
    """A parsed URL's repr and str (a log line, a traceback's locals, an f-string) held the
    password (``password='Zpw9'``); the field is kept and used, never shown."""
    settings = StoreSettings.from_url("postgresql://u:Zpw9@h/db")
    assert settings.password == "Zpw9"
    assert "Zpw9" not in repr(settings)
    assert "Zpw9" not in str(settings)


def test_a_postgresql_url_s_tls_parameters_reach_every_session_s_libpq() -> None:
    """``?sslmode=...`` and its files, as libpq names them, for the pool (through the
    library's environment), direct connections and the pandas read path alike (each tested
    against a server that takes TLS only: tests/integration/test_store_tls.py)."""
    url = "postgresql://u@h/db?timeout=9&sslrootcert=/etc/ca%20x.pem&sslmode=require"
    settings = StoreSettings.from_url(url)
    assert settings.libpq_tls() == {"sslmode": "require", "sslrootcert": "/etc/ca x.pem"}
    assert settings.timeout == 9
    env = settings.environment(create_table=False)
    assert env["POSTGRES_TLS_PARAMETERS"] == "sslmode=require&sslrootcert=%2Fetc%2Fca+x.pem"
    assert StoreSettings.from_url("postgresql://u@h/db").libpq_tls() == {}
    assert (
        StoreSettings.from_url("postgresql://u@h/db").environment(create_table=False)[
            "POSTGRES_TLS_PARAMETERS"
        ]
        == ""
    )


@pytest.mark.parametrize(
    ("url", "option"),
    [
        ("sqlite:///r.db?timeout=1&timeout=4", "timeout"),
        ("sqlite:///r.db?timeout=4&timeout=4", "timeout"),
        ("sqlite:///r.db?timeout=4&time%6Fut=1", "timeout"),
        ("postgresql://u:pw@h/db?timeout=1&timeout=4", "timeout"),
        ("postgresql://u:pw@h/db?sslmode=verify-full&sslmode=disable", "sslmode"),
        ("postgresql://u:pw@h/db?sslrootcert=/a.pem&timeout=3&sslrootcert=/b.pem", "sslrootcert"),
        ("postgresql://u:pw@h/db?sslkey=&sslkey=/k.pem", "sslkey"),
    ],
)
def test_an_option_given_twice_in_a_store_url_is_refused_naming_it(url: str, option: str) -> None:
    """rev39: a repeated option was taken silently, the last one winning (a wait of 4 s for
    ``?timeout=1&timeout=4``, ``disable`` after ``verify-full``), where the lease service
    refuses a repeated query parameter: it is bad input naming the option, never the password."""
    with pytest.raises(InvalidInput) as refused:
        StoreSettings.resolve(url)
    assert refused.value.field == "store"
    said = str(refused.value)
    assert f"option {option!r} given more than once in " in said, said
    assert "pw" not in said


def test_each_option_given_once_is_taken() -> None:
    """Options given once each, in any order, are all taken: only a repeat is refused."""
    url = "postgresql://u@h/db?sslmode=require&timeout=7&sslcert=/c.pem&sslkey=/k.pem"
    settings = StoreSettings.resolve(url)
    assert settings.timeout == 7
    assert dict(settings.tls) == {"sslmode": "require", "sslcert": "/c.pem", "sslkey": "/k.pem"}
    assert StoreSettings.resolve("sqlite:///r.db?timeout=4").timeout == 4


@pytest.mark.parametrize("driver_said", ["disk I/O error", "database or disk is full"])
def test_sqlite_s_disk_trouble_says_how_much_room_is_left(
    tmp_path: Path, driver_said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With under 32 KiB free SQLite says only "disk I/O error" (it cannot grow its WAL index),
    for reads too (rev25 crash): the line names the room the store's file system has left, and
    says to make room only when there is next to none (rev26: "make room" with 79 GB free,
    where a limit on file sizes refused the write)."""
    import os
    import re

    from ledger._stores import connections

    settings = StoreSettings.from_url(f"sqlite:///{tmp_path / 'custody.db'}")
    said = str(store_failure(settings, sqlite3.OperationalError(driver_said)))  # this disk's
    found = re.search(r"unavailable: .* \(its file system has ([\d,]+) KiB free, so not", said)
    assert found is not None, said
    stat = os.statvfs(tmp_path)
    free = int(found[1].replace(",", "")) * 1024
    assert abs(free - stat.f_bavail * stat.f_frsize) < 64 * 1024 * 1024
    assert free >= connections.FULL_BELOW  # the case above: this test's disk has room

    class Full:  # what statvfs says of a disk with 12 KiB left
        f_bavail, f_frsize = 3, 4096

    monkeypatch.setattr(connections.os, "statvfs", lambda _: Full())
    said = str(store_failure(settings, sqlite3.OperationalError(driver_said)))
    assert said.endswith(f"{driver_said} (its file system has 12 KiB free: make room, then retry)")
    other = str(store_failure(settings, sqlite3.OperationalError("database is locked")))
    assert "free" not in other


@pytest.mark.parametrize(
    ("path", "described"),
    [
        ("up.db?timeout=1", "sqlite:///up.db%3Ftimeout=1"),
        ("fleet#2.db", "sqlite:///fleet%232.db"),
        ("a%41.db", "sqlite:///a%2541.db"),
        ("two\nlines.db", "sqlite:///two%0Alines.db"),
        ("ends in a space.db ", "sqlite:///ends in a space.db%20"),
        ("data/fleet.db", "sqlite:///data/fleet.db"),
        ("/abs/M\u00fcller store.db", "sqlite:////abs/M\u00fcller store.db"),
        # A name the OS was given as bytes (Python's surrogates, rev40): Latin-1's é is no
        # UTF-8, a URL names it %E9; UTF-8's ö, as an ASCII locale hands it over, is ö.
        (os.fsdecode(b"caf\xe9.db"), "sqlite:///caf%E9.db"),
        ("st\udcc3\udcb6re.db", "sqlite:///st\u00f6re.db"),
    ],
)
def test_a_sqlite_store_is_described_by_a_url_naming_the_same_file(
    path: str, described: str
) -> None:
    """rev38: ``init`` on ``sqlite:///up.db%3Ftimeout=1`` answered "initialised:
    sqlite:///up.db?timeout=1", which pasted back opens ``up.db`` (with a timeout of 1 s),
    another store. The description percent-encodes what a URL reads otherwise; an ordinary
    path (spaces, letters outside ASCII) is shown as typed; it is text, never a surrogate
    (rev40: the bytes a file was named by, which JSON could not carry). Given back, it names
    the same bytes."""
    settings = StoreSettings(kind="sqlite", path=path)
    assert settings.describe() == described
    assert os.fsencode(StoreSettings.from_url(described).path) == os.fsencode(path)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.SerializationFailure(
            "konnte Zugriff nicht serialisieren wegen Lese/Schreib-Abhängigkeiten"
        ),
        psycopg.errors.DeadlockDetected("Verklemmung (Deadlock) entdeckt"),
    ],
)
def test_a_transaction_that_lost_to_a_concurrent_one_is_busy(error: Exception) -> None:
    """A serialization failure (a database's default_transaction_isolation serializable, or a
    session custody did not set) or a deadlock rolled back with nothing written: busy, retry,
    told by its SQLSTATE in any language (rev39: "unavailable", and a worker's release lost)."""
    settings = StoreSettings.from_url("postgresql://u@127.0.0.1:1/x")
    failure = store_failure(settings, error)
    assert failure.busy
    assert str(failure).endswith("conflicted; nothing was written, retry)")


def test_a_statement_timeout_in_another_language_names_the_setting() -> None:
    """rev39: a German server's statement_timeout lost its hint (matched in English only)."""
    settings = StoreSettings.from_url("postgresql://u@127.0.0.1:1/x")
    said = "storniere Anfrage wegen Zeitüberschreitung der Anweisung"
    failure = store_failure(settings, psycopg.errors.QueryCanceled(said))
    assert not failure.busy
    assert f"unavailable: {said} (the server cancelled it: a statement_timeout" in str(failure)
    assert "or an administrator's cancel" in str(failure)  # the code says no more than that


def test_a_german_server_s_missing_table_and_missing_role_are_told_by_their_codes() -> None:
    """A German lc_messages quotes names »so«: a dropped availability table was exit 6 (store
    unavailable) instead of "damaged ... custody init", and a login holding no custody role
    lost its hint (rev39: matched inside ASCII double quotes, in English)."""
    settings = StoreSettings.from_url("postgresql://u@127.0.0.1:1/x")
    missing = psycopg.errors.UndefinedTable("Relation »custody_availability« existiert nicht")
    with (
        pytest.raises(LedgerError, match="is damaged: its table custody_availability"),
        store_errors(settings),
    ):
        raise missing
    other = psycopg.errors.UndefinedTable("Relation »custody_availability_old« existiert nicht")
    with pytest.raises(StoreUnavailable), store_errors(settings):
        raise other
    refused = psycopg.errors.InsufficientPrivilege("keine Berechtigung für Tabelle custody_schema")
    with pytest.raises(Forbidden, match="login u holds no custody role"), store_errors(settings):
        raise refused


@pytest.mark.parametrize("how", ["open", "init", "anchored_url"])
@pytest.mark.parametrize("given", ["path", "bytes", 5, "surrogate"])
def test_a_store_url_that_is_no_url_text_is_refused_before_anything_is_made(
    tmp_path: Path, how: str, given: object
) -> None:
    """rev48: ``Ledger.open`` (and ``init``, ``anchored_url``) given a ``Path``, bytes or a
    number raised AttributeError, and a URL holding a lone surrogate was taken and the first
    command raised a raw UnicodeEncodeError. Each is one ``InvalidInput`` naming the store,
    at once, and no file is made; a file's name in undecodable bytes (``\udcfc``, what a
    Latin-1 terminal's argument brings) is still a file's name."""
    from ledger import Ledger

    file = tmp_path / "fleet.db"
    url = {
        "path": file,
        "bytes": f"sqlite:///{file}".encode(),
        "surrogate": f"sqlite:///{tmp_path}/fleet_\ud800.db",
    }.get(given, given)  # type: ignore[call-overload]
    with pytest.raises(InvalidInput) as refused:
        getattr(Ledger, how)(url)
    assert refused.value.field == "store"
    said = "a lone surrogate" if given == "surrogate" else "must be a URL as a str"
    assert said in str(refused.value)
    assert list(tmp_path.iterdir()) == []
    latin1 = Ledger.anchored_url(f"sqlite:///{tmp_path}/fleet_\udcfc.db")
    assert latin1 == f"sqlite:///{tmp_path}/fleet_%FC.db"
