"""The engine's stream as its watchers follow it: every result, event and control, in the order
the engine shows them, each with its id (`Monitor.watch_stream`; the API's event stream is one).

With history on, the store numbers the items as they are queued (monitor.store.numbering) and
says where its numbering stands once the writer opened it; without, the engine counts them
itself, from 1 under an epoch random per process.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Protocol

from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.engine.state import EngineState
from monitor.store.controls import Control
from monitor.store.numbering import StreamOrigin

Item = ProbeResult | Event | Control


class StreamWatcher(Protocol):
    """Follows the engine's stream: every item in order, with its id and the engine's state
    at that moment."""

    def opened(self, origin: StreamOrigin) -> None:
        """Where the ids of this run start: told once, before the first item."""

    def published(self, item_id: int | None, item: Item, state: EngineState) -> None:
        """One item; `item_id` None for one a stalled store refused (shown, not stored)."""


class Publication:
    """One engine's stream watchers and where its ids start; `numbered_here`: the engine counts
    its items itself (no store)."""

    def __init__(self, *, numbered_here: bool) -> None:
        self.origin = StreamOrigin(secrets.token_hex(8), 0) if numbered_here else None
        self._watchers: list[StreamWatcher] = []
        self._counted = 0

    def watch(self, watcher: StreamWatcher) -> Callable[[], None]:
        """Tell `watcher` where the ids start (now, or once they are known), then every item;
        returns how to stop."""
        self._watchers.append(watcher)
        if self.origin is not None:
            watcher.opened(self.origin)
        return lambda: self._watchers.remove(watcher)

    def opened(self, origin: StreamOrigin) -> None:
        """The store says where its numbering stands (the writer opened it)."""
        self.origin = origin
        for watcher in tuple(self._watchers):
            watcher.opened(origin)

    def count(self) -> int:
        """The next sequence number of an engine that numbers its items itself."""
        self._counted += 1
        return self._counted

    def publish(self, seq: int | None, item: Item, state: EngineState) -> None:
        """Tell every watcher of the item of sequence number `seq` (None: not stored)."""
        origin = self.origin
        assert origin is not None  # nothing is shown before the numbering is known
        item_id = None if seq is None else origin.after + seq
        for watcher in tuple(self._watchers):
            watcher.published(item_id, item, state)
