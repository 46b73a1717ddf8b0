"""A fold believes no event the ledger never decides (rev24, rev25): each event below was taken
from a history the ledger made and put where no decision puts it, as a login with raw SQL can
(its link computed). The fold refuses it as ``NeverDecided`` naming it, and folds the history
the ledger made unchanged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from profile_scene import Scene

from ledger._domain import events as ev
from ledger._domain.errors import NeverDecided
from ledger._domain.model import LeaseStatus, Outcome, ProfileState
from ledger._domain.profile import replay


def _first(events: list[ev.ProfileEvent], kind: type[ev.ProfileEvent]) -> ev.ProfileEvent:
    return next(e for e in events if isinstance(e, kind))


def _numbered(events: list[ev.ProfileEvent]) -> list[ev.ProfileEvent]:
    """The events as versions 1, 2, ... of one stream."""
    return [e.model_copy(update={"originator_version": n}) for n, e in enumerate(events, 1)]


def _leased() -> Scene:
    s = Scene()
    s.checkout("worker-a", 120)
    return s


def _released(outcome: Outcome) -> Scene:
    s = _leased()
    s.heartbeat(s.live, step="cart")
    s.release(s.live, outcome)
    return s


def _swept() -> Scene:
    s = _leased()
    s.advance(600)
    s.sweep()
    return s


def _disabled() -> Scene:
    s = Scene()
    s.disable()
    s.enable()
    return s


def _twice() -> Scene:
    s = Scene()
    s.checkout("worker-a", 120)
    s.release(s.live)
    s.checkout("worker-a", 120)
    return s


def _acquired(history: list[ev.ProfileEvent], **lease: object) -> ev.ProfileEvent:
    """The history's first acquisition, its lease changed so."""
    acquired = _first(history, ev.LeaseAcquired)
    assert isinstance(acquired, ev.LeaseAcquired)
    return acquired.model_copy(update={"lease": acquired.lease.model_copy(update=lease)})


def _in_2099(history: list[ev.ProfileEvent]) -> ev.ProfileEvent:
    """The history's first acquisition, its lease started in 2099 and due an hour after (as the
    reviewer's: TTL a day, hard limit an hour)."""
    due = _Y2099 + _HOUR
    return _acquired(
        history,
        lease_started_at=_Y2099,
        heartbeat_at=_Y2099,
        expires_at=due,
        hard_limit_at=due,
        ttl_seconds=86400,
    )


def _leased_disable() -> ev.ProfileEvent:
    """A disable recorded "from leased", as no ``disable`` records it (it ends the lease)."""
    disabled = _disabled().history[1]
    return disabled.model_copy(update={"previous_state": ProfileState.LEASED})


_Y2099 = datetime(2099, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)


# (what is forged, the history the ledger made, which of its events make the forged history,
# what the refusal says)
Forged = tuple[Callable[[], Scene], Callable[[list[ev.ProfileEvent]], list[ev.ProfileEvent]], str]
CASES: dict[str, Forged] = {
    "heartbeat-on-no-lease": (
        lambda: _released(Outcome.SUCCESS),
        lambda h: [h[0], _first(h, ev.LeaseHeartbeat)],
        "no lease is held",
    ),
    "clean-release-on-no-lease": (
        lambda: _released(Outcome.SUCCESS),
        lambda h: [h[0], _first(h, ev.LeaseReleasedCleanly)],
        "no lease is held",
    ),
    "clean-release-of-an-earlier-lease": (
        _twice,
        lambda h: [*h, _first(h, ev.LeaseReleasedCleanly)],
        "the lease held is 'lease-2@profile_shop_17', not 'lease-1@profile_shop_17'",
    ),
    "clean-release-of-a-stale-lease": (
        _swept,  # registered, acquired, marked stale, then another history's clean release
        lambda h: [*h[:3], _released(Outcome.SUCCESS).history[-1]],
        "the lease held is stale, not active",
    ),
    "heartbeat-under-another-token": (
        lambda: _released(Outcome.SUCCESS),
        lambda h: [
            h[0],
            h[1],
            _first(h, ev.LeaseHeartbeat).model_copy(update={"fencing_token": 7}),
        ],
        "fencing token 7 is not the lease's 1",
    ),
    "workers-block-on-no-lease": (
        lambda: _released(Outcome.FAILURE),
        lambda h: [h[0], _first(h, ev.ReviewRequested)],
        "no lease is held",
    ),
    "sweeps-block-on-a-live-lease": (
        _swept,
        lambda h: [h[0], h[1], _first(h, ev.ReviewRequested)],
        "the lease held is active, not stale",
    ),
    "stale-mark-on-no-lease": (
        _swept,
        lambda h: [h[0], _first(h, ev.LeaseMarkedStale)],
        "no lease is held",
    ),
    "return-to-the-pool-of-a-leased-profile": (
        lambda: (s := _released(Outcome.FAILURE), s.review(), s)[2],
        lambda h: [h[0], h[1], _first(h, ev.ProfileReturnedToPool)],
        "a return to the pool of a profile that was leased",
    ),
    "enable-of-an-available-profile": (
        _disabled,
        lambda h: [h[0], _first(h, ev.ProfileEnabled)],
        "an enable of a profile that was available",
    ),
    "enable-to-another-state": (  # rev26: quarantined, disabled, then "enabled" to the pool
        lambda: (s := Scene(), s.quarantine(), s.disable(), s)[3],
        lambda h: [*h, _disabled().history[-1]],
        "an enable to available of a profile disabled from quarantined",
    ),
    "disable-from-another-state": (  # rev26: an honest enable would then return it to the pool
        lambda: (s := Scene(), s.quarantine(), s)[2],
        lambda h: [*h, _disabled().history[1]],
        "a disable from available of a profile that was quarantined",
    ),
    "disable-of-a-leased-profile": (  # rev26: the holder's release then undid the disable
        _leased,
        lambda h: [*h, _leased_disable()],
        "a disable of a profile with the live lease 'lease-1@profile_shop_17'",
    ),
    "acquisition-of-a-stale-lease": (  # rev26: every later sweep's stale mark was refused
        _leased,
        lambda h: [h[0], _acquired(h, lease_status=LeaseStatus.STALE)],
        "a lease granted stale",
    ),
    "acquisition-of-an-ended-lease": (
        _leased,
        lambda h: [h[0], _acquired(h, ending="clean")],
        "a lease granted active",
    ),
    "acquisition-under-another-lease-id": (
        _leased,
        lambda h: [h[0], _acquired(h, lease_id="lease-1@another")],
        "a lease named 'lease-1@another', not 'lease-1@profile_shop_17'",
    ),
    # rev37: a worker's login acquired a lease dated now that started in 2099, its deadline and
    # hard limit an hour after its start: measured from there they passed, the sweep never
    # reached it, and every read showed it leased until 2099.
    "acquisition-started-in-2099": (
        _leased,
        lambda h: [h[0], _in_2099(h)],
        "a lease started at 2099-01-01T00:00:00+00:00, not at its checkout's "
        "2024-05-01T09:00:00+00:00",
    ),
    "acquisition-started-before-it": (  # its deadline within the TTL of the event: only the
        _leased,  # start says so
        lambda h: [h[0], _acquired(h, lease_started_at=h[1].at - _HOUR)],
        "a lease started at 2024-05-01T08:00:00+00:00, not at its checkout's "
        "2024-05-01T09:00:00+00:00",
    ),
    "acquisition-renewed-in-2099": (
        _leased,
        lambda h: [h[0], _acquired(h, heartbeat_at=_Y2099)],
        "a lease renewed at 2099-01-01T00:00:00+00:00, not at its checkout's "
        "2024-05-01T09:00:00+00:00",
    ),
    "acquisition-on-another-account": (
        _leased,
        lambda h: [h[0], _acquired(h, account_id="account_bank_1")],
        "a lease naming profile 'profile_shop_17', account 'account_bank_1', proxy 'proxy-de-3', "
        "not the profile's own",
    ),
    "revoke-of-no-lease": (  # rev26 reread2
        lambda: (s := _leased(), s.force_release(), s)[2],
        lambda h: [h[0], _first(h, ev.LeaseRevoked)],
        "no lease is held",
    ),
    "disable-after-a-revoke-alone": (  # rev26 reread2: then enable made it "leased"
        lambda: (s := _leased(), s.force_release(), s)[2],
        lambda h: [*h[:3], _disabled().history[1]],
        "it follows the revoke of lease-1@profile_shop_17 with no review or quarantine after it",
    ),
    "second-registration": (
        Scene,
        lambda h: [h[0], h[0]],
        "a second registration of a registered profile",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_an_event_the_ledger_never_decides_is_believed_by_no_fold(name: str) -> None:
    made, forge, said = CASES[name]
    scene = made()
    assert replay(None, _numbered(scene.history)) is not None  # the ledger's own history folds
    forged = _numbered(forge(scene.history))
    with pytest.raises(NeverDecided) as refused:
        replay(None, forged)
    last = forged[-1]
    assert str(refused.value).startswith(
        f"the event {last.event_type!r} v{len(forged)} of profile 'profile_shop_17' cannot be read"
        f" ({said}: the ledger never "
    ), str(refused.value)


def test_a_revoke_with_nothing_after_it_denies_checkouts_and_says_how_out() -> None:
    """rev26 reread2: an operator's login appended one ``lease_revoked`` alone (the ledger
    records one only with the review or quarantine it sends the profile to): every read of
    the profile was an internal AssertionError. The fold ends leased with no lease; a checkout
    is denied naming the revoke and the way out, and a quarantine (a block) folds after it."""
    from datetime import UTC, datetime

    from ledger._domain.denials import state_denial
    from ledger._domain.model import ProfileState

    s = _leased()
    s.force_release()
    revoked = _numbered(s.history[:3])
    assert isinstance(revoked[-1], ev.LeaseRevoked)
    folded = replay(None, revoked)
    assert folded is not None
    assert (folded.state, folded.lease) == (ProfileState.LEASED, None)
    denial = state_denial(folded, datetime(2030, 1, 1, tzinfo=UTC))
    assert denial is not None
    assert "the revoke of lease-1@profile_shop_17 with no review or quarantine" in denial.message
    assert "custody quarantine profile_shop_17" in denial.remediation
    quarantined = (s2 := _leased(), s2.quarantine(), s2)[2]
    block = _first(quarantined.history, ev.ProfileQuarantined)
    after = replay(None, _numbered([*s.history[:3], block]))
    assert after is not None
    assert after.state is ProfileState.QUARANTINED


def test_no_deadline_reaches_past_what_the_ledger_sets() -> None:
    """rev26 reread2: a worker's login held a profile for ever, past its --max-lease, with one
    lease_acquired (a deadline in the year 9999, no hard limit) or one lease_extended to 9999;
    the sweep never ended it. The ledger sets a deadline at the decision's time plus the TTL,
    never past the hard limit its profile's --max-lease gives: the fold believes no other."""
    from datetime import timedelta

    far = {"expires_at": _leased().history[1].at + timedelta(days=3650)}
    s = Scene(max_lease=600)
    lease = s.checkout("worker-a", 120)
    s.heartbeat(lease, step="cart")
    s.profile.extend(lease.lease_id, lease.fencing_token, 300, s.ctx(lease.worker_id))
    s.collect()
    honest = _numbered(s.history)
    assert replay(None, honest) is not None
    acquired = _first(honest, ev.LeaseAcquired)
    assert isinstance(acquired, ev.LeaseAcquired)
    forged = {
        "past its ttl": acquired.model_copy(
            update={"lease": acquired.lease.model_copy(update=far)}
        ),
        "without the hard limit": acquired.model_copy(
            update={"lease": acquired.lease.model_copy(update={"hard_limit_at": None})}
        ),
    }
    for event in forged.values():
        with pytest.raises(NeverDecided, match="the ledger never grants it"):
            replay(None, _numbered([honest[0], event]))
    unlimited = _leased().history  # no --max-lease: the TTL alone bounds the deadline
    with pytest.raises(NeverDecided, match=r"a deadline .* past 120 s from"):
        replay(None, _numbered([unlimited[0], _acquired(unlimited, **far)]))
    for kind in (ev.LeaseHeartbeat, ev.LeaseExtended):
        at = next(n for n, e in enumerate(honest) if isinstance(e, kind))
        renewed = honest[at].model_copy(update=far)
        with pytest.raises(NeverDecided, match=r"a deadline .* past"):
            replay(None, _numbered([*honest[:at], renewed]))


def test_no_worker_event_is_believed_after_its_lease_s_deadline() -> None:
    """rev26: a worker's login renewed a lease by hand after its deadline had passed (a
    heartbeat the ledger refuses as lost), keeping it from the sweep. A worker's event on its
    lease decided after the deadline, or at the hard limit, is believed by no load; a sweep's
    stale mark of the same overdue lease still folds."""
    from datetime import timedelta

    s = _leased()  # a TTL of 120 s
    s.heartbeat(s.live, step="cart")
    honest = _numbered(s.history)
    beat = honest[2]
    assert isinstance(beat, ev.LeaseHeartbeat)
    late_at = beat.at + timedelta(seconds=600)
    late = beat.model_copy(
        update={
            "envelope": beat.envelope.model_copy(update={"at": late_at}),
            "expires_at": late_at + timedelta(seconds=120),
        }
    )
    with pytest.raises(NeverDecided, match=r"a worker's event at .*, past the deadline"):
        replay(None, [*honest[:2], late])
    swept = _numbered(_swept().history)
    assert replay(None, swept) is not None  # the sweep's events, after the deadline, fold
