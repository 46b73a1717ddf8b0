"""The one-round-trip PostgreSQL append (``ledger._stores.postgres._append``) keeps what
psycopg's path kept: a committed append is answered as such, every database encoding takes
commands, prepared statements stay bounded, a text is written exactly or refused."""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.sql
import pytest
from conftest import register
from pg_cluster import database_url, drop_database

from ledger import Checkout, Heartbeat, InvalidInput, Ledger
from ledger._domain.profile import Profile
from ledger._stores.postgres import PREPARED_AT_MOST
from projections import timeline


@pytest.fixture
def opened(pg_url: str) -> Iterator[Ledger]:
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        yield ledger


def _versions(ledger: Ledger, profile_id: str) -> list[int]:
    recorder = ledger.store.app.recorder
    return [e.originator_version for e in recorder.select_events(Profile.create_id(profile_id))]


def test_a_connection_lost_after_the_append_committed_does_not_fail_the_command(
    opened: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies after the append's COMMIT (here the wake-up behind it ends its
    own session a moment later, as a server restart or a network cut right after the commit
    would; the pause lets COMMIT's result reach the client first): the
    append is committed, so the command succeeded and must say so (psycopg's pipelined path
    raises only if COMMIT has no result). Reporting StoreUnavailable for a committed append
    makes a caller resend a command that was applied."""
    recorder = opened.store.app.recorder
    pid = register(opened)
    checkout = Checkout(profile_id=pid, worker_id="w1", run_id="r", task_type="t")
    lease = opened.handle(checkout)
    before = _versions(opened, pid)[-1]
    monkeypatch.setattr(
        recorder, "_notify_sql", b"SELECT pg_sleep(0.3), pg_terminate_backend(pg_backend_pid())"
    )
    opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    monkeypatch.undo()
    assert _versions(opened, pid)[-1] == before + 1
    # and the dead connection is not lent again: the next heartbeat goes through
    opened.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
    assert _versions(opened, pid)[-1] == before + 2


@pytest.fixture
def latin1_url(pg_cluster: Any) -> Iterator[str]:
    """A fresh database whose encoding is LATIN1 (so is its sessions' client encoding)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(
            psycopg.sql.SQL(
                "CREATE DATABASE {} TEMPLATE template0 ENCODING 'LATIN1' "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            ).format(psycopg.sql.Identifier(name))
        )
    try:
        yield database_url(pg_cluster.admin_url, name)
    finally:
        drop_database(pg_cluster.admin_url, name)


def test_a_latin1_database_is_refused_before_anything_is_written(latin1_url: str) -> None:
    """review12: a store on a LATIN1 database took a heartbeat whose URL held an emoji (the
    event is bytes), then every read that caught the read models up failed, for good, on a
    text column that cannot hold it; a registration naming an account with a euro sign was an
    internal error. ``init`` and every command refuse such a database in one line naming its
    encoding (bad input: exit 2), and write nothing."""
    for run in (lambda: Ledger.init(latin1_url), lambda: Ledger.open(latin1_url).availability()):
        with pytest.raises(InvalidInput, match=r"is a LATIN1 database; .* needs a UTF8 one"):
            run()
    with psycopg.connect(latin1_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        assert tables.fetchone() == (0,)


def test_a_client_encoding_in_the_environment_changes_nothing(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With PGCLIENTENCODING=LATIN1 in the environment (libpq reads it for every session), an
    emoji in a URL was an internal error (psycopg encodes parameters in the session's
    encoding). Every session a store opens speaks UTF8: the text is taken and read back."""
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    Ledger.init(pg_url).close()
    url = "https://shop.example/\U0001f600/\u20ac"
    with Ledger.open(pg_url) as ledger:
        pid = register(ledger, region="S\u00e3o Paulo \u20ac")
        checkout = Checkout(profile_id=pid, worker_id="w\u00f6rker", run_id="r", task_type="t")
        lease = ledger.handle(checkout)
        ledger.handle(
            Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, url=url)
        )
        (row,) = ledger.availability()
        assert (row.region, row.holder_worker) == ("S\u00e3o Paulo \u20ac", "w\u00f6rker")
        beats = [r.url for r in timeline(ledger, pid) if r.event_type == "lease_heartbeat"]
        assert beats == [url]


@pytest.mark.parametrize("where", ["database", "environment"])
def test_a_date_style_other_than_iso_changes_nothing(
    pg_url: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database (or role) set to another DateStyle, or PGDATESTYLE in the environment: the
    store's clock was read as a ``timestamptz``, which psycopg parses only in ISO, and every
    command failed as an internal error. The clock is read as a number: commands run and the
    store's time is the server's."""
    if where == "database":
        with psycopg.connect(pg_url, autocommit=True) as admin:
            name = admin.execute("SELECT current_database()").fetchone()
            assert name is not None
            alter = "ALTER DATABASE {} SET DateStyle = 'SQL, DMY'"
            admin.execute(psycopg.sql.SQL(alter).format(psycopg.sql.Identifier(name[0])))
    else:
        monkeypatch.setenv("PGDATESTYLE", "German")
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        shown = ledger.store.query("SHOW DateStyle")[0]
        assert "ISO" not in str(next(iter(shown.values()))), "the DateStyle was not set"
        pid = register(ledger)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token))
        (row,) = ledger.availability()
        assert row.holder_worker == "w"
        before = datetime.now(UTC)
        server = ledger.store.server_time()
        assert abs((server - before).total_seconds()) < 5, "the server runs on this host"
        assert server.tzinfo is not None


def test_the_prepared_appends_a_pooled_connection_keeps_are_bounded(opened: Ledger) -> None:
    """Group commit batches come in every size (``handle_together``, up to 500 commands),
    and each size and number of command ids is a shape of the append statement. On main the
    statement is prepared through psycopg, which keeps about ``prepared_max`` (100, one over
    between evictions) per connection and deallocates the least used; the one-round-trip
    append keeps at most ``PREPARED_AT_MOST`` shapes more (it prepared one per shape and never
    deallocated any: 201 on a connection after these batches, the server's memory for them
    growing with every new batch size for the life of the connection)."""
    profiles = [register(opened, f"p{n}") for n in range(32)]
    leases = {}
    for pid in profiles:
        checkout = Checkout(profile_id=pid, worker_id="w1", run_id="r", task_type="t")
        leases[pid] = opened.handle(checkout)
    for size in range(1, 33):
        for with_ids in range(size + 1):
            beats = [
                Heartbeat(
                    lease_id=leases[pid].lease_id,
                    fencing_token=leases[pid].fencing_token,
                    command_id=f"c-{size}-{with_ids}-{n}" if n < with_ids else None,
                )
                for n, pid in enumerate(profiles[:size])
            ]
            answers = opened.handle_together(beats)
            assert not [a for a in answers if isinstance(a, Exception)]
    pool = opened.store.app.recorder.datastore.pool
    kept = []
    with contextlib.ExitStack() as held:  # every pooled connection, idle now
        for _ in range(pool.get_stats()["pool_size"]):
            conn = held.enter_context(pool.connection(timeout=1))
            row = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
            kept.append(row["n"])
    # psycopg's own (prepared_max, one over between evictions) and the appends' shapes.
    bound = 100 + 1 + PREPARED_AT_MOST
    assert max(kept) <= bound, f"prepared statements per pooled connection: {kept}"


def test_the_recorder_never_keeps_a_text_other_than_the_one_it_was_given(opened: Ledger) -> None:
    """libpq reads a text-format parameter as a C string, up to its first NUL: the
    one-round-trip append kept "eu" for a region "eu\\x00west" and said nothing. psycopg
    refuses a NUL in a text parameter (DataError, nothing written), so such an append goes
    its way. The door refuses NUL in what it accepts, so this is the recorder's own contract:
    it writes what it is given exactly, or refuses it."""
    from eventsourcing.persistence import PersistenceError

    pid = register(opened)
    recorder = opened.store.app.recorder
    last = list(recorder.select_events(Profile.create_id(pid)))[-1]
    row = opened.store.availability_row(pid)
    assert not isinstance(row, str)
    assert row is not None
    damaged = row.model_copy(update={"region": "eu\x00west", "version": row.version + 1})
    after = dataclasses.replace(last, originator_version=last.originator_version + 1)
    try:
        recorder.insert_events([after], availability=[damaged])
    except PersistenceError:
        assert _versions(opened, pid) == [last.originator_version]  # refused: nothing kept
        return
    kept = opened.store.availability_row(pid)
    assert not isinstance(kept, str)
    assert kept is not None
    assert kept.region == "eu\x00west", f"the row keeps {kept.region!r}"


def _lent_back(ledger: Ledger) -> list[str]:
    """How each pooled connection is when the pool lends it next: every one must be back in
    the pool (none still lent) and idle, outside any transaction."""
    pool = ledger.store.app.recorder.datastore.pool
    stats = pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"], stats
    states = []
    with contextlib.ExitStack() as held:
        for _ in range(stats["pool_size"]):
            conn = held.enter_context(pool.connection(timeout=1))
            states.append(conn.info.transaction_status.name)
    return states


def test_a_lent_connection_goes_back_idle_and_a_conflict_is_the_ledger_s(pg_url: str) -> None:
    """The append and a load's select borrow their connection from the pool themselves
    (``ledger._stores.postgres._Lent``), not through the library's ``get_connection``: the
    connection goes back to the pool, idle, after an append and after a failed one, and a
    version another writer took comes out as the library's ``IntegrityError``, which the
    ledger takes as a conflict and decides again (a psycopg error passed on untranslated is
    an internal error: the heartbeat fails)."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as first, Ledger.open(pg_url) as second:
        pid = register(first)
        checkout = Checkout(profile_id=pid, worker_id="w1", run_id="r", task_type="t")
        lease = first.handle(checkout)
        beat = Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token)
        second.handle(beat)  # ``second`` now holds the profile at this version
        first.handle(beat)  # and is behind: its next append takes a version already taken
        second.handle(beat)
        assert second.conflicts == 1
        assert _versions(second, pid) == list(range(1, 6))
        assert set(_lent_back(first)) == set(_lent_back(second)) == {"IDLE"}
