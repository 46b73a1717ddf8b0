"""``custody verify`` and ``digest`` on PostgreSQL while an append is left open: appends commit
out of position order, so a read of the log stops at a gap an append in progress may fill. A
follower reads on later; the audit must read the whole log, so it says it could not (exit 6,
naming the position and the transaction) instead of checking the part before the gap and
passing, and verifies the whole log once the append ends (``ledger._stores.settled``).
"""

from __future__ import annotations

import psycopg
import pytest
from audit_scene import custody, small_ledger
from raw_log import RawLog

from ledger import Ledger, RegisterProfile

pytestmark = pytest.mark.postgres


def test_verify_and_digest_say_the_log_is_held_open_and_verify_it_once_it_ends(
    pg_url: str,
) -> None:
    Ledger.init(pg_url).close()
    small_ledger(pg_url)
    store = f"{pg_url}?timeout=1"
    log = RawLog(pg_url)
    p3 = log.row("p3", 1)
    with psycopg.connect(pg_url) as pending:  # a transaction left open, after its insert
        pending.execute(
            "INSERT INTO custody_events (originator_id, originator_version, topic, state) "
            "VALUES (%s, 2, %s, %s)",
            (log.stream_id("p3"), p3.topic, p3.state),
        )
        with Ledger.open(pg_url) as ledger:  # committed after the gap the open one left
            ledger.handle(RegisterProfile(profile_id="p4", account_id="a", proxy_id="x"))
        said = custody(store, "verify")
        assert said.code == 6, said
        assert "busy: the log cannot be read past position 12 while transaction(s) " in said.err
        assert said.out == ""
        made = custody(store, "digest")
        assert made.code == 6, made
        pending.rollback()
    said = custody(store, "verify")
    assert said.code == 0, said
    assert said.out.startswith("checked 13 events of 4 profiles")
