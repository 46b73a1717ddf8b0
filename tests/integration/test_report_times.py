"""The times the report functions take as text, on every store: a date alone is a whole day,
a time with no UTC instant is bad input, and replay refuses a moment after the store's time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import StepClock, register

import projections
import reports
from ledger import Checkout, InvalidInput, Ledger, Release


@pytest.fixture
def day(ledger: Ledger, clock: StepClock) -> str:
    """One profile used once, today on the test's clock; returns today's date."""
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="u")
    )
    return clock.now.date().isoformat()


def test_a_date_alone_is_the_whole_day(ledger: Ledger, day: str) -> None:
    """until=DATE reaches through the day's last instant and since=DATE from its first, in
    the timeline and in usage alike."""
    events = reports.timeline(ledger=ledger)
    assert len(reports.timeline(until=day, ledger=ledger)) == len(events) == 4
    assert len(reports.timeline(since=day, until=day, ledger=ledger)) == 4
    used = reports.usage("account_shop_17", since=day, until=day, ledger=ledger)
    assert list(used["lease_id"]) == ["lease-1@profile_shop_17"]


def test_a_time_until_its_second_or_minute_takes_in_all_of_it(
    ledger: Ledger, clock: StepClock
) -> None:
    """until=TIME given to the second (as the text views show times) reaches through that
    second's last microsecond, and to the minute through the minute's: the events 0.65 s
    after the second a person copied are in the window, in the timeline and in usage; a
    time with a fraction is the instant itself, and since=TIME starts at the second."""
    clock.now = clock.now.replace(microsecond=654_321)
    pid = register(ledger)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="u")
    )
    second = clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    minute = clock.now.strftime("%Y-%m-%dT%H:%M")
    assert len(reports.timeline(until=second, ledger=ledger)) == 4
    assert len(reports.timeline(until=minute, ledger=ledger)) == 4
    assert len(reports.timeline(since=second, until=second, ledger=ledger)) == 4
    used = reports.usage("account_shop_17", since=second, until=second, ledger=ledger)
    assert list(used["lease_id"]) == ["lease-1@profile_shop_17"]
    just_before = (clock.now - timedelta(microseconds=1)).isoformat()
    assert len(reports.timeline(until=just_before, ledger=ledger)) == 0


@pytest.mark.parametrize(
    ("field", "ask"),
    [
        ("at", {"at": "0001-01-01T00:00:00+05:30"}),
        ("since", {"since": "0001-01-01T00:00:00+05:30"}),
        ("until", {"until": "9999-12-31T23:59:59-05:00"}),
        ("since", {"since": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}),
    ],
)
def test_a_time_with_no_utc_instant_is_bad_input(
    ledger: Ledger, day: str, field: str, ask: dict[str, object]
) -> None:
    """The first hour of year 1 east of Greenwich or the last of year 9999 west of it, as
    text or as a datetime, is InvalidInput naming the field, never an OverflowError."""

    def ask_the_report() -> object:
        if field == "at":
            return reports.replay("profile_shop_17", ledger=ledger, **ask)  # type: ignore[arg-type]
        return reports.usage("account_shop_17", ledger=ledger, **ask)  # type: ignore[arg-type]

    with pytest.raises(InvalidInput, match="out of range") as refused:
        ask_the_report()
    assert refused.value.field == field


def test_replay_refuses_a_moment_after_the_store_s_time(
    ledger: Ledger, clock: StepClock, day: str
) -> None:
    """replay at a moment past the store's clock is InvalidInput saying the store's time;
    at the clock's own moment it answers."""
    with pytest.raises(InvalidInput, match="after the store's time") as refused:
        reports.replay("profile_shop_17", at=clock.now + timedelta(microseconds=1), ledger=ledger)
    assert refused.value.field == "at"
    assert reports.replay("profile_shop_17", at=clock.now, ledger=ledger).state == "available"


@pytest.fixture
def host_east_of_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's local time is India's (UTC+05:30) for the test."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_timeline_read_model_takes_the_same_times(
    ledger: Ledger, day: str, host_east_of_utc: None
) -> None:
    """projections.timeline, under the reports, refuses a time with no UTC instant naming
    the field, and reads a time without an offset as UTC, not as the host's local time."""
    east = timezone(timedelta(hours=5))
    with pytest.raises(InvalidInput, match="out of range") as refused:
        projections.timeline(ledger, since=datetime(1, 1, 1, tzinfo=east))
    assert refused.value.field == "since"
    every = projections.timeline(ledger)  # the fixture's events share one instant
    naive = every[0].at.astimezone(UTC).replace(tzinfo=None)
    assert projections.timeline(ledger, until=naive) == every


def test_a_week_alone_is_the_whole_week() -> None:
    """rev21: ``--until 2026-W48`` reached only through its Monday (``date.fromisoformat``
    reads a week as its first day): it reaches through its Sunday; ``--since`` starts on
    its Monday; a week with its day is that day."""
    monday, sunday = datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC)
    last = sunday.replace(hour=23, minute=59, second=59, microsecond=999_999)
    for week in ("2026-W48", "2026W48"):
        assert reports.moment("until", week, until=True) == last
        assert reports.moment("since", week) == monday
    friday = datetime(2026, 11, 27, 23, 59, 59, 999_999, tzinfo=UTC)
    assert reports.moment("until", "2026-W48-5", until=True) == friday


def test_usage_since_after_the_stores_time_is_refused(ledger: Ledger, clock: StepClock) -> None:
    """rev22: ``usage --since 2030-01-01`` listed today's unended leases as live in 2030, one
    whose deadline had passed unswept among them. A window that starts after the store's time
    is refused, as replay refuses such a moment; one that starts before it and ends after is
    the usage up to now."""
    pid = register(ledger)
    ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    later = (clock.now + timedelta(days=1)).isoformat()
    with pytest.raises(InvalidInput, match=r"^invalid since: .* is after the store's time") as e:
        reports.usage("account_shop_17", since=later, ledger=ledger)
    assert e.value.field == "since"
    earlier = (clock.now - timedelta(hours=1)).isoformat()
    used = reports.usage("account_shop_17", since=earlier, until=later, ledger=ledger)
    assert list(used["lease_id"]) == ["lease-1@profile_shop_17"]


def test_a_date_object_is_the_day_and_nat_is_bad_input(ledger: Ledger, day: str) -> None:
    """rev22: ``reports.usage(since=date.today())`` (a notebook's way) raised AttributeError,
    and ``since=pd.NaT`` a ValueError, as did ``projections.timeline``. A date is its day, as
    its text is; NaT, or a date where a time is asked, is bad input naming the field."""
    import pandas as pd

    as_date = datetime.fromisoformat(day).date()
    by_date = reports.usage("account_shop_17", since=as_date, until=as_date, ledger=ledger)
    by_text = reports.usage("account_shop_17", since=day, until=day, ledger=ledger)
    assert list(by_date["lease_id"]) == list(by_text["lease_id"]) == ["lease-1@profile_shop_17"]
    for asked in (
        lambda: reports.usage("account_shop_17", since=pd.NaT, ledger=ledger),
        lambda: reports.timeline(until=pd.NaT, ledger=ledger),
        lambda: projections.timeline(ledger, since=as_date),  # type: ignore[arg-type]
        lambda: projections.timeline(ledger, until=pd.NaT),
    ):
        with pytest.raises(InvalidInput, match=r"^invalid (since|until): expected a datetime"):
            asked()


def test_replay_never_takes_an_event_recorded_after_one_past_the_moment(
    ledger: Ledger, clock: StepClock
) -> None:
    """The store's clock set back 30 s after a heartbeat (taken as it is: the events of a
    profile then go back in time, the last one stamped before the profile was registered):
    replay at a moment before the registration says it was not registered yet, and replay
    after the registration answers from the events up to the first stamped after it, never
    from one recorded later with an earlier time (rev30 second reading: replay before the
    registration showed the lease, from the heartbeat written after the step)."""
    from ledger import Heartbeat

    register(ledger)  # profile_shop_17 at v1
    registered = clock.now
    clock.advance(10)
    lease = ledger.handle(
        Checkout(profile_id="profile_shop_17", worker_id="w", run_id="r", task_type="t")
    )
    clock.advance(10)
    beat = {"lease_id": lease.lease_id, "fencing_token": lease.fencing_token}
    ledger.handle(Heartbeat(**beat, step="search"))
    clock.advance(-30)  # set back past the registration's time
    ledger.handle(Heartbeat(**beat, step="pay"))
    clock.advance(60)
    with pytest.raises(InvalidInput, match="was not registered yet"):
        reports.replay("profile_shop_17", at=registered - timedelta(seconds=5), ledger=ledger)
    said = reports.replay("profile_shop_17", at=registered + timedelta(seconds=5), ledger=ledger)
    assert (said.version, said.state, said.lease) == (1, "available", None)
