"""The store's clock without a query per command: the local clock plus a measured offset.

Deadlines are judged on the store's time, so that workers on hosts whose clocks disagree judge a
lease alike. Asking PostgreSQL for ``clock_timestamp()`` before every command cost a round trip
and a statement's client CPU each time. ``OffsetClock`` asks once, remembers how far the server's
clock is from the local one, and answers from the local clock corrected by that offset. (The
server's ``now()`` inside the write would not do: the aggregate decides with the time before
anything is written, judging the deadline and putting the time into the event, whose hash links
the chain.)

The bound. A sample reads the local clock before (``t0``) and after (``t1``) the server's; the
server read its clock somewhere in between, so the offset taken at the midpoint is wrong by at
most half the round trip, ``(t1 - t0) / 2``. Up to ``SAMPLES`` samples are taken while that is
over ``GOOD_SAMPLE_S``, and the tightest is kept if its half round trip is at most
``MAX_UNCERTAINTY_S``. Afterwards the two clocks may drift apart by
at most ``MAX_DRIFT`` (500 ppm, the most a Linux clock is slewed) of the time since the
sample, and the offset is measured again after ``MAX_AGE_S``. A step of the local clock
(an operator setting it, a resume from suspend) shows as the wall clock moving differently
from the monotonic one and is measured again at once when larger than ``STEP_TOLERANCE_S``.
So every time given is within

    half the kept sample's round trip + STEP_TOLERANCE_S + MAX_DRIFT x MAX_AGE_S
    = round trip / 2 + 5 ms + 15 ms <= MAX_ERROR_S (40 ms)

of the server's clock, plus whatever the server's own clock steps by between two measurements
(a failover to another primary, an operator setting its time): seen within ``MAX_AGE_S``.
``error_bound()`` gives the bound of the current estimate.

A slow sample is not kept. Half its round trip bounds its error only: a query held on its
way to the server (a congested or retransmitting link, a stalled proxy) and answered at once
puts the midpoint seconds before the server read its clock, and an offset so taken gave times
seconds in the server's future for 30 s (rev46 review: a sweeper marked a live lease stale
1.9 s before its deadline, a 3 s one-way delay on its measuring query). When no sample of a
measurement is within ``MAX_UNCERTAINTY_S``, no offset is kept: the time given is the server's
clock as the last sample read it (behind the server's now by at most the answer's way back,
never ahead of it: a deadline is judged late, not early), and the next ``now`` reads the
server again (one sample, a round trip per time given) until a sample is tight enough to keep.

A new measurement that puts the
server at most ``HELD_AT_MOST_S`` behind the last time given is held at that time (the times
given do not go back for a measurement's noise or a small step); a step back beyond it (the
server's clock set back, a failover to a primary whose clock is behind) is taken as it is, as a
process reading the server's clock for every command would take it: a process that measured
before the step must not judge deadlines the whole step ahead of the processes that measured
after it (``docs/explanation/ttl-as-a-deadline.md``, "Whose clock").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

SAMPLES = 3  # at most this many round trips per measurement
GOOD_SAMPLE_S = 0.002  # a sample this tight (half its round trip) ends the measurement
# A sample looser than this (half its round trip) is not kept as the offset: the server's clock
# is read for each time given instead, until a sample is this tight.
MAX_UNCERTAINTY_S = 0.020
MAX_AGE_S = 30.0  # measured again after this long
MAX_DRIFT = 500e-6  # the most two clocks may drift apart, per second elapsed
STEP_TOLERANCE_S = 0.005  # a local clock step larger than this is noticed
# The most a time given from a kept offset may be from the server's clock, its own steps aside
# (the documented "half a round trip + 20 ms", the half round trip at most MAX_UNCERTAINTY_S).
MAX_ERROR_S = MAX_UNCERTAINTY_S + STEP_TOLERANCE_S + MAX_DRIFT * MAX_AGE_S
# A time given is held at the last one while the server is found at most this far behind it;
# the same second a command's time is raised by to meet its profile's last event
# (``ledger._unit_of_work.RAISED_AT_MOST``).
HELD_AT_MOST_S = 1.0


class OffsetClock:
    """The server's time as ``read_server`` gives it, estimated from ``wall`` (seconds since
    the epoch, like ``time.time``) and a measured offset; ``monotonic`` times the estimate's
    age and notices steps of ``wall``. Not shared across threads (one per store)."""

    def __init__(
        self,
        read_server: Callable[[], datetime],
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read_server = read_server
        self._wall = wall
        self._monotonic = monotonic
        self._offset = 0.0  # server minus wall, seconds
        self._uncertainty = 0.0  # half the kept sample's round trip
        self._measured_wall = 0.0
        self._measured_at: float | None = None  # monotonic time of the measurement
        self._last = 0.0  # the latest time given, as seconds since the epoch
        self._read = 0.0  # the server's clock as the last sample read it, seconds since the epoch
        self._unkept = False  # the last measurement was too loose to keep: one sample a time
        # The read and the monotonic time its query was sent of the sample that bounds the
        # server's clock most tightly from above (``latest``), and when it was chosen (the
        # monotonic time of the measurement); None before any sample, or once doubted.
        self._ceiling: tuple[float, float] | None = None
        self._ceiling_chosen = 0.0
        self.measurements = 0  # how many times the server was asked (for tests and metrics)

    def now(self) -> datetime:
        """The server's time now, within ``error_bound()``; measures the offset first when it
        is missing, too old or the local clock stepped. When no sample is tight enough to keep,
        the server's clock as the sample read it (never ahead of the server's)."""
        wall, mono = self._wall(), self._monotonic()
        measured = self._measured_at
        if (
            measured is None
            or mono - measured > MAX_AGE_S
            or abs((wall - self._measured_wall) - (mono - measured)) > STEP_TOLERANCE_S
        ):
            if not self.measure():
                return self._give(self._read)
            wall = self._wall()
        return self._give(wall + self._offset)

    def _give(self, given: float) -> datetime:
        if self._last - HELD_AT_MOST_S <= given < self._last:
            given = self._last
        self._last = given
        return datetime.fromtimestamp(given, UTC)

    def forget(self) -> None:
        """Measure again at the next ``now`` or ``latest``: the server refused a time given as
        too far from its clock, or a save as past its due time (it stepped since it was
        measured, say: the offset and the bound are both of before)."""
        self._measured_at = None
        self._ceiling = None

    def error_bound(self) -> float:
        """At most how far (seconds) a time given now may be from the server's clock, its own
        steps aside; infinite before the first measurement."""
        if self._measured_at is None:
            return float("inf")
        age = self._monotonic() - self._measured_at
        return self._uncertainty + STEP_TOLERANCE_S + MAX_DRIFT * age

    def latest(self, at: float) -> float:
        """The latest the server's clock may read at ``at`` (a time of the monotonic clock),
        as seconds since the epoch: a sample's read plus the monotonic time from when its query
        was sent (the server read its clock after that) to ``at``, and ``MAX_DRIFT`` of it;
        measured first when no sample was chosen in the last ``MAX_AGE_S``. Never earlier than
        the server's clock reads then, however the sample's round trip was split, and later by
        at most that round trip and the drift: the tightest of the samples of the last
        measurement and of the bound before it, if its sample is at most twice ``MAX_AGE_S``
        old (a measurement slowed by a congested link does not loosen a bound a sound one
        gave; the bound of a measurement during the congestion is as loose as its samples).
        The wall clock and the offset play no part: no step of the local clock moves it; nor
        does the time a measurement takes, as ``at`` is fixed before it."""
        if self._ceiling is None or self._monotonic() - self._ceiling_chosen > MAX_AGE_S:
            self.measure()
        assert self._ceiling is not None
        return _bound(*self._ceiling, at)

    def measure(self) -> bool:
        """Ask the server for its time (up to ``SAMPLES`` times; once while the last measurement
        was too loose, as that costs a round trip per time given) and keep the tightest offset;
        whether one was kept, within ``MAX_UNCERTAINTY_S``."""
        best: tuple[float, float, float, float] | None = None
        ceiling = self._ceiling
        if ceiling is not None and self._monotonic() - ceiling[1] > 2 * MAX_AGE_S:
            ceiling = None
        for _ in range(1 if self._unkept else SAMPLES):
            before, mono = self._wall(), self._monotonic()
            server = self._read_server().timestamp()
            after = self._wall()
            self._read = server
            if ceiling is None or _bound(server, mono, mono) < _bound(*ceiling, mono):
                ceiling = (server, mono)
            half = max(0.0, after - before) / 2
            if best is None or half < best[0]:
                best = (half, server - (before + half), before, mono)
            if half <= GOOD_SAMPLE_S:
                break
        assert best is not None
        self.measurements += 1
        self._ceiling, self._ceiling_chosen = ceiling, self._monotonic()
        self._unkept = best[0] > MAX_UNCERTAINTY_S
        if self._unkept:
            self._measured_at = None  # no offset: read the server again at the next time given
            return False
        self._uncertainty, self._offset, self._measured_wall, self._measured_at = best
        return True


def _bound(read: float, sent: float, at: float) -> float:
    """The latest the server's clock may read at the monotonic time ``at``, by a sample that
    read ``read`` from a query sent at the monotonic time ``sent``."""
    return read + (at - sent) * (1 + MAX_DRIFT)
