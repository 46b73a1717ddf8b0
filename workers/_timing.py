"""How often a worker renews its lease, and when it stops believing in it: both from the TTL.

The shape is Kubernetes leader election's (lease duration 15 s, renew deadline 10 s, retry
period 2 s): renew every third of the TTL; retry a renewal that failed every ``retry_period``;
and give the lease up ``renew_deadline`` (two thirds of the TTL) after the start of the last
renewal that succeeded. The ledger counts its deadline from the moment the store applied that
renewal, which is after its start, so a worker gives up at least a third of a TTL before the
ledger may mark the lease stale and grant the profile to someone else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A retry waits at least this long (a store that refuses at once must not be hammered) and at
# most this long (a long TTL must not leave a short outage unretried for minutes).
MIN_RETRY_SECONDS, MAX_RETRY_SECONDS = 0.05, 2.0


@dataclass(frozen=True)
class RenewalTiming:
    """Seconds, on the worker's monotonic clock."""

    ttl_seconds: float
    interval: float
    renew_deadline: float
    retry_period: float

    @classmethod
    def from_ttl(cls, ttl_seconds: float) -> RenewalTiming:
        """Renew every TTL/3, give up TTL*2/3 after the last renewal's start, retry every
        TTL/15 (within 50 ms and 2 s). Raises ``ValueError`` for a TTL that is not a positive
        number of seconds (NaN, which compares false with everything, and a number's text
        too), or is infinite (no renewal would ever come)."""
        number = isinstance(ttl_seconds, int | float) and not isinstance(ttl_seconds, bool)
        if not number or not ttl_seconds > 0 or ttl_seconds == math.inf:
            raise ValueError(
                f"a lease's TTL must be a positive number of seconds, got {ttl_seconds!r}"
            )
        return cls(
            ttl_seconds=ttl_seconds,
            interval=ttl_seconds / 3,
            renew_deadline=ttl_seconds * 2 / 3,
            retry_period=min(MAX_RETRY_SECONDS, max(MIN_RETRY_SECONDS, ttl_seconds / 15)),
        )
