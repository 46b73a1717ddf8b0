"""The process's renewal hub (``workers._hub``) on fakes: which leases are renewed together, and
what each lease keeps of a heartbeat thread of its own (its command id, its resends, its loss
alone). ``BatchLedger`` answers from a script and records every store call; most tests drive
the hub one round at a time on a clock they move, the last two run its thread."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fakes import LEASE, FakeClock

from ledger import Heartbeat, Lease, LeaseLost, LeaseStatus, StoreUnavailable
from workers._guard import LeaseGuard, Progress
from workers._hub import RenewalHub, stepping
from workers._timing import RenewalTiming

Answer = BaseException | None  # None: the lease, renewed


def eventually(condition: Any, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(condition())


class BatchLedger:
    """Each store call takes the next scripted item: an exception raised for the whole call,
    or a dict of answers by lease id (an exception answered for that heartbeat alone); once
    the script is spent every heartbeat is renewed. ``calls`` holds, per store call, its
    method and the heartbeats it carried."""

    def __init__(self, *script: BaseException | dict[str, Answer]) -> None:
        self.script = list(script)
        self.calls: list[tuple[str, list[Heartbeat]]] = []
        self.closed = False
        self.gate: threading.Event | None = None  # set: a store call waits for it

    def handle(self, command: Heartbeat) -> Lease:
        (answer,) = self._answer("handle", [command])
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    def handle_together(self, commands: Any) -> list[Any]:
        return self._answer("handle_together", list(commands))

    def _answer(self, method: str, beats: list[Heartbeat]) -> list[Any]:
        self.calls.append((method, beats))
        if self.gate is not None:
            self.gate.wait(5)
        item = self.script.pop(0) if self.script else {}
        if isinstance(item, BaseException):
            raise item
        return [item.get(b.lease_id) or LEASE for b in beats]

    def close(self) -> None:
        self.closed = True

    def sent(self, n: int) -> list[str]:
        """The lease ids the ``n``-th store call carried."""
        return [b.lease_id for b in self.calls[n][1]]


def lease(n: int) -> Lease:
    return LEASE.model_copy(update={"lease_id": f"lease-1@p{n}", "profile_id": f"p{n}"})


def join(hub: RenewalHub, clock: FakeClock, n: int, started: float, ttl: float = 30) -> Any:
    guard = LeaseGuard(f"lease-1@p{n}", RenewalTiming.from_ttl(ttl), started, clock)
    progress = Progress()
    progress.update(step=f"step{n}")
    return hub.join(lease(n), guard, progress)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def idle_hub(clock: FakeClock) -> RenewalHub:
    return RenewalHub(BatchLedger, clock, run=False)


def test_leases_due_within_the_window_are_renewed_in_one_store_call(clock: FakeClock) -> None:
    """TTL 30 (renew every 10 s, window 5 s): when p1 is due, p2 (due 3 s later) goes with it
    in one handle_together, each with its own heartbeat, command id and step; p3 (due 6 s
    later) does not, but at its turn p1 and p2 are due within the window and go with it: from
    then on all three are renewed together."""
    hub, ledger, start = idle_hub(clock), BatchLedger(), clock.now
    p1, p2, p3 = (join(hub, clock, n, start + lag) for n, lag in ((1, 0), (2, 3), (3, 6)))
    assert hub.renew_due(ledger) == 10  # nothing due yet: p1 in 10 s
    clock.now = start + 10
    assert hub.renew_due(ledger) == pytest.approx(6)
    assert ledger.calls[0][0] == "handle_together"
    assert ledger.sent(0) == ["lease-1@p1", "lease-1@p2"]
    beats = ledger.calls[0][1]
    assert [b.step for b in beats] == ["step1", "step2"]
    assert len({b.command_id for b in beats}) == 2
    assert p1.guard.renewed_at == p2.guard.renewed_at == start + 10
    for turn in (16, 26, 36):
        clock.now = start + turn
        assert hub.renew_due(ledger) == 10
    assert [ledger.sent(n) for n in (1, 2, 3)] == [["lease-1@p1", "lease-1@p2", "lease-1@p3"]] * 3
    assert p1.guard.renewed_at == p3.guard.renewed_at == start + 36
    assert (p1.renewals, p2.renewals, p3.renewals) == (4, 4, 3)
    assert (hub.store_calls, hub.heartbeats_sent) == (4, 11)


def test_a_lease_due_alone_is_one_heartbeat(clock: FakeClock) -> None:
    """One lease (or one due, the others beyond their window) is sent as one Heartbeat, not a
    batch of one."""
    hub, ledger, start = idle_hub(clock), BatchLedger(), clock.now
    alone = join(hub, clock, 1, start)
    join(hub, clock, 2, start + 6)
    clock.now = start + 10
    hub.renew_due(ledger)
    assert (ledger.calls[0][0], ledger.sent(0)) == ("handle", ["lease-1@p1"])
    assert alone.guard.renewed_at == start + 10


@pytest.mark.parametrize("status", [LeaseStatus.REVOKED, LeaseStatus.RELEASED])
def test_a_heartbeat_answered_with_an_ended_lease_loses_it(
    clock: FakeClock, status: LeaseStatus
) -> None:
    """A resent heartbeat (its first landed, its answer was lost) is answered with the lease as
    it stands now: ended since, by a force-release or another's release, it is lost, not
    renewed (the hub treated any lease answered as renewed, and went on renewing), and, since
    the worker did not end it, it was revoked (docs/operations/workers.md)."""
    ended = lease(1).model_copy(update={"lease_status": status})
    ledger = BatchLedger({"lease-1@p1": ended})  # type: ignore[dict-item]
    hub, start = idle_hub(clock), clock.now
    p1 = join(hub, clock, 1, start)
    clock.now = start + 10
    hub.renew_due(ledger)
    assert p1.guard.lost.is_set()
    assert p1.guard.why == f"revoked: the ledger answered the lease as {status.value}"
    assert p1.guard.ended
    assert not p1.renewing
    assert p1.renewals == 0


def test_a_lease_lost_in_a_batch_tells_its_own_guard_only(clock: FakeClock) -> None:
    """The ledger answers LeaseLost for p2 in a batch of three: p2's guard is lost with the
    ledger's reason and never sent again; p1 and p3 are renewed and go on together."""
    lost = LeaseLost("lease-1@p2", "now held under lease-2@p2")
    ledger = BatchLedger({"lease-1@p2": lost})
    hub, start = idle_hub(clock), clock.now
    p1, p2, p3 = (join(hub, clock, n, start) for n in (1, 2, 3))
    clock.now = start + 10
    hub.renew_due(ledger)
    assert ledger.sent(0) == ["lease-1@p1", "lease-1@p2", "lease-1@p3"]
    assert p2.guard.lost.is_set()
    assert p2.guard.why == "now held under lease-2@p2"
    assert not p2.renewing
    assert p2.renewals == 0
    assert p1.guard.renewed_at == p3.guard.renewed_at == start + 10
    assert not p1.guard.lost.is_set()
    assert not p3.guard.lost.is_set()
    for _ in range(3):
        clock.now += 10
        hub.renew_due(ledger)
    assert [ledger.sent(n) for n in (1, 2, 3)] == [["lease-1@p1", "lease-1@p3"]] * 3
    assert (p1.renewals, p3.renewals) == (4, 4)


def test_a_lease_the_ledger_ended_is_lost_in_a_batch_as_revoked(clock: FakeClock) -> None:
    """The ledger answers a batch that it ended p1's lease (``LeaseLost.ended``: a
    force-release) and that p2 missed its deadline: p1 is lost as revoked, as the revocation
    watch says (rev39: the hub's answer came first and said it without "revoked: "); p2's loss
    is its own, the ledger's reason as it is."""
    forced = LeaseLost("lease-1@p1", "lease ended forced (force_release) at T", ended=True)
    late = LeaseLost("lease-1@p2", "renewal deadline T passed")
    ledger = BatchLedger({"lease-1@p1": forced, "lease-1@p2": late})
    hub, start = idle_hub(clock), clock.now
    p1, p2 = (join(hub, clock, n, start) for n in (1, 2))
    clock.now = start + 10
    hub.renew_due(ledger)
    assert p1.guard.why == "revoked: lease ended forced (force_release) at T"
    assert p2.guard.why == "renewal deadline T passed"
    # What the task's next call raises says the same, and whether the ledger ended it.
    assert (p1.guard.lost_error().why, p1.guard.lost_error().ended) == (p1.guard.why, True)
    assert (p2.guard.lost_error().why, p2.guard.lost_error().ended) == (p2.guard.why, False)


def test_an_unavailable_store_resends_each_heartbeat_under_its_own_id(clock: FakeClock) -> None:
    """StoreUnavailable for the whole batch, twice: the batch is sent again a retry period
    apart, each lease's heartbeat under its own first command id, and a renewal that lands
    counts from the first send. A StoreUnavailable answered for one heartbeat (a command that
    lost too many races) resends that one alone, under its id, while the other is renewed."""
    ledger = BatchLedger(StoreUnavailable("down"), StoreUnavailable("down"))
    hub, start = idle_hub(clock), clock.now
    p1, p2 = (join(hub, clock, n, start) for n in (1, 2))
    clock.now = start + 10
    assert hub.renew_due(ledger) == 2.0  # TTL 30: retry every 2 s
    assert "down" in p1.guard._last_error
    clock.now += 2
    hub.renew_due(ledger)
    clock.now += 2
    hub.renew_due(ledger)
    ids = [[b.command_id for b in beats] for _, beats in ledger.calls]
    assert len(ids) == 3
    assert ids[0] == ids[1] == ids[2]
    assert len(set(ids[0])) == 2
    assert p1.guard.renewed_at == p2.guard.renewed_at == start + 10
    ledger.script = [{"lease-1@p2": StoreUnavailable("gave up after 5 races")}]
    clock.now = start + 20
    hub.renew_due(ledger)
    assert p1.guard.renewed_at == start + 20
    assert p2.guard.renewed_at == start + 10
    resent = ledger.calls[3][1][1].command_id
    clock.now += 2
    hub.renew_due(ledger)
    assert ledger.calls[4][0] == "handle"
    assert [b.command_id for b in ledger.calls[4][1]] == [resent]
    assert p2.guard.renewed_at == start + 20


def test_a_surprise_is_waited_out_and_named_at_the_deadline(clock: FakeClock) -> None:
    """An error a renewal does not expect (not StoreUnavailable, not LeaseLost) is not the end:
    each lease notes it and tries again a retry period later with a new heartbeat; a lease
    never renewed again is lost at its deadline naming the error, and let go."""
    ledger = BatchLedger(RuntimeError("driver hiccup"))
    hub, start = idle_hub(clock), clock.now
    p1, p2 = (join(hub, clock, n, start) for n in (1, 2))
    clock.now = start + 10
    assert hub.renew_due(ledger) == 2.0
    assert not p1.guard.lost.is_set()
    clock.now += 2
    hub.renew_due(ledger)
    first, second = ([b.command_id for b in beats] for _, beats in ledger.calls)
    assert set(first).isdisjoint(second)
    assert p1.guard.renewed_at == start + 12
    ledger.script = [RuntimeError("driver hiccup")] * 100
    while not p2.guard.lost.is_set():
        clock.now += 2
        hub.renew_due(ledger)
    assert (
        p2.guard.why == "not renewed within 20s (last renewal error: RuntimeError: driver hiccup)"
    )
    calls = len(ledger.calls)
    assert hub.renew_due(ledger) == float("inf")
    assert len(ledger.calls) == calls


def test_a_short_lease_s_retries_wait_for_no_longer_lease(clock: FakeClock) -> None:
    """A store that fails: a TTL 3 lease is retried every 0.2 s, a TTL 300 one every 2 s, in
    the same hub: the short lease is never held back by the long one's retry period."""
    ledger = BatchLedger(*[StoreUnavailable("down")] * 4)
    hub, start = idle_hub(clock), clock.now
    short = join(hub, clock, 1, start, ttl=3)
    join(hub, clock, 2, start - 99, ttl=300)
    clock.now = start + 1
    assert hub.renew_due(ledger) == pytest.approx(0.2)
    assert ledger.sent(0) == ["lease-1@p1", "lease-1@p2"]
    for _ in range(3):
        clock.now += 0.2
        hub.renew_due(ledger)
    assert [ledger.sent(n) for n in range(1, 4)] == [["lease-1@p1"]] * 3
    clock.now += 0.2
    hub.renew_due(ledger)
    assert short.guard.held()
    assert short.guard.renewed_at == start + 1


# -- the hub's thread, on real threads and short TTLs -----------------------------------------


def real_guard(n: int, ttl: float = 0.6) -> LeaseGuard:
    """A guard on the real clock; TTL 0.6: renew every 0.2 s."""
    return LeaseGuard(f"lease-1@p{n}", RenewalTiming.from_ttl(ttl), time.monotonic())


def test_the_thread_renews_on_a_ledger_of_its_own_and_ends_with_the_last_lease() -> None:
    """Two leases joined together (TTL 0.6: renew every 0.2 s) are renewed together by the
    hub's thread, on a ledger it opened there; when both have left, the thread ends, closes
    that ledger and sends nothing more; a lease joining later starts a thread again."""
    ledgers: list[BatchLedger] = []
    opened_on: list[threading.Thread] = []

    def open_ledger() -> BatchLedger:
        opened_on.append(threading.current_thread())
        ledgers.append(BatchLedger())
        return ledgers[-1]

    hub = RenewalHub(open_ledger, time.monotonic)
    first = [hub.join(lease(n), real_guard(n), Progress()) for n in (1, 2)]
    assert all(r.renewing for r in first)
    time.sleep(0.75)
    assert all(r.leave(timeout=5) for r in first)
    assert not any(r.renewing for r in first)
    (ledger,) = ledgers
    sent = len(ledger.calls)
    assert 2 <= sent <= 5
    assert all(ledger.sent(n) == ["lease-1@p1", "lease-1@p2"] for n in range(sent))
    assert opened_on[0] is not threading.current_thread()
    assert eventually(lambda: ledger.closed)
    time.sleep(0.3)
    assert len(ledger.calls) == sent
    again = hub.join(lease(3), real_guard(3), Progress())
    assert again.renewing
    assert again.leave(timeout=5)
    assert eventually(lambda: len(ledgers) == 2 and ledgers[1].closed)


def test_leaving_waits_for_a_batch_on_its_way_then_nothing_more_is_sent() -> None:
    """A lease leaves while a batch carrying its heartbeat waits on the store: leave returns
    only once that batch was answered (the worker's release must come after its last
    heartbeat), and the lease is never sent again; the other lease goes on."""
    ledger = BatchLedger()
    ledger.gate = threading.Event()
    hub = RenewalHub(lambda: ledger, time.monotonic)
    leaving, staying = (hub.join(lease(n), real_guard(n, ttl=1.5), Progress()) for n in (1, 2))
    assert eventually(lambda: ledger.calls)
    assert ledger.sent(0) == ["lease-1@p1", "lease-1@p2"]
    left: list[bool] = []
    leaver = threading.Thread(target=lambda: left.append(leaving.leave(timeout=5)))
    leaver.start()
    time.sleep(0.2)
    assert left == []  # still waiting for the batch's answer
    ledger.gate.set()
    leaver.join(5)
    assert left == [True]
    time.sleep(0.8)
    later = [ledger.sent(n) for n in range(1, len(ledger.calls))]
    assert later
    assert all(ids == ["lease-1@p2"] for ids in later)
    assert staying.leave(timeout=5)


def test_a_heartbeat_resent_after_the_run_stepped_on_says_the_new_step(clock: FakeClock) -> None:
    """A heartbeat the store could not take, made at step 'dash': the task's mutating step lands
    meanwhile, so the resend is a new heartbeat (a new command id) carrying 'submit_order' and
    its URL, never the older step after the newer one. Unchanged, it is resent as it was."""
    ledger = BatchLedger(StoreUnavailable("down"), StoreUnavailable("down"))
    hub, start = idle_hub(clock), clock.now
    renewal = join(hub, clock, 1, start)
    renewal.progress.update(url="https://shop.example/dash")
    clock.now = start + 10
    hub.renew_due(ledger)
    clock.now += 2
    hub.renew_due(ledger)
    renewal.progress.stepped("submit_order", safe=False, mutating=True)
    renewal.progress.update(url="https://shop.example/checkout/submit")
    clock.now += 2
    hub.renew_due(ledger)
    first, again, after = (beats[0] for _, beats in ledger.calls)
    assert (first.step, first.command_id) == ("step1", again.command_id)
    assert (after.step, after.url) == ("submit_order", "https://shop.example/checkout/submit")
    assert after.command_id != first.command_id
    assert renewal.guard.renewed_at == start + 14


def test_a_step_and_the_hubs_heartbeat_for_a_lease_are_never_on_their_way_together(
    clock: FakeClock,
) -> None:
    """A step the task sends waits for the hub's heartbeat in flight for the same lease (so the
    older heartbeat cannot land after it); while a step is on its way the hub leaves the lease
    out of its batch and looks again a retry period later, rather than spinning."""
    ledger = BatchLedger()
    ledger.gate = threading.Event()
    hub, start = idle_hub(clock), clock.now
    renewal = join(hub, clock, 1, start)
    clock.now = start + 10
    beating = threading.Thread(target=hub.renew_due, args=(ledger,))
    beating.start()
    assert eventually(lambda: len(ledger.calls) == 1)
    seen: list[int] = []

    def step() -> None:
        with stepping(renewal):
            seen.append(renewal.renewals)

    stepper = threading.Thread(target=step)
    stepper.start()
    time.sleep(0.2)
    assert seen == []  # the heartbeat is still on its way
    ledger.gate.set()
    beating.join(5)
    stepper.join(5)
    assert seen == [1]  # the step went once the heartbeat was answered

    ledger.gate = None
    clock.now = start + 20
    with stepping(renewal):
        assert hub.renew_due(ledger) == pytest.approx(2.0)
    assert len(ledger.calls) == 1
    clock.now += 2
    hub.renew_due(ledger)
    assert len(ledger.calls) == 2
