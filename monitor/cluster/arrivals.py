"""When each result reached the results stream, and up to when a central has taken everything
that did: the `Arrivals` (monitor.engine.pipeline) alerting's group windows go by in a central.

Several centrals judge the same results and must make the same messages under the same keys
(only the leader sends them; the others, and a leader taking over, skip what it recorded). A
window that went by when each central happened to read a result would group differently on
each: one central busy or catching up would flush a window before the rest of its events came.
So a result's arrival is the timestamp the stream stored its message with, the same for every
consumer, and a window is flushed only once everything stored before it closed has been taken:
up to the horizon.

- While results come, the horizon is the latest stored time taken (the stream hands a consumer
  its messages in order, and their times only grow).
- While none come, a fetch that the server answered with nothing (its idle heartbeats came,
  no message) shows that nothing was stored between the previous fetch and the end of that one,
  less `GRACE` for the time a message takes to reach this central. A fetch the server did not
  answer shows nothing: NATS may have results this central cannot see.

Times are the NATS server's; this central's clock is brought to them by the smallest lag it saw
between a message's stored time and its arrival here (an upper bound of the clocks' offset, so
the horizon errs late, never early).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.core.model import ProbeResult

if TYPE_CHECKING:
    from nats.aio.msg import Msg

# Seconds a message may take from being stored to being taken here (and the clocks may
# differ beyond what the lags measured): a quiet fetch vouches for nothing later than this.
GRACE = 1.0
_LAGS = 64  # recent messages whose lag is kept


class StreamArrivals:
    """A central's arrivals: its consumer calls `taken` for each message handed to the engine
    (just before `take`) and `quiet` after a fetch the server answered with nothing."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._latest = -math.inf  # the latest stored time taken
        self._quiet_until = -math.inf  # the end of the last quiet stretch shown by a fetch
        self._lags: deque[float] = deque(maxlen=_LAGS)

    def taken(self, msg: Msg) -> None:
        stored = msg.metadata.timestamp.timestamp()
        self._lags.append(self._clock() - stored)
        self._latest = max(self._latest, stored)

    def quiet(self) -> None:
        """A fetch ended now with the server's word that it had nothing for this central."""
        lag = min(self._lags, default=0.0)
        self._quiet_until = max(self._quiet_until, self._clock() - lag - GRACE)

    def arrived(self, result: ProbeResult) -> float:
        """When the message last taken (that of `result`) was stored; never earlier than one
        taken before it (a redelivery), so arrivals only grow, as windows expect."""
        return self._latest

    def horizon(self) -> float:
        return max(self._latest, self._quiet_until)
