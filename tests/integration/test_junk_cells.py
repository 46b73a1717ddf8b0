"""Cells an SQLite store keeps whatever a hand writes into them (the append-only triggers
refuse only UPDATE and DELETE of events): verify names the row (exit 5), digest refuses
naming it (exit 5), never an internal error."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from audit_scene import custody
from raw_log import RawLog

from ledger import Ledger
from ledger._domain.chain import split


@pytest.fixture
def sqlite_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    assert custody(url, "register", "p1", "--account", "a1", "--proxy", "x1").code == 0
    assert custody(url, "register", "p2", "--account", "a2", "--proxy", "x2").code == 0
    return url


def _sql(url: str, statement: str) -> None:
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn, conn:
        conn.execute(statement)


@pytest.mark.parametrize("stream", ["NULL", "'not-a-stream'", "1.5", "X'ff00'"])
def test_a_row_under_no_stream_id_is_named_not_a_crash(
    sqlite_store: str, tmp_path: Path, stream: str
) -> None:
    """A row whose originator_id is no uuid: verify (also against a digest) names its
    position, digest refuses naming it, and why's "custody verify names it" holds."""
    assert custody(sqlite_store, "digest", "--out", tmp_path / "d1.json").code == 0
    _sql(
        sqlite_store,
        "INSERT INTO stored_events(originator_id, originator_version, topic, state) "
        f"VALUES ({stream}, 1, 'profile_registered', CAST('{{}}' AS BLOB))",
    )
    named = "holds bytes at position 3 that are not an event custody stored"
    for args in (("verify",), ("verify", "--digest", tmp_path / "d1.json")):
        said = custody(sqlite_store, *args)
        assert (said.code, "internal error" in said.err) == (5, False), said
        assert named in said.out
    said = custody(
        sqlite_store, "digest", "--out", tmp_path / "d2.json", "--previous", tmp_path / "d1.json"
    )
    assert (said.code, named in said.err) == (5, True), said
    assert not (tmp_path / "d2.json").exists()


@pytest.mark.parametrize("version", ["'abc'", "'2.5'", "X'01'"])
def test_a_chain_origin_row_custody_never_writes_is_named(sqlite_store: str, version: str) -> None:
    """A custody_chain_origins row whose version is not an integer (2.5 was read as 2):
    verify names the profile and the cell, digest refuses naming it."""
    _sql(sqlite_store, f"INSERT INTO custody_chain_origins VALUES ('p1', {version}, 'zz', 1)")
    said = custody(sqlite_store, "verify")
    assert said.code == 5, said
    assert "p1: its chain's origin row holds version" in said.out
    said = custody(sqlite_store, "digest")
    assert (said.code, "p1: its chain's origin row holds version" in said.err) == (5, True), said


def test_an_event_without_a_type_is_the_unreadable_event_not_a_crash(sqlite_store: str) -> None:
    """p1's next event stored with a NULL topic: verify names p1 v2; why, checkout, rebuild
    and projections status answer with the one-line unreadable event (exit 1), never an
    internal error."""
    _sql(
        sqlite_store,
        "INSERT INTO stored_events(originator_id, originator_version, topic, state) "
        "SELECT originator_id, 2, NULL, CAST('{}' AS BLOB) FROM stored_events WHERE rowid = 1",
    )
    said = custody(sqlite_store, "verify")
    assert said.code == 5, said
    assert (
        "p1 v2: holds bytes at position 3 that are not an event custody stored "
        "(it has no event type)"
    ) in said.out
    for args in (
        ("why", "p1"),
        ("checkout", "p1", "--worker", "w", "--run", "r", "--task", "t"),
        ("rebuild",),
        ("projections", "status"),
    ):
        said = custody(sqlite_store, *args)
        assert (said.code, "internal error" in said.err) == (1, False), (args, said)
        assert "custody verify names" in said.err, (args, said)
    assert "the event None v2 cannot be read" in custody(sqlite_store, "why", "p1").err


def _checked_out_on_a_copy(url: str, copy: Path) -> tuple[str, int, str, bytes]:
    """p1's checkout as custody stores it (stream id, version, type, state), made on a copy of
    the store: what a login that may append could insert into the store itself."""
    with (
        closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn,
        closing(sqlite3.connect(copy)) as there,
    ):
        conn.backup(there)
    said = custody(f"sqlite:///{copy}", "checkout", "p1", "--worker", "w", "--run", "r",
                   "--task", "t")  # fmt: skip
    assert said.code == 0, said
    with closing(sqlite3.connect(copy)) as there:
        row = there.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events "
            "ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
    return str(row[0]), int(row[1]), str(row[2]), bytes(row[3])


@pytest.mark.parametrize(
    ("cell", "named"),
    [
        ("state", "its state as text, where custody stores a blob"),
        ("stream", "its stream id as a blob, where custody stores text"),
        ("topic", "its event type as a blob, where custody stores text"),
    ],
)
def test_an_event_stored_in_a_cell_of_another_kind_is_named_and_read_as_unreadable(
    sqlite_store: str, tmp_path: Path, cell: str, named: str
) -> None:
    """p1's checkout, as custody stores it, appended by a plain INSERT (no trigger dropped)
    with its state as text, or its stream id or type as a blob: verify walked it as custody's
    own (exit 0, and digest signed it) while every read that met it failed, timeline and the
    read models as an internal error (rev38). verify (with a digest too) names p1 v2, digest
    refuses, and the reads answer with the one-line unreadable event."""
    assert custody(sqlite_store, "digest", "--out", tmp_path / "d1.json").code == 0
    stream, version, topic, state = _checked_out_on_a_copy(sqlite_store, tmp_path / "copy.db")
    cells: tuple[object, ...] = {
        "state": (stream, version, topic, state.decode()),
        "stream": (stream.encode(), version, topic, state),
        "topic": (stream, version, topic.encode(), state),
    }[cell]
    with closing(sqlite3.connect(sqlite_store.removeprefix("sqlite:///"))) as conn, conn:
        conn.execute("INSERT INTO stored_events VALUES (?, ?, ?, ?)", cells)
    line = f"p1 v2: is stored at position 3 with {named}: no read takes it"
    for args in (("verify",), ("verify", "--digest", tmp_path / "d1.json")):
        said = custody(sqlite_store, *args)
        assert said.code == 5, said
        assert [x for x in said.lines() if x.startswith(line)] == said.lines(), said.out
    said = custody(sqlite_store, "digest", "--out", tmp_path / "d2.json")
    assert (said.code, line in said.err) == (5, True), said
    for args in (("timeline",), ("projections", "run", "--rounds", "1"), ("why", "p1")):
        said = custody(sqlite_store, *args)
        assert (said.code, "internal error" in said.err) == (1, False), (args, said)
        assert "cannot be read" in said.err, (args, said)
        assert said.err.rstrip().endswith("custody verify names it"), (args, said)


def test_two_profiles_registered_on_one_directory_are_named(tmp_path: Path) -> None:
    """pd1's recorded directory moved aside by hand, pd9 registered on it (accepted: the
    table no longer says it is pd1's), the row put back: verify names pd9's registration and
    pd1, exit 5; before the edit the store verifies."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    register = ("--account", "a", "--proxy", "x", "--user-data-dir")
    assert custody(url, "register", "pd1", *register, "/srv/profiles/pd1").code == 0
    assert custody(url, "register", "pd2", *register, "/srv/profiles/pd2").code == 0
    assert custody(url, "verify").code == 0
    _sql(url, "UPDATE custody_directories SET user_data_dir = '/x' WHERE profile_id = 'pd1'")
    assert custody(url, "register", "pd9", *register, "/srv/profiles/pd1/").code == 0
    _sql(url, "UPDATE custody_directories SET user_data_dir = '/srv/profiles/pd1' "
              "WHERE profile_id = 'pd1'")  # fmt: skip
    said = custody(url, "verify")
    assert said.code == 5, said
    assert said.out.splitlines()[1:] == [
        "  pd9 v1: registers the directory /srv/profiles/pd1, which is pd1's "
        "(/srv/profiles/pd1): two profiles on one directory, which custody refuses (its table "
        "of directories was edited)"
    ], said


def test_a_store_older_than_the_rule_keeps_its_shared_directories_unnamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registrations sharing a directory from before custody compared them (a schema 4 store,
    migrated by init) are the store's own history: verify does not name them."""
    from ledger._stores import store as store_module

    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(store_module, "claimed_directories", lambda profile: [])
        for profile in ("p_first", "p_second"):
            said = custody(url, "register", profile, "--account", "a", "--proxy", "x",
                           "--user-data-dir", "/srv/shared")  # fmt: skip
            assert said.code == 0, said
    log = RawLog(url)
    for row in log.rows():  # a schema 4 store's events carry no links (rev31: verify names
        log.set_state(row.position, split(row.state)[0])  # an origin row they contradict)
    _sql(url, "DROP TABLE custody_directories")
    _sql(url, "DROP TABLE custody_chain_origins")
    _sql(url, "UPDATE custody_schema SET version = 4")
    assert custody(url, "init").code == 0
    said = custody(url, "verify")
    assert said.code == 0, said
