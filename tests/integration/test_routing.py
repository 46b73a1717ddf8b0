"""Account-aware routing on every store: which profiles are candidates, the random order, a
lost race moving on, and the aggregated reason when nothing can be leased."""

from __future__ import annotations

import io
import json
import random
from collections.abc import MutableSequence
from datetime import datetime
from typing import Any

import pytest
from conftest import StepClock, event_count, register

from custody._render import emit_error, error_line
from custody._text import one_line
from ledger import (
    Availability,
    Checkout,
    CheckoutDenied,
    DenialReason,
    Disable,
    InvalidInput,
    Ledger,
    Quarantine,
    RegisterProfile,
    Release,
)
from workers import NoProfileAvailable, checkout_for

ACCOUNT = "account_shop"


def _route(ledger: Ledger, worker: str = "w", **kw: Any) -> str:
    kw.setdefault("account_id", ACCOUNT)
    lease = checkout_for(ledger, worker_id=worker, run_id=f"run-{worker}", task_type="t", **kw)
    return lease.profile_id


def _pool(ledger: Ledger, n: int, **overrides: object) -> list[str]:
    fields: dict[str, object] = {"account_id": ACCOUNT, **overrides}
    return [register(ledger, f"shop_{i}", **fields) for i in range(n)]


class InOrder(random.Random):
    """An rng whose shuffle puts the listed profiles first, in that order."""

    def __init__(self, *first: str) -> None:
        super().__init__(0)
        self.first = first

    def shuffle(self, x: MutableSequence[Any]) -> None:
        x[:] = sorted(
            x, key=lambda p: (p not in self.first, self.first.index(p) if p in self.first else 0)
        )


def test_only_available_profiles_of_the_account_region_and_proxy_are_leased(
    ledger: Ledger,
) -> None:
    """Another account's profile, another region's and another proxy's are never picked,
    even when they are the only ones free."""
    register(ledger, "other_account", account_id="account_other")
    register(ledger, "eu_one", account_id=ACCOUNT, region="eu")
    register(ledger, "us_one", account_id=ACCOUNT, region="us", proxy_id="proxy_us")
    register(ledger, "us_two", account_id=ACCOUNT, region="us", proxy_id="proxy_other")
    assert _route(ledger, "a", region="eu") == "eu_one"
    assert _route(ledger, "b", region="us", proxy_id="proxy_us") == "us_one"
    with pytest.raises(NoProfileAvailable) as denied:
        _route(ledger, "c", region="us", proxy_id="proxy_us")
    labels = {pid: s.label for pid, s in denied.value.standing.items()}
    assert labels == {"us_one": "leased", "us_two": "proxy mismatch"}
    assert ledger.view("other_account").lease is None


def test_candidates_are_tried_in_random_order(ledger: Ledger) -> None:
    """Different draws lease different profiles first (in a fixed order every worker would
    race for the same one): each of 3 free profiles comes first under some seed of 30."""
    pool = _pool(ledger, 3)
    first = set()
    for seed in range(30):
        pid = _route(ledger, f"w{seed}", rng=random.Random(seed))
        first.add(pid)
        lease = ledger.view(pid).lease
        assert lease is not None
        ledger.handle(
            Release(
                lease_id=lease.lease_id,
                fencing_token=lease.fencing_token,
                outcome="success",
                final_url="u",
            )
        )
    assert first == set(pool)


def test_a_profile_lost_to_another_worker_moves_on_to_the_next(ledger: Ledger) -> None:
    """Routing decided on rows read before another worker took the first candidate: the
    ledger denies it (already leased) and the next candidate is leased instead."""
    _pool(ledger, 2)
    rows_before = ledger.availability()
    ledger.handle(Checkout(profile_id="shop_0", worker_id="rival", run_id="r", task_type="t"))

    class Outdated(Ledger):
        def availability(self) -> list[Availability]:
            return rows_before

    outdated = Outdated(ledger.settings, lambda _: ledger.store, ledger._clock)  # same store
    assert _route(outdated, rng=InOrder("shop_0", "shop_1")) == "shop_1"


def test_nothing_available_raises_the_aggregated_reason(ledger: Ledger, clock: StepClock) -> None:
    """With every profile of the account unavailable, one CheckoutDenied
    (no_profile_available) counts why, most common first, and appends nothing."""
    pool = _pool(ledger, 6)
    register(ledger, "shop_px", account_id=ACCOUNT, proxy_id="proxy_elsewhere")
    for pid in pool[:3]:
        ledger.handle(
            Checkout(
                profile_id=pid, worker_id="holder", run_id=f"r-{pid}", task_type="t", ttl_seconds=60
            )
        )
    ledger.handle(Quarantine(profile_id=pool[3], actor="ops", reason="suspicious"))
    ledger.handle(Quarantine(profile_id=pool[4], actor="ops", reason="suspicious"))
    ledger.handle(Disable(profile_id=pool[5], actor="ops", reason="closed"))
    clock.advance(30)
    before = event_count(ledger)
    with pytest.raises(CheckoutDenied) as denied:
        _route(ledger, proxy_id="proxy_us_east_12")
    assert denied.value.reason is DenialReason.NO_PROFILE_AVAILABLE
    assert denied.value.denial.message == (
        "0 of 7 profiles for account_shop: 3 leased, 2 quarantined, 1 disabled, 1 proxy mismatch"
    )
    assert denied.value.denial.profile_id is None
    assert "custody status --account account_shop" in denied.value.remediation
    assert str(denied.value).startswith("checkout denied (no_profile_available): 0 of 7")
    assert event_count(ledger) == before
    clock.advance(31)  # the leases are past their deadlines now: counted as stale
    with pytest.raises(NoProfileAvailable) as later:
        _route(ledger, proxy_id="proxy_us_east_12")
    assert later.value.counts == {"stale": 3, "quarantined": 2, "disabled": 1, "proxy mismatch": 1}


def test_an_account_without_profiles_says_so(ledger: Ledger) -> None:
    """No profile registered for the account (or region): 0 of 0, and how to register one."""
    _pool(ledger, 1)
    with pytest.raises(NoProfileAvailable) as denied:
        _route(ledger, region="mars")
    assert (
        denied.value.denial.message
        == "0 of 0 profiles for account_shop in mars: none is registered"
    )
    assert "custody register" in denied.value.remediation


def test_each_profile_s_standing_is_its_own_denial(ledger: Ledger, clock: StepClock) -> None:
    """Every profile routing could not lease stands as a checkout of it alone is told: the
    reason, message, since, until, holder and what unblocks it, whether the rows ruled it
    out, a rival took it first, or its lease is overdue."""
    leased, quarantined, disabled, overdue, rival = _pool(ledger, 5)
    ledger.handle(
        Checkout(profile_id=leased, worker_id="holder", run_id="r1", task_type="t", ttl_seconds=600)
    )
    ledger.handle(Quarantine(profile_id=quarantined, actor="ops", reason="suspicious"))
    ledger.handle(Disable(profile_id=disabled, actor="ops", reason="closed"))
    ledger.handle(
        Checkout(profile_id=overdue, worker_id="late", run_id="r2", task_type="t", ttl_seconds=5)
    )
    ledger.handle(
        RegisterProfile(profile_id="shop_px", account_id=ACCOUNT, proxy_id="proxy_elsewhere")
    )
    clock.advance(10)
    rows_before = ledger.availability()
    ledger.handle(Checkout(profile_id=rival, worker_id="rival", run_id="r3", task_type="t"))

    class Outdated(Ledger):
        def availability(self) -> list[Availability]:
            return rows_before

    outdated = Outdated(ledger.settings, lambda _: ledger.store, ledger._clock)
    with pytest.raises(NoProfileAvailable) as denied:
        _route(outdated, proxy_id="proxy_us_east_12")
    standing = denied.value.standing
    assert sorted(standing) == sorted([leased, quarantined, disabled, overdue, rival, "shop_px"])
    for pid, stood in standing.items():
        with pytest.raises(CheckoutDenied) as alone:
            ledger.handle(
                Checkout(
                    profile_id=pid,
                    worker_id="w",
                    run_id="r",
                    task_type="t",
                    account_id=ACCOUNT,
                    proxy_id="proxy_us_east_12",
                )
            )
        own = alone.value.denial
        assert stood.profile_id == pid
        assert (stood.reason, stood.message, stood.remediation) == (
            own.reason, own.message, own.remediation
        ), pid  # fmt: skip
        assert (stood.since, stood.until, stood.holder) == (own.since, own.until, own.holder)
    assert standing[leased].until is not None
    assert standing[leased].holder is not None
    assert standing[leased].holder.worker_id == "holder"
    assert standing[rival].holder is not None
    assert standing[rival].holder.worker_id == "rival"
    assert "custody review" in standing[quarantined].remediation
    assert "custody enable" in standing[disabled].remediation
    assert (standing[overdue].label, standing["shop_px"].label) == ("stale", "proxy mismatch")


def test_a_blocked_profile_s_standing_says_what_unblocks_it_beside_a_mismatch(
    ledger: Ledger,
) -> None:
    """rev28: a quarantined profile asked for through another proxy stands as its checkout is
    told: the proxy mismatch first, and the review its quarantine waits for."""
    (pid,) = _pool(ledger, 1)
    ledger.handle(Quarantine(profile_id=pid, actor="ops", reason="suspicious"))
    standing = ledger.checkout_denial(pid, proxy_id="proxy_elsewhere")
    with pytest.raises(CheckoutDenied) as alone:
        ledger.handle(
            Checkout(
                profile_id=pid, worker_id="w", run_id="r", task_type="t", proxy_id="proxy_elsewhere"
            )
        )
    assert standing is not None
    assert standing == alone.value.denial
    assert standing.reason is DenialReason.PROXY_MISMATCH
    assert "; the profile is also blocked (quarantined): " in standing.remediation


@pytest.mark.parametrize(
    "asked",
    [
        {"account_id": "z z\n"},
        {"proxy_id": " y"},
        {"account_id": ""},
        {"proxy_id": 7},
        {"account_id": "a" * 300},
    ],
    ids=["control_character", "padded", "empty", "not_text", "too_long"],
)
def test_an_id_a_checkout_refuses_is_refused_by_checkout_denial_alike(
    ledger: Ledger, asked: dict[str, Any]
) -> None:
    """rev41: ``checkout_denial`` answers what a checkout would be told now; for an account or
    proxy id ``Checkout`` refuses, that is the same ``InvalidInput``, not a mismatch denial
    for an id no checkout could name. Nothing is written."""
    (pid,) = _pool(ledger, 1)
    with pytest.raises(InvalidInput) as checkout:
        Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", **asked)
    before = event_count(ledger)
    with pytest.raises(InvalidInput) as denial:
        ledger.checkout_denial(pid, **asked)
    assert (denial.value.field, str(denial.value)) == (checkout.value.field, str(checkout.value))
    assert event_count(ledger) == before


def test_the_json_error_shows_each_profile_s_standing(ledger: Ledger) -> None:
    """The command line's JSON error for a routing denial carries each profile's standing
    (reason, until, holder, what unblocks it) beside the counts; its text stays one line."""
    leased, blocked = _pool(ledger, 2)
    lease = ledger.handle(
        Checkout(profile_id=leased, worker_id="holder", run_id="r1", task_type="t")
    )
    ledger.handle(Quarantine(profile_id=blocked, actor="ops", reason="suspicious"))
    with pytest.raises(NoProfileAvailable) as denied:
        _route(ledger)
    out = io.StringIO()
    emit_error(denied.value, out=out)
    body = json.loads(out.getvalue())
    assert body["counts"] == {"leased": 1, "quarantined": 1}
    held = body["standing"][leased]
    assert (held["reason"], held["holder"]["worker_id"]) == ("already_leased", "holder")
    assert datetime.fromisoformat(held["until"]) == lease.expires_at
    assert "custody review" in body["standing"][blocked]["remediation"]
    assert "\n" not in one_line(error_line(denied.value))


def test_a_profile_freed_since_the_rows_were_read_is_leased(ledger: Ledger) -> None:
    """The rows show the only profile leased, but its lease ended since: asked what a
    checkout of it would be told, the ledger says granted, so routing leases it rather than
    counting it as leased."""
    (pid,) = _pool(ledger, 1)
    lease = ledger.handle(Checkout(profile_id=pid, worker_id="w0", run_id="r0", task_type="t"))
    rows_before = ledger.availability()
    ledger.handle(
        Release(lease_id=lease.lease_id, fencing_token=1, outcome="success", final_url="u")
    )

    class Outdated(Ledger):
        def availability(self) -> list[Availability]:
            return rows_before

    outdated = Outdated(ledger.settings, lambda _: ledger.store, ledger._clock)
    assert _route(outdated) == pid
