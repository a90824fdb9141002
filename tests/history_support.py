"""Shared by the history tests: maintenance run to its end on a store no writer runs on, and a
history whose writes stall.

Production runs maintenance a step at a time in the writer's thread, between its commits
(monitor.store.writer); a test drives the same public steps, all at once."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from monitor.config.inventory import HistoryConfig
from monitor.store.history import HistoryStore
from monitor.store.retention import MaintenanceStats


def maintain(store: HistoryStore, now: float, config: HistoryConfig) -> MaintenanceStats:
    """Every maintenance step `store` takes at `now`; what they did."""
    steps = store.maintenance_steps(now, config)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            stats: MaintenanceStats = done.value
            return stats


@contextlib.contextmanager
def stalled(path: Path) -> Iterator[None]:
    """The history database at `path` takes no write until the block ends: another connection
    holds its write lock, as a stalled disk would keep a commit from ending. The engine's
    writer retries meanwhile, and stores what waited once the block ends."""
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()
