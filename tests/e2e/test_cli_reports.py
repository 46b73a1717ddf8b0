"""End to end: the report commands (timeline by account and window, usage, replay) and the
read models' upkeep (projections status, rebuild, run), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_process import custody, custody_all, error_line, ok
from pg_cluster import create_database, drop_database

SHOP = ["--account", "acct_shop", "--proxy", "px"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """Two profiles of one account and one of another; a clean lease, a failed one, a live
    one; and the moments between them. Shared by the module's tests, which only read."""
    tmp_path = tmp_path_factory.mktemp("reports")
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    database = None
    if request.param == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        database = f"t_{uuid.uuid4().hex[:12]}"
        store = create_database(cluster.admin_url, database)
    ok(custody("init", cwd=tmp_path, store=store))
    for pid, account in (
        ("p1", SHOP),
        ("p2", SHOP),
        ("q1", ["--account", "other", "--proxy", "px"]),
    ):
        ok(custody("register", pid, *account, cwd=tmp_path, store=store))
    moments = {"start": datetime.now(UTC).isoformat()}
    ok(custody("checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t",
               cwd=tmp_path, store=store))  # fmt: skip
    time.sleep(0.05)
    moments["p1_held"] = datetime.now(UTC).isoformat()
    ok(custody("release", "lease-1@p1", "--token", "1", "--outcome", "success",
               "--final-url", "https://x/done", cwd=tmp_path, store=store))  # fmt: skip
    for pid, worker in (("p2", "w2"), ("q1", "w3")):
        ok(custody("checkout", pid, "--worker", worker, "--run", f"r-{pid}", "--task", "t",
                   cwd=tmp_path, store=store))  # fmt: skip
    ok(custody("release", "lease-1@p2", "--token", "1", "--outcome", "failure",
               cwd=tmp_path, store=store))  # fmt: skip
    yield tmp_path, store, moments
    if database is not None:
        drop_database(cluster.admin_url, database)


def test_timeline_by_account_and_window(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """timeline --account lists only that account's profiles, each line naming its profile;
    --since after the registrations leaves them out; csv has a header and one row per event."""
    cwd, store, moments = fleet
    whole, later, table = custody_all(
        [
            ["--json", "timeline", "--account", "acct_shop"],
            ["--json", "timeline", "--account", "acct_shop", "--since", moments["start"]],
            ["timeline", "--account", "acct_shop", "--format", "csv"],
        ],
        cwd=cwd,
        store=store,
    )
    rows = ok(whole).json()
    assert {r["profile_id"] for r in rows} == {"p1", "p2"}
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert "profile_registered" not in {r["event_type"] for r in ok(later).json()}
    parsed = list(csv.DictReader(io.StringIO(ok(table).out)))
    assert len(parsed) == len(rows)
    assert {r["account_id"] for r in parsed} == {"acct_shop"}
    lines = ok(custody("timeline", "--account", "acct_shop", cwd=cwd, store=store)).out
    assert all(line.split()[1] in ("p1", "p2") for line in lines.splitlines())


def test_timeline_last_is_the_tail_of_the_same_answer(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """--last N gives the last N events of what the same timeline gives whole, oldest first,
    for a profile, an account and the fleet; --last 0 or a negative is one line, exit 2."""
    cwd, store, _ = fleet
    asks = (["p1"], ["--account", "acct_shop"], [])
    answers = custody_all(
        [
            *(["--json", "timeline", *ask] for ask in asks),
            *(["--json", "timeline", *ask, "--last", "2"] for ask in asks),
        ],
        cwd=cwd,
        store=store,
    )
    wholes, lasts = answers[:3], answers[3:]
    for whole, last in zip(wholes, lasts, strict=True):
        rows = ok(whole).json()
        assert len(rows) > 2
        assert ok(last).json() == rows[-2:]
    for bad in ("0", "-3", "two"):
        refused = custody("timeline", "p1", "--last", bad, cwd=cwd, store=store)
        assert refused.code == 2
        assert "--last" in error_line(refused)


def test_usage_lists_every_lease_of_the_account_with_its_ending(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """usage --account gives each lease on the account's profiles with worker, run and how it
    ended; the other account's lease is not in it."""
    cwd, store, _ = fleet
    leases = ok(custody("--json", "usage", "--account", "acct_shop", cwd=cwd, store=store)).json()
    seen = {(r["lease_id"], r["worker_id"], r["ending"], r["outcome"]) for r in leases}
    assert seen == {
        ("lease-1@p1", "w1", "clean", "success"),
        ("lease-1@p2", "w2", "review", "failure"),
    }
    table = ok(custody("usage", "--account", "acct_shop", cwd=cwd, store=store)).out
    assert table.splitlines()[0].split()[:3] == ["PROFILE", "LEASE", "WORKER"]


@pytest.mark.parametrize("window", [[], ["--since", "2000-01-01", "--until", "2999-12-31"]])
def test_usage_as_a_table_and_as_a_frame_list_the_same_leases(
    fleet: tuple[Path, str, dict[str, str]], window: list[str]
) -> None:
    """The usage table for a person (rows from ``projections.usage``, no pandas) and its JSON
    (``reports.usage``'s DataFrame) come from one read, ``read_usage``: the same leases in the
    same order, cell for cell in the columns the table shows."""
    cwd, store, _ = fleet
    args = ["usage", "--account", "acct_shop", *window]
    table = ok(custody(*args, cwd=cwd, store=store)).out.splitlines()
    frame = ok(custody("--json", *args, cwd=cwd, store=store)).json()

    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    expected = [
        [
            *(r[c] for c in ("profile_id", "lease_id", "worker_id", "run_id", "task_type")),
            *(
                shown(r[c] and r[c][:19].replace("T", " ") + "+00:00")  # the table says UTC
                for c in ("started_at", "ended_at")
            ),
            *(shown(r[c]) for c in ("status", "ending", "outcome", "heartbeats")),
        ]
        for r in frame
    ]
    assert len(frame) == 2
    assert [_cells(line) for line in table[1:]] == expected


def test_usage_at_a_moment_gives_the_leases_as_they_stood_then(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """usage --at a moment inside p1's first lease lists that lease as live then (no end,
    ending or outcome, though it was released since) and not p2's, begun later: as JSON and
    as the table for a person alike; a moment after the store's time is bad input naming
    --at, exit 2, as replay's is."""
    cwd, store, moments = fleet
    args = ["usage", "--account", "acct_shop", "--at", moments["p1_held"]]
    frame = ok(custody("--json", *args, cwd=cwd, store=store)).json()
    ended = [(r["lease_id"], r["ended_at"], r["ending"], r["outcome"]) for r in frame]
    assert ended == [("lease-1@p1", None, None, None)]
    table = ok(custody(*args, cwd=cwd, store=store)).out.splitlines()
    assert [_cells(line)[:2] + _cells(line)[-5:] for line in table[1:]] == [
        ["p1", "lease-1@p1", "-", "active", "-", "-", "0"]
    ]
    later = custody("usage", "--account", "acct_shop", "--at", "2999-01-01", cwd=cwd, store=store)
    assert later.code == 2
    assert "invalid at: 2999-01-01T00:00:00+00:00 is after the store's time" in error_line(later)


@pytest.fixture(params=["sqlite", "postgresql"])
def overdue(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str, str]:
    """A store whose one lease (TTL 1 s) is past its deadline, no sweep run: the store, a
    moment before the deadline and one past it."""
    if request.param == "sqlite":
        store = f"sqlite:///{tmp_path / 'custody.db'}"
    else:
        store = request.getfixturevalue("pg_url")
    ok(custody("init", cwd=tmp_path, store=store))
    ok(custody("register", "p1", *SHOP, cwd=tmp_path, store=store))
    lease = ok(custody("--json", "checkout", "p1", "--worker", "w1", "--run", "r1", "--task",
                       "t", "--ttl", "1", cwd=tmp_path, store=store)).json()  # fmt: skip
    deadline = datetime.fromisoformat(lease["expires_at"])
    while datetime.now(UTC) <= deadline + timedelta(seconds=0.2):
        time.sleep(0.1)
    before = deadline - timedelta(seconds=0.5)
    return store, before.isoformat(), (deadline + timedelta(seconds=0.1)).isoformat()


def test_a_lease_past_its_deadline_reads_overdue_in_usage_and_health(
    overdue: tuple[str, str, str], tmp_path: Path
) -> None:
    """p1's lease missed its deadline and no sweep has run: status says it is overdue, and so
    do usage (the table's STATUS, the JSON's status beside its deadline, and as of a moment
    past the deadline; active as of one before it) and health (overdue, unclean, not live)
    (rev42: usage said active and health live with unclean 0 while the sweeper was down)."""
    store, before, past = overdue
    status, table, used, then, earlier, health = custody_all(
        [
            ["status"],
            ["usage", "--account", "acct_shop"],
            ["--json", "usage", "--account", "acct_shop"],
            ["--json", "usage", "--account", "acct_shop", "--at", past],
            ["--json", "usage", "--account", "acct_shop", "--at", before],
            ["--json", "health"],
        ],
        cwd=tmp_path,
        store=store,
    )
    assert "leased (overdue)" in ok(status).out
    header, row = ok(table).out.splitlines()
    statuses = dict(zip(_cells(header), _cells(row), strict=True))
    assert (statuses["STATUS"], statuses["ENDED"], statuses["ENDING"]) == ("overdue", "-", "-")
    (now,) = ok(used).json()
    assert (now["status"], now["ended_at"], now["ending"]) == ("overdue", None, None)
    assert datetime.fromisoformat(now["expires_at"]) < datetime.fromisoformat(past)
    assert [r["status"] for r in ok(then).json()] == ["overdue"]
    assert [r["status"] for r in ok(earlier).json()] == ["active"]
    (profile,) = ok(health).json()["endings_by_profile"]
    assert (profile["overdue"], profile["live"], profile["unclean"]) == (1, 0, 1)


def _cells(line: str) -> list[str]:
    """A table row's cells: split on the runs of spaces between columns (a time holds one)."""
    return [c for c in re.split(r"\s{2,}", line.strip()) if c]


def test_who_why_and_usage_name_an_ending_in_the_same_words(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """The failed run's ending reads ``review`` with its cause ``unexpected_failure`` in who
    (text and JSON), why and usage alike: one vocabulary of endings."""
    cwd, store, _ = fleet
    said, told, used, why = custody_all(
        [
            ["--json", "who", "p2"],
            ["who", "p2"],
            ["--json", "usage", "--account", "acct_shop"],
            ["why", "p2"],
        ],
        cwd=cwd,
        store=store,
    )
    who = ok(said).json()
    assert (who["ending"], who["cause"]) == ("review", "unexpected_failure")
    (row,) = [r for r in ok(used).json() if r["lease_id"] == "lease-1@p2"]
    assert (row["ending"], row["cause"]) == ("review", "unexpected_failure")
    assert "; ended review (unexpected_failure) at " in ok(told).out
    assert "lease ended: review (unexpected_failure) at " in ok(why).out


def test_replay_shows_the_holder_at_a_moment(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """replay --at a moment inside the first lease names its holder and deadline; the events
    after that moment start with the release."""
    cwd, store, moments = fleet
    run = custody("--json", "replay", "p1", "--at", moments["p1_held"], cwd=cwd, store=store)
    replayed = ok(run).json()
    assert (replayed["state"], replayed["reason"]) == ("leased", "already_leased")
    assert replayed["holder"]["worker_id"] == "w1"
    assert replayed["deadline"] is not None
    assert replayed["after"][0]["event_type"] == "lease_release_requested"
    text = ok(custody("replay", "p1", "--at", moments["p1_held"], cwd=cwd, store=store)).out
    assert "holder: worker w1, run r1" in text
    early = custody("replay", "p1", "--at", "2001-01-01", cwd=cwd, store=store)
    assert early.code == 2
    assert "not registered yet" in error_line(early)


UNKNOWN_ACCOUNT = [
    ["checklist", "--account", "typo", "--strict"],
    ["usage", "--account", "typo"],
    ["health", "--account", "typo"],
    ["fleet", "--account", "typo"],
    ["report", "--html", "page.html", "--account", "typo"],
    ["status", "--account", "typo"],
    ["timeline", "--account", "typo"],
    ["--json", "usage", "--account", "typo", "--since", "2001-01-01"],
]


def test_an_account_nobody_registered_is_bad_input_for_every_report(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """checklist, usage, health, fleet, report, status and timeline refuse an account no
    profile was ever registered under: one line naming the account, exit 2, no page
    written; a known account with nothing in the window is still an empty answer."""
    cwd, store, _ = fleet
    empty = ["--json", "usage", "--account", "other", "--until", "2001-01-01"]
    runs = custody_all([*UNKNOWN_ACCOUNT, empty], cwd=cwd, store=store)
    for asked, run in zip(UNKNOWN_ACCOUNT, runs[:-1], strict=True):
        assert run.code == 2, (asked, run)
        assert error_line(run) == (
            "custody: invalid account: no profile was ever registered under account 'typo'"
        ), asked
    assert runs[-2].json()["field"] == "account"
    assert ok(runs[-1]).json() == []
    assert not (cwd / "page.html").exists()


# Times that exist as written but not in UTC: the first day's first hour east of Greenwich,
# the last day's last hour west of it.
TOO_EARLY, TOO_LATE = "0001-01-01T00:00:00+05:30", "9999-12-31T23:59:59-05:00"
OUT_OF_RANGE = {
    "--at": ["replay", "p1", "--at", TOO_EARLY],
    "--since": ["timeline", "--since", TOO_EARLY],
    "--until": ["usage", "--account", "acct_shop", "--until", TOO_LATE],
}


def test_a_time_out_of_range_is_bad_input_for_every_time_option(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """A time that has no UTC instant is one line naming its option, exit 2, for replay
    --at, --since and --until alike (and --until of the last day also for replay's and
    usage's at)."""
    cwd, store, _ = fleet
    more = [
        ["replay", "p1", "--at", TOO_LATE],
        ["usage", "--account", "acct_shop", "--at", TOO_LATE],
    ]
    runs = custody_all([*OUT_OF_RANGE.values(), *more], cwd=cwd, store=store)
    for option, run in zip([*OUT_OF_RANGE, "--at", "--at"], runs, strict=True):
        assert run.code == 2, run
        line = error_line(run)
        assert option in line, line
        assert "out of range" in line, line


def test_an_offset_with_a_fraction_of_a_second_is_bad_input_for_every_time_option(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """rev47: ``--at T+00:00:00.5`` was read as T, the offset's half second dropped (Python
    reads such an offset as UTC), and the answer named T: one line naming the option, exit 2,
    for replay --at, timeline --since and --until, usage --since, --until and --at alike."""
    cwd, store, moments = fleet
    at = f"{moments['p1_held'][:19]}+00:00:00.5"  # to the second, its offset with a fraction
    usage = ["usage", "--account", "acct_shop"]
    asked = {
        "--at": [["replay", "p1", "--at", at], [*usage, "--at", at]],
        "--since": [["timeline", "--since", at], [*usage, "--since", at]],
        "--until": [["timeline", "p1", "--until", at], ["--json", *usage, "--until", at]],
    }
    options = [option for option, commands in asked.items() for _ in commands]
    runs = custody_all([c for commands in asked.values() for c in commands], cwd=cwd, store=store)
    for option, run in zip(options, runs, strict=True):
        assert run.code == 2, run
        line = error_line(run)
        assert option in line, line
        assert "an offset from UTC is whole seconds at most" in line, line
    assert runs[-1].json()["exit_code"] == 2


def test_replay_refuses_a_moment_after_the_store_s_time(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """replay --at a moment still to come is bad input saying the store's time, not an
    answer about the future."""
    cwd, store, _ = fleet
    later = custody("replay", "p1", "--at", "2999-01-01T00:00:00Z", cwd=cwd, store=store)
    assert later.code == 2
    line = error_line(later)
    assert "2999-01-01T00:00:00+00:00 is after the store's time 2" in line, line


def test_replay_text_shows_the_instant_exactly(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """Replays at p1's release and one microsecond before it answer differently, and their
    text says each instant to the microsecond, so they never read alike."""
    cwd, store, _ = fleet
    events = ok(custody("--json", "timeline", "p1", cwd=cwd, store=store)).json()
    (released,) = [e for e in events if e["event_type"] == "lease_released_cleanly"]
    at = datetime.fromisoformat(released["at"])
    before = at - timedelta(microseconds=1)
    then, just_before = custody_all(
        [["replay", "p1", "--at", t.isoformat()] for t in (at, before)], cwd=cwd, store=store
    )
    first = ok(then).out.splitlines()[0]
    assert first.startswith(f"p1 at {at.isoformat(timespec='microseconds')}: available")
    earlier = ok(just_before).out.splitlines()[0]
    assert earlier.startswith(f"p1 at {before.isoformat(timespec='microseconds')}: leased")


def test_a_blocked_profile_has_a_last_user_and_no_holder(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """p2 went to review after w2's failed run: replay and why (text and JSON) call w2 its
    last user, never its holder; the live q1 still has a holder."""
    cwd, store, _ = fleet
    now = datetime.now(UTC).isoformat()
    replayed, replay_text, why, why_text, held = custody_all(
        [
            ["--json", "replay", "p2", "--at", now],
            ["replay", "p2", "--at", now],
            ["--json", "why", "p2"],
            ["why", "p2"],
            ["--json", "replay", "q1", "--at", now],
        ],
        cwd=cwd,
        store=store,
    )
    for answer in (ok(replayed).json(), ok(why).json()):
        assert answer["state"] == "review_required"
        assert answer["holder"] is None
        assert answer["last_user"]["worker_id"] == "w2"
    for text in (ok(replay_text).out, ok(why_text).out):
        assert "holder" not in text
        assert "last user: worker w2, run r-p2" in text
    assert ok(held).json()["holder"]["worker_id"] == "w3"


def test_a_date_alone_means_the_whole_day(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """--since DATE counts from its first instant and --until DATE through its last: the
    day's own leases and events are inside both; the help says so."""
    cwd, store, _ = fleet
    leases = ok(custody("--json", "usage", "--account", "acct_shop", cwd=cwd, store=store)).json()
    day = leases[0]["started_at"][:10]
    through, from_, help_ = custody_all(
        [
            ["--json", "usage", "--account", "acct_shop", "--until", day],
            ["--json", "timeline", "p1", "--since", day, "--until", day],
            ["usage", "--help"],
        ],
        cwd=cwd,
        store=store,
    )
    assert ok(through).json() == leases
    assert len(ok(from_).json()) == len(
        ok(custody("--json", "timeline", "p1", cwd=cwd, store=store)).json()
    )
    assert "a date alone means the whole day" in " ".join(ok(help_).out.split())


def test_projections_status_rebuild_and_run(fleet: tuple[Path, str, dict[str, str]]) -> None:
    """After init both read models are installed; run brings them to the head (lag 0);
    rebuild rebuilds each and availability is checked; status says so."""
    cwd, store, _ = fleet
    before = ok(custody("projections", "status", cwd=cwd, store=store)).out
    assert "not installed" not in before  # init installed them
    assert before.splitlines()[0].startswith("availability: written with the events, ")
    assert before.splitlines()[1].startswith("leases: position ")
    ok(custody("projections", "run", "--rounds", "1", cwd=cwd, store=store))
    status = ok(custody("--json", "projections", "status", cwd=cwd, store=store)).json()
    assert {s["name"]: s["lag"] for s in status} == {"availability": 0, "leases": 0, "timeline": 0}
    rebuilt = ok(custody("projections", "rebuild", cwd=cwd, store=store)).out
    assert "availability agrees with the events" in rebuilt
    assert "timeline: rebuilt to position" in rebuilt
    assert sorted(p.name for p in cwd.iterdir() if p.name.endswith(".lock")) == []


def test_the_last_week_of_year_9999_is_bad_input_not_an_internal_error(
    fleet: tuple[Path, str, dict[str, str]],
) -> None:
    """rev24: ``--until 9999-W52`` reads through the week's Sunday, past the last day a time
    can hold: an internal error (OverflowError), exit 1, and a 500 from the lease service. It
    is bad input naming the option (exit 2); the week before is a week like any other."""
    cwd, store, _ = fleet
    asks = [["timeline", "--until", "9999-W52"], ["timeline", "--until", "9999-W51"]]
    last, before = custody_all(asks, cwd=cwd, store=store)
    assert last.code == 2, last
    assert "--until" in error_line(last)
    assert "the week's last day is past 9999-12-31 (got '9999-W52')" in error_line(last)
    assert before.code == 0, before
