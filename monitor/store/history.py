"""History: every result and every event, in an embedded SQLite file shared with the alerts'
outbox (monitor.store.schema says what it holds and how a file is opened).

`runs` says when commwatch was watching: each writer records its run (start, a heartbeat at
every commit and at least every HEARTBEAT, its end), with what the run watched, so a report
counts only observed time (monitor.store.runs).

Writes go through `HistoryWriter` (monitor.store.writer): one thread owns the only writing
connection, a `HistoryStore`, and commits batches; everything acknowledged survives a kill -9
(WAL with synchronous=NORMAL is durable against a process crash; only an OS crash or power loss
may lose the last commits). Reads open their own `HistoryReader` (or store) in whichever thread
needs them.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable

from monitor.config.inventory import HistoryConfig
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.store.queries import HistoryReader
from monitor.store.retention import MaintenanceStats, maintenance_steps
from monitor.store.rows import INSERT_EVENT, INSERT_RESULT, event_row, result_row
from monitor.store.schema import transaction


class HistoryStore(HistoryReader):
    """A connection that writes too: results, events, runs and maintenance. The writer thread
    owns the one that runs continuously; tests may open another."""

    def write(
        self,
        results: Iterable[ProbeResult] = (),
        events: Iterable[Event] = (),
        *,
        heartbeat: tuple[int, float] | None = None,
    ) -> None:
        """Store results and events in one transaction: all of them, or none on error.
        `heartbeat` (run id, time): that run was watching until then."""
        with transaction(self._db):
            self._db.executemany(INSERT_RESULT, (result_row(r) for r in results))
            self._db.executemany(INSERT_EVENT, (event_row(e) for e in events))
            if heartbeat is not None:
                self._db.execute(
                    "UPDATE runs SET last_at = MAX(last_at, ?) WHERE id = ?", heartbeat[::-1]
                )

    def start_run(self, at: float, scope: str | None = None) -> int:
        """Record a run starting at `at`; its id, for `write(heartbeat=...)` and `end_run`."""
        with transaction(self._db):
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, last_at, scope) VALUES (?, ?, ?)", (at, at, scope)
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def end_run(self, run_id: int, at: float) -> None:
        with transaction(self._db):
            self._db.execute(
                "UPDATE runs SET last_at = MAX(last_at, ?), ended_at = MAX(last_at, ?) "
                "WHERE id = ?",
                (at, at, run_id),
            )

    def maintenance_steps(
        self, now: float, config: HistoryConfig
    ) -> Generator[None, None, MaintenanceStats]:
        """Downsampling and retention, one short transaction per step (see
        monitor.store.retention); the generator returns what was done."""
        return maintenance_steps(self._db, now, config)
