"""A PostgreSQL server that rounds floats it sends (``extra_float_digits`` 0 or below:
PostgreSQL 11's default, kept in many a server's configuration, or set for a database or a
role) read the leases read model's float columns back rounded to 15 digits: after a few
heartbeats each lease's row was unlike the digest written with it, "edited by hand", and every
fleet report failed; the rebuild it named lasted until the next heartbeat (rev39). Every
session custody opens asks for floats as they are."""

from __future__ import annotations

import psycopg
from conftest import StepClock, register

from ledger import Checkout, Heartbeat, Ledger, Release
from ledger._stores.connections import postgres_connection
from projections import READ_MODELS, catch_up, read_model_status
from reports import usage

# A gap whose share of the TTL (0.305816 / 60) has more than 15 significant digits.
GAP = 0.305816
TTL = 60


def test_a_database_that_rounds_floats_reads_the_leases_back_exactly(pg_url: str) -> None:
    Ledger.init(pg_url).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        assert name is not None
        conn.execute(f"ALTER DATABASE {name[0]} SET extra_float_digits TO 0")
    clock = StepClock()
    with Ledger.open(pg_url, clock=clock) as ledger:
        with postgres_connection(ledger.settings) as direct:
            shown = direct.execute("SELECT current_setting('extra_float_digits')").fetchone()
        assert shown == ("3",)
        assert ledger.feed.query("SELECT current_setting('extra_float_digits') AS d") == [
            {"d": "3"}
        ]
        register(ledger, "p1")
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", ttl_seconds=TTL)
        )
        for step in ("s1", "s2", "s3"):
            clock.advance(GAP)
            ledger.handle(
                Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=step)
            )
            for model in READ_MODELS.values():  # each catch-up folds onto the row read back
                catch_up(ledger, model)
        ledger.handle(
            Release(
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                outcome="success",
                final_url="https://x/done",
            )
        )
        for model in READ_MODELS.values():
            catch_up(ledger, model)
        assert [s.problems for s in read_model_status(ledger, list(READ_MODELS.values()))] == [
            []
        ] * len(READ_MODELS)
        (row,) = usage(None, ledger=ledger).to_dict("records")
    assert row["heartbeats"] == 3
    assert row["longest_gap_seconds"] == GAP
