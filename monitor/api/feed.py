"""The engine's items as the event stream serves them: kept for resuming, handed to every
subscriber, and read back from the history store for a viewer that was away longer.

Every item the engine publishes (a result, a state change, an acknowledgement, a pause) comes
with its id (`Monitor.watch_stream`): with history on, the id the store gives it
(monitor.store.numbering), under the store's own id as `epoch`; without, one the engine counts
from 1 under an epoch random per process. The message id is `EPOCH.SEQ`, SEQ that id. The last
RING_SIZE items
are kept in memory. A viewer that lost its connection resumes after the last id it saw:

- within the ring, from the ring, its mirror exact at every message (see the patches below);
- further back, or from before this engine process started (another run on the same store),
  from the store: the items it missed in id order, read a page at a time, then the ring, then
  one `state` message, the state document as of the stream's newest item, which its mirror
  starts again from (a result read from the store carries no patch: `"state": null`);
- older than the store keeps (retention or downsampling deleted what followed), an id of
  another store or epoch, one ahead of the stream, more than REPLAY_LIMIT items behind, or
  beyond the ring without history: one `resync` message and the end of the stream.

An item a stalled store refused is shown without an id of its own: a viewer resuming after the
item before it is sent it again.

The engine is never slowed by a viewer. A live subscriber has a queue of at most `limit` items;
one whose queue is full is dropped at once (its reconnect resumes), and what the engine does per
item is the same however many watch: one patch of the state (shared by all), one reference per
subscriber. A subscriber catching up reads the ring and the store at its own pace and queues
nothing. A message's JSON is made once, the first time anyone reads it.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from monitor.api import codec, replay
from monitor.api.control import ack_record
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.engine.pipeline import Monitor
from monitor.engine.state import EngineState
from monitor.output.records import event_record, json_line, result_record
from monitor.store.controls import Control, PauseChange
from monitor.store.numbering import StreamOrigin
from monitor.store.schema import HistoryError

RING_SIZE: Final = 10_000  # the in-memory resume window, in items
# A viewer further behind than this starts again from the state document: quicker for it, and
# cheaper for the engine than replaying more.
REPLAY_LIMIT: Final = 100_000
# The changes a state document carries, newest last: what an attaching viewer's event log
# starts with, as a local dashboard's starts with what its store remembers.
RECENT_EVENTS: Final = 200


class MessageType(enum.StrEnum):
    RESULT = "result"
    CHANGE = "change"
    ACK = "ack"
    PAUSE = "pause"
    STATE = "state"  # the state document, ending a catch-up from the store
    RESYNC = "resync"  # never numbered: the client must refetch the state document


class BadEventId(ValueError):
    """A Last-Event-ID that is not `EPOCH.SEQ` as this feed writes them."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the event stream: `event_id` is `EPOCH.SEQ` (empty for a resync, and
    for an item a stalled store refused), `data` one line of compact JSON."""

    event_id: str
    type: MessageType
    data: str


def resync_message(reason: str) -> Message:
    return Message("", MessageType.RESYNC, json_line({"reason": reason}))


Item = ProbeResult | Event | Control
_TYPES: Final = {ProbeResult: MessageType.RESULT, Event: MessageType.CHANGE}


class _Entry:
    """One published item: its place in the ring (`pos`), its id (None: not stored). Its patch
    may be settled after publication, never after its message was first read (see the
    module's docstring); the message is made once. A patch of None: read from the store."""

    __slots__ = ("_message", "item", "item_id", "patch", "pos", "type")

    def __init__(self, pos: int, item_id: int | None, item: Item, patch: codec.Patch | None):
        self.pos, self.item_id, self.item, self.patch = pos, item_id, item, patch
        self.type = _TYPES.get(type(item)) or (
            MessageType.PAUSE if isinstance(item, PauseChange) else MessageType.ACK
        )
        self._message: Message | None = None

    def message(self, epoch: str) -> Message:
        if self._message is None:
            event_id = "" if self.item_id is None else f"{epoch}.{self.item_id}"
            self._message = Message(event_id, self.type, json_line(self._data()))
        return self._message

    def _data(self) -> dict[str, Any]:
        item = self.item
        if isinstance(item, ProbeResult):
            return {"result": result_record(item), "state": self.patch}
        if isinstance(item, Event):
            return {"event": event_record(item)}
        if isinstance(item, PauseChange):
            return {"check_id": item.check_id, "paused": item.paused}
        return {
            "subject_id": item.subject_id,
            "ack": None if item.ack is None else ack_record(item.ack),
        }


@dataclass(frozen=True)
class Snapshot:
    """The engine as far as the stream has told it: the state a viewer mirrors after the item
    `seq` (an id), and each check's last published result. Resume from it with `EPOCH.SEQ`."""

    epoch: str
    seq: int
    state: EngineState
    last_results: Mapping[str, ProbeResult]
    recent_events: tuple[Event, ...] = ()

    @property
    def event_id(self) -> str:
        return f"{self.epoch}.{self.seq}"


class Subscription:
    """One subscriber: it catches up (the ring, the store) to the newest item, then takes live
    items from its queue, until it is dropped or closed. `resync` says why it cannot resume
    (it then sends that and ends)."""

    def __init__(
        self, feed: Feed, limit: int, resync: str | None = None, *, after: int = 0
    ) -> None:
        self._feed = feed
        self._queue: collections.deque[_Entry] = collections.deque()
        self._wake = asyncio.Event()
        self.limit = limit
        self.resync = resync
        self.dropped = False  # for a full queue: the subscriber did not keep up
        self.closed = False
        self.peak = 0  # the most items its queue ever held: never above `limit`
        self.on_drop: Callable[[], None] | None = None
        # Catching up: the ring position last sent (None: reading the store), the last id
        # sent, and whether its mirror must start again from a state message at the end.
        self.live = True
        self.at: int | None = None
        self.after = after
        self.needs_state = False

    def _offer(self, entry: _Entry) -> None:
        if not self.live:
            self._wake.set()  # it reads the ring itself
            return
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
        epoch = self._feed.epoch
        while not self.closed:
            if self.resync is not None:
                self.close()
                return [resync_message(self.resync)]
            if not self.live:
                batch = await self._feed._catch_up(self, most)
                if batch:
                    return batch
                continue
            if self._queue:
                count = min(most, len(self._queue))
                return [self._queue.popleft().message(epoch) for _ in range(count)]
            self._wake.clear()
            await self._wake.wait()
        return []


class Feed:
    """Keeps what a Monitor publishes (`attach`) and serves it to subscribers. `history` is
    the engine's store, for what the ring no longer has; `document` makes the state document
    of a snapshot, sent at the end of a catch-up from the store."""

    def __init__(
        self,
        initial_state: EngineState,
        ring_size: int = RING_SIZE,
        *,
        history: Path | None = None,
        refs: Mapping[str, Any] | None = None,
        document: Callable[[Snapshot], dict[str, Any]] | None = None,
    ) -> None:
        self.epoch = ""  # known once the engine opened its numbering
        self._opened = asyncio.Event()
        self._ring: collections.deque[_Entry] = collections.deque()
        self._ring_size = ring_size
        self._pos = 0  # the ring position of the newest entry
        self._positions: dict[int, int] = {}  # id -> ring position, for the ring's entries
        self._origin = 0  # the last id before this engine process's first item
        self._ring_after = 0  # every id after this one is in the ring
        self._head = 0  # the newest id published
        self._history = history
        self._refs = dict(refs or {})
        self._document = document
        self._subscribers: set[Subscription] = set()
        self._last_results: dict[str, ProbeResult] = {}
        self._recent_events: collections.deque[Event] = collections.deque(maxlen=RECENT_EVENTS)
        # The state the last patch led to: what a viewer mirrors after the newest result.
        # Never reset, so every mirror handed out stays one the next patch applies to (what
        # the engine restores at its start reaches viewers in the first result's patch).
        self._base = initial_state
        self._owed: tuple[_Entry, EngineState] | None = None  # newest result, its state

    @classmethod
    def attach(
        cls,
        monitor: Monitor,
        document: Callable[[Snapshot], dict[str, Any]] | None = None,
        ring_size: int = RING_SIZE,
    ) -> tuple[Feed, Callable[[], None]]:
        """A feed of everything `monitor` publishes from now on, and how to detach it."""
        refs = {check_id: check.ref for check_id, check in monitor.checks.items()}
        feed = cls(
            monitor.state, ring_size, history=monitor.history_path, refs=refs, document=document
        )
        return feed, monitor.watch_stream(feed)

    @property
    def seq(self) -> int:
        """The id of the newest item published."""
        return self._head

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """Every live subscription (their queues' depths are the stream's backlog)."""
        return tuple(self._subscribers)

    async def wait_open(self) -> None:
        """Until the engine says where its ids start (at once without history)."""
        await self._opened.wait()

    # --- the Monitor's stream watcher ---------------------------------------------------------

    def opened(self, origin: StreamOrigin) -> None:
        self.epoch = origin.epoch
        self._origin = self._ring_after = self._head = origin.after
        self._opened.set()

    def published(self, item_id: int | None, item: Item, state: EngineState) -> None:
        """Keep `item` (`state` is the engine's state at that moment)."""
        if isinstance(item, ProbeResult):
            self._last_results[item.check.check_id] = item
            if self._subscribers:
                patch = codec.patch(self._base, state)
                self._base = state
                self._append(item_id, item, patch)
            else:
                self._owed = (self._append(item_id, item, {}), state)
            return
        if isinstance(item, Event):
            self._recent_events.append(item)
        self._append(item_id, item, {})

    # --- serving ---------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        self._settle()
        return Snapshot(
            self.epoch,
            self._head,
            self._base,
            dict(self._last_results),
            tuple(self._recent_events),
        )

    def subscribe(self, last_event_id: str | None, limit: int) -> Subscription:
        """A subscriber of at most `limit` queued items, resuming after `last_event_id` (None:
        from now on). BadEventId for an id this feed cannot have written."""
        self._settle()
        if last_event_id is None:
            return self._subscribed(Subscription(self, limit, after=self._head))
        epoch, after = _parse_event_id(last_event_id)
        refused = self._refusal(epoch, after)
        if refused is not None:
            return Subscription(self, limit, refused)
        subscription = Subscription(self, limit, after=after)
        subscription.live = False
        # An id of an earlier engine process: its mirror is that process's; the patches of
        # this one do not apply to it.
        subscription.needs_state = after <= self._origin
        if after > self._ring_after:
            subscription.at = self._positions[after]
        elif after == self._ring_after:
            subscription.at = self._first_pos() - 1
        return self._subscribed(subscription)

    def close(self) -> None:
        """End every subscription (the server is stopping)."""
        for subscription in tuple(self._subscribers):
            subscription.close()

    def _refusal(self, epoch: str, after: int) -> str | None:
        """Why a subscriber cannot resume after `EPOCH.after`; None when it can."""
        if epoch != self.epoch:
            return "another engine or history store numbered that id: start again"
        if after > self._head:
            return "Last-Event-ID is ahead of the stream"
        if after > self._ring_after and after not in self._positions:
            return "Last-Event-ID is not an id of this stream"
        if after < self._ring_after:
            if self._history is None:
                return f"Last-Event-ID is older than the last {self._ring_size} items"
            if self._head - after > REPLAY_LIMIT:
                return f"more than {REPLAY_LIMIT} items were missed: start again"
        return None

    def _subscribed(self, subscription: Subscription) -> Subscription:
        self._subscribers.add(subscription)
        return subscription

    def _forget(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def _first_pos(self) -> int:
        return self._pos - len(self._ring) + 1

    def _append(self, item_id: int | None, item: Item, patch: codec.Patch) -> _Entry:
        self._pos += 1
        entry = _Entry(self._pos, item_id, item, patch)
        self._ring.append(entry)
        if item_id is not None:
            self._positions[item_id] = self._pos
            self._head = item_id
        while len(self._ring) > self._ring_size:
            gone = self._ring.popleft()
            if gone.item_id is not None:
                del self._positions[gone.item_id]
                self._ring_after = gone.item_id
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

    # --- catching up -------------------------------------------------------------------------

    async def _catch_up(self, subscription: Subscription, most: int) -> list[Message]:
        """The next messages of a subscriber that is behind; empty when it just went live (or
        was told to resync)."""
        if subscription.at is None:
            return await self._from_store(subscription, most)
        first = self._first_pos()
        if subscription.at < first - 1:  # the ring moved on past it meanwhile
            if self._history is None:
                subscription.resync = "fell behind the stream: start again"
            else:
                subscription.at = None
            return []
        start = subscription.at - first + 1
        entries = [self._ring[i] for i in range(start, min(start + most, len(self._ring)))]
        if entries:
            subscription.at = entries[-1].pos
            ids = [e.item_id for e in entries if e.item_id is not None]
            subscription.after = ids[-1] if ids else subscription.after
            return [entry.message(self.epoch) for entry in entries]
        subscription.live = True
        if subscription.needs_state and self._document is not None:
            snapshot = self.snapshot()
            document = self._document(snapshot)
            return [Message(snapshot.event_id, MessageType.STATE, json_line(document))]
        return []

    async def _from_store(self, subscription: Subscription, most: int) -> list[Message]:
        assert self._history is not None  # never reading the store without one
        through = self._ring_after
        if subscription.after >= through:
            subscription.at = self._first_pos() - 1
            return []
        try:
            page = await asyncio.to_thread(
                replay.read_page,
                self._history,
                self._refs,
                subscription.after,
                through,
                min(most, replay.PAGE),
            )
        except (HistoryError, ValueError):
            subscription.resync = "the history cannot be read now: start again"
            return []
        if subscription.after < page.deleted_through:
            subscription.resync = "Last-Event-ID is older than the history keeps"
            return []
        subscription.needs_state = True
        if not page.items:
            subscription.after = through
            return []
        subscription.after = page.items[-1][0]
        return [_Entry(0, item_id, item, None).message(self.epoch) for item_id, item in page.items]


def _parse_event_id(text: str) -> tuple[str, int]:
    epoch, dot, seq = text.strip().partition(".")
    if not dot or not epoch or not seq.isdigit() or not seq.isascii():
        raise BadEventId(f"Last-Event-ID {text[:40]!r} is not EPOCH.SEQ as the stream sends it")
    return epoch, int(seq)
