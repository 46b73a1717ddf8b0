"""The folds behind the checklist and the chart, on hand-made rows: histories the ledger itself
refuses to write (a checkout after an unclean ending with no review, a return to the pool
without a reviewer) must still be caught if a log ever holds them; and the chart's caps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from projections._base import iso
from projections._leases import evolve
from reports._chart import BARS, ROWS, gantt
from reports._checks import reviewer_returns, unreviewed_reuse
from reports._health import failing, heartbeat_gaps
from reports._reviews import waits
from reports._sources import EVENT_COLUMNS, Sources

T0 = datetime(2026, 11, 27, 9, 45, tzinfo=UTC)


def _events(*rows: tuple[str, str, str | None, str]) -> pd.DataFrame:
    """Timeline rows (profile, event type, lease, actor role), one second apart."""
    records: list[dict[str, Any]] = []
    for n, (pid, kind, lease, role) in enumerate(rows, start=1):
        record: dict[str, Any] = dict.fromkeys(EVENT_COLUMNS)
        record.update(position=n, at=pd.Timestamp(T0 + timedelta(seconds=n)), profile_id=pid,
                      account_id="a", version=n, event_type=kind, actor_id=role,
                      actor_role=role, lease_id=lease, detail="")  # fmt: skip
        if kind == "profile_reviewed":
            record["detail"] = "decision=return, note=ok"
        records.append(record)
    return pd.DataFrame(records, columns=list(EVENT_COLUMNS))


def test_a_checkout_after_an_unclean_ending_without_review_is_caught() -> None:
    """lease-1 ended unclean (review requested), then lease-2 was granted with no verdict
    between: one line naming both; with a review between, nothing."""
    unreviewed = _events(
        ("p", "lease_acquired", "lease-1@p", "worker"),
        ("p", "review_requested", "lease-1@p", "worker"),
        ("p", "lease_acquired", "lease-2@p", "worker"),
    )
    found = unreviewed_reuse(unreviewed, {"lease-1@p"})
    assert found == ["lease-2@p: granted after lease-1@p ended unclean, unreviewed"]
    reviewed = _events(
        ("p", "lease_acquired", "lease-1@p", "worker"),
        ("p", "review_requested", "lease-1@p", "worker"),
        ("p", "profile_reviewed", None, "reviewer"),
        ("p", "profile_returned_to_pool", None, "reviewer"),
        ("p", "lease_acquired", "lease-2@p", "worker"),
    )
    assert unreviewed_reuse(reviewed, {"lease-1@p"}) == []


def _sources(events: pd.DataFrame) -> Sources:
    return Sources(
        at=T0 + timedelta(hours=1),
        profiles=[],
        leases=pd.DataFrame(),
        events=events,
        counts=pd.DataFrame(columns=["event_type", "events", "bare"]),
    )


def test_a_return_to_the_pool_without_a_reviewers_verdict_needs_attention() -> None:
    """A return whose previous event is not a reviewer's verdict is listed and flagged; one
    after a reviewer's verdict is not."""
    bad = _events(
        ("p", "review_requested", "lease-1@p", "worker"),
        ("p", "profile_returned_to_pool", None, "operator"),
    )
    answer = reviewer_returns(_sources(bad), [])
    assert answer.attention
    assert answer.line.startswith("returns to the pool after a reviewer's verdict: 0 of 1")
    good = _events(
        ("p", "review_requested", "lease-1@p", "worker"),
        ("p", "profile_reviewed", None, "reviewer"),
        ("p", "profile_returned_to_pool", None, "reviewer"),
    )
    assert not reviewer_returns(_sources(good), []).attention


def test_a_wait_ends_at_the_verdict_and_an_open_one_ages_to_now() -> None:
    """Review requested at +1 s, verdict at +3 s: a 2 s wait ended by the reviewer; a wait
    still open at the end is aged to the moment given."""
    events = _events(
        ("p", "review_requested", "lease-1@p", "worker"),
        ("q", "profile_quarantined", "lease-1@q", "operator"),
        ("p", "profile_reviewed", None, "reviewer"),
    )
    found = waits(events, T0 + timedelta(seconds=100))
    assert [(w.profile_id, w.seconds, w.ended_by) for w in found] == [
        ("p", 2.0, "return by reviewer"),
        ("q", 98.0, None),
    ]


def test_a_quarantine_during_a_review_wait_moves_the_wait_not_ends_it() -> None:
    """An operator quarantines p while it waits in review: no verdict came, so it is one
    wait, now in quarantine (its cause still why it began); the verdict ends it, and q's
    wait, never quarantined, stays in review."""
    events = _events(
        ("p", "review_requested", "lease-1@p", "worker"),
        ("q", "review_requested", "lease-1@q", "worker"),
        ("p", "profile_quarantined", None, "operator"),
    )
    events.loc[0, "cause"] = "unexpected_failure"
    found = waits(events, T0 + timedelta(seconds=100))
    assert [(w.profile_id, w.state, w.cause, w.seconds) for w in found] == [
        ("p", "quarantined", "unexpected_failure", 99.0),
        ("q", "review_required", None, 98.0),
    ]
    kinds = ("review_requested", "profile_quarantined", "profile_reviewed")
    verdict = _events(*[("p", kind, None, "x") for kind in kinds])
    assert [(w.state, w.ended_by) for w in waits(verdict, T0)] == [("quarantined", "return by x")]


class _Extended:
    """The fields of a ``lease_extended`` the leases read model folds."""

    event_type = "lease_extended"

    def __init__(self, seconds: float, ttl: int, hard_limit: float | None = None) -> None:
        self.at = T0 + timedelta(seconds=seconds)
        self.expires_at = self.at + timedelta(seconds=ttl)
        if hard_limit is not None:
            self.expires_at = min(self.expires_at, T0 + timedelta(seconds=hard_limit))
        self.ttl_seconds = ttl


def _renewal_row(ttl: int, expires_in: float) -> dict[str, Any]:
    """A lease's row just after its checkout at T0, as the leases read model holds it."""
    return {
        "last_renewal_at": iso(T0),
        "expires_at": iso(T0 + timedelta(seconds=expires_in)),
        "ttl_seconds": ttl,
        "longest_gap_seconds": 0.0,
        "worst_gap_share": 0.0,
        "ending": None,
        "ending_command_id": None,
    }


def test_each_renewal_gap_is_judged_against_the_deadline_in_force_during_it() -> None:
    """Checkout with TTL 30, extend to 5 s after 25 s, extend again 4 s later: the gaps
    took 25/30 and 4/5 of their windows, so the worst share is 0.833 (25 s over the last
    TTL would say 5.0, a deadline passed); the longest gap is still 25 s. Under a hard
    limit 10 s after checkout, a 9 s gap took 0.9 of the window it had, not 9/30."""
    row = _renewal_row(ttl=30, expires_in=30)
    evolve(row, _Extended(25, ttl=5))
    evolve(row, _Extended(29, ttl=5))
    assert (row["ttl_seconds"], row["longest_gap_seconds"]) == (5, 25.0)
    assert round(row["worst_gap_share"], 3) == 0.833
    capped = _renewal_row(ttl=30, expires_in=10)
    evolve(capped, _Extended(9, ttl=30, hard_limit=10))
    assert round(capped["worst_gap_share"], 3) == 0.9


def test_the_silence_after_the_last_renewal_is_judged_against_its_deadline() -> None:
    """A lease whose renewals used at most 0.5 of their windows, last renewed with 5 s to
    go and released 4 s later, is at 0.8; one still live 15 s after a renewal that gave it
    its 5 s TTL is at 3.0, past its deadline. The first is not judged by its TTL (300 s)
    alone. One swept 15 s after a renewal that reached its hard limit 5 s later is at 1.0:
    the limit ended it, not its worker's silence (rev30); and so is one still live, not swept
    yet, whose renewal its hard limit cut to 5 s of its 300 s TTL (rev31)."""
    renewed = pd.Timestamp(T0)
    leases = pd.DataFrame(
        {
            "lease_id": ["done", "live", "limited", "cut"],
            "profile_id": ["p", "q", "r", "s"],
            "worker_id": ["w", "w", "w", "w"],
            "ending": pd.array(["clean", None, "stale", None], dtype="string"),
            "cause": pd.array([None, None, "hard_limit_reached", None], dtype="string"),
            "heartbeats": [1, 1, 1, 1],
            "ttl_seconds": [300, 5, 300, 300],
            "longest_gap_seconds": [25.0, 1.0, 1.0, 1.0],
            "worst_gap_share": [0.5, 0.1, 0.1, 0.1],
            "last_renewal_at": [renewed] * 4,
            "expires_at": [renewed + pd.Timedelta(seconds=5)] * 4,
            "ended_at": [
                renewed + pd.Timedelta(seconds=4),
                pd.NaT,
                renewed + pd.Timedelta(15, "s"),
                pd.NaT,
            ],
        }
    )
    gaps = heartbeat_gaps(leases, T0 + timedelta(seconds=15))
    assert dict(zip(gaps["lease_id"], gaps["worst_share_of_ttl"], strict=True)) == {
        "done": 0.8,
        "live": 3.0,
        "limited": 1.0,
        "cut": 1.0,
    }


def _leases(count: int, profiles: int) -> pd.DataFrame:
    rows = []
    for n in range(count):
        start = T0 + timedelta(minutes=n)
        rows.append(
            {
                "lease_id": f"lease-{n // profiles + 1}@p{n % profiles}",
                "fencing_token": n // profiles + 1,
                "profile_id": f"p{n % profiles}",
                "started_at": pd.Timestamp(start),
                "ended_at": pd.Timestamp(start + timedelta(seconds=30)),
                "expires_at": pd.Timestamp(start + timedelta(seconds=300)),
                "ending": "stale" if n % 97 == 0 else "clean",
            }
        )
    frame = pd.DataFrame(rows)
    frame["ending"] = frame["ending"].astype("string")
    return frame


def test_the_chart_caps_a_large_fleet_and_says_so() -> None:
    """600 leases on 60 profiles: 40 profiles (those with an unclean ending among them) and
    400 bars are drawn, one SVG group per bar, and the caption says what was left out."""
    chart = gantt(_leases(600, 60), T0 + timedelta(days=1))
    assert chart.bars == BARS
    assert len(re.findall(r'<g id="lease-\d+"', chart.svg)) == BARS
    assert len(re.findall(r"<text[^>]*>p\d+<", chart.svg)) == ROWS
    troubled = {f"p{n % 60}" for n in range(0, 600, 97)}  # a stale ending each
    assert all(f">{pid}<" in chart.svg for pid in troubled)
    assert chart.caption.startswith(f"{BARS} of 600 leases on {ROWS} of 60 profiles (capped")
    assert len(chart.svg) < 400_000


def test_a_profile_id_with_dollar_signs_is_drawn_as_text() -> None:
    """An id such as ``$x^2$`` is a label, not mathematics: the chart draws it as given."""
    frame = _leases(2, 1)
    frame["profile_id"] = "$x^2$"
    chart = gantt(frame, T0 + timedelta(hours=1))
    assert chart.bars == 2
    assert "$x^2$" in chart.svg


def test_long_profile_ids_get_labels_that_tell_them_apart() -> None:
    """rev28: the axis cut ids at 40 characters with no ellipsis, so two sharing their first
    40 read as one profile. A long id shows its start, an ellipsis and its end, within 40
    characters; ids alike even so are numbered in the order drawn; a short id is whole."""
    head = "profile_shop_eu_west_marketplace_account_"
    ids = [f"{head}A_17", f"{head}B_17", f"{head}1{'z' * 20}", f"{head}2{'z' * 20}", "p1"]
    frame = _leases(5, 5)
    frame["profile_id"] = ids
    drawn = re.findall(r"<text[^>]*>([^<]*)</text>", gantt(frame, T0 + timedelta(hours=1)).svg)
    assert [t for t in drawn if t.startswith("p")] == [
        "p1",
        f"profile_shop_eu_west_mar…{'z' * 15} #1",
        f"profile_shop_eu_west_mar…{'z' * 15} #2",
        "profile_shop_eu_west_mar…ce_account_A_17",
        "profile_shop_eu_west_mar…ce_account_B_17",
    ]  # in the axis's order: by id


def test_failing_reads_a_profile_s_leases_in_the_order_taken_whatever_their_times() -> None:
    """Ten leases of one profile, the five latest (tokens 6 to 10) unclean but stamped an hour
    before the first five (the store's clock held at the server's after it was set back): the
    profile keeps failing, its five latest leases are those five. fixrev 294: read by start,
    the five latest were the clean ones, and the profile was missed."""
    rows = []
    for token in range(1, 11):
        start = T0 + timedelta(minutes=token) - timedelta(hours=1 if token > 5 else 0)
        rows.append(
            {
                "lease_id": f"lease-{token}@p1",
                "profile_id": "p1",
                "account_id": "acc",
                "fencing_token": token,
                "started_at": pd.Timestamp(start),
                "ended_at": pd.Timestamp(start + timedelta(seconds=30)),
                "ending": "clean" if token <= 5 else "review",
            }
        )
    found = failing(pd.DataFrame(rows), last=5, failing_at=2)
    assert list(found["profile_id"]) == ["p1"]
    assert list(found["unclean"]) == [5]
    assert found["unclean_leases"].iloc[0] == ", ".join(f"lease-{t}@p1" for t in range(6, 11))
