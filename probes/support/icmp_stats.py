"""What the round trips of one icmp check add up to: ping's summary line, and jitter.

`mdev` is what ping prints as mdev: the population standard deviation of the round trips,
sqrt(mean(rtt²) - mean(rtt)²). `jitter` is RFC 3550's interarrival jitter (§6.4.1, A.8) made
for a round trip: D is the difference between two consecutive replies' round trips, and
J += (|D| - J) / 16 from J = 0, over the replies in the order of their sequence numbers. It
needs two replies; with fewer there is none to report.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoundTrips:
    minimum: float
    average: float
    maximum: float
    mdev: float
    jitter: float | None


def round_trips(rtts: Sequence[float]) -> RoundTrips | None:
    """The summary of `rtts` (in sequence order, any one unit), None when there are none."""
    if not rtts:
        return None
    average = math.fsum(rtts) / len(rtts)
    # Two passes, not ping's one (mean of squares less the squared mean), which floats can
    # round below zero; statistics.pstdev is exact and, with its fractions, a hundred times
    # slower: a quarter of a thousand checks' CPU.
    mdev = math.sqrt(math.fsum((rtt - average) ** 2 for rtt in rtts) / len(rtts))
    return RoundTrips(min(rtts), average, max(rtts), mdev, jitter(rtts))


def jitter(rtts: Sequence[float]) -> float | None:
    if len(rtts) < 2:
        return None
    estimate = 0.0
    for earlier, later in itertools.pairwise(rtts):
        estimate += (abs(later - earlier) - estimate) / 16
    return estimate
