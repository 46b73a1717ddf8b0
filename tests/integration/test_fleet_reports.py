"""The fleet summary, health tables, checklist and HTML report on a scripted fleet
(``fleet_scene``), on every store: every count is the one the script makes."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from conftest import StepClock
from fleet_scene import script
from pg_cluster import PostgresCluster, database_url, drop_database

import projections
import reports
from ledger import (
    Checkout,
    Disable,
    Enable,
    Extend,
    ForceRelease,
    Heartbeat,
    InvalidInput,
    Ledger,
    Quarantine,
    RegisterProfile,
    Release,
    Review,
    Sweep,
)
from reports._page import report_html


@pytest.fixture
def scene(ledger: Ledger, clock: StepClock) -> dict[str, str]:
    return script(ledger, clock)


def test_fleet_counts_by_state_and_account_and_the_longest_stuck(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """Seven profiles: 2 available, 1 leased (overdue), 3 in review, 1 quarantined; by
    account and state; the stuck ones longest first, each with how long and why."""
    fleet = reports.fleet(ledger=ledger)
    assert fleet.profiles == 7
    assert fleet.by_state == {
        "available": 2,
        "leased": 1,
        "stale": 0,
        "review_required": 3,
        "quarantined": 1,
        "disabled": 0,
    }
    assert fleet.overdue == 1
    assert fleet.by_account == {"acct_a": 4, "acct_b": 3}
    assert fleet.by_account_state["acct_a"]["review_required"] == 2
    assert fleet.by_account_state["acct_b"]["leased"] == 1
    assert [(s.profile_id, s.trouble, s.seconds, s.cause) for s in fleet.stuck] == [
        ("a2", "review_required", 318.0, "unexpected_failure"),
        ("a3", "quarantined", 310.0, "mutation_unconfirmed"),
        ("a4", "review_required", 250.0, "lease_expired"),
        ("b2", "review_required", 220.0, "force_release"),
        ("b1", "overdue", 170.0, None),
    ]
    assert reports.fleet(account="acct_b", ledger=ledger).by_state["leased"] == 1


def test_time_in_review_counts_finished_waits_and_ages_open_ones(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """a2's first wait (100 s, returned by rev) is finished; four profiles wait now, the
    oldest for 318 s; a verdict of quarantine would end one wait and begin the next."""
    fleet = reports.fleet(ledger=ledger)
    r = fleet.review
    assert (r.finished, r.median_seconds, r.max_seconds) == (1, 100.0, 100.0)
    assert (r.waiting, r.oldest_waiting_seconds) == (4, 318.0)
    assert [(w.profile_id, w.state, w.seconds) for w in fleet.waiting] == [
        ("a2", "review_required", 318.0),
        ("a3", "quarantined", 310.0),
        ("a4", "review_required", 250.0),
        ("b2", "review_required", 220.0),
    ]
    ledger.handle(Review(profile_id="a3", reviewer="rev", decision="quarantine", note="keep it"))
    after = reports.fleet(ledger=ledger)
    assert (after.review.finished, after.review.waiting) == (2, 4)
    assert [w.state for w in after.waiting if w.profile_id == "a3"] == ["quarantined"]


def _rows(frame, key: str) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    return {str(r[key]): r for r in frame.to_dict("records")}


def test_health_counts_unclean_endings_by_worker_account_proxy_and_profile(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """Unclean endings (review, quarantine, stale, forced, revoked) per worker, account,
    proxy and profile, the most unclean first; b1's lease, past its deadline and not swept,
    counts as overdue, and so unclean, not as live (rev42: live, unclean 0)."""
    health = reports.health(ledger=ledger)
    workers = health.endings["worker"]
    assert list(workers["worker_id"]) == ["w2", "w3", "w4", "w1"]
    assert list(workers["unclean"]) == [2, 2, 2, 0]
    by_worker = _rows(workers, "worker_id")
    assert (by_worker["w3"]["quarantine"], by_worker["w3"]["stale"]) == (1, 1)
    w4 = by_worker["w4"]
    assert (w4["forced"], w4["overdue"], w4["live"], w4["stale"]) == (1, 1, 0, 0)
    assert (by_worker["w1"]["clean"], by_worker["w1"]["expected_failure"]) == (1, 1)
    accounts = _rows(health.endings["account"], "account_id")
    assert (accounts["acct_a"]["leases"], accounts["acct_a"]["unclean"]) == (6, 4)
    assert (accounts["acct_b"]["leases"], accounts["acct_b"]["unclean"]) == (2, 2)
    assert list(health.endings["proxy"]["unclean"]) == [4, 2]
    assert _rows(health.endings["profile"], "profile_id")["a2"]["review"] == 2


def test_health_durations_gaps_causes_and_profiles_that_keep_failing(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """Durations of the seven ended leases; the longest silences (b1 silent 200 s on a
    30 s TTL, a4 60 s on 5 s); causes by where they sent the profile; a2 keeps failing."""
    health = reports.health(ledger=ledger)
    d = _rows(health.durations, "ending")
    assert (d["all"]["count"], d["all"]["median_seconds"], d["all"]["max_seconds"]) == (7, 30, 60)
    assert (d["review"]["count"], d["review"]["median_seconds"]) == (2, 10.0)
    assert d["revoked"]["count"] == 0
    gaps = health.heartbeat_gaps.head(2).to_dict("records")
    assert [(g["lease_id"], g["silent_seconds"], g["worst_share_of_ttl"]) for g in gaps] == [
        (scene["b1_live"], 200.0, 6.667),
        (scene["a4_stale"], 60.0, 12.0),
    ]
    causes = [(r["sent_to"], r["cause"], r["times"]) for r in health.causes.to_dict("records")]
    assert causes == [
        ("review", "unexpected_failure", 2),
        ("quarantine", "mutation_unconfirmed", 1),
        ("review", "force_release", 1),
        ("review", "lease_expired", 1),
    ]
    assert list(health.failing["profile_id"]) == ["a2"]
    assert health.failing["unclean_leases"].iloc[0] == f"{scene['a2_first']}, {scene['a2_second']}"
    everyone = reports.health(failing_at=1, ledger=ledger).failing
    assert list(everyone["profile_id"]) == ["a2", "a3", "a4", "b2"]


def test_health_refuses_a_window_the_command_line_refuses(ledger: Ledger) -> None:
    """``last`` out of 1..1,000, ``failing_at`` out of 1..1,000 or above ``last``:
    InvalidInput naming the parameter and its range, as ``custody health`` (the same
    ``reports.LEASES_JUDGED``, ``FAILING_AT``, ``reachable``). rev27: the API took them and
    answered as if no profile kept failing (``last=0``) or every one did (``failing_at=0``)."""
    for asked, said in (
        ({"last": 0}, "invalid last: must be a whole number from 1 to 1,000, got 0"),
        ({"last": 10**20}, "invalid last: must be a whole number from 1 to 1,000, got 100,"),
        ({"failing_at": 0}, "invalid failing_at: must be a whole number from 1 to 1,000, got 0"),
        ({"last": 2, "failing_at": 3}, "invalid failing_at: 3 is more than last 2: never met"),
    ):
        with pytest.raises(InvalidInput, match=re.escape(said)):
            reports.health(**asked, ledger=ledger)  # type: ignore[arg-type]


def _shares_from_events(ledger: Ledger, pid: str) -> dict[str, float]:
    """Each lease's worst gap or final silence over the deadline in force during it, worked
    out from the profile's own events: every renewal (checkout, heartbeat, extend) records
    the deadline it set, and the lease's last event ends its silence."""
    found: dict[str, float] = {}
    last: dict[str, tuple[object, object]] = {}
    for e in ledger.history(pid):
        data = e.model_dump()
        lease_id = data["lease"]["lease_id"] if "lease" in data else data.get("lease_id")
        if lease_id is None:
            continue
        at = e.envelope.at
        if lease_id in last:
            renewed, deadline = last[lease_id]
            share = (at - renewed) / (deadline - renewed)  # type: ignore[operator]
            found[lease_id] = max(found.get(lease_id, 0.0), share)
        expires = data.get("expires_at") or data.get("lease", {}).get("expires_at")
        if expires is not None:
            last[lease_id] = (at, expires)
    return found


def test_a_heartbeat_gap_is_judged_against_the_deadline_in_force_during_it(
    ledger: Ledger, clock: StepClock
) -> None:
    """A 25 s gap under a 30 s TTL, then extend to 5 s and release 4 s later: no deadline
    passed (0.833, not 25 s over the last TTL, 5.0), and the page paints no row red; a lease
    left 10 s past a 5 s deadline and swept is at 2.0. Both as the events work it out."""
    ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    lease = ledger.handle(
        Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t", ttl_seconds=30)
    )
    lid, token = lease.lease_id, lease.fencing_token
    clock.advance(25)
    ledger.handle(Extend(lease_id=lid, fencing_token=token, ttl_seconds=5))
    clock.advance(4)
    ledger.handle(
        Release(lease_id=lid, fencing_token=token, outcome="success", final_url="https://x/")
    )
    gaps = _rows(reports.health(ledger=ledger).heartbeat_gaps, "lease_id")
    assert (gaps[lid]["ttl_seconds"], gaps[lid]["longest_gap_seconds"]) == (5, 25.0)
    assert gaps[lid]["worst_share_of_ttl"] == 0.833
    gap_table = report_html(ledger=ledger).html.split("Heartbeat gaps")[1].split("</table>")[0]
    assert 'class="bad"' not in gap_table
    ledger.handle(RegisterProfile(profile_id="q", account_id="a", proxy_id="x"))
    late = ledger.handle(
        Checkout(profile_id="q", worker_id="w", run_id="r2", task_type="t", ttl_seconds=5)
    )
    clock.advance(4)
    ledger.handle(Heartbeat(lease_id=late.lease_id, fencing_token=late.fencing_token))
    clock.advance(10)
    ledger.handle(Sweep())
    gaps = _rows(reports.health(ledger=ledger).heartbeat_gaps, "lease_id")
    assert gaps[late.lease_id]["worst_share_of_ttl"] == 2.0
    for pid in ("p", "q"):
        for lease_id, share in _shares_from_events(ledger, pid).items():
            assert gaps[lease_id]["worst_share_of_ttl"] == round(share, 3)


def test_a_deadline_missed_by_a_little_stays_above_1(ledger: Ledger, clock: StepClock) -> None:
    """rev22: a day's TTL swept 3 s past its deadline is a share of 86,403/86,400, which
    rounded to 3 places read 1.0, as a lease renewed at its very deadline does: "above 1, a
    deadline passed in silence" did not hold. It stays above 1."""
    ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    asked = {"profile_id": "p", "worker_id": "w", "run_id": "r", "task_type": "t"}
    lease = ledger.handle(Checkout(**asked, ttl_seconds=86_400))
    clock.advance(86_403)
    ledger.handle(Sweep())
    gaps = _rows(reports.health(ledger=ledger).heartbeat_gaps, "lease_id")
    assert gaps[lease.lease_id]["worst_share_of_ttl"] == 1.001
    # rev28: the HTML report's red row showed it to two places, 1.00.
    row = re.search(
        rf'<tr class="bad"><td>{lease.lease_id}</td>.*?</tr>', report_html(ledger=ledger).html
    )
    assert row is not None
    assert row.group(0).endswith('<td class="num">86,403</td><td class="num">1.001</td></tr>')


def test_the_chart_draws_utc_whatever_matplotlib_is_told(
    ledger: Ledger, clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev22: a matplotlibrc with a timezone (in MPLCONFIGDIR, the working directory or the
    user's config) moved the chart's ticks (15:15 UTC drawn at 20:45) under its "time (UTC)"
    label. The page is the same byte for byte whatever matplotlib's timezone."""
    import matplotlib

    ledger.handle(RegisterProfile(profile_id="p", account_id="a", proxy_id="x"))
    ledger.handle(Checkout(profile_id="p", worker_id="w", run_id="r", task_type="t"))
    clock.advance(600)
    utc = report_html(ledger=ledger).html
    monkeypatch.setitem(matplotlib.rcParams, "timezone", "Asia/Kolkata")
    assert report_html(ledger=ledger).html == utc


def test_checklist_answers_the_eleven_questions_with_evidence(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """Eleven answers in the article's order: attention where leases never heartbeat and a
    lease is past its deadline unswept; what the events cannot tell is said, not guessed."""
    listed = reports.checklist(ledger=ledger)
    assert [c.number for c in listed.checks] == list(range(1, 12))
    assert listed.checks[0].question == "Does every profile have an account owner?"
    assert [c.number for c in listed.attention] == [4, 5]
    answers = {c.number: c for c in listed.checks}
    assert answers[1].answer == "every profile has an account owner: 7 of 7"
    assert answers[2].answer == "granted checkouts with a lease record: 8 of 8"
    assert answers[4].answer == "leases without a heartbeat: 4 of 8"
    assert {e.split(":")[0] for e in answers[4].evidence} == {
        scene["a1_expected"], scene["a2_first"], scene["a4_stale"], scene["b2_forced"]
    }  # fmt: skip
    assert answers[5].answer == (
        "stale endings that returned to the pool without review: 0 (of 1); "
        "leases past their deadline, not yet swept: 1"
    )
    assert answers[5].evidence[0].startswith(f"{scene['b1_live']}: b1 held by w4")
    assert answers[7].answer.startswith(
        "unclean endings that reached the pool without review: 0 of 5"
    )
    assert answers[10].answer == (
        "returns to the pool after a reviewer's verdict: 1 of 1; "
        "profiles waiting for a reviewer: 4 (oldest 5m 18s)"
    )
    assert answers[11].answer == "unavailable profiles with a reason: 5 of 5"
    # rev26: the line counted lease events only, above a list of every type's count: the
    # total is the list's sum, and the lease events' share is named as such.
    listed_counts = [int(e.rsplit(": ", 1)[1]) for e in answers[9].evidence if ": " in e]
    assert answers[9].answer.startswith(f"events in the log: {sum(listed_counts)}, of them on ")
    assert [c.number for c in listed.checks if not c.complete] == [2, 8]
    assert "refused" in (answers[2].missing or "")


def test_a_sweep_settles_the_overdue_lease_and_the_ttl_answer_turns_ok(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """After the sweep, no lease is past its deadline: two stale endings, both waiting for
    review and none back in the pool, so the TTL question is answered ok."""
    ledger.handle(Sweep())
    ttl = reports.checklist(ledger=ledger).checks[4]
    assert ttl.verdict == "ok"
    assert ttl.answer.startswith("stale endings that returned to the pool without review: 0 (of 2)")
    assert reports.fleet(ledger=ledger).overdue == 0


def test_an_empty_ledger_gives_zeros_empty_tables_and_a_page_without_a_chart(
    ledger: Ledger,
) -> None:
    """No profile: zero counts, empty health tables with their columns, every answer ok on
    0 of 0, and a page that says there is no lease to draw."""
    fleet = reports.fleet(ledger=ledger)
    assert (fleet.profiles, fleet.overdue, fleet.stuck) == (0, 0, [])
    health = reports.health(ledger=ledger)
    assert health.endings["worker"].empty
    assert "unclean" in health.endings["worker"].columns
    assert list(health.durations["count"]) == [0] * 8
    assert reports.checklist(ledger=ledger).attention == []
    page = report_html(ledger=ledger)
    assert (page.leases, page.leases_drawn) == (0, 0)
    assert "No lease yet" in page.html
    assert "<svg" not in page.html


def test_the_page_draws_one_bar_per_lease_and_fetches_nothing(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """The report page holds every section, one chart bar per lease, a red badge for the
    quarantined profile and each worker with unclean endings (w4's overdue lease among
    them), and no script or URL to load."""
    page = report_html(ledger=ledger)
    html = page.html
    for section in ("fleet", "blocked", "leases", "health", "checklist"):
        assert f'<section id="{section}">' in html
    assert (page.leases, page.leases_drawn) == (8, 8)
    assert len(re.findall(r'<g id="lease-\d+"', html)) == 8
    assert '<span class="badge bad">quarantined: 1</span>' in html
    for worker, unclean in (("w2", 2), ("w3", 2), ("w4", 2)):
        assert f'<span class="badge bad">worker {worker}: {unclean} unclean</span>' in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_review_waits_and_the_fleet_s_time_in_review_are_one_definition(
    ledger: Ledger, clock: StepClock, scene: dict[str, str]
) -> None:
    """review_waits lists the waits the fleet summary counts (quarantine waits too): the
    finished one and the four open ones with their ages; as of a moment before a2's return,
    a2's first wait is open; a moment after the store's time is refused."""
    waits = reports.review_waits(ledger=ledger)
    fleet = reports.fleet(ledger=ledger)
    rows = waits.to_dict("records")
    assert [
        (w["profile_id"], w["state"], w["seconds"]) for w in rows if pd.isna(w["ended_at"])
    ] == [(w.profile_id, w.state, w.seconds) for w in fleet.waiting]
    finished = [w for w in rows if pd.notna(w["ended_at"])]
    assert [(w["profile_id"], w["seconds"], w["ended_by"]) for w in finished] == [
        ("a2", 100.0, "return by rev")
    ]
    assert "quarantined" in set(waits["state"])
    before_return = finished[0]["ended_at"] - pd.Timedelta(seconds=1)
    then = reports.review_waits(at=before_return, ledger=ledger)
    assert then.to_dict("records")[0]["ended_at"] is pd.NaT
    assert then["seconds"].iloc[0] == 99.0
    with pytest.raises(InvalidInput, match="after the store's time"):
        reports.review_waits(at=clock.now + pd.Timedelta(seconds=1), ledger=ledger)


def test_an_operator_s_quarantine_and_a_resumed_wait_read_without_none(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev28: an operator's quarantine of an available profile (no lease) read "quarantined
    (operator) after None" in the checklist, and a wait in review that a disable and an enable
    resumed read "waiting (review_required, None)": review_waits gave it no cause or lease
    where ``why`` and the fleet's stuck profiles said unexpected_failure. The resumed wait
    keeps the cause and lease of the wait the disabling ended; nothing reads None."""
    for pid in ("p1", "p2"):
        ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))
    ledger.handle(Quarantine(profile_id="p1", actor="op", reason="looks odd"))
    lease = ledger.handle(Checkout(profile_id="p2", worker_id="w", run_id="r", task_type="t"))
    ledger.handle(Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token,
                          outcome="failure", reason="crash"))  # fmt: skip
    ledger.handle(Disable(profile_id="p2", actor="op", reason="parked"))
    clock.advance(5)
    ledger.handle(Enable(profile_id="p2", actor="op", reason="back"))
    waits = reports.review_waits(ledger=ledger)
    resumed = waits.loc[waits["profile_id"] == "p2"][["cause", "lease_id"]]
    assert resumed.astype(str).values.tolist() == [["unexpected_failure", lease.lease_id]] * 2
    answers = {c.number: c for c in reports.checklist(ledger=ledger).checks}
    assert answers[7].evidence == ["p1: quarantined (operator)"]
    assert answers[10].evidence == [
        "p1: waiting (quarantined, operator)",
        "p2: waiting (review_required, unexpected_failure)",
    ]
    assert "None" not in report_html(ledger=ledger).html


def test_a_wait_resumed_after_a_reviewer_s_disable_keeps_its_cause_and_lease(
    ledger: Ledger, clock: StepClock
) -> None:
    """rev30: a reviewer's verdict of disable ends the wait (profile_reviewed) before the
    profile_disabled of the same command, so nothing was kept for the enable to resume: the
    wait read cause and lease <NA> and the checklist "waiting (review_required)" where the
    fleet said force_release. It resumes as after an operator's disable."""
    ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
    lease = ledger.handle(Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t"))
    ledger.handle(ForceRelease(profile_id="p1", actor="op", reason="stuck"))
    ledger.handle(Review(profile_id="p1", reviewer="rev", decision="disable", note="retire"))
    clock.advance(5)
    ledger.handle(Enable(profile_id="p1", actor="op", reason="back"))
    waits = reports.review_waits(ledger=ledger)
    assert (
        waits[["cause", "lease_id"]].astype(str).values.tolist()
        == [["force_release", lease.lease_id]] * 2
    )
    assert list(waits["ended_by"].fillna("open")) == ["disable by rev", "open"]
    answers = {c.number: c for c in reports.checklist(ledger=ledger).checks}
    assert answers[10].evidence == ["p1: waiting (review_required, force_release)"]
    assert [s.cause for s in reports.fleet(ledger=ledger).stuck] == ["force_release"]


def test_ended_unknown_is_the_stale_forced_and_revoked_leases(
    ledger: Ledger, scene: dict[str, str]
) -> None:
    """Of every lease, the runs no worker reported the ending of: a4's stale one, b2's
    forced one and b1's, past its deadline and not swept (no worker may end it any more: no
    ending yet, overdue); it reads revoked once an operator quarantines b1."""
    unknown = reports.ended_unknown(ledger=ledger)
    assert list(unknown["lease_id"]) == [scene["a4_stale"], scene["b2_forced"], scene["b1_live"]]
    assert list(unknown["status"]) == ["ended", "ended", "overdue"]
    assert list(unknown["ending"].fillna("-")) == ["stale", "forced", "-"]
    ledger.handle(Quarantine(profile_id="b1", actor="ops", reason="suspicious"))
    unknown = reports.ended_unknown(ledger=ledger)
    assert list(unknown["ending"]) == ["stale", "forced", "revoked"]
    assert list(reports.ended_unknown(account="acct_a", ledger=ledger)["lease_id"]) == [
        scene["a4_stale"]
    ]


def test_a_silent_lease_past_its_deadline_is_overdue_in_the_checklist_not_live(
    ledger: Ledger, clock: StepClock
) -> None:
    """p1's and p2's leases never heartbeat; p1's (TTL 5 s) is past its deadline, unswept,
    p2's is live: the checklist's answer on heartbeats counts one still live and one
    overdue, and its evidence says which (rev42: both read live)."""
    for pid in ("p1", "p2"):
        ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))
    ledger.handle(
        Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t", ttl_seconds=5)
    )
    ledger.handle(Checkout(profile_id="p2", worker_id="w2", run_id="r2", task_type="t"))
    clock.advance(6)
    (answer,) = [c for c in reports.checklist(ledger=ledger).checks if c.number == 4]
    assert answer.answer == "leases without a heartbeat: 2 of 2 (1 still live, 1 overdue)"
    assert answer.evidence == [
        "lease-1@p1: worker w1, run r1, overdue",
        "lease-1@p2: worker w2, run r2, live",
    ]


def test_the_page_shows_a_text_a_browser_would_reorder_or_hide_as_its_escape(
    ledger: Ledger,
) -> None:
    """rev24: the page wrote texts raw where the command line and the review console escape
    what a terminal or a browser would act on: in Chromium the account
    ``account_shop_<U+202E>71`` displayed as ``account_shop_17`` and the worker
    ``worker_<U+202E>3_0`` as ``worker_0_3``. Each such character is its escape now, visible."""
    from ledger import Checkout, RegisterProfile

    ledger.handle(
        RegisterProfile(profile_id="p1", account_id="account_shop_\u202e71", proxy_id="x")
    )
    ledger.handle(
        Checkout(profile_id="p1", worker_id="worker_\u202e3_0\u200b", run_id="r", task_type="t")
    )
    html = report_html(ledger=ledger).html
    assert "\u202e" not in html
    assert "\u200b" not in html
    assert "account_shop_\\u202e71" in html
    assert "worker_\\u202e3_0\\u200b" in html


def test_the_page_shows_an_invisible_character_as_its_escape_in_tables_and_pills(
    ledger: Ledger,
) -> None:
    """rev25: characters Python calls printable that a browser shows nothing for (U+034F, a
    variation selector, a Hangul filler) made three accounts read ``account_shop_17``; and the
    header's "worker X: N unclean" pill wrote a worker's bidi isolate raw (it read as another
    worker's id). Each is its escape now, in the tables and in the pill."""
    from ledger import Checkout, Release

    accounts = ("account_shop_1\u034f7", "account_shop_1\ufe0f7", "account_shop_\u316417")
    worker = "worker_\u20673_0\u2069"
    for n, account in enumerate(accounts):
        ledger.handle(RegisterProfile(profile_id=f"p{n}", account_id=account, proxy_id="x"))
        lease = ledger.handle(
            Checkout(profile_id=f"p{n}", worker_id=worker, run_id="r", task_type="t")
        )
        ledger.handle(
            Release(lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="failure")
        )
    html = report_html(ledger=ledger).html
    for hidden in ("\u034f", "\ufe0f", "\u3164", "\u2067", "\u2069"):
        assert hidden not in html, repr(hidden)
    for account in ("account_shop_1\\u034f7", "account_shop_1\\ufe0f7", "account_shop_\\u316417"):
        assert account in html
    assert '<span class="badge bad">worker worker_\\u20673_0\\u2069: 3 unclean' in html, html


def test_the_fleet_table_s_total_is_apart_from_an_account_named_like_it(ledger: Ledger) -> None:
    """The report's fleet table gives its total in the table's foot, labelled by a header
    cell, so an account named "all accounts" is a row of data and not read as the total
    (rev33: both were a row whose first cell read "all accounts")."""
    for pid, account in (("p1", "all accounts"), ("p2", "a2"), ("p3", "a2")):
        ledger.handle(RegisterProfile(profile_id=pid, account_id=account, proxy_id="x"))
    fleet = report_html(ledger=ledger).html.split('<section id="fleet">')[1].split("</table>")[0]
    body, foot = fleet.split("<tbody>")[1].split("</tbody>")
    assert re.search(r"<tr><td>all accounts</td>.*?<td class=\"num\">1</td></tr>", body)
    assert foot.startswith('<tfoot><tr><th scope="row">all accounts</th>')
    assert foot.endswith('<td class="num">3</td></tr></tfoot>')


def test_a_profile_s_leases_taken_at_one_instant_are_read_in_the_order_taken(
    ledger: Ledger,
) -> None:
    """Eleven leases of one profile taken at one instant (the store's clock held while the
    server's stepped back): 1 to 9 clean, 10 and 11 sent to review. ``health``'s failing reads
    its five latest (7 to 11) and lists it, and ``usage`` lists them in the order taken.
    rev48: sorted by lease id as text, lease-10 and lease-11 came before lease-1, and failing
    read 5 to 9, all clean: the profile was missed."""
    ledger.handle(RegisterProfile(profile_id="p11", account_id="acct_s", proxy_id="px"))
    for n in range(1, 12):
        lease = ledger.handle(
            Checkout(profile_id="p11", worker_id="w", run_id=f"r{n}", task_type="t")
        )
        clean = {"outcome": "success", "final_url": "https://x.example/"}
        ending = clean if n <= 9 else {"outcome": "failure", "reason": "boom"}
        ledger.handle(Release(lease_id=lease.lease_id, fencing_token=n, **ending))  # type: ignore[arg-type]
        if n > 9:
            ledger.handle(Review(profile_id="p11", reviewer="alice", decision="return", note="ok"))
    failing = reports.health(ledger=ledger).failing
    assert list(failing["profile_id"]) == ["p11"]
    assert failing["unclean_leases"].iloc[0] == "lease-10@p11, lease-11@p11"
    assert failing["endings"].iloc[0] == "clean, clean, clean, review, review"
    usage = reports.usage("acct_s", ledger=ledger)
    assert list(usage["fencing_token"]) == list(range(1, 12))


def test_leases_started_at_one_instant_read_in_one_order_whatever_the_collation(
    tmp_path: Path, pg_cluster: PostgresCluster
) -> None:
    """Profiles whose ids an ICU collation orders otherwise than code points (``B1`` before or
    after ``a1``), each leased at one instant: usage lists them in one order on SQLite, on a
    PostgreSQL database of the C collation and on one of ICU's en-US, by code point, as SQLite
    orders text (fixrev 294: the database's collation ordered them on PostgreSQL, as rev36
    found of the availability rows)."""
    ids = ["a1", "B1", "b-2", "b.1", "Z9", "a_1", "a-1"]
    name = f"icu_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_cluster.admin_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu "
            "ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    try:
        orders = []
        for url in (f"sqlite:///{tmp_path / 'c.db'}", database_url(pg_cluster.admin_url, name)):
            Ledger.init(url).close()
            clock = StepClock()
            with Ledger.open(url, clock=clock) as ledger:
                for pid in ids:
                    ledger.handle(RegisterProfile(profile_id=pid, account_id="acc", proxy_id="px"))
                clock.advance(1)
                for pid in ids:
                    ledger.handle(
                        Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t")
                    )
                orders.append(list(reports.usage("acc", ledger=ledger)["profile_id"]))
                orders.append([r.profile_id for r in projections.usage(ledger, "acc")])
        assert orders == [sorted(ids)] * 4, orders
    finally:
        drop_database(pg_cluster.admin_url, name)
