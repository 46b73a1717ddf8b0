"""The read models fed from the log (timeline, leases), on every store: what their rows say,
what a read of them answers, status and rebuild (exactly once: ``test_exactly_once.py``)."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import pandas as pd
import pytest
from conftest import StepClock, register
from log_checks import every_ending, rows, take_lease, whole_log

from ledger import (
    Heartbeat,
    InvalidInput,
    Ledger,
    LedgerError,
    ProfileState,
    Release,
    StoreUnavailable,
)
from ledger.feed import FeedTransaction
from projections import (
    LEASES_READ_MODEL,
    READ_MODELS,
    TIMELINE_READ_MODEL,
    catch_up,
    read_model_status,
    rebuild,
    status,
    timeline,
    timeline_pages,
    who,
)
from projections._base import iso
from reports import replay, timeline as timeline_frame, timeline_pages as timeline_frames
from reports._frames import rows_of


def test_leases_say_how_each_lease_ended(ledger: Ledger, clock: StepClock) -> None:
    """One row per lease: the ending in one word, the cause, where the profile went, the
    heartbeats and the longest gap between renewals, the safe and unconfirmed steps."""
    ids = every_ending(ledger, clock)
    catch_up(ledger, LEASES_READ_MODEL)
    by_id = {r["lease_id"]: r for r in rows(ledger, "custody_leases", "lease_id")}
    seen = {
        ending: (by_id[lid]["ending"], by_id[lid]["cause"], by_id[lid]["profile_state_after"])
        for ending, lid in ids.items()
    }
    assert seen == {
        "clean": ("clean", None, "available"),
        "expected_failure": ("expected_failure", None, "available"),
        "review": ("review", "unexpected_failure", "review_required"),
        "quarantine": ("quarantine", "mutation_unconfirmed", "quarantined"),
        "stale": ("stale", "lease_expired", "review_required"),
        "forced": ("forced", "force_release", "review_required"),
        "revoked": ("revoked", "operator", "quarantined"),
    }
    clean = by_id[ids["clean"]]
    assert (clean["heartbeats"], clean["longest_gap_seconds"]) == (2, 30.0)
    assert (clean["last_safe_step"], clean["last_step"], clean["outcome"]) == ("a", "b", "success")
    last_beat = [e for e in ledger.history("clean") if e.event_type == "lease_heartbeat"][-1]
    assert clean["expires_at"] == iso(last_beat.expires_at)  # type: ignore[attr-defined]
    assert clean["last_renewal_at"] == iso(last_beat.envelope.at)
    assert by_id[ids["quarantine"]]["mutating_step"] == "pay"
    assert by_id[ids["stale"]]["marked_stale_at"] is not None
    assert {r["status"] for r in by_id.values()} == {"ended"}


def test_the_read_model_and_the_domain_name_each_ending_alike(
    ledger: Ledger, clock: StepClock
) -> None:
    """For every lease, the leases read model's ending and cause are the ended lease's own
    (the domain's), which ``who`` and the availability row show too."""
    ids = every_ending(ledger, clock)
    catch_up(ledger, LEASES_READ_MODEL)
    by_id = {r["lease_id"]: r for r in rows(ledger, "custody_leases", "lease_id")}
    for lid in ids.values():
        pid = lid.split("@", 1)[1]
        ended = ledger.view(pid).last_lease
        assert ended is not None
        cause = ended.ending_cause.value if ended.ending_cause else None
        assert (ended.ending, cause) == (by_id[lid]["ending"], by_id[lid]["cause"])
        said = who(ledger, pid)
        assert (said.ending, said.cause) == (ended.ending, ended.ending_cause)
        assert ledger.availability_from_events(pid).last_ending == ended.ending


def test_timeline_has_one_flat_row_per_event_with_its_envelope(
    ledger: Ledger, clock: StepClock
) -> None:
    """Each event is one row in log order, with the account and the lease's run and worker on
    every event of that lease, and the audit ids as the event carries them."""
    every_ending(ledger, clock)
    rows_ = timeline(ledger)
    log = whole_log(ledger)
    assert [r.position for r in rows_] == [n.position for n in log]
    for row, n in zip(rows_, log, strict=True):
        env = n.event.envelope
        assert (row.event_type, row.actor_id, row.command_id, row.causation_id) == (
            n.event.event_type,
            env.actor_id,
            env.command_id,
            env.causation_id,
        )
        assert row.at == env.at
    beats = [r for r in rows_ if r.event_type == "lease_heartbeat"]
    assert {(r.account_id, r.run_id, r.worker_id) for r in beats} == {
        ("account_shop_17", "r", "w-r")
    }
    stale = timeline(ledger, "stale")
    assert [r.event_type for r in stale][-2:] == ["lease_marked_stale", "review_requested"]
    with pytest.raises(InvalidInput, match="no profile was ever registered under account"):
        timeline(ledger, account_id="nobody")
    middle = stale[1].at
    assert [r.version for r in timeline(ledger, "stale", since=middle, until=middle)] == [2]


def test_an_answer_never_lags_the_command_before_it(ledger: Ledger) -> None:
    """Each read brings the timeline up to date: the event of the command just finished is
    always in the answer."""
    pid = register(ledger)
    assert [r.event_type for r in timeline(ledger, pid)] == ["profile_registered"]
    lid, tok = take_lease(ledger, pid)
    for n in range(5):
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{n}"))
        assert timeline(ledger, pid)[-1].step == f"s{n}"


def test_the_last_events_of_a_timeline_are_its_tail(ledger: Ledger, clock: StepClock) -> None:
    """``last`` gives the tail of the same answer (a profile's, an account's, the fleet's),
    oldest first; a ``last`` below 1 is refused by the report."""
    every_ending(ledger, clock)
    for ask in ({"profile_id": "clean"}, {"account_id": "account_shop_17"}, {}):
        whole = timeline(ledger, **ask)  # type: ignore[arg-type]
        assert len(whole) > 3
        assert timeline(ledger, **ask, last=3) == whole[-3:]  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="last"):
        timeline_frame(last=0, ledger=ledger)


def test_what_the_command_line_bounds_the_api_refuses_by_the_same_rule(
    ledger: Ledger, clock: StepClock
) -> None:
    """A ``last`` out of 1..10,000,000, a replay's ``events`` out of 0..1,000 and a state that
    is none are InvalidInput naming the parameter and its range, as the command line's
    options (the same ``projections.LAST_EVENTS``, ``EVENTS_AROUND``, ``ProfileState``).
    rev27: ``last=10**20`` was SQLite's OverflowError, ``state="bogus"`` answered [] (no
    profile in it) and ``events=-1`` was taken."""
    every_ending(ledger, clock)
    for last in (10**20, 10_000_001, 0, True):
        with pytest.raises(InvalidInput, match=r"invalid last: .* from 1 to 10,000,000, got"):
            timeline(ledger, "clean", last=last)
        with pytest.raises(InvalidInput, match=r"invalid last: .* from 1 to 10,000,000, got"):
            timeline_frame("clean", last=last, ledger=ledger)
    assert timeline(ledger, "clean", last=10_000_000) == timeline(ledger, "clean")
    for events in (-1, 1001):
        with pytest.raises(InvalidInput, match=r"invalid events: .* from 0 to 1,000, got"):
            replay("clean", at="2026-01-01", events=events, ledger=ledger)
    with pytest.raises(InvalidInput, match="invalid state: 'bogus' is not one of available, "):
        status(ledger, state="bogus")
    assert status(ledger, state="quarantined") == status(ledger, state=ProfileState.QUARANTINED)
    assert status(ledger, state="quarantined")


def test_a_catch_up_keeps_no_plan_made_on_a_small_read_model(pg_url: str) -> None:
    """A catch-up fills a read model from empty. Its statements are planned afresh each
    time, never prepared: a generic plan kept from the first batches (psycopg prepares a
    statement run five times) scanned the whole leases table for every later batch, 8.8 ms
    against 0.7 ms at 300,000 events. Guard: ``_SqlCursor``'s ``replan``."""
    Ledger.init(pg_url).close()
    with Ledger.open(pg_url) as ledger:
        pid = register(ledger)
        for run in range(12):
            lid, tok = take_lease(ledger, pid, run=f"r{run}")
            ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="s"))
            ledger.handle(
                Release(
                    lease_id=lid, fencing_token=tok, outcome="success", final_url="https://x/ok"
                )
            )
        for model in READ_MODELS.values():
            catch_up(ledger, model, batch=2)
        with ledger.feed.transaction() as tx:
            prepared = tx.query("SELECT statement FROM pg_prepared_statements")
    kept = [r["statement"] for r in prepared if "custody_leases" in r["statement"]]
    assert kept == [], kept


def test_a_batch_finds_its_leases_acquisitions_without_walking_their_heartbeats(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each timeline batch looks up the acquisition of every lease it continues. The lookup
    searches the lease's rows by id and event type together, so it does not grow with the
    lease's heartbeats: looked up by lease id alone, a catch-up of 20,000 heartbeats on 10
    leases ran at 0.55x a bare read-and-decode, against 0.8x. Guard: the timeline's index on
    ``(lease_id, event_type)`` (``lease_id`` alone: the plan searched by ``lease_id=?``)."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(url).close()
    looked_up: list[tuple[str, list[Any]]] = []
    query = FeedTransaction.query

    def noted(tx: FeedTransaction, statement: str, params: Any = ()) -> list[dict[str, Any]]:
        if "'lease_acquired' AND lease_id IN" in statement:
            looked_up.append((statement, list(params)))
        return query(tx, statement, params)

    with Ledger.open(url) as ledger:
        lid, tok = take_lease(ledger, register(ledger))
        catch_up(ledger, TIMELINE_READ_MODEL)
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="s"))
        monkeypatch.setattr(FeedTransaction, "query", noted)
        catch_up(ledger, TIMELINE_READ_MODEL)
        monkeypatch.undo()
        assert len(looked_up) == 1
        statement, params = looked_up[0]
        with ledger.feed.transaction() as tx:
            plan = tx.query(f"EXPLAIN QUERY PLAN {statement}", params)
    assert [r["detail"] for r in plan] == [
        f"SEARCH custody_timeline USING INDEX {_index_of(url, 'lease_event')} "
        "(lease_id=? AND event_type=?)"
    ]


def _index_of(url: str, suffix: str) -> str:
    with Ledger.open(url) as ledger:
        found = ledger.feed.query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE ?",
            (f"custody_timeline_%_{suffix}",),
        )
    return str(found[0]["name"])


def test_a_second_rebuild_of_the_same_read_model_is_refused(ledger: Ledger) -> None:
    """While a rebuild of the timeline holds its lock, another is refused at once as busy,
    retry (rev45: ``NotAllowed``, exit 1, naming "rebuild-timeline"), naming the read model
    (and one of the leases is not refused); after it ends, a rebuild runs."""
    register(ledger)
    with ledger.feed.exclusive("rebuild-timeline"):
        with pytest.raises(StoreUnavailable) as refused:
            rebuild(ledger, TIMELINE_READ_MODEL)
        assert refused.value.busy
        assert str(refused.value) == (
            "projections rebuild timeline is already running in another process; try again "
            "when it ends"
        )
        assert rebuild(ledger, LEASES_READ_MODEL).name == "leases"
    assert rebuild(ledger, TIMELINE_READ_MODEL).rows == 1


def test_status_shows_position_and_lag(ledger: Ledger) -> None:
    """Before the first read a read model is not installed; after it, its position is the
    log's head; new events show as lag until the next read."""
    pid = register(ledger)
    first = {s.name: s for s in read_model_status(ledger, READ_MODELS.values())}
    assert (first["timeline"].position, first["timeline"].lag) == (None, 1)
    timeline(ledger, pid)
    lid, tok = take_lease(ledger, pid)
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok))
    now = {s.name: s for s in read_model_status(ledger, READ_MODELS.values())}
    head = ledger.feed.head()
    assert (now["timeline"].position, now["timeline"].lag, now["timeline"].rows) == (
        head - 2,
        2,
        1,
    )
    assert now["leases"].position is None


def test_times_compare_in_the_store_as_they_do_in_python(ledger: Ledger, clock: StepClock) -> None:
    """A window given with another offset selects the same events as in UTC."""
    pid = register(ledger)
    clock.advance(3600)
    take_lease(ledger, pid)
    at = timeline(ledger, pid)[1].at
    shifted = at.astimezone(timezone(timedelta(hours=-5)))
    assert [r.version for r in timeline(ledger, pid, since=shifted)] == [2]


def _plain(value: object) -> object:
    """A DataFrame cell as the row model holds it: NA as None, a Timestamp as a datetime."""
    if value is pd.NA:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value


def _both(ledger: Ledger, ask: dict[str, Any]) -> tuple[object, object]:
    """The rows and the report's records for one ask, or the error each raised."""
    said: list[object] = []
    for read in (_rows, _records):
        try:
            said.append(read(ledger, ask))
        except LedgerError as e:
            said.append((type(e).__name__, str(e)))
    return said[0], said[1]


def _rows(ledger: Ledger, ask: dict[str, Any]) -> list[dict[str, Any]]:
    return [r.model_dump() for r in timeline(ledger, ask["profile"], **_named(ask, "_id"))]


def _records(ledger: Ledger, ask: dict[str, Any]) -> list[dict[str, Any]]:
    frame = timeline_frame(ask["profile"], ledger=ledger, **_named(ask, ""))
    return [{k: _plain(v) for k, v in row.items()} for row in rows_of(frame)]


def _named(ask: dict[str, Any], suffix: str) -> dict[str, Any]:
    return {
        f"account{suffix}": ask.get("account"),
        **{k: ask.get(k) for k in ("since", "until", "last")},
    }


def _asks(ledger: Ledger, clock: StepClock) -> list[dict[str, Any]]:
    """What a timeline is asked (``every_ending``'s 31 events): a profile, an account, the
    fleet, windows, the last events; then four it refuses."""
    middle = timeline(ledger)[20].at
    return [
        {"profile": "clean"},
        {"profile": None, "account": "account_shop_17"},
        {"profile": None},
        {"profile": "stale", "since": middle},
        {"profile": None, "until": middle, "last": 4},
        {"profile": "clean", "last": 2},
        {"profile": None, "since": clock.now + timedelta(days=1)},
        {"profile": "nobody"},
        {"profile": None, "account": "nobody"},
        {"profile": "clean", "last": 0},
        {"profile": "bad id\n"},
    ]


def _paged(ledger: Ledger, ask: dict[str, Any], rows: int) -> tuple[object, object]:
    """``_both`` read in pages of ``rows``: the rows and the records, each page's length."""
    said: list[object] = []
    for pages in (
        lambda: (
            [r.model_dump() for r in page]
            for page in timeline_pages(ledger, ask["profile"], rows=rows, **_named(ask, "_id"))
        ),
        lambda: (
            [{k: _plain(v) for k, v in row.items()} for row in rows_of(frame)]
            for frame in timeline_frames(
                ask["profile"], ledger=ledger, rows=rows, **_named(ask, "")
            )
        ),
    ):
        try:
            read = list(pages())
        except LedgerError as e:
            said.append((type(e).__name__, str(e)))
            continue
        assert read, "the first page comes even when empty"
        assert all(len(page) == rows for page in read[:-1]), [len(page) for page in read]
        assert len(read) == 1 or 0 < len(read[-1]) <= rows, [len(page) for page in read]
        said.append([row for page in read for row in page])
    return said[0], said[1]


@pytest.mark.parametrize("rows", [1, 4, 31])
def test_a_timeline_read_in_pages_is_the_timeline_read_whole(
    sql_store_url: str, clock: StepClock, rows: int
) -> None:
    """``projections.timeline_pages`` and ``reports.timeline_pages`` (what an export writes a
    page at a time) answer each ask with the events a whole read answers, in order, in pages of
    ``rows`` but the last (31 is the whole fleet's: one full page and no empty one after), and
    refuse what it refuses with the same error."""
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        every_ending(ledger, clock)
        for ask in [*_asks(ledger, clock), {"profile": None, "last": 30}]:
            whole = _both(ledger, ask)
            assert _paged(ledger, ask, rows) == whole, ask
        assert len(timeline(ledger)) == 31


def test_a_timeline_s_pages_are_read_on_one_postgresql_connection(
    pg_url: str, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reports.timeline_pages`` reads every page of an export on one ADBC connection: each
    page opened its own (100-130 ms each here, review 240: a paged parquet export on
    PostgreSQL took 1.6 s where one read took 0.95). The real driver, its connects counted."""
    import adbc_driver_postgresql.dbapi as adbc

    Ledger.init(pg_url).close()
    opened: list[str] = []
    real = adbc.connect

    def counted(uri: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(uri)
        return real(uri, *args, **kwargs)

    with Ledger.open(pg_url, clock=clock) as ledger:
        every_ending(ledger, clock)
        whole = timeline_frame(ledger=ledger)
        monkeypatch.setattr(adbc, "connect", counted)
        pages = list(timeline_frames(ledger=ledger, rows=4))
    assert len(pages) == 8, [len(page) for page in pages]
    assert len(opened) == 1
    pd.testing.assert_frame_equal(pd.concat(pages, ignore_index=True), whole)


def test_a_timeline_export_reads_on_when_its_connection_drops_between_pages(pg_url: str) -> None:
    """The connection an export's pages share is terminated between two pages (a server
    restart, a failover, an idle timeout while a slow consumer writes a page out): the next
    page is read on a new one, as when every page had its own (review 251), and the export
    holds every event."""
    import psycopg

    Ledger.init(pg_url).close()
    clock = StepClock()
    others = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    with Ledger.open(pg_url, clock=clock) as ledger:
        every_ending(ledger, clock)
        whole = timeline_frame(ledger=ledger)
        pages = timeline_frames(ledger=ledger, rows=4)
        read = [next(pages)]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(others)
        read += list(pages)
    pd.testing.assert_frame_equal(pd.concat(read, ignore_index=True), whole)


def test_a_timeline_export_between_pages_holds_no_lock_a_rebuild_waits_for(pg_url: str) -> None:
    """The one connection an export's pages share reads each page in a transaction of its own:
    between pages it holds no lock on the read model, so a rebuild (which swaps the table)
    does not wait for an export being written out, however slowly."""
    Ledger.init(pg_url).close()
    clock = StepClock()
    with Ledger.open(pg_url, clock=clock) as ledger:
        every_ending(ledger, clock)
        pages = timeline_frames(ledger=ledger, rows=4)
        first = next(pages)
        with Ledger.open(pg_url + "?timeout=2") as other:
            rebuild(other, TIMELINE_READ_MODEL)
        rest = list(pages)
    assert len(first) == 4
    assert len(rest) == 7


@pytest.mark.parametrize("last", [None, 5])
def test_a_timeline_read_in_pages_holds_the_events_of_its_first_page_s_moment(
    sql_store_url: str, clock: StepClock, last: int | None
) -> None:
    """Events folded while the pages are read (by another command's catch-up) are not part of
    the answer, whose events are those of the moment its first page was read: an export is
    one moment's, as a single read is, however long it takes to write."""
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        every_ending(ledger, clock)
        before = [r.model_dump() for r in timeline(ledger, last=last)]
        pages = timeline_pages(ledger, last=last, rows=2)
        read = [r.model_dump() for r in next(pages)]
        lid, tok = take_lease(ledger, "clean", run="later")
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step="later"))
        catch_up(ledger, TIMELINE_READ_MODEL)
        read += [r.model_dump() for page in pages for r in page]
        assert len(timeline(ledger)) == 33
    assert read == before
    assert {r["run_id"] for r in read}.isdisjoint({"later"})


def test_the_report_and_the_rows_are_one_timeline(sql_store_url: str, clock: StepClock) -> None:
    """``reports.timeline`` (a DataFrame) and ``projections.timeline`` (rows) answer each ask
    (a profile, an account, the fleet, a window, the last events) with the same events, field
    for field, and refuse the same asks with the same error: one definition behind both."""
    with Ledger.open(sql_store_url, clock=clock) as ledger:
        every_ending(ledger, clock)
        asks = _asks(ledger, clock)
        answers = [_both(ledger, ask) for ask in asks]
    for ask, (rows_said, report_said) in zip(asks, answers, strict=True):
        assert rows_said == report_said, ask
    assert [len(a) for a, _ in answers[:7]] == [6, 31, 31, 3, 4, 2, 0]
    assert [a[0] for a, _ in answers[7:]] == ["UnknownProfile", *["InvalidInput"] * 3]  # type: ignore[index]
