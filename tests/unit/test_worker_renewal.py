"""The worker's renewal timing and lost-lease state machine, on fakes: no browser, no store.

A ``FakeClock`` stands for the monotonic clock and ``ScriptedLedger`` for the ledger's
heartbeat, answering from a script (a lease, ``StoreUnavailable``, ``LeaseLost``...).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fakes import LEASE, FakeClock

from ledger import InvalidInput, Lease, LeaseLost, LeaseStatus, Outcome, StoreUnavailable
from workers._evidence import Evidence, settle
from workers._guard import BLOCK_LEFT, LeaseGuard, Progress
from workers._renewal import checkout, heartbeat, release, renew
from workers._termination import STOP_WAIT_SECONDS, Signalled
from workers._timing import RenewalTiming


class ScriptedLedger:
    """Answers each heartbeat with the next scripted item (an exception is raised); once the
    script is spent, every heartbeat succeeds. ``on_call`` runs first (to move a clock)."""

    def __init__(self, *script: BaseException | None, on_call: Any = None) -> None:
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []
        self.closed = False
        self.on_call = on_call

    def handle(self, command: Any) -> Lease:
        self.calls.append(command.model_dump())
        if self.on_call:
            self.on_call()
        answer = self.script.pop(0) if self.script else None
        if answer is not None:
            raise answer
        return LEASE

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def guard_for(clock: FakeClock, ttl: float = 30) -> LeaseGuard:
    return LeaseGuard(LEASE.lease_id, RenewalTiming.from_ttl(ttl), clock.now, clock)


def test_timing_is_derived_from_the_ttl() -> None:
    """Renew every TTL/3, give up 2/3 TTL after the last renewal, retry every TTL/15 kept
    within 50 ms and 2 s; a TTL that is not positive is refused."""
    t = RenewalTiming.from_ttl(300)
    assert (t.interval, t.renew_deadline, t.retry_period) == (100, 200, 2.0)
    t = RenewalTiming.from_ttl(3)
    assert (t.interval, t.renew_deadline, t.retry_period) == (1, 2, 0.2)
    assert RenewalTiming.from_ttl(0.3).retry_period == 0.05
    for ttl in (1, 3, 60, 86_400):
        t = RenewalTiming.from_ttl(ttl)
        assert t.retry_period < t.interval < t.renew_deadline < t.ttl_seconds
    with pytest.raises(ValueError, match="positive"):
        RenewalTiming.from_ttl(0)


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), "30", None, True])
def test_a_ttl_that_is_not_a_positive_number_is_the_documented_value_error(ttl: object) -> None:
    """rev41: NaN passed ``ttl <= 0`` (every comparison with it is false) and made NaN timings;
    a number's text raised a bare ``TypeError``. Each is the ``ValueError`` the docstring
    promises, as is an infinite TTL (no renewal would come) and a bool."""
    with pytest.raises(ValueError, match="a lease's TTL must be a positive number of seconds"):
        RenewalTiming.from_ttl(ttl)  # type: ignore[arg-type]


def test_the_guard_holds_until_its_deadline_then_stays_lost(clock: FakeClock) -> None:
    """Held until 2/3 TTL after the last renewal's start; the first question past it loses the
    lease for good (a renewal arriving later does not revive it), with the reason kept."""
    guard = guard_for(clock)
    clock.now += 19.5
    assert guard.held()
    guard.renewed(clock.now - 5)  # a renewal that started 5 s ago: the deadline is 15 s on
    clock.now += 14
    assert guard.held()
    clock.now += 1
    assert not guard.held()
    assert guard.lost.is_set()
    assert "not renewed within 20s" in guard.why
    guard.renewed(clock.now)
    assert not guard.held()
    with pytest.raises(LeaseLost, match="not renewed within 20s"):
        guard.check()


def test_the_guard_keeps_the_first_reason_and_never_moves_back(clock: FakeClock) -> None:
    """An older renewal cannot pull the deadline back; the first loss's reason is kept."""
    guard = guard_for(clock)
    guard.renewed(clock.now + 10)
    guard.renewed(clock.now)
    assert guard.valid_until == clock.now + 30
    guard.lose("the ledger said so")
    guard.lose("something else")
    assert guard.why == "the ledger said so"


@pytest.mark.parametrize("loss", ["revoked", "deadline"])
def test_a_renewal_answered_after_the_loss_moves_nothing(clock: FakeClock, loss: str) -> None:
    """A heartbeat the ledger answered after the lease was lost (revoked meanwhile, or its
    local deadline passed while the answer travelled) neither moves ``renewed_at`` (nor the
    deadline) nor tells a watcher the deadline moved: the browser's watchdog, told a later
    deadline, would let the browser of a lost lease run on."""
    guard = guard_for(clock)
    moved: list[float] = []
    lost: list[str] = []
    guard.watch(moved.append, lost.append)
    if loss == "revoked":
        guard.revoked("the ledger ended lease-1@p1 (forced) at T")
    else:
        clock.now += 21
        assert not guard.held()
    before = (guard.renewed_at, guard.valid_until)
    guard.renewed(clock.now + 5)
    assert moved == []
    assert (guard.renewed_at, guard.valid_until) == before
    assert len(lost) == 1


def test_the_guard_never_holds_past_the_hard_limit(clock: FakeClock) -> None:
    """With a hard limit of 30 s (TTL 300), renewals move the local deadline but never past
    the limit; at the limit the lease is lost, saying so."""
    start = clock.now
    guard = LeaseGuard(LEASE.lease_id, RenewalTiming.from_ttl(300), start, clock, max_duration=30)
    assert guard.valid_until == start + 30
    clock.now += 29
    guard.renewed(clock.now)
    assert guard.valid_until == start + 30
    assert guard.held()
    clock.now += 1
    assert not guard.held()
    assert guard.why == "hard limit of 30s reached: stop the run"


def test_renew_moves_the_deadline_from_the_start_of_the_heartbeat(clock: FakeClock) -> None:
    """A heartbeat that took 3 s counts from when it was sent (the ledger's deadline is later
    than that), and carries the step and URL given."""
    guard = guard_for(clock)
    ledger = ScriptedLedger(on_call=lambda: setattr(clock, "now", clock.now + 3))
    sent = clock.now + 5
    clock.now = sent
    assert renew(
        ledger, heartbeat(LEASE, step="s", url="u"), guard, wait=lambda _: False, clock=clock
    )
    assert guard.renewed_at == sent
    (call,) = ledger.calls
    assert (call["step"], call["url"], call["fencing_token"]) == ("s", "u", 1)


def test_an_unavailable_store_is_retried_under_one_command_id(clock: FakeClock) -> None:
    """After StoreUnavailable the heartbeat is resent with the same command id, a retry period
    apart, and the lease stays held when one lands."""
    guard = guard_for(clock)
    waits: list[float] = []
    ledger = ScriptedLedger(StoreUnavailable("down"), StoreUnavailable("down"))
    assert renew(
        ledger, heartbeat(LEASE, step=None, url=None), guard, wait=_record(waits), clock=clock
    )
    assert len(ledger.calls) == 3
    assert len({c["command_id"] for c in ledger.calls}) == 1
    assert waits == [2.0, 2.0]
    assert guard.held()


def test_an_unavailable_store_past_the_deadline_loses_the_lease(clock: FakeClock) -> None:
    """Retries stop at the renew deadline: the lease is lost, naming the last error."""
    guard = guard_for(clock)
    ledger = ScriptedLedger(*[StoreUnavailable("store busy")] * 100)

    def wait(seconds: float) -> bool:
        clock.now += seconds
        return False

    assert not renew(ledger, heartbeat(LEASE, step=None, url=None), guard, wait=wait, clock=clock)
    assert guard.lost.is_set()
    assert "store busy" in guard.why
    assert len(ledger.calls) == 10  # 20 s of deadline, one try every 2 s


def test_lease_lost_from_the_ledger_ends_at_once(clock: FakeClock) -> None:
    """The ledger's LeaseLost is not retried: the guard is lost with its message."""
    guard = guard_for(clock)
    ledger = ScriptedLedger(LeaseLost(LEASE.lease_id, "the lease was marked stale"))
    assert not renew(
        ledger, heartbeat(LEASE, step=None, url=None), guard, wait=lambda _: False, clock=clock
    )
    assert len(ledger.calls) == 1
    assert "marked stale" in guard.why


@pytest.mark.parametrize(
    ("lost", "why"),
    [
        (
            LeaseLost(LEASE.lease_id, "lease ended forced (force_release) at T", ended=True),
            "revoked: lease ended forced (force_release) at T",
        ),
        (
            LeaseLost(LEASE.lease_id, "the lease was marked stale", ended=True),
            "revoked: the lease was marked stale",
        ),
        (
            LeaseLost(LEASE.lease_id, "renewal deadline T passed"),
            "renewal deadline T passed",
        ),
    ],
    ids=["forced", "stale", "own deadline"],
)
def test_a_lease_the_ledger_ended_is_lost_as_revoked(
    clock: FakeClock, lost: LeaseLost, why: str
) -> None:
    """A heartbeat (a step) or a release answered ``LeaseLost`` that the ledger ended the lease
    or marked it stale (``ended``) loses it as revoked, as the revocation watch would have
    said (rev39: only the watch said "revoked: "); a loss of the worker's own (its deadline) is
    the ledger's reason as it is."""
    guard = guard_for(clock)
    beat = heartbeat(LEASE, step=None, url=None)
    assert not renew(ScriptedLedger(lost), beat, guard, wait=lambda _: False, clock=clock)
    assert guard.why == why
    released = guard_for(clock)
    with pytest.raises(LeaseLost) as raised:
        release(ScriptedLedger(lost), LEASE, released, _stopped_at_dashboard())  # type: ignore[arg-type]
    assert released.why == why
    # The release's LeaseLost says what the guard says (rev39: the ledger's own, re-raised).
    assert (str(raised.value), raised.value.ended) == (
        f"lease lost: {LEASE.lease_id}: {why}",
        lost.ended,
    )
    assert raised.value.__cause__ is lost


FORCED = LeaseLost(LEASE.lease_id, "lease ended forced (force_release) at T", ended=True)


def _raised_by_each_call(guard: LeaseGuard, tmp_path: Path) -> list[LeaseLost]:
    """The LeaseLost each of the SDK's calls raises for ``guard``'s lost lease: the release
    (answered the ledger's ``FORCED``), a step's or ``browser()``'s check (``refusal``), the
    guard's ``check``, leaving the block with nothing on its way (``evidence.settle``)."""
    raised = []
    with pytest.raises(LeaseLost) as by_release:
        release(ScriptedLedger(FORCED), LEASE, guard, _stopped_at_dashboard())  # type: ignore[arg-type]
    raised.append(by_release.value)
    refusal = guard.refusal()
    assert refusal is not None
    raised.append(refusal)
    with pytest.raises(LeaseLost) as by_check:
        guard.check()
    raised.append(by_check.value)
    with pytest.raises(LeaseLost) as by_settle:
        settle(LEASE, guard, Progress().now(), None, None, tmp_path)
    raised.append(by_settle.value)
    return raised


@pytest.mark.parametrize("first", ["the watch", "a heartbeat", "the release"])
def test_the_lease_lost_a_task_gets_says_revoked_and_ended_whoever_heard_first(
    clock: FakeClock, tmp_path: Path, first: str
) -> None:
    """The ledger ended the lease; whichever of the worker's threads heard it first (the
    revocation watch, a heartbeat of the hub or a step, the release), every LeaseLost the task
    can get says the guard's "revoked: " reason and has ``ended`` True (rev39: raised anew with
    ``ended`` False after the watch or a heartbeat, the ledger's own without "revoked: " when
    the release heard first)."""
    guard = guard_for(clock)
    if first == "the watch":
        guard.revoked("the ledger ended lease-1@p1 (forced) at T")
    elif first == "a heartbeat":
        beat = heartbeat(LEASE, step=None, url=None)
        assert not renew(ScriptedLedger(FORCED), beat, guard, wait=lambda _: False, clock=clock)
    raised = _raised_by_each_call(guard, tmp_path)
    assert guard.why.startswith("revoked: "), guard.why
    assert guard.ended
    for lost in raised:
        assert (str(lost), lost.why, lost.ended) == (
            f"lease lost: {LEASE.lease_id}: {guard.why}",
            guard.why,
            True,
        )


def test_a_loss_of_the_workers_own_is_not_ended_whoever_heard_later(
    clock: FakeClock, tmp_path: Path
) -> None:
    """The local deadline passed first: the guard's reason stands, and the LeaseLost every call
    raises says it, ``ended`` False, even when the ledger then answers that it ended the
    lease (the release)."""
    guard = guard_for(clock)
    clock.now += 3600
    assert not guard.held()
    raised = _raised_by_each_call(guard, tmp_path)
    assert guard.why.startswith("not renewed within "), guard.why
    assert not guard.ended
    for lost in raised:
        assert (lost.why, lost.ended) == (guard.why, False)


def test_a_retired_guard_refuses_a_call_without_losing_the_lease(clock: FakeClock) -> None:
    """Once its checkout block was left (``retire``: the worker released the lease), a step
    is refused on the worker's side, saying the worker released it, ``ended`` False (the ledger
    did not take it back), and the lease is not lost by it, even past its deadline: no
    heartbeat met the ledger's ending to read as "revoked: " (rev39). A lease lost before it
    was left is refused as lost."""
    guard = guard_for(clock)
    assert guard.refusal() is None
    guard.retire()
    clock.now += 3600
    refusal = guard.refusal()
    assert refusal is not None
    assert (str(refusal), refusal.ended) == (f"lease lost: {LEASE.lease_id}: {BLOCK_LEFT}", False)
    assert (guard.lost.is_set(), guard.why) == (False, "")
    revoked = guard_for(clock)
    revoked.revoked("the ledger ended lease-1@p1 (forced) at T")
    revoked.retire()
    refusal = revoked.refusal()
    assert refusal is not None
    assert (refusal.why, refusal.ended) == (revoked.why, True)


def test_a_loss_the_ledger_reports_is_said_once(clock: FakeClock) -> None:
    """The guard keeps the ledger's reason alone, so the LeaseLost the worker raises names the
    lease and says "lease lost" once, never "lease lost: X: lease lost: X: ..."."""
    guard = guard_for(clock)
    ledger = ScriptedLedger(LeaseLost(LEASE.lease_id, "the lease was marked stale"))
    assert not renew(
        ledger, heartbeat(LEASE, step=None, url=None), guard, wait=lambda _: False, clock=clock
    )
    assert guard.why == "the lease was marked stale"
    with pytest.raises(LeaseLost) as lost:
        guard.check()
    assert str(lost.value) == "lease lost: lease-1@p1: the lease was marked stale"


def test_bad_input_propagates_and_a_stop_interrupts_retries(clock: FakeClock) -> None:
    """A step name the ledger refuses is the caller's error, not a loss; a stop asked for
    during a retry ends the renewal without losing the lease."""
    guard = guard_for(clock)
    with pytest.raises(InvalidInput):
        renew(
            ScriptedLedger(InvalidInput("step", "bad")),
            heartbeat(LEASE, step="x", url=None),
            guard,
            wait=lambda _: False,
            clock=clock,
        )
    stopping = ScriptedLedger(StoreUnavailable("down"))
    assert not renew(
        stopping, heartbeat(LEASE, step=None, url=None), guard, wait=lambda _: True, clock=clock
    )
    assert guard.held()


def test_progress_follows_the_ledgers_rules_for_steps() -> None:
    """A safe step confirms the account (clearing an unconfirmed mutation), as the ledger does;
    a URL is cut to what the ledger accepts, its last character the mark that says so (review
    275: a cut URL read as the page's own); the first prompt is kept."""
    progress = Progress()
    progress.stepped("login", safe=True, mutating=False)
    progress.stepped("submit", safe=False, mutating=True)
    assert (progress.now().last_safe_step, progress.now().mutating_step) == ("login", "submit")
    progress.stepped("done", safe=True, mutating=False)
    assert (progress.now().last_safe_step, progress.now().mutating_step) == ("done", None)
    progress.update(url="https://x/" + "a" * 5000)
    assert progress.now().url == "https://x/" + "a" * 4085 + "\u2026"
    progress.update(url="https://x/" + "a" * 4086)  # whole: no mark
    assert progress.now().url == "https://x/" + "a" * 4086
    progress.prompt("https://x/captcha")
    progress.prompt("https://x/verify")
    assert progress.now().prompt_url == "https://x/captcha"


def _record(waits: list[float]) -> Any:
    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return False

    return wait


class EndedLedger(ScriptedLedger):
    """Answers every command with the lease as it stands now: ended (what a resent command
    whose first landed is answered with, once the lease was force-released since)."""

    def handle(self, command: Any) -> Lease:
        super().handle(command)
        return LEASE.model_copy(update={"lease_status": LeaseStatus.REVOKED})


def test_a_heartbeat_answered_with_an_ended_lease_loses_it(clock: FakeClock) -> None:
    """renew took any lease answered as renewed: a resend's answer that the lease was revoked
    since moved the deadline on, and the task went on as if it held the profile. The worker did
    not end it: it was revoked (docs/operations/workers.md)."""
    guard = guard_for(clock)
    beat = heartbeat(LEASE, step=None, url=None)
    assert not renew(EndedLedger(), beat, guard, wait=lambda s: False, clock=clock)
    assert guard.lost.is_set()
    assert guard.why == "revoked: the ledger answered the lease as revoked"


def test_a_checkout_answered_with_an_ended_lease_is_lost(clock: FakeClock) -> None:
    """A checkout resent after its answer was lost is answered with the lease granted then; if
    it was revoked before the resend, the worker must not launch a browser under it; the
    LeaseLost says the ledger ended it (``ended``), as a heartbeat's would."""
    ledger = EndedLedger()
    with pytest.raises(LeaseLost, match="answered the lease as revoked") as lost:
        checkout(
            lambda command_id: ledger.handle(heartbeat(LEASE, step=None, url=None)), clock=clock
        )
    assert lost.value.ended


def test_the_guard_loses_the_lease_at_its_deadline_when_no_one_asks() -> None:
    """With nothing asking ``held`` (the heartbeat thread blocked in a store call that waits
    the store's timeout), ``lost`` is set at the local deadline, TTL*2/3 after the last
    renewal's start; a renewal moves it; a retired guard sets nothing (rev33: ``lost`` was set
    3 to 25 s past the ledger's deadline, while a task watching it worked on)."""
    import time

    started = time.monotonic()
    guard = LeaseGuard("lease-1@p1", RenewalTiming.from_ttl(1.5), started)  # deadline 1 s
    assert guard.lost.wait(3)
    assert 1.0 <= time.monotonic() - started < 1.5
    assert guard.why.startswith("not renewed within 1s")

    started = time.monotonic()
    renewed = LeaseGuard("lease-2@p1", RenewalTiming.from_ttl(1.5), started)
    time.sleep(0.6)
    renewed.renewed(time.monotonic())  # the deadline moves 0.6 s on
    assert not renewed.lost.wait(1.2 - (time.monotonic() - started))
    assert renewed.lost.wait(2)
    assert 1.6 <= time.monotonic() - started < 2.1

    retired = LeaseGuard("lease-3@p1", RenewalTiming.from_ttl(1.5), time.monotonic())
    retired.retire()
    assert not retired.lost.wait(1.5)


def _stopped_long_ago() -> Signalled:
    """A stop ``STOP_WAIT_SECONDS`` and more ago: leaving the lease waits for the store no
    more."""
    signalled = Signalled()
    signalled.stopped_at = time.monotonic() - STOP_WAIT_SECONDS - 1
    return signalled


def _stopped_at_dashboard() -> Evidence:
    """What a worker stopped by SIGTERM at step 'dashboard' releases with."""
    return Evidence(
        lease_id=LEASE.lease_id,
        profile_id=LEASE.profile_id,
        run_id=LEASE.run_id,
        outcome=Outcome.FAILURE,
        reason="terminated by SIGTERM at step 'dashboard'",
        final_url=None,
        screenshot=None,
        screenshot_sha256=None,
        prompt_seen=False,
        prompt_url=None,
        observed_proxy=None,
        last_step="dashboard",
        last_safe_step="dashboard",
        mutating_step=None,
    )


def _failed_release(clock: FakeClock, ledger: ScriptedLedger) -> StoreUnavailable:
    with pytest.raises(StoreUnavailable) as raised:
        release(ledger, LEASE, guard_for(clock), _stopped_at_dashboard(), _stopped_long_ago())  # type: ignore[arg-type]
    return raised.value


def test_a_stopped_release_whose_answer_was_lost_is_resent_once_more(clock: FakeClock) -> None:
    """Past the stop wait, a release whose answer was lost (it may have committed) is resent
    once more under its command id; if that fails too, the error says the release may have
    been taken. A release that failed without a lost answer is given up at once, left live."""
    lost = StoreUnavailable("store x unavailable: server closed the connection", lost=True)
    ledger = ScriptedLedger(lost, StoreUnavailable("store x unavailable: refused"))
    said = str(_failed_release(clock, ledger))
    assert len(ledger.calls) == 2
    assert ledger.calls[0]["command_id"] == ledger.calls[1]["command_id"]
    assert "the release may have been taken; if not, lease-1@p1 is left live" in said

    ledger = ScriptedLedger(StoreUnavailable("store x busy: locked", busy=True))
    said = str(_failed_release(clock, ledger))
    assert len(ledger.calls) == 1
    assert "may have been taken" not in said
    assert "lease-1@p1 is left live, to go stale at its deadline" in said
