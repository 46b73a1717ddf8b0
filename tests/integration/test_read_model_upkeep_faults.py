"""The read models' upkeep at the command line when something stops it part-way (rev37): a
rebuild of every read model that fails on one after others were rebuilt says what it did."""

from __future__ import annotations

import json

from conftest import register
from runner_processes import custody

from ledger import Checkout, Ledger


def test_a_rebuild_of_every_read_model_that_fails_on_one_says_what_it_did(
    store_url: str,
) -> None:
    """`projections rebuild` without a name, its availability row deleted, its leases table
    dropped and timeline's rebuild held by another: it repairs availability and rebuilds
    leases, prints both as it would have, and its line names timeline, the exit code (the
    refusal's: 1) and what was done before it; with --json the error object carries them too
    (rev37: exit 1 with only the refusal's line, the repairs written but not reported)."""
    with Ledger.open(store_url) as ledger:
        register(ledger, "p1")
        register(ledger, "p2")
        ledger.handle(Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t"))
        ledger.store.execute(  # type: ignore[attr-defined]
            "DELETE FROM custody_availability WHERE profile_id = 'p2'"
        )
        with ledger.feed.transaction() as tx:
            tx.execute("DROP TABLE IF EXISTS custody_leases")
        with ledger.feed.exclusive("rebuild-timeline"):
            text_run = custody(store_url, "projections", "rebuild")
            out, err = text_run.communicate(timeout=60)
            assert text_run.returncode == 1, err
            assert "p2: missing" in out, (out, err)
            assert "leases: rebuilt to position 3, 1 rows" in out, (out, err)
            (line,) = err.splitlines()
            assert line.startswith("custody: projections rebuild stopped at timeline (exit 1): ")
            assert "already running" in line
            assert line.endswith("done before it (above): availability, leases")
            json_run = custody(store_url, "--json", "projections", "rebuild")
            json_out, _ = json_run.communicate(timeout=60)
            assert json_run.returncode == 1
            answer = json.loads(json_out)
            assert (answer["exit_code"], answer["read_model"], answer["not_tried"]) == (
                1,
                "timeline",
                [],
            )
            assert [r.get("name") for r in answer["rebuilt"]] == [None, "leases"]
        assert ledger.feed.query("SELECT count(*) AS n FROM custody_availability")[0]["n"] == 2
