"""The engine's items numbered, kept for resuming, and handed to every subscriber.

Every item the engine publishes (a result, a state change, an acknowledgement, a pause) gets
the next number of this process's sequence (`epoch`, random per process, and `seq`: 1, 2, 3,
...), in the order the engine's sinks saw them. The last RING_SIZE items are kept, so a viewer
that lost its connection resumes after the last one it saw, missing nothing and seeing nothing
twice; one whose place is gone (another epoch: the engine restarted; or older than the ring)
is told to resynchronise from the state document instead.

The engine is never slowed by a viewer. Each subscriber has a queue of at most `limit` items;
one whose queue is full is dropped at once (its reconnect resumes or resynchronises), and what
the engine does per item is the same however many watch: one patch of the state (shared by
all), one reference per subscriber. A message's JSON is made once, the first time anyone reads
it.

The patch of a result is the change of the engine's state since the state the previous patch
led to. Made only while someone subscribes: with nobody watching, the feed only remembers the
newest state, and owes its patch to the newest result, which gets it before anyone can read
it (when the next subscriber arrives or a snapshot is taken). Results in between carry an
empty patch. So a viewer that was the only one and reconnects resumes with a whole mirror,
and a state document made after a quiet spell is as fresh as its position in the stream.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from monitor.api import codec
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.engine.pipeline import Monitor
from monitor.engine.state import EngineState
from monitor.output.records import event_record, json_line, result_record

RING_SIZE: Final = 10_000  # the resume window, in items
# The changes a state document carries, newest last: what an attaching viewer's event log
# starts with, as a local dashboard's starts with what its store remembers.
RECENT_EVENTS: Final = 200


class MessageType(enum.StrEnum):
    RESULT = "result"
    CHANGE = "change"
    ACK = "ack"
    PAUSE = "pause"
    RESYNC = "resync"  # never numbered: the client must refetch the state document


class BadEventId(ValueError):
    """A Last-Event-ID that is not `EPOCH.SEQ` as this feed writes them."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the event stream: `event_id` is `EPOCH.SEQ` (empty for a resync), `data`
    one line of compact JSON."""

    event_id: str
    type: MessageType
    data: str


class _Entry:
    """One published item. Its patch may be settled after publication, never after its
    message was first read (see the module's docstring); the message is made once."""

    __slots__ = ("_message", "item", "patch", "seq", "type")

    def __init__(self, seq: int, type_: MessageType, item: object, patch: codec.Patch) -> None:
        self.seq, self.type, self.item, self.patch = seq, type_, item, patch
        self._message: Message | None = None

    def message(self, epoch: str) -> Message:
        if self._message is None:
            self._message = Message(f"{epoch}.{self.seq}", self.type, json_line(self._data()))
        return self._message

    def _data(self) -> dict[str, Any]:
        if isinstance(self.item, ProbeResult):
            return {"result": result_record(self.item), "state": self.patch}
        if isinstance(self.item, Event):
            return {"event": event_record(self.item)}
        assert isinstance(self.item, dict)
        return self.item


@dataclass(frozen=True)
class Snapshot:
    """The engine as far as the stream has told it: the state a viewer mirrors after the item
    `seq`, and each check's last published result. Resume from it with `EPOCH.SEQ`."""

    epoch: str
    seq: int
    state: EngineState
    last_results: Mapping[str, ProbeResult]
    recent_events: tuple[Event, ...] = ()

    @property
    def event_id(self) -> str:
        return f"{self.epoch}.{self.seq}"


class Subscription:
    """One subscriber: the backlog it resumes with, then live items, until it is dropped or
    closed. `resync` says why it cannot resume (it is then never fed)."""

    def __init__(
        self, feed: Feed, backlog: list[_Entry], limit: int, resync: str | None = None
    ) -> None:
        self._feed = feed
        self._backlog = collections.deque(backlog)
        self._queue: collections.deque[_Entry] = collections.deque()
        self._wake = asyncio.Event()
        self.limit = limit
        self.resync = resync
        self.dropped = False  # for a full queue: the subscriber did not keep up
        self.closed = False
        self.peak = 0  # the most items its queue ever held: never above `limit`
        self.on_drop: Callable[[], None] | None = None

    def _offer(self, entry: _Entry) -> None:
        if len(self._queue) >= self.limit:
            self.dropped = True
            self._end()
            if self.on_drop is not None:
                self.on_drop()
            return
        self._queue.append(entry)
        self.peak = max(self.peak, len(self._queue))
        self._wake.set()

    def _end(self) -> None:
        self.closed = True
        self._queue.clear()
        self._backlog.clear()
        self._feed._forget(self)
        self._wake.set()

    def close(self) -> None:
        if not self.closed:
            self._end()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def next(self) -> Message | None:
        """The next message; None once dropped or closed."""
        batch = await self.take(1)
        return batch[0] if batch else None

    async def take(self, most: int) -> list[Message]:
        """The messages there are, at most `most`, once there is one: what a writer sends in
        one write. Empty once dropped or closed."""
        while not self.closed:
            source = self._backlog or self._queue
            if source:
                count = min(most, len(source))
                return [source.popleft().message(self._feed.epoch) for _ in range(count)]
            self._wake.clear()
            await self._wake.wait()
        return []


class Feed:
    """Numbers what a Monitor publishes (`attach`) and serves it to subscribers."""

    def __init__(self, initial_state: EngineState, ring_size: int = RING_SIZE) -> None:
        self.epoch = secrets.token_hex(8)
        self._ring: collections.deque[_Entry] = collections.deque(maxlen=ring_size)
        self._seq = 0
        self._subscribers: set[Subscription] = set()
        self._last_results: dict[str, ProbeResult] = {}
        self._recent_events: collections.deque[Event] = collections.deque(maxlen=RECENT_EVENTS)
        # The state the last patch led to: what a viewer mirrors after the newest result.
        # Never reset, so every mirror handed out stays one the next patch applies to (what
        # the engine restores at its start reaches viewers in the first result's patch).
        self._base = initial_state
        self._owed: tuple[_Entry, EngineState] | None = None  # newest result, its state

    @classmethod
    def attach(cls, monitor: Monitor) -> tuple[Feed, Callable[[], None]]:
        """A feed of everything `monitor` publishes from now on, and how to detach it."""
        feed = cls(monitor.state)
        return feed, monitor.watch(feed.publish)

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every live subscription (their queues' depths are the stream's backlog)."""
        return tuple(self._subscribers)

    def publish(self, item: ProbeResult | Event, state: EngineState) -> None:
        """Number `item` (the Monitor's watcher: `state` is the engine's state at that moment)."""
        if isinstance(item, Event):
            self._recent_events.append(item)
            self._append(MessageType.CHANGE, item, {})
            return
        self._last_results[item.check.check_id] = item
        if self._subscribers:
            patch = codec.patch(self._base, state)
            self._base = state
            self._append(MessageType.RESULT, item, patch)
        else:
            self._owed = (self._append(MessageType.RESULT, item, {}), state)

    def publish_ack(self, subject_id: str, ack: dict[str, Any] | None) -> None:
        """An acknowledgement set (its record) or ended (None)."""
        self._append(MessageType.ACK, {"subject_id": subject_id, "ack": ack}, {})

    def publish_pause(self, check_id: str, paused: bool) -> None:
        self._append(MessageType.PAUSE, {"check_id": check_id, "paused": paused}, {})

    def snapshot(self) -> Snapshot:
        self._settle()
        return Snapshot(
            self.epoch,
            self._seq,
            self._base,
            dict(self._last_results),
            tuple(self._recent_events),
        )

    def subscribe(self, last_event_id: str | None, limit: int) -> Subscription:
        """A subscriber of at most `limit` queued items, resuming after `last_event_id` (None:
        from now on). BadEventId for an id this feed cannot have written."""
        self._settle()
        if last_event_id is None:
            return self._subscribed([], limit)
        epoch, seq = _parse_event_id(last_event_id)
        if epoch != self.epoch:
            return Subscription(self, [], limit, "the engine restarted: another epoch")
        if seq > self._seq:
            return Subscription(self, [], limit, "Last-Event-ID is ahead of the stream")
        oldest = self._ring[0].seq if self._ring else self._seq + 1
        if seq < oldest - 1:
            return Subscription(
                self, [], limit, f"Last-Event-ID is older than the last {self._ring.maxlen} items"
            )
        return self._subscribed(list(itertools.islice(self._ring, seq - oldest + 1, None)), limit)

    def close(self) -> None:
        """End every subscription (the server is stopping)."""
        for subscription in tuple(self._subscribers):
            subscription.close()

    def _subscribed(self, backlog: list[_Entry], limit: int) -> Subscription:
        subscription = Subscription(self, backlog, limit)
        self._subscribers.add(subscription)
        return subscription

    def _forget(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def _append(self, type_: MessageType, item: object, patch: codec.Patch) -> _Entry:
        self._seq += 1
        entry = _Entry(self._seq, type_, item, patch)
        self._ring.append(entry)
        for subscription in tuple(self._subscribers):
            subscription._offer(entry)
        return entry

    def _settle(self) -> None:
        """Give the newest result the patch it is owed, before anyone can read it."""
        if self._owed is None:
            return
        entry, state = self._owed
        entry.patch = codec.patch(self._base, state)
        self._base, self._owed = state, None


def _parse_event_id(text: str) -> tuple[str, int]:
    epoch, dot, seq = text.strip().partition(".")
    if not dot or not epoch or not seq.isdigit() or not seq.isascii():
        raise BadEventId(f"Last-Event-ID {text[:40]!r} is not EPOCH.SEQ as the stream sends it")
    return epoch, int(seq)
