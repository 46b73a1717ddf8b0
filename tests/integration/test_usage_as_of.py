"""Usage and the runs that ended unknown as of a moment, on every store: what the events said
then, never an ending, heartbeat or lease recorded after it (rev30 incident review: the
compliance notebook's AS_OF listed a lease live then as "ended stale" by a later sweep)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from conftest import StepClock, register

import reports
from ledger import Checkout, Heartbeat, InvalidInput, Ledger, Quarantine, Release, Review, Sweep
from ledger.feed import ReadModelBehind

ACCOUNT = "account_shop_17"


def test_a_lease_live_at_the_moment_reads_as_it_did_then(ledger: Ledger, clock: StepClock) -> None:
    """As of a moment a lease was live, usage gives its row exactly as the read model gave
    it at that moment (no end, ending or cause; its heartbeats and steps by then), though a
    later heartbeat, a mutating step and the sweep's settlement have changed it since; a lease
    ended by then is as it is; one begun later is absent; and ended_unknown lists nothing."""
    done, live = register(ledger, "profile_a"), register(ledger, "profile_b")
    first = ledger.handle(Checkout(profile_id=done, worker_id="w1", run_id="r1", task_type="t"))
    clock.advance(5)
    clean = {"outcome": "success", "final_url": "https://shop.example/done"}
    ledger.handle(Release(lease_id=first.lease_id, fencing_token=1, **clean))
    lease = ledger.handle(
        Checkout(profile_id=live, worker_id="w2", run_id="r2", task_type="t", ttl_seconds=60)
    )
    clock.advance(10)
    beat = {"lease_id": lease.lease_id, "fencing_token": lease.fencing_token}
    ledger.handle(Heartbeat(**beat, step="search", url="https://shop.example/a", safe=True))
    clock.advance(5)
    as_of = clock.now
    then = reports.usage(ACCOUNT, ledger=ledger)
    assert list(then["ending"].isna()) == [False, True]  # profile_b's lease is live then

    clock.advance(20)
    ledger.handle(Heartbeat(**beat, step="pay", url="https://shop.example/b", mutating=True))
    clock.advance(120)
    ledger.handle(Sweep())  # settles profile_b's lease: stale, after as_of
    register(ledger, "profile_c")
    ledger.handle(Checkout(profile_id="profile_c", worker_id="w3", run_id="r3", task_type="t"))

    now = reports.usage(ACCOUNT, ledger=ledger)
    assert list(now["ending"]) == ["clean", "stale", pd.NA]
    pd.testing.assert_frame_equal(reports.usage(ACCOUNT, at=as_of, ledger=ledger), then)
    assert reports.ended_unknown(at=as_of, ledger=ledger).empty
    assert list(reports.ended_unknown(ledger=ledger)["run_id"]) == ["r2"]
    # A window that ends after the moment still holds only what was known then.
    later = clock.now + timedelta(days=1)
    asked = reports.usage(ACCOUNT, until=later, at=as_of, ledger=ledger)
    pd.testing.assert_frame_equal(asked, then)


@pytest.mark.parametrize(
    ("ask", "field", "said"),
    [
        ({"at": "2999-01-01"}, "at", "after the store's time"),
        ({"since": "2001-01-01", "at": "2000-01-01"}, "since", "after the moment judged at"),
    ],
)
def test_a_moment_after_the_store_or_before_the_window_is_refused(
    ledger: Ledger, ask: dict[str, str], field: str, said: str
) -> None:
    """A moment after the store's time, or a window starting after the moment, is bad input
    naming the field and saying so: the events cannot tell what was still to come."""
    register(ledger)
    with pytest.raises(InvalidInput, match=said) as refused:
        reports.usage(ACCOUNT, ledger=ledger, **ask)  # type: ignore[arg-type]
    assert refused.value.field == field


def test_usage_as_of_a_moment_takes_the_events_replay_takes_after_a_clock_set_back(
    ledger: Ledger, clock: StepClock
) -> None:
    """p1 leased at T+10 and released at T+20; the store's clock then set back 80 s, and
    lease 2 taken and released stamped T-60 to T-50. As of T-55, before the registration,
    usage lists nothing, as replay says p1 was not registered yet; as of T+15 it lists lease 1
    live, as replay shows it, and not lease 2, all of whose events were written later (rev30
    second reading: usage listed lease 2 ended, by its stored times)."""
    pid = register(ledger)
    registered = clock.now
    clock.advance(10)
    first = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    clock.advance(10)
    ledger.handle(
        Release(lease_id=first.lease_id, fencing_token=1, outcome="success", final_url="u")
    )
    clock.advance(-80)
    second = ledger.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))
    clock.advance(5)
    ledger.handle(Heartbeat(lease_id=second.lease_id, fencing_token=2, step="pay"))
    clock.advance(5)
    ledger.handle(
        Release(lease_id=second.lease_id, fencing_token=2, outcome="success", final_url="u")
    )
    clock.advance(200)
    before = registered - timedelta(seconds=55)
    assert reports.usage("account_shop_17", at=before, ledger=ledger).empty
    with pytest.raises(InvalidInput, match="was not registered yet"):
        reports.replay(pid, at=before, ledger=ledger)
    during = registered + timedelta(seconds=15)
    used = reports.usage("account_shop_17", at=during, ledger=ledger)
    assert list(used["lease_id"]) == [first.lease_id]
    assert used["ending"].isna().all()
    assert reports.replay(pid, at=during, ledger=ledger).lease == ledger.history(pid)[1].lease  # type: ignore[attr-defined]


def test_usage_as_of_on_a_login_that_keeps_no_read_model_folds_every_lease_again(
    ledger: Ledger, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leases read model caught up while lease 1 was live, then lease 1 released and
    lease 2 taken; a login that keeps no read model (a worker's) reads its rows as they were.
    As of a moment after all of it, lease 1 reads as released, as replay says (rev30's third
    reading: it read as live, from the stored row behind the events)."""
    pid = register(ledger)
    clock.advance(1)
    first = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r1", task_type="t"))
    clock.advance(1)
    reports.usage("account_shop_17", ledger=ledger)  # the read model, caught up now
    ledger.handle(
        Release(lease_id=first.lease_id, fencing_token=1, outcome="success", final_url="u")
    )
    clock.advance(1)
    second = ledger.handle(Checkout(profile_id=pid, worker_id="w2", run_id="r2", task_type="t"))
    clock.advance(1)
    monkeypatch.setattr(type(ledger.feed), "maintains", lambda self: False)
    with pytest.warns(ReadModelBehind):  # lease 2 is not in the rows it reads
        used = reports.usage("account_shop_17", at=clock.now, ledger=ledger)
    assert list(used["lease_id"]) == [first.lease_id]
    assert used["ended_at"].notna().all()
    lease = ledger.view(pid).lease
    assert lease is not None
    assert lease.lease_id == second.lease_id


def test_a_window_s_start_is_judged_on_the_lease_as_it_stood_at_the_moment(
    ledger: Ledger, clock: StepClock
) -> None:
    """Checked out at t0+60 and renewed at t0+660; the clock set back, the release is stamped
    t0-40. As of t0+300 the lease was live: usage from t0+120 lists it, as usage with no start
    does and replay shows (rev30's third reading: its stored end, before the window's start,
    left it out)."""
    pid = register(ledger)
    t0 = clock.now
    clock.advance(60)
    lease = ledger.handle(
        Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=3600)
    )
    clock.advance(600)
    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s"))
    clock.advance(-700)
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="u")
    )
    clock.advance(2000)
    at, since = t0 + timedelta(seconds=300), t0 + timedelta(seconds=120)
    assert reports.replay(pid, at=at, ledger=ledger).lease is not None
    used = reports.usage("account_shop_17", since=since, at=at, ledger=ledger)
    assert list(used["lease_id"]) == [lease.lease_id]
    assert used["ended_at"].isna().all()


def test_a_window_that_ends_before_it_starts_is_refused_as_of_a_moment_too(
    ledger: Ledger, clock: StepClock
) -> None:
    """usage from t0+400 until t0+100 is refused naming ``since``, as of a moment as without
    one (rev30's fourth reading: as of a moment it answered)."""
    register(ledger)
    t0 = clock.now
    clock.advance(1000)
    since, until = t0 + timedelta(seconds=400), t0 + timedelta(seconds=100)
    for at in (None, clock.now):
        with pytest.raises(InvalidInput, match="since") as refused:
            reports.usage("account_shop_17", since=since, until=until, at=at, ledger=ledger)
        assert "holds no time" in str(refused.value)


def test_review_waits_as_of_a_moment_take_the_events_replay_takes_after_a_clock_set_back(
    ledger: Ledger, clock: StepClock
) -> None:
    """The sweep sends p to review at T+100, an operator quarantines it at T+300; the store's
    clock is then set back and a reviewer's return is stamped T+200. As of T+250 replay shows
    p waiting (the verdict was written after the quarantine), and so do the review waits
    (rev31: they cut by stored time, and the verdict ended the wait at T+200)."""
    pid = register(ledger)
    start = clock.now
    ledger.handle(
        Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=30)
    )
    clock.advance(100)
    ledger.handle(Sweep())
    clock.advance(200)
    ledger.handle(Quarantine(profile_id=pid, actor="op", reason="q"))
    clock.advance(-100)
    ledger.handle(Review(profile_id=pid, reviewer="rv", decision="return", note="ok"))
    clock.advance(200)
    at = start + timedelta(seconds=250)
    assert reports.replay(pid, at=at, ledger=ledger).state.value == "review_required"
    (wait,) = reports.review_waits(at=at, ledger=ledger).itertuples()
    assert wait.state == "review_required"
    assert pd.isna(wait.ended_at)
    assert pd.isna(wait.ended_by)
    (now,) = reports.review_waits(ledger=ledger).itertuples()
    assert now.ended_by == "return by rv"


def test_a_time_without_an_offset_is_utc_for_usage_as_rows_on_any_host_zone(
    ledger: Ledger, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a host whose zone is Tokyo (UTC+9), ``projections.usage`` takes a naive since,
    until and at as UTC, as ``reports.usage`` does (rev31 library review: since a second after
    a lease ended still listed it, the host's local time read in, and a naive at raised a
    TypeError)."""
    import time

    from projections import usage

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        pid = register(ledger)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
        clock.advance(5)
        ledger.handle(Release(lease_id=lease.lease_id, fencing_token=1, outcome="failure"))
        ended = clock.now
        clock.advance(60)
        after = (ended + timedelta(seconds=1)).replace(tzinfo=None)
        assert usage(ledger, ACCOUNT, since=after) == []
        assert reports.usage(ACCOUNT, since=after, ledger=ledger).empty
        before = (ended - timedelta(seconds=10)).replace(tzinfo=None)
        assert usage(ledger, ACCOUNT, until=before) == []
        (then,) = usage(ledger, ACCOUNT, at=(ended - timedelta(seconds=1)).replace(tzinfo=None))
        assert then.ended_at is None
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("field", ["since", "until", "at"])
def test_projections_usage_refuses_what_is_no_time_naming_the_field(
    ledger: Ledger, field: str
) -> None:
    """``projections.usage`` checks its times as ``projections.timeline`` does (rev33: text
    raised AttributeError, and a time of year 1 east of UTC a bare OverflowError)."""
    import projections

    east = datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))
    for value, said in (("2026-12-06", "expected a datetime"), (east, "no instant in UTC")):
        with pytest.raises(InvalidInput) as refused:
            projections.usage(ledger, None, **{field: value})
        assert refused.value.field == field
        assert said in str(refused.value)


def _read(ledger: Ledger, at: datetime | None = None) -> dict[str, object]:
    """What every read of the account's one lease says of it at ``at`` (None: now)."""
    import projections

    frame = reports.usage(ACCOUNT, at=at, ledger=ledger)
    (row,) = projections.usage(ledger, ACCOUNT, at=at)
    unknown = reports.ended_unknown(at=at, ledger=ledger)
    return {
        "status": (str(frame["status"].iloc[0]), row.status),
        "ending": (None if pd.isna(frame["ending"].iloc[0]) else frame["ending"].iloc[0]),
        "unknown": [(str(r.lease_id), str(r.status)) for r in unknown.itertuples()],
    }


def test_a_lease_past_its_deadline_reads_overdue_before_any_sweep(
    ledger: Ledger, clock: StepClock
) -> None:
    """p's lease (TTL 30 s), renewed at T+10, has its deadline at T+40, and no sweep runs. At
    the deadline itself it is active; past it, usage (frame and rows, now and as of that
    moment), ended_unknown and health call it overdue, not ended, as replay calls it stale
    then; its deadline is in usage's columns. Swept later, it reads ended stale, and as of the
    moment before the sweep still overdue with no ending (rev42: usage read it active, health
    live with unclean 0, and ended_unknown left it out, while the sweeper was down)."""
    pid = register(ledger)
    start = clock.now
    lease = ledger.handle(
        Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=30)
    )
    clock.advance(10)
    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="cart"))
    deadline = start + timedelta(seconds=40)
    clock.advance(30)
    live = {"status": ("active", "active"), "ending": None, "unknown": []}
    assert _read(ledger) == live  # at the deadline itself: still live
    health = reports.health(ledger=ledger).endings["profile"]
    assert health[["overdue", "live", "unclean"]].values.tolist() == [[0, 1, 0]]

    clock.advance(1)
    past = clock.now
    overdue = {
        "status": ("overdue", "overdue"),
        "ending": None,
        "unknown": [(lease.lease_id, "overdue")],
    }
    assert _read(ledger) == overdue
    used = reports.usage(ACCOUNT, ledger=ledger)
    assert (used["expires_at"].iloc[0], used["ended_at"].iloc[0]) == (deadline, pd.NaT)
    health = reports.health(ledger=ledger).endings["profile"]
    assert health[["overdue", "live", "unclean"]].values.tolist() == [[1, 0, 1]]
    assert reports.replay(pid, at=past, ledger=ledger).reason == "stale"

    clock.advance(60)
    ledger.handle(Sweep())
    assert _read(ledger, at=deadline) == live
    assert _read(ledger, at=past) == overdue
    assert _read(ledger) == {
        "status": ("ended", "ended"),
        "ending": "stale",
        "unknown": [(lease.lease_id, "ended")],
    }
