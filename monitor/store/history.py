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

from collections.abc import Generator, Iterable, Sequence

from monitor.config.inventory import HistoryConfig
from monitor.core.events import Event
from monitor.core.model import ProbeResult
from monitor.store import certificates
from monitor.store.controls import (
    INSERT_CONTROL,
    AckChange,
    Control,
    PauseChange,
    ack_statements,
    control_row,
)
from monitor.store.queries import HistoryReader
from monitor.store.retention import MaintenanceStats, maintenance_steps
from monitor.store.rows import INSERT_EVENT, INSERT_RESULT, event_row, result_row
from monitor.store.schema import LAST_ID_KEY, raise_meta, transaction

# One item of the engine's stream, as the writer stores it: its id, the item, and (for a
# control, which carries no time of its own) when it was made.
Numbered = tuple[int, ProbeResult | Event | Control, float]


class HistoryStore(HistoryReader):
    """A connection that writes too: results, events, runs and maintenance. The writer thread
    owns the one that runs continuously; tests may open another."""

    def write(
        self,
        results: Iterable[ProbeResult] = (),
        events: Iterable[Event] = (),
        controls: Iterable[tuple[Control, float]] = (),
        *,
        heartbeat: tuple[int, float] | None = None,
    ) -> None:
        """Store results, events and controls (each with when it was made) in one
        transaction, numbered after the highest id handed out, results first."""
        items: list[tuple[ProbeResult | Event | Control, float]] = [
            *((result, 0.0) for result in results),
            *((event, event.at) for event in events),
            *controls,
        ]
        after = self.stream_origin().after
        self.write_numbered(
            [(after + n, item, at) for n, (item, at) in enumerate(items, 1)], heartbeat=heartbeat
        )

    def write_numbered(
        self, items: Sequence[Numbered], *, heartbeat: tuple[int, float] | None = None
    ) -> None:
        """Store items under the ids the writer gave them, in one transaction: all of them,
        or none on error. `heartbeat` (run id, time): that run was watching until then."""
        results = [(n, *result_row(i)) for n, i, _ in items if isinstance(i, ProbeResult)]
        events = [(n, *event_row(i)) for n, i, _ in items if isinstance(i, Event)]
        with transaction(self._db):
            self._db.executemany(INSERT_RESULT, results)
            self._db.executemany(INSERT_EVENT, events)
            certificates.record(self._db, (i for _, i, _ in items if isinstance(i, ProbeResult)))
            for item_id, item, at in items:
                if isinstance(item, (AckChange, PauseChange)):
                    self._db.execute(INSERT_CONTROL, (item_id, *control_row(item, at)))
                    for statement, values in ack_statements(item):
                        self._db.execute(statement, values)
            if items:
                # Ids handed out are never handed out again, even once deleted.
                raise_meta(self._db, LAST_ID_KEY, max(item_id for item_id, _, _ in items))
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
