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
- While none come, after a fetch that brought nothing, the consumer's info from the server:
  nothing left to deliver, and nothing delivered beyond what this central handled, means that
  everything the stream stored before the question was asked has been taken. An unanswered
  question shows nothing: NATS may hold results this central cannot see.

Times are the NATS server's; this central's clock is brought to them by the smallest lag it saw
lately between a message's stored time and its arrival here (an upper bound of the clocks'
offset, so the horizon errs late, not early). Without a lag measured lately (none came, or only
old ones, as at the end of catching up) the clocks are taken to agree within `GRACE`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from monitor.core.model import ProbeResult

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

# Seconds the clocks of this central and of the NATS server are taken to agree within, when no
# lag measured lately says better.
GRACE = 1.0
ASK_TIMEOUT = 2.0  # seconds for the server's answer about the consumer
_LAGS = 64  # recent messages whose lag is kept
LAG_AGE = 30.0  # seconds a lag counts for


class StreamArrivals:
    """A central's arrivals: its consumer calls `handled` for each message it fetched (before
    handing its result to the engine, if it does) and `quiet` after a fetch that brought
    nothing."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._latest = -math.inf  # the latest stored time handled
        self._sequence = 0  # the highest stream sequence handled
        self._quiet_until = -math.inf  # up to when the server said it had nothing more
        self._lags: deque[tuple[float, float]] = deque(maxlen=_LAGS)  # (when, lag)

    def handled(self, msg: Msg) -> float:
        """Note a message fetched; when it reached the stream (never earlier than one handled
        before it: a redelivery), the time every central judges it at."""
        metadata = msg.metadata
        stored = metadata.timestamp.timestamp()
        now = self._clock()
        self._lags.append((now, now - stored))
        self._latest = max(self._latest, stored)
        self._sequence = max(self._sequence, metadata.sequence.stream)
        return self._latest

    async def quiet(self, subscription: JetStreamContext.PullSubscription) -> None:
        """A fetch brought nothing: ask the server whether that is all there is."""
        import nats.errors

        asked = self._clock()
        try:
            info = await asyncio.wait_for(subscription.consumer_info(), ASK_TIMEOUT)
        except (nats.errors.Error, TimeoutError):
            return
        delivered = info.delivered.stream_seq if info.delivered is not None else 0
        if info.num_pending != 0 or (delivered or 0) > self._sequence:
            return  # more came meanwhile: the next fetch brings it
        recent = (lag for at, lag in self._lags if asked - at < LAG_AGE)
        offset = min(recent, default=GRACE)
        self._quiet_until = max(self._quiet_until, asked - offset)

    def arrived(self, result: ProbeResult) -> float:
        """When the message last taken (that of `result`) was stored; never earlier than one
        taken before it (a redelivery), so arrivals only grow, as windows expect."""
        return self._latest

    def horizon(self) -> float:
        return max(self._latest, self._quiet_until)
