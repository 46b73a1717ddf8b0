"""The store's clock read locally: the server's time within the documented bound, no query per
call, measured again when old or when the local clock steps (``ledger._stores.clock``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger._stores.clock import (
    MAX_AGE_S,
    MAX_ERROR_S,
    MAX_UNCERTAINTY_S,
    SAMPLES,
    STEP_TOLERANCE_S,
    OffsetClock,
)

HOUR = 3600.0


class Host:
    """True time ``t`` (seconds), a local wall clock ``skew`` seconds off it and running
    ``rate`` times as fast (the monotonic clock runs at the same rate), and a server whose
    clock is true plus ``server_step``. A server read takes ``trip`` seconds; the server reads
    its clock ``read_at`` of the way through the trip."""

    def __init__(self, skew: float = 0.0, trip: float = 0.0002) -> None:
        self.t = 1_900_000_000.0
        self.skew = skew
        self.rate = 1.0
        self.trips = [trip]  # one per read; the last is repeated
        self.read_at = 0.5
        self.server_step = 0.0
        self.server_reads = 0
        self._t0 = self.t

    def wall(self) -> float:
        return self._t0 + (self.t - self._t0) * self.rate + self.skew

    def monotonic(self) -> float:
        return (self.t - self._t0) * self.rate

    def server(self) -> datetime:
        trip = self.trips[min(self.server_reads, len(self.trips) - 1)]
        self.server_reads += 1
        self.t += trip * self.read_at
        seen = self.true_server()
        self.t += trip * (1 - self.read_at)
        return datetime.fromtimestamp(seen, UTC)

    def true_server(self) -> float:
        return self.t + self.server_step

    def clock(self) -> OffsetClock:
        return OffsetClock(self.server, wall=self.wall, monotonic=self.monotonic)


def error(host: Host, clock: OffsetClock) -> float:
    given = clock.now().timestamp()
    return abs(given - host.true_server())


def test_gives_the_servers_time_when_the_local_clock_is_an_hour_fast() -> None:
    """A worker whose clock is an hour fast still judges deadlines on the server's time."""
    host = Host(skew=HOUR)
    clock = host.clock()
    assert error(host, clock) < 0.001
    host.t += 10
    assert error(host, clock) < 0.001
    assert host.server_reads == 1


def test_the_error_stays_within_the_bound_when_the_server_reads_off_centre() -> None:
    """A 36 ms round trip (within ``MAX_UNCERTAINTY_S``) with the server reading its clock
    late in it: the estimate is off by up to half the trip, and ``error_bound`` says so."""
    host = Host(skew=-HOUR, trip=0.036)
    host.read_at = 0.95  # the server's clock read 34 ms into the trip
    clock = host.clock()
    off = error(host, clock)
    assert 0.015 < off <= clock.error_bound()
    assert clock.error_bound() == pytest.approx(0.018 + STEP_TOLERANCE_S, abs=1e-4)


def test_a_slow_sample_is_taken_again_and_the_tightest_kept() -> None:
    """A 200 ms round trip is not trusted while a tighter sample can be had."""
    host = Host(trip=0.2)
    host.trips = [0.2, 0.001]
    clock = host.clock()
    clock.now()
    assert host.server_reads == 2
    assert clock.error_bound() == pytest.approx(0.0005 + STEP_TOLERANCE_S, abs=1e-6)


def test_measured_once_then_again_when_old() -> None:
    """Commands within ``MAX_AGE_S`` of the measurement send no query; later ones measure
    again, so a server clock step is seen within that time."""
    host = Host(skew=5.0)
    clock = host.clock()
    for _ in range(200):
        clock.now()
        host.t += (MAX_AGE_S - 1) / 200
    assert host.server_reads == 1
    host.server_step = 2.0  # the server's clock was set meanwhile (a failover, an operator)
    host.t += 2
    assert error(host, clock) < 0.001
    assert host.server_reads == 2


def test_a_step_of_the_local_clock_is_noticed_at_once() -> None:
    """Someone sets the worker's clock back an hour: the next time given is still the
    server's, because the wall clock moved unlike the monotonic one."""
    host = Host()
    clock = host.clock()
    clock.now()
    host.t += 1
    host.skew -= HOUR
    assert error(host, clock) < 0.001
    assert host.server_reads == 2


def test_drift_between_measurements_stays_within_the_bound() -> None:
    """A local clock running 400 ppm fast drifts from the server's between measurements; the
    drift stays inside ``error_bound``."""
    host = Host(skew=30.0)
    host.rate = 1 + 400e-6
    clock = host.clock()
    clock.now()
    host.t += (MAX_AGE_S - 0.5) / host.rate
    off = error(host, clock)
    assert 0.010 < off <= clock.error_bound()


def test_times_never_go_backwards_when_a_measurement_finds_the_server_behind() -> None:
    """A new measurement that finds the server's clock a second behind does not make the
    next command's time earlier than the last one's."""
    host = Host()
    clock = host.clock()
    clock.now()
    host.t += MAX_AGE_S - 0.1
    last = clock.now()
    host.server_step = -1.0
    host.t += 0.2
    assert clock.now() >= last
    assert host.server_reads == 2


def test_a_step_back_of_the_servers_clock_is_taken_once_measured_again() -> None:
    """The server's clock set back two minutes (a failover to a primary whose clock is behind)
    is followed at the next measurement, as a process reading the server for every command
    follows it: a long-lived process (a sweeper) holding its last time instead would judge
    deadlines two minutes ahead of a worker started after the step, and sweep its live lease
    (rev30 fastpath review)."""
    host = Host()
    clock = host.clock()
    before = clock.now()
    host.t += MAX_AGE_S - 0.1
    clock.now()
    host.server_step = -120.0
    host.t += 0.2
    assert error(host, clock) <= clock.error_bound()
    assert clock.now() < before
    assert host.server_reads == 2


def test_a_sample_held_on_its_way_to_the_server_is_not_kept() -> None:
    """Samples held 6 s on their way to the server and answered at once put the midpoint 3 s
    before the server read its clock: none is kept. Each time given is the server's clock as
    the sample read it (never ahead of the server), read again once per time given while the
    path stays slow, and a tight sample is kept as soon as one is had (rev46 review: kept, the
    offset dated events and judged deadlines seconds in the server's future for 30 s)."""
    host = Host(skew=HOUR)
    host.trips = [6.0] * (SAMPLES + 1) + [0.001]
    host.read_at = 1.0
    clock = host.clock()
    given = clock.now().timestamp()
    assert host.true_server() - 0.001 <= given <= host.true_server()
    assert host.server_reads == SAMPLES
    assert clock.error_bound() == float("inf")
    host.t += 1
    assert clock.now().timestamp() <= host.true_server()
    assert host.server_reads == SAMPLES + 1  # one round trip per time given, not SAMPLES
    host.t += 1
    assert error(host, clock) <= clock.error_bound() <= MAX_ERROR_S
    host.t += 1
    assert error(host, clock) <= clock.error_bound()
    assert host.server_reads == SAMPLES + 2


def test_a_sample_just_over_the_limit_is_not_kept_and_one_within_it_is() -> None:
    """The limit on half a kept sample's round trip, either side of it."""
    host = Host(trip=2 * MAX_UNCERTAINTY_S + 0.002)
    host.read_at = 1.0
    clock = host.clock()
    assert clock.now().timestamp() <= host.true_server()
    assert clock.error_bound() == float("inf")
    host.trips = [2 * MAX_UNCERTAINTY_S - 0.002]
    host.t += 1
    assert error(host, clock) <= clock.error_bound() <= MAX_ERROR_S


@pytest.mark.parametrize("read_at", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("trip", [0.0002, 0.036, 3.0])
def test_latest_is_never_before_the_server_s_clock_and_late_by_at_most_the_trip(
    read_at: float, trip: float
) -> None:
    """``latest(at)``, the check a save sends with its deadline: never earlier than the
    server's clock reads at the monotonic time ``at``, however the sample's trip was split (a
    query held on its way out, an answer held on its way back) and however loose the sample
    (one not kept as the offset bounds it too), nor later than it by more than the trip and the
    drift; a local wall clock an hour off plays no part."""
    host = Host(skew=HOUR, trip=trip)
    host.read_at = read_at
    clock = host.clock()
    clock.now()
    host.t += 7.0
    host.rate = 1 + 400e-6  # the local clock drifting, within MAX_DRIFT
    truth = host.true_server() + 2.5 / host.rate
    due = clock.latest(host.monotonic() + 2.5)
    assert truth <= due <= truth + trip + 0.02


def test_latest_is_not_loosened_by_the_time_its_own_measurement_takes() -> None:
    """A first save's bound measured then (a ledger given its own clock never asks the store's
    for its time before): ``at`` was fixed before the measurement, and its first sample held
    1.5 s on its way out neither moves the bound nor loosens it, as a tight sample follows
    (review 273: the time left was taken before measuring, and the whole measurement was
    added to it: a release 1.1 s past its deadline kept)."""
    host = Host()
    host.trips = [1.5, 0.0002]
    host.read_at = 1.0
    clock = host.clock()
    truth = host.true_server() + 2.5
    due = clock.latest(host.monotonic() + 2.5)
    assert host.server_reads == 2
    assert truth <= due <= truth + 0.001


def test_a_loose_measurement_keeps_the_tighter_bound_of_the_one_before() -> None:
    """A measurement during a congestion (every sample held a second on its way out) does not
    loosen the bound a sound measurement gave 40 s before: kept, with its drift."""
    host = Host()
    clock = host.clock()
    clock.now()
    host.t += 40.0
    host.trips = [1.0]
    host.read_at = 1.0
    truth = host.true_server() + 3 * 1.0 + 2.5  # after the three loose samples
    due = clock.latest(host.monotonic() + 3 * 1.0 + 2.5)
    assert host.server_reads == 1 + SAMPLES
    assert truth <= due <= truth + 0.05


def test_latest_measures_when_its_sample_is_old_and_after_the_clock_is_doubted() -> None:
    """No bound chosen more than ``MAX_AGE_S`` ago bounds ``latest`` without a new sample, nor
    one from before ``forget`` (a save misdated, or refused by the server as late: its clock
    may have stepped forward since, and a bound from before is early)."""
    host = Host()
    clock = host.clock()
    clock.now()
    assert host.server_reads == 1
    host.server_step = 5.0  # the server's clock set forward
    assert clock.latest(host.monotonic()) < host.true_server()  # a fresh sample is trusted
    assert host.server_reads == 1
    clock.forget()
    truth = host.true_server()
    assert clock.latest(host.monotonic()) >= truth
    assert host.server_reads == 2
    host.t += MAX_AGE_S + 1
    truth = host.true_server() + 1.0
    assert clock.latest(host.monotonic() + 1.0) >= truth
    assert host.server_reads == 3  # measured again: a sample 31 s old bounds it no longer alone
