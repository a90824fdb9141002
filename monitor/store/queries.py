"""Reading the history database: one connection, for the thread that opened it, and the
questions the report, the dashboard and a restart ask of it."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

from monitor.core.events import Event, EventKind, Subject
from monitor.core.model import Severity
from monitor.store import certificates, numbering
from monitor.store.controls import ACK_COLUMNS, Ack, ack_of_row
from monitor.store.numbering import StoredItem, StreamOrigin
from monitor.store.rows import (
    EVENT_COLUMNS,
    HOURLY_COLUMNS,
    HOURLY_SEVERITY,
    RESULT_COLUMNS,
    HourlyResults,
    LatencyPoint,
    ResultState,
    StoredResult,
    event_of_row,
    hourly_results,
    stored_result,
)
from monitor.store.runs import Run
from monitor.store.schema import HOUR, HistoryError, connect


class HistoryReader:
    """One connection to the history database, for the thread that opened it. Opening never
    creates nor upgrades a file unless `create` says so (the writer's job: it runs first)."""

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        self.path = Path(path)
        try:
            self._db = connect(self.path, create)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot open the history database: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def recent_results(
        self, check_id: str, limit: int = 100, since: float = -math.inf
    ) -> list[StoredResult]:
        """The latest `limit` raw results of one check started at or after `since`, oldest
        first."""
        rows = self._db.execute(
            f"SELECT {RESULT_COLUMNS} FROM results WHERE check_id = ? AND started_at >= ? "
            "ORDER BY started_at DESC LIMIT ?",
            (check_id, since, limit),
        ).fetchall()
        return [stored_result(row) for row in reversed(rows)]

    def certificates_seen(self) -> list[certificates.Sighting]:
        """The leaves each check saw (at most `certificates.KEEP` per check), each check's
        oldest first."""
        return certificates.read(self._db)

    def last_started(self) -> dict[str, float]:
        """When each check's latest raw result started."""
        rows = self._db.execute("SELECT check_id, MAX(started_at) FROM results GROUP BY check_id")
        return {check_id: started_at for check_id, started_at in rows}

    def results_since(self, since: float, until: float | None = None) -> list[StoredResult]:
        """Raw results started in [since, until), oldest first (older ones are hourly rows)."""
        rows = self._db.execute(
            f"SELECT {RESULT_COLUMNS} FROM results WHERE started_at >= ? AND started_at < ? "
            "ORDER BY started_at, id",
            (since, math.inf if until is None else until),
        ).fetchall()
        return [stored_result(row) for row in rows]

    def hourly_since(self, since: float, until: float | None = None) -> list[HourlyResults]:
        """Hours of results in [since, until), oldest first."""
        rows = self._db.execute(
            f"SELECT {HOURLY_COLUMNS} FROM results_hourly "
            "WHERE hour >= ? AND hour < ? ORDER BY hour, check_id",
            (since, math.inf if until is None else until),
        ).fetchall()
        return [hourly_results(row) for row in rows]

    def events_since(
        self, since: float, until: float | None = None, kinds: Iterable[EventKind] | None = None
    ) -> list[Event]:
        """Events at or after `since` and before `until`, oldest first."""
        wanted = [str(k) for k in (EventKind if kinds is None else kinds)]
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE at >= ? AND at < ? "
            f"AND kind IN ({', '.join('?' * len(wanted))}) ORDER BY at, id",
            (since, math.inf if until is None else until, *wanted),
        ).fetchall()
        return [event_of_row(row) for row in rows]

    def last_events_before(self, at: float, kind: EventKind = EventKind.HARD) -> list[Event]:
        """Each subject's latest event of `kind` strictly before `at`: its state at `at`."""
        # SQLite takes the bare columns from the row holding MAX(at).
        rows = self._db.execute(
            "SELECT MAX(at), subject, subject_id, site_id, kind, before, after, cause, "
            "suppressed FROM events WHERE at < ? AND kind = ? GROUP BY subject, subject_id",
            (at, str(kind)),
        ).fetchall()
        return [event_of_row(row) for row in rows]

    def subject_events_before(
        self, subject: Subject, subject_id: str, at: float, kind: EventKind = EventKind.HARD
    ) -> Iterator[Event]:
        """One subject's events of `kind` strictly before `at`, newest first."""
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE subject = ? AND subject_id = ? "
            "AND at < ? AND kind = ? ORDER BY at DESC, id DESC",
            (str(subject), subject_id, at, str(kind)),
        )
        return (event_of_row(row) for row in rows)

    def runs(self, since: float, until: float) -> list[Run]:
        """The runs that watched any of [since, until), oldest first."""
        rows = self._db.execute(
            "SELECT started_at, last_at, ended_at, scope, learned FROM runs "
            "WHERE started_at < ? AND COALESCE(ended_at, last_at) > ? ORDER BY started_at, id",
            (until, since),
        ).fetchall()
        return [
            Run(started_at=a, last_at=b, ended_at=c, scope=scope, learned=bool(learned))
            for a, b, c, scope, learned in rows
        ]

    def first_result(self, check_id: str, since: float, until: float) -> ResultState | None:
        """The check's first result in [since, until); a downsampled hour stands for its most
        frequent severity from the hour's start (or `since`, if later)."""
        raw = self._db.execute(
            "SELECT site_id, link_id, started_at, severity FROM results "
            "WHERE check_id = ? AND started_at >= ? AND started_at < ? "
            "ORDER BY started_at LIMIT 1",
            (check_id, since, until),
        ).fetchone()
        hourly = self._db.execute(
            f"SELECT site_id, link_id, hour, {HOURLY_SEVERITY} FROM results_hourly "
            "WHERE check_id = ? AND hour > ? AND hour < ? ORDER BY hour LIMIT 1",
            (check_id, since - HOUR, until),
        ).fetchone()
        found = [
            ResultState(
                site_id=row[0], link_id=row[1], since=max(since, row[2]), severity=Severity[row[3]]
            )
            for row in (raw, hourly)
            if row is not None
        ]
        return min(found, key=lambda state: state.since, default=None)

    def result_states(self, at: float, until: float) -> dict[str, ResultState]:
        """Per check, the state its results show: the latest result at or before `at`, else its
        first one before `until`. Hourly rows count too, standing for their most frequent
        severity. What a report falls back on for subjects that have no events."""
        observed = (
            "SELECT check_id, site_id, link_id, started_at AS t, severity FROM results "
            f"UNION ALL SELECT check_id, site_id, link_id, hour, {HOURLY_SEVERITY} "
            "FROM results_hourly"
        )
        states: dict[str, ResultState] = {}
        # SQLite takes the bare columns from the row holding the MAX or MIN.
        for query, params in (
            (f"SELECT *, MAX(t) FROM ({observed}) WHERE t <= ? GROUP BY check_id", (at,)),
            (
                f"SELECT *, MIN(t) FROM ({observed}) WHERE t > ? AND t < ? GROUP BY check_id",
                (at, until),
            ),
        ):
            for check_id, site_id, link_id, t, severity, _ in self._db.execute(query, params):
                states.setdefault(
                    check_id,
                    ResultState(
                        site_id=site_id, link_id=link_id, since=t, severity=Severity[severity]
                    ),
                )
        return states

    def recent_latencies(self, per_check: int = 60) -> dict[str, list[LatencyPoint]]:
        """The latest `per_check` results of every check, oldest first: the sparklines."""
        # A skip-scan over the (check_id, started_at) index finds the checks without reading
        # every row, then each check's newest rows come straight off the same index.
        rows = self._db.execute(
            """
            WITH RECURSIVE checks (check_id) AS (
                SELECT MIN(check_id) FROM results
                UNION ALL
                SELECT (SELECT MIN(check_id) FROM results WHERE check_id > checks.check_id)
                FROM checks WHERE checks.check_id IS NOT NULL
            )
            SELECT r.check_id, r.started_at, r.severity, r.latency_ms
            FROM checks JOIN results AS r ON r.id IN (
                SELECT id FROM results WHERE check_id = checks.check_id
                ORDER BY started_at DESC LIMIT ?
            )
            ORDER BY r.check_id, r.started_at
            """,
            (per_check,),
        ).fetchall()
        series: dict[str, list[LatencyPoint]] = {}
        for check_id, started_at, severity, latency in rows:
            series.setdefault(check_id, []).append(
                LatencyPoint(started_at=started_at, severity=Severity[severity], latency_ms=latency)
            )
        return series

    # --- the engine's stream (monitor.store.numbering) ----------------------------------------

    def stream_origin(self) -> StreamOrigin:
        return numbering.stream_origin(self._db)

    def deleted_through(self) -> int:
        """The highest stream id retention or downsampling deleted: a position before it may
        have lost what followed."""
        return numbering.deleted_through(self._db)

    def stream_page(self, after: int, through: int, limit: int) -> list[tuple[int, StoredItem]]:
        """Stored results, events and controls with ids in (after, through], the first `limit`
        in id order."""
        return numbering.stream_page(self._db, after, through, limit)

    def acks(self) -> list[Ack]:
        """The acknowledgements the engine last held in force (some may have expired since)."""
        rows = self._db.execute(f"SELECT {ACK_COLUMNS} FROM acks ORDER BY at").fetchall()
        return [ack_of_row(row) for row in rows]
