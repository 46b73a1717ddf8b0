"""A worker's login on PostgreSQL cannot rewrite what ``custody timeline`` shows investigators.

Guarantee (quality bar: accepted means readable, forever, exactly; docs/explanation/read-models.md,
"Status and rebuild": ``custody projections status`` "checks its rows against the events at one
moment: rows deleted, inserted or edited in any column"; docs/operations/roles.md: each login
"may act only in its role ... whatever program holds the password"; tamper-evidence: ``verify``
names any rewrite).

Found by review 7: the timeline read model (``custody_timeline``) was writable by every custody
group role, and the digest ``projections status`` relies on to find an edit is a keyless
blake2b of the row's own values (``projections._base.Table.digest``), which anyone can
recompute. A worker's login, connected with psycopg as a stolen credential would be, changed the
URL and step of its own mutating heartbeat, recomputing the digest, and no check named it. The
read models and their checkpoints are now written only by the roles that maintain them
(scheduler, reviewer, operator: ``ledger._stores.access.READ_MODEL_WRITERS``); a worker's login
reads them as they stand.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cli_process import custody, ok
from owned_store import as_login

from projections._timeline import TIMELINE

pytestmark = pytest.mark.postgres

PROFILE = "profile_shop_17"


def _worker_login(owner_url: str, tmp_path: Path) -> tuple[str, Callable[..., Any]]:
    """A worker's login granted afresh (its URL), and a runner of commands that must succeed."""
    name = f"work_{uuid.uuid4().hex[:8]}"
    ok(custody("--store", owner_url, "access", "grant", name, "--role", "worker", cwd=tmp_path))
    return as_login(owner_url, name), lambda url, *args: ok(
        custody("--store", url, *args, cwd=tmp_path)
    )


def test_a_worker_login_cannot_rewrite_the_timeline_unseen(owner_url: str, tmp_path: Path) -> None:
    worker, run = _worker_login(owner_url, tmp_path)
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    lease = run(
        worker, "--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t"
    )
    lease_id, token = str(lease.json()["lease_id"]), str(lease.json()["fencing_token"])
    run(
        worker, "heartbeat", lease_id, "--token", token, "--step", "submit_order", "--mutating",
        "--url", "https://shop.example/pay",
    )  # fmt: skip
    run(owner_url, "timeline", PROFILE)  # the read model has folded the heartbeat

    # The worker's own credentials, used directly, and the digest recomputed as the code does.
    names = TIMELINE.column_names
    with psycopg.connect(worker, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {', '.join(names)} FROM custody_timeline WHERE url = %s",
            ("https://shop.example/pay",),
        ).fetchone()
        assert row is not None
        values = dict(zip(names, row, strict=True))
        values["url"], values["step"] = "https://shop.example/dashboard", "dashboard_loaded"
        forged = tuple(values[n] for n in names)
        for statement, params in (
            ("UPDATE custody_timeline SET url = %s, step = %s, digest = %s WHERE position = %s",
             (values["url"], values["step"], TIMELINE.digest(forged), values["position"])),
            ("DELETE FROM custody_timeline WHERE position = %s", (values["position"],)),
            ("DELETE FROM custody_leases", ()),
            ("UPDATE custody_projection_positions SET position = 0", ()),
        ):  # fmt: skip
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement, params)

    shown = run(owner_url, "--json", "timeline", PROFILE).json()
    status = custody("--store", owner_url, "projections", "status", cwd=tmp_path)
    verified = custody("--store", owner_url, "verify", cwd=tmp_path)
    beats = [(r["step"], r["url"]) for r in shown if r["event_type"] == "lease_heartbeat"]
    said = (beats, status.code, status.out[-300:], verified.code)
    # Either the timeline shows what the ledger accepted, or a check names the edit.
    assert beats == [("submit_order", "https://shop.example/pay")] or status.code != 0, said
    assert status.code == 0, said
    assert verified.code == 0, said
    # It keeps none of them: its projections run is refused at once (exit 7), not idle.
    refused = custody("--store", worker, "projections", "run", "--rounds", "1", cwd=tmp_path)
    assert refused.code == 7, refused.err
    assert "may not write the read models" in refused.err
    # The worker's login still reads the timeline, as the maintainers folded it.
    mine = run(worker, "--json", "timeline", PROFILE).json()
    assert [(r["step"], r["url"]) for r in mine if r["event_type"] == "lease_heartbeat"] == beats


def test_a_worker_login_reads_an_account_and_a_moment_the_timeline_has_not_folded(
    owner_url: str, tmp_path: Path
) -> None:
    """A worker's login, which folds nothing into the read models, is not told that a
    registered account or profile was never registered (review 9): before any maintainer had
    folded the registration, ``timeline --account`` and ``usage --account`` said "no profile was
    ever registered under account" and ``replay`` said the profile "was not registered yet"
    (exit 2, bad input), where they lag at worst."""
    worker, run = _worker_login(owner_url, tmp_path)
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    run(worker, "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t")
    run(worker, "timeline", "--account", "a1")
    run(worker, "usage", "--account", "a1")
    now = run(worker, "--json", "who", PROFILE).json()["lease"]["lease_started_at"]
    replayed = run(worker, "--json", "replay", PROFILE, "--at", now).json()
    assert replayed["state"] == "leased", replayed
    refused = custody("--store", worker, "timeline", "--account", "a2", cwd=tmp_path)
    assert refused.code == 2, refused.err  # an account nobody registered is still refused


def test_a_worker_login_is_told_once_an_answer_what_the_timeline_leaves_out(
    owner_url: str, tmp_path: Path
) -> None:
    """rev42: under a worker's login, with nothing folded by a maintainer, ``who`` and ``why``
    read the timeline twice and said its note twice; once an answer, as read-models.md says.
    Guard: the lines said in ``custody.cli._notes``."""
    worker, run = _worker_login(owner_url, tmp_path)
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    lease = run(
        worker, "--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t"
    ).json()
    run(worker, "heartbeat", str(lease["lease_id"]), "--token", "1", "--step", "s1")
    for asked in (["who", PROFILE], ["why", PROFILE], ["--json", "who", PROFILE]):
        said = run(worker, *asked).err
        assert said.count("custody: note: the timeline read model has 3 event(s)") == 1, said


def test_a_worker_login_replays_the_events_its_timeline_has_not_folded(
    owner_url: str, tmp_path: Path
) -> None:
    """rev28: ``replay`` under a worker's login, which folds nothing, folded the state from the
    events but listed the events around the moment from the timeline as the maintainers had
    left it: a lease's heartbeat and release were missing "after" the checkout, exit 0, no
    note. They are read from the log past the timeline's checkpoint: the lists are the ones
    an owner's replay gives once the timeline has folded them."""
    worker, run = _worker_login(owner_url, tmp_path)
    run(owner_url, "register", PROFILE, "--account", "a1", "--proxy", "x1")
    run(owner_url, "timeline", PROFILE)  # the maintainers folded the registration, no more
    lease = run(
        worker, "--json", "checkout", PROFILE, "--worker", "w1", "--run", "r1", "--task", "t"
    ).json()
    lease_id, token = str(lease["lease_id"]), str(lease["fencing_token"])
    run(worker, "heartbeat", lease_id, "--token", token, "--step", "cart")
    run(worker, "release", lease_id, "--token", token, "--outcome", "success",
        "--final-url", "https://shop.example/done")  # fmt: skip
    args = ("--json", "replay", PROFILE, "--at", str(lease["lease_started_at"]), "--events", "2")
    mine = ok(custody("--store", worker, *args, cwd=tmp_path))
    assert mine.err == ""
    theirs = run(owner_url, *args).json()
    shown = mine.json()
    assert [e["event_type"] for e in shown["after"]] == [
        "lease_heartbeat",
        "lease_release_requested",
    ]
    assert (shown["before"], shown["after"]) == (theirs["before"], theirs["after"])
