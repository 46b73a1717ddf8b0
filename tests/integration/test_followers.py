"""Followers of the log on PostgreSQL, where appends take no store-wide lock and commit out of
order (``ledger._stores.settled``): many writer processes with random pauses inside their
transactions, appends that roll back, followers and a read model catching up meanwhile; then
every event is counted: none missed, none read twice, on every run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from conftest import register

from ledger import Checkout, Heartbeat, Ledger, Release, StoreUnavailable
from ledger.feed import ReadModelBehind
from projections import (
    LEASES_READ_MODEL,
    TIMELINE_READ_MODEL,
    catch_up,
    read_model_status,
    rebuild,
)

PROCESS = Path(__file__).with_name("follower_process.py")
WRITERS = 6
BEATS = 30
# Every insert into the events table pauses up to 20 ms after its rows drew their positions,
# before its transaction commits: appends overlap, and later positions commit first.
_DAWDLE = (
    "CREATE FUNCTION custody_test_dawdle() RETURNS trigger LANGUAGE plpgsql AS $f$ "
    "BEGIN PERFORM pg_sleep(random() * 0.02); RETURN NULL; END $f$",
    "CREATE TRIGGER custody_test_dawdle AFTER INSERT ON custody_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION custody_test_dawdle()",
)


def _start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(PROCESS), *args], stderr=subprocess.PIPE)


def _finish(process: subprocess.Popen[bytes]) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()[-2000:]


def _positions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT notification_id FROM custody_events ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def test_followers_miss_and_repeat_no_event_while_appends_commit_out_of_order(
    pg_url: str, tmp_path: Path
) -> None:
    Ledger.init(pg_url).close()
    profiles = [f"p{n}" for n in range(WRITERS)]
    with Ledger.open(pg_url) as ledger:
        for pid in profiles:
            register(ledger, pid)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in _DAWDLE:
            conn.execute(statement)
    stop = tmp_path / "stop"
    outs = [tmp_path / f"follower{n}.json" for n in range(2)]
    followers = [_start("follow", pg_url, str(stop), str(out)) for out in outs]
    folder = _start("fold", pg_url, str(stop))
    writers = [_start("write", pg_url, pid, str(BEATS)) for pid in profiles]
    abandoner = _start("abandon", pg_url, "40")
    for process in [*writers, abandoner]:
        _finish(process)
    stop.touch()
    for process in [*followers, folder]:
        _finish(process)

    logged = _positions(pg_url)
    with Ledger.open(pg_url) as ledger:
        versions = [ledger.view(pid).version for pid in profiles]
    assert min(versions) > BEATS  # every writer got through
    assert len(logged) == sum(versions)
    assert logged[-1] > len(logged)  # the rolled-back appends left gaps
    for out in outs:
        read = json.loads(out.read_text())
        doubled = [p for p, n in Counter(read).items() if n > 1]
        missed = sorted(set(logged) - set(read))
        assert (missed, doubled) == ([], [])
        assert read == logged  # and in log order
    with Ledger.open(pg_url) as ledger:
        (status,) = read_model_status(ledger, [TIMELINE_READ_MODEL])
    assert status.problems == []
    assert (status.position, status.rows) == (logged[-1], len(logged))


def test_an_append_goes_on_beside_another_profiles_open_append_and_readers_wait_for_it(
    pg_url: str,
) -> None:
    """One append drew its position and has not committed: another profile's append commits
    at once (no store-wide lock), and a read of the log hands on neither until the first
    commits, then both, in order."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        register(ledger, "slow")
        register(ledger, "fast")
        lease = ledger.handle(Checkout(profile_id="fast", worker_id="w", run_id="r", task_type="t"))
        head = ledger.feed.head()
        with psycopg.connect(pg_url) as conn:
            conn.execute("SET lock_timeout = '1s'")
            conn.execute(
                "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                "SELECT originator_id, 99, 'held', '{}' FROM custody_events LIMIT 1"
            )  # drew head + 1 and holds it, uncommitted
            ledger.handle(
                Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step="s")
            )
            assert ledger.feed.head() == head + 2  # committed above the open append's position
            waited = threading.Timer(0.5, conn.commit)
            waited.start()
            found = ledger.feed.read(head, 10)
            waited.join()
        assert [e.position for e in found] == [head + 1, head + 2]
        assert [e.event_type for e in found] == ["held", "lease_heartbeat"]


@pytest.mark.parametrize("ends", ["commit", "rollback"])
def test_a_read_past_its_bound_hands_on_only_what_is_settled(pg_url: str, ends: str) -> None:
    Ledger.init(f"{pg_url}?timeout=1").close()
    with Ledger.open(f"{pg_url}?timeout=1") as ledger:
        register(ledger, "a")
        head = ledger.feed.head()
        with psycopg.connect(pg_url) as conn:
            conn.execute(
                "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                "SELECT originator_id, 99, 'held', '{}' FROM custody_events LIMIT 1"
            )
            register(ledger, "b")
            assert ledger.feed.read(head, 10) == []  # the gap at head + 1 may yet be filled
            conn.commit() if ends == "commit" else conn.rollback()
        found = [e.position for e in ledger.feed.read(head, 10)]
    assert found == ([head + 1, head + 2] if ends == "commit" else [head + 2])


def test_a_catch_up_waits_for_a_gap_whatever_the_servers_default_isolation(pg_url: str) -> None:
    """With the database's default at REPEATABLE READ, a read model's catch-up (its own
    transaction) waits for the append that holds a gap, reads again once it commits, and folds
    it: a second read in the first one's snapshot would pass the gap without it."""
    Ledger.init(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        assert name is not None
        conn.execute(
            f"ALTER DATABASE {name[0]} SET default_transaction_isolation = 'repeatable read'"
        )
        conn.execute(  # the registration of "slowpoke" holds its position a second, uncommitted
            "CREATE FUNCTION custody_test_slow() RETURNS trigger LANGUAGE plpgsql AS $f$ "
            "BEGIN PERFORM pg_sleep(1); RETURN NULL; END $f$"
        )
        conn.execute(
            "CREATE TRIGGER custody_test_slow AFTER INSERT ON custody_events FOR EACH ROW "
            "WHEN (position('slowpoke' in convert_from(NEW.state, 'UTF8')) > 0) "
            "EXECUTE FUNCTION custody_test_slow()"
        )
    with Ledger.open(pg_url) as ledger:
        register(ledger, "a")
        catch_up(ledger, TIMELINE_READ_MODEL)

        def slow() -> None:
            with Ledger.open(pg_url) as other:
                register(other, "slowpoke")

        held = threading.Thread(target=slow)
        held.start()
        time.sleep(0.3)
        register(ledger, "b")  # committed above slowpoke's position
        catch_up(ledger, TIMELINE_READ_MODEL)
        held.join()
        (status,) = read_model_status(ledger, [TIMELINE_READ_MODEL])
    assert status.problems == []
    assert (status.rows, status.position) == (3, _positions(pg_url)[-1])


def test_a_rebuild_that_cannot_read_as_far_as_its_read_model_leaves_it_as_it_was(
    pg_url: str,
) -> None:
    """rev24: a rollback long ago left a gap at the log's start; with one unrelated append
    left open, a rebuild's read stopped at that old gap (it may yet be filled, as far as a
    reader can tell) once its timeout passed, and the rebuild swapped in a table cut there
    ("rebuilt to position 0, 0 rows", exit 0): usage then said 0 leases of 3. The rebuild is
    refused now (busy, exit 6), the read model left as it was."""
    url = f"{pg_url}?timeout=1"
    Ledger.init(url).close()
    with psycopg.connect(pg_url) as conn:  # a gap at the log's start: an append rolled back
        conn.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (gen_random_uuid(), 1, 'gone', '{}')"
        )
        conn.rollback()
    with Ledger.open(url) as ledger:
        register(ledger, "a")
        for n in range(3):
            lease = ledger.handle(Checkout(profile_id="a", worker_id="w", run_id=f"r{n}",
                                           task_type="t"))  # fmt: skip
            ledger.handle(Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token,
                                  outcome="success", final_url="https://x.example/"))  # fmt: skip
        catch_up(ledger, LEASES_READ_MODEL)
        (before,) = read_model_status(ledger, [LEASES_READ_MODEL])
        with psycopg.connect(pg_url) as held:  # an unrelated append left open
            held.execute(
                "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                "VALUES (gen_random_uuid(), 1, 'held', '{}')"
            )
            with pytest.raises(
                StoreUnavailable, match="rebuilt only to position 0, short of the 11"
            ):
                rebuild(ledger, LEASES_READ_MODEL)
            held.rollback()
        (after,) = read_model_status(ledger, [LEASES_READ_MODEL])
    assert (after.rows, after.position) == (before.rows, before.position) == (3, before.position)


def test_a_catch_up_held_short_by_an_open_append_says_so(pg_url: str) -> None:
    """rev24: with an append left open, a read of the log hands on only what is settled once
    its timeout passes; an owner's read then answered without a heartbeat that had finished
    before it, exit 0, no note (a worker's login got one). A catch-up that stops short of the
    head it began at warns ``ReadModelBehind`` now, naming where it stopped and counting the
    events left out, not the positions (gaps are none)."""
    url = f"{pg_url}?timeout=1"
    Ledger.init(url).close()
    with Ledger.open(url) as ledger:
        register(ledger, "a")
        lease = ledger.handle(Checkout(profile_id="a", worker_id="w", run_id="r", task_type="t"))
        catch_up(ledger, TIMELINE_READ_MODEL)
        with psycopg.connect(pg_url) as held:  # draws the next position and holds it
            held.execute(
                "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
                "VALUES (gen_random_uuid(), 1, 'held', '{}')"
            )
            (checkpoint,) = [r.position for r in read_model_status(ledger, [TIMELINE_READ_MODEL])]
            ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="done"))
            with pytest.warns(ReadModelBehind) as said:
                catch_up(ledger, TIMELINE_READ_MODEL)
            held.rollback()
    (note,) = [str(w.message) for w in said]
    assert note == (
        f"the timeline read model has 1 event(s) of the log still to fold past position "
        f"{checkpoint}, which a transaction still open may yet fill: the answer leaves them out "
        "(read again once it ends)"
    )
