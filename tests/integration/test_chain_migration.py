"""Schema 7: a store whose events were stored before hash chains (schema 6) is chained by
``custody init`` once, from its stored bytes, and says so; its events then verify, new events
link onto the head recorded for their profile, and an edit of an event stored before the chains
began is still caught against that head.

A schema 6 store is made from a current one as schema 6 left it: every event's link stripped
(its stored bytes are then exactly what schema 6 wrote), no chain origins table, no
append-only triggers, snapshots of class version 4 (no head), and the schema version 6.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from audit_scene import custody, more_events, small_ledger
from conftest import register
from raw_log import RawLog, dump

from ledger import Checkout, Heartbeat, Ledger
from ledger._domain.chain import CHAIN_KEY, split
from ledger._stores.migrations import SCHEMA_VERSION
from ledger._stores.store import SNAPSHOT_INTERVAL

# The triggers and functions schema 7 added (``ledger._stores.access``).
_PG_TRIGGERS = ("no_rewrite", "no_truncate", "xid_first", "by_role")
_PG_FUNCTIONS = ("custody_refuse_rewrite", "custody_append_xid_first", "custody_check_append")


def _long_stream(url: str) -> None:
    """p4 leased and renewed past a snapshot."""
    with Ledger.open(url) as ledger:
        register(ledger, "p4")
        lease = ledger.handle(
            Checkout(profile_id="p4", worker_id="w", run_id="run-p4", task_type="t")
        ).lease_id
        while ledger.view("p4").version < SNAPSHOT_INTERVAL + 2:
            ledger.handle(Heartbeat(lease_id=lease, fencing_token=1, step="s"))


def _as_schema_6(log: RawLog) -> None:
    """Rewrite the store at ``log.url`` as schema 6 left it."""
    for row in log.rows():
        log.set_state(row.position, split(row.state)[0])
    if log.pg:
        for trigger in _PG_TRIGGERS:
            log.run(f"DROP TRIGGER custody_events_{trigger} ON custody_events")
        for function in _PG_FUNCTIONS:
            log.run(f"DROP FUNCTION {function}")
    log.run("DROP TABLE custody_chain_origins")
    snapshots = _snapshots_table(log)
    found = log.query(f"SELECT originator_id, originator_version, state FROM {snapshots}")
    for stream, version, state in found:
        old: dict[str, Any] = json.loads(bytes(state))
        del old["head"]
        old["class_version"] = 4
        log.run(
            f"UPDATE {snapshots} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            dump(old),
            stream,
            version,
        )
    log.run("UPDATE custody_schema SET version = 6")


def _snapshots_table(log: RawLog) -> str:
    return "custody_snapshots" if log.pg else "stored_snapshots"


def _snapshots(log: RawLog) -> int:
    return int(log.query(f"SELECT count(*) FROM {_snapshots_table(log)}")[0][0])


def _schema_6(url: str, digest: Path, *, long_stream: bool = False) -> RawLog:
    """The small ledger (and p4's long stream), digested into ``digest`` while its events
    still carried their links, then made a schema 6 store."""
    small_ledger(url)
    if long_stream:
        _long_stream(url)
    assert custody(url, "digest", "--out", digest).code == 0
    log = RawLog(url)
    _as_schema_6(log)
    assert all(CHAIN_KEY.encode() not in r.state for r in log.rows())
    return log


@pytest.fixture
def schema_6(sql_store_url: str, tmp_path: Path) -> tuple[RawLog, Path]:
    """A schema 6 store of 12 events in 3 profiles, and a digest of it taken before."""
    digest = tmp_path / "before.json"
    return _schema_6(sql_store_url, digest), digest


def test_init_chains_a_schema_6_store_once_and_says_so(sql_store_url: str, tmp_path: Path) -> None:
    """Before init the store is refused (exit 6, "migrate"); init chains it and says how many
    events of how many profiles; a second init says nothing of chains; the store verifies,
    with the same tree as its events had with links (a link adds nothing to an event's hash),
    so the digest taken before verifies too; the triggers are in place. p4's stream is past a
    snapshot (of class version 4, without a head), which init must drop before it loads."""
    before = tmp_path / "before.json"
    log = _schema_6(sql_store_url, before, long_stream=True)
    refused = custody(log.url, "verify")
    assert refused.code == 6
    assert "custody init to migrate it" in refused.err
    assert _snapshots(log) == 1

    first = custody(log.url, "--json", "init")
    assert first.code == 0, first
    assert json.loads(first.out)["notes"] == [
        "hash chains begin here: 64 event(s) of 4 profile(s) stored before them are chained "
        "from their stored bytes, and each profile's head is recorded (custody verify checks "
        "them against it)",
        # rev30: a migration said nothing of itself but the chains
        f"migrated from schema 6 to {SCHEMA_VERSION}: the snapshots, a cache, were deleted (loads "
        "fold the "
        "events until new ones are taken); docs/operations/upgrades.md says what each schema "
        "changed",
    ]
    second = custody(log.url, "--json", "init")
    assert second.code == 0, second
    assert "notes" not in json.loads(second.out)
    assert "hash chains" not in second.out + second.err

    assert log.append_only()
    assert _snapshots(log) == 0
    heads = json.loads(before.read_bytes())["heads"]
    origins = {str(p): (int(v), str(h)) for p, v, h in log.query(_ORIGINS)}
    assert origins == {p: (h["version"], h["hash"]) for p, h in heads.items()}
    said = custody(log.url, "verify", "--digest", before)
    assert said.code == 0, said


_ORIGINS = "SELECT profile_id, version, head FROM custody_chain_origins"


def test_new_events_link_onto_the_recorded_origin(schema_6: tuple[RawLog, Path]) -> None:
    """After the migration p3's next events carry links, the first naming p3's recorded head
    as its previous; verify exits 0 and a digest taken then extends the one taken before."""
    log, before = schema_6
    assert custody(log.url, "init").code == 0
    more_events(log.url)  # p3 v2 and v3
    (head,) = [h for p, _, h in log.query(_ORIGINS) if p == "p3"]
    v2, v3 = (log.row("p3", v).fields()[CHAIN_KEY] for v in (2, 3))
    assert (v2["prev"], v3["prev"]) == (head, v2["hash"])
    assert CHAIN_KEY not in log.row("p3", 1).fields()
    later = before.with_name("later.json")
    assert custody(log.url, "digest", "--out", later).code == 0
    said = custody(log.url, "verify", "--digest", later, "--since-digest", before)
    assert said.code == 0, said
    assert said.out.rstrip().endswith("the later digest's log extends the earlier's")


def _edit_before_chains(log: RawLog) -> None:
    log.edit(log.row("p1", 3).position, step="home")


def _delete_tail_before_chains(log: RawLog) -> None:
    log.delete(log.row("p2", 5).position)


def _unlinked_after_chains(log: RawLog) -> None:
    row = log.row("p3", 3)
    fields = row.fields()
    del fields[CHAIN_KEY]
    log.set_state(row.position, dump(fields))


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            _edit_before_chains,
            "p1 v6: does not hash to the head recorded when chains began: an event up to here "
            "was edited",
        ),
        (
            _delete_tail_before_chains,
            "p2: ends at v4, but v5 was recorded when chains began: its tail was deleted",
        ),
        (
            _unlinked_after_chains,
            "p3 v3: carries no hash-chain link though it was stored after chains began",
        ),
    ],
    ids=["edited-before-chains", "tail-deleted-before-chains", "unlinked-after-chains"],
)
def test_events_from_before_the_chains_are_still_checked(
    schema_6: tuple[RawLog, Path], tamper: Any, expected: str
) -> None:
    """On a migrated store (without a digest to lean on): an edit of an event stored before
    the chains began shows at the head recorded for its profile, a deleted one at the version
    recorded, an event stored without a link after they began as such; exit 5, and the rows
    put back verify again."""
    log, _ = schema_6
    assert custody(log.url, "init").code == 0
    more_events(log.url)
    untouched = log.rows()
    tamper(log)
    said = custody(log.url, "verify")
    assert said.code == 5, said
    assert any(line.startswith(expected) for line in said.lines()), said.out
    log.restore(untouched)
    assert custody(log.url, "verify").code == 0


def test_init_meeting_an_event_no_read_can_decode_names_its_profile(
    schema_6: tuple[RawLog, Path],
) -> None:
    """A stored event of p2 the decoder refuses (its time gone) stops init's migration, which
    loads every profile: one line names the profile, the event and what is wrong with it, and
    does not send the owner to verify, which refuses the store until init has migrated it."""
    log, _ = schema_6
    log.edit(log.row("p2", 3).position, envelope={"at": None})
    said = custody(log.url, "init")
    assert said.code == 1, said
    assert said.err.count("\n") == 1, said.err
    assert "the event 'lease_heartbeat' v3 of profile 'p2' cannot be read" in said.err, said.err
    assert "(ValidationError: envelope.at: Input should be a valid datetime)" in said.err
    assert "custody verify" not in said.err
    assert "init cannot migrate" in said.err
    assert "run custody init" in custody(log.url, "verify").err


def test_events_made_to_look_older_than_the_chains_are_named(
    schema_6: tuple[RawLog, Path],
) -> None:
    """After the migration p3's v2 and v3 stored with links (the log's only ones), then the
    links stripped and p3's origin row moved to v3 with the head they now hash to: every
    origin row still matches the log's links, but v2 lies past the position the chains began
    at, so it is named as stored without a link after they began (exit 5)."""
    import hashlib

    from ledger._domain.chain import event_hash, header_bytes

    log, _ = schema_6
    assert custody(log.url, "init").code == 0
    more_events(log.url)  # p3 v2 and v3, at positions 13 and 14
    ((head, position),) = log.query(
        "SELECT head, position FROM custody_chain_origins WHERE profile_id = 'p3'"
    )
    for version in (2, 3):
        row = log.row("p3", version)
        body = split(row.state)[0]
        log.set_state(row.position, body)
        header = header_bytes(json.loads(body), version, row.topic)
        head = event_hash(str(head), header, hashlib.sha256(body).hexdigest())
    log.run("UPDATE custody_chain_origins SET version = 3, head = ? WHERE profile_id = 'p3'", head)
    said = custody(log.url, "verify")
    assert said.code == 5, said
    assert said.lines() == [
        "p3 v2: carries no hash-chain link though it was stored after chains began: inserted or "
        "rewritten outside custody",
        "p3 v3: carries no hash-chain link though it was stored after chains began: inserted or "
        "rewritten outside custody",
    ], (said.out, position)


_CUT_IN_THE_BACKFILL = """
import os, sys
from ledger._stores import migrations
migrations._backfill_commands = lambda self: os._exit(9)
from ledger import Ledger
Ledger.init(sys.argv[1])
"""


def test_a_store_from_before_custody_recorded_a_version_is_migrated_from_schema_1(
    sql_store_url: str,
) -> None:
    """rev42: a store made before custody recorded a schema version (its events and
    availability table, no version, no command ids' table) was taken by init for a new store:
    no migration ran and the version was recorded as current, for good; verify then named
    every event as forged (no chain origins), a resent checkout was granted again (no command
    ids) and one directory could be given to two profiles. It is migrated from schema 1, says
    so, and verifies, even after an init killed mid-migration. Guards: ``unversioned`` in
    ``migrations.create_schema``, and its version 1 recorded first."""
    small_ledger(sql_store_url)
    with Ledger.open(sql_store_url) as ledger:
        lease = ledger.handle(
            Checkout(profile_id="p3", worker_id="w", run_id="r3", task_type="t", command_id="co-1")
        )
        ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s"))
    log = RawLog(sql_store_url)
    _as_schema_6(log)
    later = ("custody_schema", "custody_commands", "custody_directories", "custody_tokens",
             "custody_leases", "custody_timeline", "custody_projection_positions")  # fmt: skip
    for table in later:
        log.run(f"DROP TABLE IF EXISTS {table}")
    refused = custody(log.url, "status")
    assert refused.code == 6, refused
    # An init killed mid-migration (rev42: after it had made the command ids' table, the next
    # init took the store for one it made, and migrated nothing, for good).
    cut = subprocess.run([sys.executable, "-c", _CUT_IN_THE_BACKFILL, log.url], check=False)
    assert cut.returncode == 9

    first = custody(log.url, "--json", "init")
    assert first.code == 0, first
    notes = json.loads(first.out)["notes"]
    assert notes[0].startswith("hash chains begin here: 14 event(s) of 3 profile(s)"), notes
    assert notes[-1].startswith(f"migrated from schema 1 to {SCHEMA_VERSION}"), notes
    said = custody(log.url, "verify")
    assert said.code == 0, said
    resent = custody(log.url, "--json", "checkout", "p3", "--worker", "w", "--run", "r3",
                     "--task", "t", "--command-id", "co-1")  # fmt: skip
    assert json.loads(resent.out)["lease_id"] == lease.lease_id, resent
