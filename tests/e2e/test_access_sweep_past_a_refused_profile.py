"""The sweep settles every overdue lease it may, whatever one profile's write meets: a profile
whose stale mark the database refuses is named among the sweep's failures, and the others are
settled (README: overdue leases are settled by the sweep; ``SweepReport.failed``: one
profile's failure does not stop the others).

rev37 (the roles reviewer): a lease whose deadline is not in custody's time form (``+00:00``
where custody writes ``Z``, appended by a login the database let through) made the
scheduler's stale mark on it refused (Forbidden), which ``_swept_now`` raised for the whole
sweep: exit 7 with a line naming no profile, and every other overdue lease of the fleet left
unswept, sweep after sweep. The lease is made here by the owner's own connection (another fix
has the database refuse such a deadline when it is appended).
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from cli_process import custody, ok
from owned_store import granted

from ledger._domain.chain import body_bytes, header_bytes, link, split, stored

pytestmark = pytest.mark.postgres


def _events(conn: psycopg.Connection, profile_id: str) -> list[tuple[uuid.UUID, int, bytes]]:
    rows = conn.execute(
        "SELECT originator_id, originator_version, state FROM custody_events WHERE "
        "convert_from(state, 'UTF8')::json ->> 'profile_id' = %s ORDER BY originator_version",
        (profile_id,),
    ).fetchall()
    return [(r[0], r[1], bytes(r[2])) for r in rows]


def _lease_copied_with_an_offset_deadline(owner_url: str, honest: str, forged: str) -> None:
    """Append to ``forged``'s stream (registered, never leased) a copy of ``honest``'s lease,
    its deadline written ``+00:00``, linked as custody links it."""
    with psycopg.connect(owner_url) as conn:
        _, _, acquired = _events(conn, honest)[1]
        fields = json.loads(split(acquired)[0])
        lease = fields["lease"]
        fields["profile_id"] = lease["profile_id"] = forged
        lease["lease_id"] = f"lease-1@{forged}"
        lease["expires_at"] = lease["expires_at"].replace("Z", "+00:00")
        fields["envelope"]["command_id"] = fields["envelope"]["causation_id"] = uuid.uuid4().hex
        stream, version, head = _events(conn, forged)[-1]
        prev = json.loads(split(head)[1] or b"{}")["hash"]
        body = body_bytes(fields)
        state = stored(body, link(prev, header_bytes(fields, version + 1, "lease_acquired"), body))
        conn.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, 'lease_acquired', %s)",
            (stream, version + 1, state),
        )


def test_a_profile_whose_stale_mark_is_refused_is_named_and_the_others_are_swept(
    owner_url: str, tmp_path: Path
) -> None:
    """The scheduler's sweep settles the honest overdue leases, exits 1 naming the profile
    it could not settle and why, and a sweep after it still settles what is overdue."""
    worker, scheduler = (
        granted(owner_url, "worker", tmp_path),
        granted(owner_url, "scheduler", tmp_path),
    )

    def run(url: str, *args: str) -> str:
        return ok(custody("--store", url, *args, cwd=tmp_path)).out

    for pid in ("pA", "pB", "p5"):
        run(owner_url, "register", pid, "--account", "a1", "--proxy", "x1")
    run(worker, "checkout", "pA", "--worker", "w1", "--run", "r1", "--task", "t", "--ttl", "1")
    _lease_copied_with_an_offset_deadline(owner_url, "pA", "p5")
    run(owner_url, "rebuild")  # its row, from its events
    run(worker, "checkout", "pB", "--worker", "w1", "--run", "r1", "--task", "t", "--ttl", "1")
    time.sleep(2.5)

    swept = custody("--store", scheduler, "--json", "sweep", cwd=tmp_path)
    assert swept.code == 1, swept.err
    report = swept.json()
    assert sorted(s["profile_id"] for s in report["settled"]) == ["pA", "pB"]
    assert [f["profile_id"] for f in report["failed"]] == ["p5"]
    assert "Forbidden" in report["failed"][0]["error"]
    assert "p5 (Forbidden:" in swept.err
    states = {r["profile_id"]: r["state"] for r in json.loads(run(owner_url, "--json", "status"))}
    assert states == {"pA": "review_required", "pB": "review_required", "p5": "leased"}

    # Another lease overdue since: the next sweep settles it, p5 still named.
    run(owner_url, "review", "pA", "--reviewer", "ana", "--decision", "return", "--note", "ok")
    run(worker, "checkout", "pA", "--worker", "w2", "--run", "r2", "--task", "t", "--ttl", "1")
    time.sleep(2.5)
    again = custody("--store", scheduler, "--json", "sweep", cwd=tmp_path)
    assert again.code == 1, again.err
    assert [s["profile_id"] for s in again.json()["settled"]] == ["pA"]
    assert [f["profile_id"] for f in again.json()["failed"]] == ["p5"]
