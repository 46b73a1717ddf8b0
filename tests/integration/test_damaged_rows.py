"""Rows damaged by hand in the SQL table: the read side survives them and rebuild mends them."""

from __future__ import annotations

from conftest import register

from ledger import Checkout, Ledger, ProfileState, rebuild_availability, verify_availability
from projections import explain, status


def _sql(ledger: Ledger, statement: str) -> None:
    ledger.store.execute(statement)  # type: ignore[attr-defined]


def test_status_and_rebuild_survive_a_null_version_and_a_junk_row(sql_store_url: str) -> None:
    """A NULL version and a junk row for an unknown profile: status still answers (flagging
    the damaged row), rebuild reports both and repairs them, and verify then agrees."""
    with Ledger.open(sql_store_url) as ledger:
        register(ledger, "p0")
        register(ledger, "p1")
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        _sql(ledger, "UPDATE custody_availability SET version = NULL WHERE profile_id = 'p1'")
        _sql(ledger, "INSERT INTO custody_availability (profile_id, state) VALUES ('junk', 'x')")
        rows = {r.profile_id: r for r in status(ledger)}
        assert rows["p0"].damaged is None
        assert rows["p1"].state is ProfileState.LEASED  # told from the events
        assert rows["p1"].damaged is not None
        assert "junk" not in rows
        assert explain(ledger, "p1").state is ProfileState.LEASED
        report = rebuild_availability(ledger)
        assert [d.profile_id for d in report.differences] == ["junk", "p1"]
        assert (report.rows_written, report.rows_deleted) == (1, 1)
        assert verify_availability(ledger) == []
        assert all(r.damaged is None for r in status(ledger))


def test_why_names_what_is_wrong_with_the_stored_row(sql_store_url: str) -> None:
    """explain() reports a row edited behind the ledger's back (a wrong state at the same
    version), a deleted row, and nothing once rebuild has repaired them; its answer itself is
    told from the events."""
    with Ledger.open(sql_store_url) as ledger:
        register(ledger, "p1")
        register(ledger, "p2")
        ledger.handle(Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t"))
        assert explain(ledger, "p1").row_problem is None
        _sql(ledger, "UPDATE custody_availability SET state = 'available' WHERE profile_id = 'p1'")
        _sql(ledger, "DELETE FROM custody_availability WHERE profile_id = 'p2'")
        edited = explain(ledger, "p1")
        assert edited.state is ProfileState.LEASED
        assert edited.row_problem is not None
        assert edited.row_problem.startswith("differs in state")
        assert explain(ledger, "p2").row_problem == "missing"
        rebuild_availability(ledger)
        assert explain(ledger, "p1").row_problem is None
        assert explain(ledger, "p2").row_problem is None
