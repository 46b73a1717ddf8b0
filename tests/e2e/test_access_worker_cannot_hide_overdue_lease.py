"""A worker's login on PostgreSQL cannot hide its overdue lease from the sweep by editing the
availability row, nor answer a sweep in advance by claiming its command id.

Guarantee (docs/operations/roles.md, "Logins, enforced in PostgreSQL"): each process connects
with a login that holds one custody role "and the database enforces it, whatever program holds
the password". README: "A lease past its deadline makes the profile *stale*; the sweep marks it
and sends the profile to review, or to quarantine when a mutating step ran after the last safe
one. It is never silently reused."

Found by review 7: the sweep picks the profiles it judges from the availability row
(``Store.sweep_candidates`` -> ``SqlStore.overdue``: ``state = 'leased' AND until < now``), and
a worker's login, with psycopg as a stolen credential would use it, could move its row's
``until`` ten years on: the scheduler's ``custody sweep`` then settled nothing. The database
now lets a login other than the owner write that row, or a command id, only beside its
profile's event appended in the same transaction (``custody_check_beside``,
``ledger._stores.access``), and a sweep's command id only as the scheduler.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cli_process import custody, ok
from owned_store import granted

from ledger._domain.chain import body_bytes, header_bytes, link, split, stored

pytestmark = pytest.mark.postgres

PROFILE = "profile_shop_17"


def test_a_worker_login_cannot_keep_its_overdue_lease_from_the_sweep(
    owner_url: str, tmp_path: Path
) -> None:
    worker, scheduler = (
        granted(owner_url, "worker", tmp_path),
        granted(owner_url, "scheduler", tmp_path),
    )
    run = lambda url, *args: ok(custody("--store", url, *args, cwd=tmp_path))  # noqa: E731
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    lease = run(
        worker, "--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t",
        "--ttl", "4", "--command-id", "co-1",
    ).json()  # fmt: skip
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    run(
        worker, "heartbeat", lease_id, "--token", token, "--step", "submit_order", "--mutating",
        "--command-id", "hb-1",
    )  # fmt: skip

    # The worker's own credentials, used directly: each write without its event is refused.
    (version,) = _one(owner_url, "SELECT version FROM custody_availability WHERE profile_id = %s")
    attempts = [
        ("UPDATE custody_availability SET until = %s WHERE profile_id = %s",
         ("2036-12-03T09:00:00.000000+00:00", PROFILE)),
        ("UPDATE custody_availability SET state = 'available' WHERE profile_id = %s", (PROFILE,)),
        ("DELETE FROM custody_availability WHERE profile_id = %s", (PROFILE,)),
        ("INSERT INTO custody_availability (profile_id, version, state) VALUES ('ghost', 1, 'x')",
         ()),
        # A predictable sweep id claimed in advance: the sweep would answer this and sweep none.
        ("INSERT INTO custody_commands (command_id, profile_id, version, command) "
         "VALUES ('sweep-1', '', 0, 'forged')", ()),
        ("INSERT INTO custody_commands (command_id, profile_id, version, command) "
         "VALUES ('sweep-1', %s, %s, 'forged')", (PROFILE, version)),
        ("UPDATE custody_commands SET version = 0 WHERE command_id = 'hb-1'", ()),
        ("DELETE FROM custody_commands WHERE command_id = 'hb-1'", ()),
    ]  # fmt: skip
    with psycopg.connect(worker, autocommit=True) as conn:
        # The setting the events' trigger writes names where to look, and any session may set
        # it: naming the profile's stream (whose event at that version is committed) opens
        # nothing, since the event must be this transaction's own.
        mine = "convert_from(state, 'UTF8')::json ->> 'profile_id' = %s"
        (stream,) = _one(owner_url, f"SELECT originator_id FROM custody_events WHERE {mine}")
        conn.execute("SELECT set_config('custody.appended', %s, false)", (f"junk {stream} ",))
        for statement, params in attempts:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, params)

    time.sleep(4.5)  # the lease is past its deadline now (a slow machine: a few seconds)
    report = run(scheduler, "--json", "sweep", "--command-id", "sweep-1").json()
    again = run(scheduler, "--json", "sweep", "--command-id", "sweep-1").json()
    why = run(owner_url, "--json", "why", PROFILE).json()
    verified = custody("--store", owner_url, "verify", cwd=tmp_path)
    settled = [s["profile_id"] for s in report["settled"]]
    said = (report, why.get("state"), why.get("message"), verified.code)
    assert settled == [PROFILE], said
    assert again == report  # the sweep's own id, recorded by the scheduler, answers a resend
    assert why["state"] == "quarantined", why
    assert verified.code == 0, verified.err


def _one(url: str, statement: str) -> tuple[object, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(statement, (PROFILE,)).fetchone()
    assert row is not None
    return tuple(row)


def test_a_row_forged_beside_an_event_is_kept_in_the_log_and_named(
    owner_url: str, tmp_path: Path
) -> None:
    """What the trigger still lets through, and how it is caught: a worker's login that appends
    an event of its own (a copy of its last heartbeat, at the next version) may write its row
    beside it with a deadline years away. The event is in the log for good: ``verify`` names the
    broken chain (exit 5), and the owner's ``rebuild`` names the row and repairs it, after which
    the sweep settles the lease."""
    worker = granted(owner_url, "worker", tmp_path)
    scheduler = granted(owner_url, "scheduler", tmp_path)
    run = lambda url, *args: ok(custody("--store", url, *args, cwd=tmp_path))  # noqa: E731
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    lease = run(
        worker, "--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t",
        "--ttl", "4",
    ).json()  # fmt: skip
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    run(worker, "heartbeat", lease_id, "--token", token, "--step", "submit_order", "--mutating")
    with psycopg.connect(worker) as conn:  # one transaction: the event, then its row
        stream, version, topic, state = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM custody_events "
            "ORDER BY notification_id DESC LIMIT 1"
        ).fetchone() or (None, 0, "", b"")
        conn.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            (stream, version + 1, topic, state),
        )
        conn.execute(
            "UPDATE custody_availability SET until = %s, version = %s WHERE profile_id = %s",
            ("2036-12-03T09:00:00.000000+00:00", version + 1, PROFILE),
        )
    time.sleep(4.5)
    assert run(scheduler, "--json", "sweep").json()["settled"] == []  # the row misled it
    verified = custody("--store", owner_url, "verify", cwd=tmp_path)
    assert verified.code == 5, verified.out
    repaired = run(owner_url, "--json", "rebuild").json()
    assert [d["profile_id"] for d in repaired["differences"]] == [PROFILE], repaired
    settled = run(scheduler, "--json", "sweep").json()["settled"]
    assert [s["profile_id"] for s in settled] == [PROFILE]


def test_an_event_in_a_stream_of_its_own_opens_no_row(owner_url: str, tmp_path: Path) -> None:
    """A worker's login cannot write a row or claim a command id beside an event it appends to a
    stream it made up (review 9): the trigger took any event of this transaction naming the
    profile, so a heartbeat in a new stream let the row's deadline move without an event in the
    profile's log, and one naming no profile claimed a sweep's id in advance. Since rev24 the
    events' insert trigger refuses such an event itself (test_cli_access.py)."""
    worker = granted(owner_url, "worker", tmp_path)
    run = lambda url, *args: ok(custody("--store", url, *args, cwd=tmp_path))  # noqa: E731
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    run(worker, "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t")
    (version,) = _one(owner_url, "SELECT version FROM custody_availability WHERE profile_id = %s")
    made_up = "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
    made_up += "VALUES (gen_random_uuid(), %s, 'lease_heartbeat', convert_to(%s, 'UTF8'))"
    attempts = [
        (version, PROFILE, "UPDATE custody_availability SET until = %s WHERE profile_id = %s",
         ("2036-12-03T09:00:00.000000+00:00", PROFILE)),
        (0, "", "INSERT INTO custody_commands (command_id, profile_id, version, command) "
         "VALUES ('sweep-1', '', 0, 'forged')", ()),
    ]  # fmt: skip
    for at, profile, statement, params in attempts:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")  # taken by the server
        envelope = {"actor_role": "worker", "command_id": "sweep-1", "at": now}
        state = json.dumps({"profile_id": profile, "envelope": envelope})
        # rev24: the event itself is refused now (rev37: one naming no profile id as register
        # takes it, before its stream is looked at)
        said = "follows no version" if profile else "not an id custody takes"
        refused = pytest.raises(psycopg.errors.InsufficientPrivilege, match=said)
        with psycopg.connect(worker) as conn, refused:
            conn.execute(made_up, (at, state))
        refused = pytest.raises(psycopg.errors.InsufficientPrivilege)
        with psycopg.connect(worker) as conn, refused:  # a row with no event, as before
            conn.execute(statement, params)
    (until,) = _one(owner_url, "SELECT until FROM custody_availability WHERE profile_id = %s")
    assert not str(until).startswith("2036")


def test_a_temporary_table_stands_in_for_nothing_the_triggers_read(
    owner_url: str, tmp_path: Path
) -> None:
    """A worker's login cannot pass the triggers with temporary tables named as what they read
    (review 9): any login may create a temporary table, and PostgreSQL looks one up before the
    schema's and even before the catalog's, for the trigger functions ran on the session's
    search path. A temporary ``custody_events`` holding a made-up event let the worker's login
    mark a quarantined profile available with no event at all, and a temporary ``pg_class``
    naming it the events' owner let it append a reviewer's verdict."""
    worker = granted(owner_url, "worker", tmp_path)
    run = lambda url, *args: ok(custody("--store", url, *args, cwd=tmp_path))  # noqa: E731
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    run(owner_url, "quarantine", PROFILE, "--actor", "op", "--reason", "suspicious")
    (version,) = _one(owner_url, "SELECT version FROM custody_availability WHERE profile_id = %s")
    stream = "00000000-0000-0000-0000-000000000001"
    state = json.dumps({"profile_id": PROFILE}).encode()
    made_up = [
        (stream, 1, "profile_registered", state),
        (stream, version, "lease_heartbeat", state),
    ]
    reviewed = json.dumps({"profile_id": PROFILE, "envelope": {"actor_role": "reviewer"}})
    with psycopg.connect(worker) as conn:  # one transaction: the stand-in, then the row
        conn.execute(
            "CREATE TEMP TABLE custody_events (originator_id uuid, originator_version bigint, "
            "topic text, state bytea)"
        )
        stand_in = "INSERT INTO pg_temp.custody_events VALUES (%s, %s, %s, %s)"
        conn.cursor().executemany(stand_in, made_up)
        conn.execute("SELECT set_config('custody.appended', %s, true)", (f"{stream} ",))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "UPDATE public.custody_availability SET state = 'available' "
                "WHERE profile_id = %s", (PROFILE,),
            )  # fmt: skip
    with psycopg.connect(worker) as conn:
        conn.execute("CREATE TEMP TABLE pg_class (oid oid, relowner oid)")
        conn.execute(
            "INSERT INTO pg_temp.pg_class SELECT 'public.custody_events'::regclass, oid "
            "FROM pg_catalog.pg_roles WHERE rolname = current_user"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO public.custody_events (originator_id, originator_version, topic, "
                "state) VALUES (%s, %s, 'profile_reviewed', %s)",
                (stream, 1, reviewed.encode()),
            )
    assert run(owner_url, "--json", "why", PROFILE).json()["state"] == "quarantined"


def _step_a_number(fields: dict[str, Any], prev: str, version: int, topic: str) -> bytes:
    """A heartbeat whose step is a number, linked as custody links it (one without its time,
    as this test made before, the database refuses since rev34)."""
    fields["step"] = 7
    encoded = body_bytes(fields)
    return stored(encoded, link(prev, header_bytes(fields, version, topic), encoded))


def _link_with_a_key_more(fields: dict[str, Any], prev: str, version: int, topic: str) -> bytes:
    """A heartbeat linked as custody links it, its link holding one key more (no hash covers
    a link's keys)."""
    encoded = body_bytes(fields)
    linked = link(prev, header_bytes(fields, version, topic), encoded)
    more = json.dumps({**linked.model_dump(), "note": "w1"}, separators=(",", ":"))
    return encoded[:-1] + b',"~chain":' + more.encode() + b"}"


@pytest.mark.parametrize(
    ("made", "complaint", "reads"),
    [
        (_step_a_number, "step: Input should be a valid string", ("why",)),
        # The read models read an event's fields, not its link: only a load meets it.
        (_link_with_a_key_more, "note: Extra inputs are not permitted", ("why",)),
    ],
)
def test_an_event_no_read_can_take_is_named_by_verify(
    owner_url: str,
    tmp_path: Path,
    made: Callable[[dict[str, Any], str, int, str], bytes],
    complaint: str,
    reads: tuple[str, ...],
) -> None:
    """What the database cannot refuse, since it does not decode what it stores: a worker's
    login appends, with raw SQL, a heartbeat linked into its profile's chain as custody links
    it, but one a read cannot take. Each read that meets it fails, naming it (exit 1);
    ``verify`` names it (exit 5) though every chain holds, and ``digest`` refuses the log."""
    worker = granted(owner_url, "worker", tmp_path)
    run = lambda url, *args: ok(custody("--store", url, *args, cwd=tmp_path))  # noqa: E731
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    lease = run(
        worker, "--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t",
        "--ttl", "60",
    ).json()  # fmt: skip
    run(worker, "heartbeat", lease["lease_id"], "--token", str(lease["fencing_token"]))
    with psycopg.connect(worker) as conn:
        stream, version, topic, state = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM custody_events "
            "ORDER BY notification_id DESC LIMIT 1"
        ).fetchone() or (None, 0, "", b"")
        body, chain = split(bytes(state))
        prev = json.loads(chain or b"{}")["hash"]
        conn.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            (stream, version + 1, topic, made(json.loads(body), prev, version + 1, topic)),
        )
    for read in reads:
        broken = custody("--store", owner_url, read, PROFILE, cwd=tmp_path)
        assert broken.code == 1, broken.out
        assert f"cannot be read (ValidationError: {complaint})" in broken.err, broken.err
    verified = custody("--store", owner_url, "verify", cwd=tmp_path)
    assert verified.code == 5, verified.out
    assert f"{PROFILE} v{version + 1}: links into its chain, but custody cannot read it" in (
        verified.out
    ), verified.out
    assert complaint in verified.out
    digest = custody("--store", owner_url, "digest", "--out", tmp_path / "d.json", cwd=tmp_path)
    assert digest.code == 5, digest.err
    assert not (tmp_path / "d.json").exists()
