"""Shared by the history tests: maintenance run to its end on a store no writer runs on.

Production runs maintenance a step at a time in the writer's thread, between its commits
(monitor.store.writer); a test drives the same public steps, all at once."""

from __future__ import annotations

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
