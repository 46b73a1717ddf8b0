"""Is a lease still live? The answer a worker polls for, read off the profile's availability
row alone (one indexed read in a store): live while it is the profile's lease and not marked
stale; otherwise why not, in words that say the ledger took it back."""

from __future__ import annotations

from profile_scene import Scene

from ledger._domain.model import Outcome, ProfileState, ReviewDecision, Role
from ledger._domain.view import availability_of, lease_check


def check(s: Scene, lease_id: str) -> tuple[bool, ProfileState, str | None]:
    c = lease_check(availability_of(s.profile), lease_id, s.now)
    assert c.lease_id == lease_id
    return c.live, c.profile_state, c.why


def test_a_held_lease_is_live_until_the_ledger_ends_it() -> None:
    """Checked out and renewed: live. Force-released: not live, and the answer names the
    ending and where the profile went."""
    s = Scene()
    lease = s.checkout()
    s.heartbeat(lease, step="x")
    assert check(s, lease.lease_id) == (True, ProfileState.LEASED, None)
    s.force_release()
    live, state, why = check(s, lease.lease_id)
    assert (live, state) == (False, ProfileState.REVIEW_REQUIRED)
    ended = s.profile.last_lease
    assert ended is not None
    assert ended.ended_at is not None
    assert why == (
        f"the ledger ended lease-1@profile_shop_17 ({ended.ending}) at "
        f"{ended.ended_at.isoformat()}; profile_shop_17 is review_required"
    )


def test_quarantine_disable_and_a_stale_mark_each_take_the_lease_back() -> None:
    """An operator's quarantine or disable of a live lease, and the sweep's stale mark, all
    make it not live; a lease of the past is not live once a later one holds the profile."""
    s = Scene()
    first = s.checkout()
    s.quarantine()
    assert check(s, first.lease_id)[:2] == (False, ProfileState.QUARANTINED)
    s.review(ReviewDecision.RETURN)
    second = s.checkout()
    s.disable()
    assert check(s, second.lease_id)[:2] == (False, ProfileState.DISABLED)
    s.enable()
    s.review(ReviewDecision.RETURN)
    third = s.checkout(ttl=60)
    s.advance(61)
    s.profile.mark_stale(s.ctx("sweeper", Role.SCHEDULER))
    s.collect()
    live, state, why = check(s, third.lease_id)
    assert (live, state, why) == (
        False,
        ProfileState.STALE,
        "the ledger marked lease-3@profile_shop_17 stale",
    )
    live, _, why = check(s, first.lease_id)
    assert not live
    assert why == "profile_shop_17 is now held under lease-3@profile_shop_17"


def test_a_lease_released_by_its_worker_is_not_live_either() -> None:
    """After its own release a lease is not live (a worker stops watching before it
    releases, so it never reads this as a revocation)."""
    s = Scene()
    lease = s.checkout()
    s.release(lease, Outcome.SUCCESS)
    live, state, why = check(s, lease.lease_id)
    assert (live, state) == (False, ProfileState.AVAILABLE)
    assert why is not None
    assert why.startswith("the ledger ended lease-1@profile_shop_17 (")


def test_a_lease_past_its_renewal_deadline_is_not_live_before_any_sweep() -> None:
    """review13: a watch answered ``live`` for a lease past its renewal deadline until a sweep
    marked it, while a heartbeat was refused as lost and other checkouts were denied as stale.
    Live up to the deadline; past it, not live, saying which deadline it missed."""
    s = Scene()
    lease = s.checkout(ttl=60)
    s.advance(60)
    assert check(s, lease.lease_id) == (True, ProfileState.LEASED, None)
    s.advance(1)
    live, state, why = check(s, lease.lease_id)
    assert (live, state) == (False, ProfileState.LEASED)
    assert why == (
        f"lease-1@profile_shop_17 missed its renewal deadline {lease.expires_at.isoformat()}: "
        "a heartbeat is refused, and the next sweep marks it stale"
    )
