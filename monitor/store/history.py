"""History: every result and every event, in an embedded SQLite file.

The file is shared: the alerts' outbox keeps its own tables in the same database, so every
connection runs in WAL mode with a busy timeout and never assumes it is alone. This module owns
the tables `results`, `results_hourly`, `events`, `runs` and `meta` (its schema version lives
under the key `history.schema_version`).

`runs` says when commwatch was watching: each writer records its run (start, a heartbeat at
every commit and at least every HEARTBEAT, its end), with what the run watched, so a report
counts only observed time. Runs before version 2 are learned from the results once, on upgrade.

Writes go through `HistoryWriter`: one thread owns the only writing connection and commits
batches; after each commit it advances an acknowledged sequence number, and everything at or
below it survives a kill -9 (WAL with synchronous=NORMAL is durable against a process crash;
only an OS crash or power loss may lose the last commits). Reads open their own `HistoryStore`
in whichever thread needs them.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import itertools
import json
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.config.inventory import HistoryConfig
from monitor.core.events import Event, EventKind, Subject, Suppression
from monitor.core.model import ObservationValue, ProbeResult, Severity, Verdict
from probes import registry

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_VERSION_KEY = "history.schema_version"
HOUR = 3600.0
DAY = 86400.0
# How long a connection waits for another one's write lock (the outbox's, say) before failing.
BUSY_TIMEOUT_MS = 5000
# A running writer says it is alive at least this often, even with nothing to write.
HEARTBEAT = 10.0


class HistoryError(Exception):
    """The store cannot be opened or read; the message says which file and why."""


# --- what reads return ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A result as history keeps it: everything but its certificates."""

    check_id: str
    site_id: str
    link_id: str
    kind: str
    started_at: float
    duration_ms: float
    severity: Severity
    summary: str
    error_class: str | None
    error_message: str | None
    latency_ms: float | None
    observations: Mapping[str, ObservationValue]
    verdicts: tuple[Verdict, ...]


@dataclass(frozen=True, slots=True)
class HourlyResults:
    """All results of one check in one hour, once they are older than `downsample_after`."""

    check_id: str
    site_id: str
    link_id: str
    kind: str
    hour: float  # POSIX seconds at the start of the hour (UTC)
    counts: Mapping[Severity, int]
    latency_count: int
    latency_min: float | None
    latency_avg: float | None
    latency_max: float | None


@dataclass(frozen=True, slots=True)
class LatencyPoint:
    started_at: float
    severity: Severity
    latency_ms: float | None  # None when the attempt measured no latency (e.g. refused)


@dataclass(frozen=True, slots=True)
class ResultState:
    site_id: str
    link_id: str
    since: float  # when the result (or hour) that shows it started
    severity: Severity


@dataclass(frozen=True, slots=True)
class Run:
    """A span of time commwatch was watching and storing what it saw."""

    started_at: float
    last_at: float  # its last heartbeat: known to be watching until then
    ended_at: float | None  # None: still running, or it died (kill -9, power loss)
    scope: str | None  # what it watched (the caller's JSON); None if not said, or learned
    learned: bool = False  # recorded before runs were: learned from the results

    @property
    def end(self) -> float:
        return self.last_at if self.ended_at is None else self.ended_at


@dataclass(frozen=True, slots=True)
class MaintenanceStats:
    downsampled_results: int = 0  # raw rows folded into results_hourly
    deleted_results: int = 0
    deleted_hourly: int = 0
    deleted_events: int = 0
    deleted_runs: int = 0


# --- schema --------------------------------------------------------------------------------

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    check_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    link_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    severity TEXT NOT NULL,
    summary TEXT NOT NULL,
    error_class TEXT,
    error_message TEXT,
    latency_ms REAL,
    observations TEXT NOT NULL,
    verdicts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_check_time ON results (check_id, started_at);
CREATE INDEX IF NOT EXISTS results_time ON results (started_at);
CREATE TABLE IF NOT EXISTS results_hourly (
    check_id TEXT NOT NULL,
    hour REAL NOT NULL,
    site_id TEXT NOT NULL,
    link_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ok INTEGER NOT NULL,
    warn INTEGER NOT NULL,
    crit INTEGER NOT NULL,
    unknown INTEGER NOT NULL,
    latency_count INTEGER NOT NULL,
    latency_min REAL,
    latency_avg REAL,
    latency_max REAL,
    PRIMARY KEY (check_id, hour)
);
CREATE INDEX IF NOT EXISTS results_hourly_time ON results_hourly (hour);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    at REAL NOT NULL,
    subject TEXT NOT NULL,
    subject_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    cause TEXT NOT NULL,
    suppressed TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_time ON events (at);
CREATE INDEX IF NOT EXISTS events_subject_time ON events (subject, subject_id, at);
"""


_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at REAL NOT NULL,
    last_at REAL NOT NULL,
    ended_at REAL,
    scope TEXT,
    learned INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_time ON runs (started_at);
"""


def _execute_script(connection: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _migrate_to_1(connection: sqlite3.Connection) -> None:
    _execute_script(connection, _SCHEMA_V1)


def _migrate_to_2(connection: sqlite3.Connection) -> None:
    _execute_script(connection, _SCHEMA_V2)
    connection.executemany(
        "INSERT INTO runs (started_at, last_at, ended_at, learned) VALUES (?, ?, ?, 1)",
        ((start, end, end) for start, end in learn_runs(connection)),
    )


# A check's results further apart than this many times its usual spacing: commwatch was not
# running in between (a retry comes sooner, never later).
LEARNED_GAP = 3.0


def learn_runs(connection: sqlite3.Connection) -> list[tuple[float, float]]:
    """When commwatch was running, as far as the stored results tell: between two results of a
    check no further apart than LEARNED_GAP times its median spacing, and through every hour
    a downsampled row covers."""
    spans: list[tuple[float, float]] = []
    times: dict[str, list[float]] = {}
    for check_id, started_at in connection.execute(
        "SELECT check_id, started_at FROM results ORDER BY check_id, started_at"
    ):
        times.setdefault(check_id, []).append(started_at)
    for series in times.values():
        gaps = sorted(b - a for a, b in itertools.pairwise(series))
        if not gaps:
            continue
        limit = LEARNED_GAP * max(gaps[len(gaps) // 2], 1e-3)
        spans += [(a, b) for a, b in itertools.pairwise(series) if b - a <= limit]
    spans += [
        (hour, hour + HOUR) for (hour,) in connection.execute("SELECT hour FROM results_hourly")
    ]
    return merge_spans(spans)


def merge_spans(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of [start, end) spans, sorted, as disjoint spans."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


# The migration seam: MIGRATIONS[n] takes a store at version n-1 to version n, inside the
# transaction that records n. Version 0 is a file with none of our tables.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _migrate_to_1, 2: _migrate_to_2}


def _connect(path: Path, create: bool) -> sqlite3.Connection:
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.is_file():
        raise HistoryError(f"{path}: no history database there (has commwatch recorded any?)")
    # mode=rw: a reader must not create an empty database where it expected one.
    uri = f"{path.absolute().as_uri()}?mode={'rwc' if create else 'rw'}"
    connection = sqlite3.connect(
        uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise HistoryError(f"{path}: could not switch the database to WAL mode ({mode})")
        connection.execute("PRAGMA synchronous = NORMAL")
        if create:
            _upgrade(connection, path)
        else:
            _check_version(connection, path)
    except BaseException:
        connection.close()
        raise
    return connection


def _schema_version(connection: sqlite3.Connection) -> int:
    has_meta = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return 0
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (_VERSION_KEY,)).fetchone()
    return int(row[0]) if row else 0


def _check_version(connection: sqlite3.Connection, path: Path) -> None:
    """A reader neither creates nor upgrades: that is the writer's job (it runs first)."""
    version = _schema_version(connection)
    if version == 0:
        raise HistoryError(f"{path}: not a commwatch history database (no history tables)")
    if version < SCHEMA_VERSION:
        raise HistoryError(
            f"{path}: history schema version {version} is older than this commwatch's "
            f"({SCHEMA_VERSION}); running commwatch once upgrades it"
        )
    _refuse_newer(version, path)


def _refuse_newer(version: int, path: Path) -> None:
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"{path}: history schema version {version} was written by a newer commwatch "
            f"(this one knows up to {SCHEMA_VERSION})"
        )


def _upgrade(connection: sqlite3.Connection, path: Path) -> None:
    # A current store needs no write lock: readers and the writer open it while others write.
    if _schema_version(connection) == SCHEMA_VERSION:
        return
    # IMMEDIATE: two processes opening a new file at once must not both create the schema.
    connection.execute("BEGIN IMMEDIATE")
    try:
        version = _schema_version(connection)
        _refuse_newer(version, path)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[target](connection)
            connection.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_VERSION_KEY, str(target)),
            )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


# --- rows ----------------------------------------------------------------------------------


def _verdict_to_json(verdict: Verdict) -> dict[str, Any]:
    values = {f.name: getattr(verdict, f.name) for f in dataclasses.fields(verdict)}
    values["severity"] = verdict.severity.name
    return values


_VERDICT_FIELDS = frozenset(f.name for f in dataclasses.fields(Verdict))


def _verdict_from_json(values: dict[str, Any]) -> Verdict:
    # Rows outlive code: keys a later Verdict dropped are ignored rather than fatal.
    known = {k: v for k, v in values.items() if k in _VERDICT_FIELDS}
    known["severity"] = Severity[known["severity"]]
    return Verdict(**known)


def _result_row(result: ProbeResult) -> tuple[Any, ...]:
    ref = result.check
    return (
        ref.check_id,
        ref.site_id,
        ref.link_id,
        ref.kind,
        result.started_at,
        result.duration_ms,
        result.severity.name,
        result.summary(),
        None if result.error is None else str(result.error.error_class),
        None if result.error is None else result.error.message,
        registry.main_latency(result),
        json.dumps(dict(result.observations), separators=(",", ":")),
        json.dumps([_verdict_to_json(v) for v in result.verdicts], separators=(",", ":")),
    )


_INSERT_RESULT = (
    "INSERT INTO results (check_id, site_id, link_id, kind, started_at, duration_ms, severity, "
    "summary, error_class, error_message, latency_ms, observations, verdicts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_RESULT_COLUMNS = (
    "check_id, site_id, link_id, kind, started_at, duration_ms, severity, summary, error_class, "
    "error_message, latency_ms, observations, verdicts"
)


def _stored_result(row: sqlite3.Row | tuple[Any, ...]) -> StoredResult:
    return StoredResult(
        check_id=row[0],
        site_id=row[1],
        link_id=row[2],
        kind=row[3],
        started_at=row[4],
        duration_ms=row[5],
        severity=Severity[row[6]],
        summary=row[7],
        error_class=row[8],
        error_message=row[9],
        latency_ms=row[10],
        observations=json.loads(row[11]),
        verdicts=tuple(_verdict_from_json(v) for v in json.loads(row[12])),
    )


def _event_row(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.at,
        str(event.subject),
        event.subject_id,
        event.site_id,
        str(event.kind),
        event.before,
        event.after,
        event.cause,
        json.dumps([str(s) for s in event.suppressed]),
    )


# A replayed event (same subject, change and time) is the same event: stored once.
_INSERT_EVENT = (
    "INSERT INTO events (event_id, at, subject, subject_id, site_id, kind, before, after, cause, "
    "suppressed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"
)
_EVENT_COLUMNS = "at, subject, subject_id, site_id, kind, before, after, cause, suppressed"


def _event(row: tuple[Any, ...]) -> Event:
    return Event(
        at=row[0],
        subject=Subject(row[1]),
        subject_id=row[2],
        site_id=row[3],
        kind=EventKind(row[4]),
        before=row[5],
        after=row[6],
        cause=row[7],
        suppressed=tuple(Suppression(s) for s in json.loads(row[8])),
    )


# The most frequent severity of an hour stands for it where one state per hour is needed.
_HOURLY_SEVERITY = (
    "CASE WHEN ok >= warn AND ok >= crit AND ok >= unknown THEN 'OK' "
    "WHEN crit >= warn AND crit >= unknown THEN 'CRIT' "
    "WHEN warn >= unknown THEN 'WARN' ELSE 'UNKNOWN' END"
)

_DOWNSAMPLE = """
INSERT INTO results_hourly (check_id, hour, site_id, link_id, kind, ok, warn, crit, unknown,
                            latency_count, latency_min, latency_avg, latency_max)
SELECT check_id, :hour, site_id, link_id, kind,
       SUM(severity = 'OK'), SUM(severity = 'WARN'), SUM(severity = 'CRIT'),
       SUM(severity = 'UNKNOWN'),
       COUNT(latency_ms), MIN(latency_ms), AVG(latency_ms), MAX(latency_ms)
FROM results WHERE started_at >= :hour AND started_at < :end
GROUP BY check_id
ON CONFLICT (check_id, hour) DO UPDATE SET
    ok = ok + excluded.ok,
    warn = warn + excluded.warn,
    crit = crit + excluded.crit,
    unknown = unknown + excluded.unknown,
    latency_count = latency_count + excluded.latency_count,
    latency_min = COALESCE(MIN(latency_min, excluded.latency_min), latency_min,
                           excluded.latency_min),
    latency_max = COALESCE(MAX(latency_max, excluded.latency_max), latency_max,
                           excluded.latency_max),
    latency_avg = CASE WHEN latency_count + excluded.latency_count = 0 THEN NULL
        ELSE (COALESCE(latency_avg, 0) * latency_count
              + COALESCE(excluded.latency_avg, 0) * excluded.latency_count)
             / (latency_count + excluded.latency_count) END
"""

# Old rows go in slices so one maintenance step never holds the write lock for long.
_DELETE_SLICE = 5000


class HistoryStore:
    """One connection to the history database, for the thread that opened it."""

    def __init__(self, path: Path | str, *, create: bool = False) -> None:
        self.path = Path(path)
        try:
            self._db = _connect(self.path, create)
        except sqlite3.Error as exc:
            raise HistoryError(f"{self.path}: cannot open the history database: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- writing (the writer thread; tests may call these directly) --------------------------

    def write(
        self,
        results: Iterable[ProbeResult] = (),
        events: Iterable[Event] = (),
        *,
        heartbeat: tuple[int, float] | None = None,
    ) -> None:
        """Store results and events in one transaction: all of them, or none on error.
        `heartbeat` (run id, time): that run was watching until then."""
        with self._transaction():
            self._db.executemany(_INSERT_RESULT, (_result_row(r) for r in results))
            self._db.executemany(_INSERT_EVENT, (_event_row(e) for e in events))
            if heartbeat is not None:
                self._db.execute(
                    "UPDATE runs SET last_at = MAX(last_at, ?) WHERE id = ?", heartbeat[::-1]
                )

    def start_run(self, at: float, scope: str | None = None) -> int:
        """Record a run starting at `at`; its id, for `write(heartbeat=...)` and `end_run`."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO runs (started_at, last_at, scope) VALUES (?, ?, ?)", (at, at, scope)
            )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def end_run(self, run_id: int, at: float) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE runs SET last_at = MAX(last_at, ?), ended_at = MAX(last_at, ?) "
                "WHERE id = ?",
                (at, at, run_id),
            )

    def maintenance_steps(
        self, now: float, config: HistoryConfig
    ) -> Generator[None, None, MaintenanceStats]:
        """Downsample then prune, one short transaction per step, so that a caller can
        interleave its own writes between steps; the generator returns what was done."""
        stats = MaintenanceStats()
        # Whole hours only: an hour is folded once all of it is older than downsample_after.
        cutoff = math.floor((now - config.downsample_after) / HOUR) * HOUR
        while True:
            first = self._db.execute(
                "SELECT MIN(started_at) FROM results WHERE started_at < ?", (cutoff,)
            ).fetchone()[0]
            if first is None:
                break
            hour = math.floor(first / HOUR) * HOUR
            with self._transaction():
                self._db.execute(_DOWNSAMPLE, {"hour": hour, "end": hour + HOUR})
                folded = self._db.execute(
                    "DELETE FROM results WHERE started_at >= ? AND started_at < ?",
                    (hour, hour + HOUR),
                ).rowcount
            stats = dataclasses.replace(
                stats, downsampled_results=stats.downsampled_results + folded
            )
            yield
        oldest = now - config.retention
        for table, condition, attribute in (
            ("results", "started_at < ?", "deleted_results"),
            # An hour goes once all of it is older than the retention.
            ("results_hourly", f"hour + {HOUR} <= ?", "deleted_hourly"),
            ("events", "at < ?", "deleted_events"),
            ("runs", "COALESCE(ended_at, last_at) < ?", "deleted_runs"),
        ):
            deleted = _DELETE_SLICE
            while deleted == _DELETE_SLICE:
                with self._transaction():
                    deleted = self._db.execute(
                        f"DELETE FROM {table} WHERE rowid IN "
                        f"(SELECT rowid FROM {table} WHERE {condition} LIMIT {_DELETE_SLICE})",
                        (oldest,),
                    ).rowcount
                stats = dataclasses.replace(
                    stats, **{attribute: getattr(stats, attribute) + deleted}
                )
                yield
        return stats

    def maintain(self, now: float, config: HistoryConfig) -> MaintenanceStats:
        """All of maintenance at once (tests, and a store no writer is running on)."""
        steps = self.maintenance_steps(now, config)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # --- reading -----------------------------------------------------------------------------

    def recent_results(self, check_id: str, limit: int = 100) -> list[StoredResult]:
        """The latest `limit` results of one check, oldest first."""
        rows = self._db.execute(
            f"SELECT {_RESULT_COLUMNS} FROM results WHERE check_id = ? "
            "ORDER BY started_at DESC LIMIT ?",
            (check_id, limit),
        ).fetchall()
        return [_stored_result(row) for row in reversed(rows)]

    def results_since(self, since: float, until: float | None = None) -> list[StoredResult]:
        """Raw results started in [since, until), oldest first (older ones are hourly rows)."""
        rows = self._db.execute(
            f"SELECT {_RESULT_COLUMNS} FROM results WHERE started_at >= ? AND started_at < ? "
            "ORDER BY started_at, id",
            (since, math.inf if until is None else until),
        ).fetchall()
        return [_stored_result(row) for row in rows]

    def hourly_since(self, since: float, until: float | None = None) -> list[HourlyResults]:
        rows = self._db.execute(
            "SELECT check_id, site_id, link_id, kind, hour, ok, warn, crit, unknown, "
            "latency_count, latency_min, latency_avg, latency_max FROM results_hourly "
            "WHERE hour >= ? AND hour < ? ORDER BY hour, check_id",
            (since, math.inf if until is None else until),
        ).fetchall()
        return [
            HourlyResults(
                *row[:5],
                counts={s: n for s, n in zip(Severity, row[5:9], strict=True)},
                latency_count=row[9],
                latency_min=row[10],
                latency_avg=row[11],
                latency_max=row[12],
            )
            for row in rows
        ]

    def events_since(
        self, since: float, until: float | None = None, kinds: Iterable[EventKind] | None = None
    ) -> list[Event]:
        """Events at or after `since` and before `until`, oldest first."""
        wanted = [str(k) for k in (EventKind if kinds is None else kinds)]
        rows = self._db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE at >= ? AND at < ? "
            f"AND kind IN ({', '.join('?' * len(wanted))}) ORDER BY at, id",
            (since, math.inf if until is None else until, *wanted),
        ).fetchall()
        return [_event(row) for row in rows]

    def last_events_before(self, at: float, kind: EventKind = EventKind.HARD) -> list[Event]:
        """Each subject's latest event of `kind` strictly before `at`: its state at `at`."""
        # SQLite takes the bare columns from the row holding MAX(at).
        rows = self._db.execute(
            "SELECT MAX(at), subject, subject_id, site_id, kind, before, after, cause, "
            "suppressed FROM events WHERE at < ? AND kind = ? GROUP BY subject, subject_id",
            (at, str(kind)),
        ).fetchall()
        return [_event(row) for row in rows]

    def subject_events_before(
        self, subject: Subject, subject_id: str, at: float, kind: EventKind = EventKind.HARD
    ) -> Iterator[Event]:
        """One subject's events of `kind` strictly before `at`, newest first."""
        rows = self._db.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE subject = ? AND subject_id = ? "
            "AND at < ? AND kind = ? ORDER BY at DESC, id DESC",
            (str(subject), subject_id, at, str(kind)),
        )
        return (_event(row) for row in rows)

    def runs(self, since: float, until: float) -> list[Run]:
        """The runs that watched any of [since, until), oldest first."""
        rows = self._db.execute(
            "SELECT started_at, last_at, ended_at, scope, learned FROM runs "
            "WHERE started_at < ? AND COALESCE(ended_at, last_at) > ? ORDER BY started_at, id",
            (until, since),
        ).fetchall()
        return [Run(a, b, c, scope, bool(learned)) for a, b, c, scope, learned in rows]

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
            f"SELECT site_id, link_id, hour, {_HOURLY_SEVERITY} FROM results_hourly "
            "WHERE check_id = ? AND hour > ? AND hour < ? ORDER BY hour LIMIT 1",
            (check_id, since - HOUR, until),
        ).fetchone()
        found = [
            ResultState(row[0], row[1], max(since, row[2]), Severity[row[3]])
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
            f"UNION ALL SELECT check_id, site_id, link_id, hour, {_HOURLY_SEVERITY} "
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
                states.setdefault(check_id, ResultState(site_id, link_id, t, Severity[severity]))
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
                LatencyPoint(started_at, Severity[severity], latency)
            )
        return series


# --- the writer ----------------------------------------------------------------------------


class HistoryWriter:
    """Stores results and events from the event loop without ever blocking it.

    `add_result`/`add_event` only append to a bounded queue and return a sequence number; one
    thread owns the writing connection and commits batches (up to `max_batch` rows, or whatever
    arrived within `max_delay` of the first). After each commit, `acknowledged` is the highest
    sequence number at or below which everything is stored, and `on_acknowledged` (if given) is
    called with it from the writer thread.

    When the disk stalls (or a write keeps failing, e.g. the database is locked or full), the
    writer keeps retrying the same batch and the queue fills. A full queue REJECTS the newest
    item: `add_*` returns None, `rejected_results`/`rejected_events` count it, and a warning is
    logged once per stall. Rejecting the newest rather than dropping the oldest keeps the
    acknowledgement exact: every item that got a number is stored before anything after it is
    acknowledged. Probing never waits for the disk; the queue's memory stays bounded.

    Maintenance (downsampling, retention) runs in the same thread every `maintenance_interval`
    and on `request_maintenance()`, one short transaction at a time between batches.

    The writer records its run in `runs`: from `start()`, with `run_scope` (what the run
    watches, as the caller's JSON), a heartbeat with every commit and at least every
    `heartbeat` seconds, and its end at `close()`.
    """

    def __init__(
        self,
        config: HistoryConfig,
        *,
        max_batch: int = 500,
        max_delay: float = 0.2,
        capacity: int = 50_000,
        maintenance_interval: float = HOUR,
        on_acknowledged: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
        retry_delay: float = 1.0,
        run_scope: str | None = None,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.config = config
        self._run_scope = run_scope
        self._heartbeat = heartbeat
        self._run_id: int | None = None  # recorded with the first commit: start() takes no lock
        self._started_at = 0.0
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._capacity = capacity
        self._maintenance_interval = maintenance_interval
        self._on_acknowledged = on_acknowledged
        self._clock = clock
        self._retry_delay = retry_delay
        self._lock = threading.Condition()
        self._results: collections.deque[tuple[int, ProbeResult]] = collections.deque()
        self._events: collections.deque[tuple[int, Event]] = collections.deque()
        self._in_flight: list[int] = []  # sequence numbers taken but not yet committed
        self._last_seq = 0
        self._acknowledged = 0
        self._stopping = False
        self._stalled = False
        self.rejected_results = 0
        self.rejected_events = 0
        self._maintenance_waiters: list[concurrent.futures.Future[MaintenanceStats]] = []
        self._maintenance_requested = False
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None

    # --- the event loop's side ---------------------------------------------------------------

    def start(self) -> None:
        """Open (creating if needed) the database in the writer thread; raises HistoryError
        here, at start-up, when the path is unusable."""
        self._thread = threading.Thread(target=self._run, name="commwatch-history", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:
            self._thread.join()
            raise self._open_error

    def add_result(self, result: ProbeResult) -> int | None:
        return self._add(self._results, result)

    def add_event(self, event: Event) -> int | None:
        return self._add(self._events, event)

    def _add(self, queue: collections.deque[tuple[int, Any]], item: Any) -> int | None:
        with self._lock:
            if len(queue) >= self._capacity:
                if queue is self._results:
                    self.rejected_results += 1
                else:
                    self.rejected_events += 1
                if not self._stalled:
                    self._stalled = True
                    log.warning(
                        "history: %s is not keeping up; new results and events are not "
                        "stored until it does",
                        self.config.path,
                    )
                return None
            self._last_seq += 1
            queue.append((self._last_seq, item))
            if len(self._results) + len(self._events) == 1 or self._full_batch():
                self._lock.notify_all()
            return self._last_seq

    @property
    def acknowledged(self) -> int:
        with self._lock:
            return self._acknowledged

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._results) + len(self._events) + len(self._in_flight)

    def wait_acknowledged(self, seq: int, timeout: float | None = None) -> bool:
        """Block (a thread, not the loop) until `seq` is stored; False on timeout or if the
        writer stopped first."""
        with self._lock:
            return self._lock.wait_for(
                lambda: self._acknowledged >= seq or not self._alive(), timeout
            ) and (self._acknowledged >= seq)

    async def flush(self) -> None:
        """Wait until everything added so far is stored."""
        with self._lock:
            seq = self._last_seq
        await asyncio.to_thread(self.wait_acknowledged, seq)

    def request_maintenance(self) -> concurrent.futures.Future[MaintenanceStats]:
        """Downsample and prune now; the future completes when done (`asyncio.wrap_future`
        makes it awaitable)."""
        future: concurrent.futures.Future[MaintenanceStats] = concurrent.futures.Future()
        with self._lock:
            self._maintenance_waiters.append(future)
            self._maintenance_requested = True
            self._lock.notify_all()
        return future

    def close(self, timeout: float | None = 10.0) -> bool:
        """Store what is queued, then stop; False if that did not finish within `timeout`
        (the thread is a daemon and never holds the process up)."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("history: %d results and events were not stored before exit", self.queued)
            return False
        return True

    async def aclose(self, timeout: float | None = 10.0) -> bool:
        return await asyncio.to_thread(self.close, timeout)

    # --- the writer thread -------------------------------------------------------------------

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _full_batch(self) -> bool:
        return len(self._results) + len(self._events) >= self._max_batch

    def _run(self) -> None:
        try:
            store = HistoryStore(self.config.path, create=True)
        except BaseException as exc:
            self._open_error = exc
            self._opened.set()
            return
        self._started_at = self._clock()
        self._opened.set()
        try:
            self._loop(store)
        finally:
            try:
                store.end_run(self._run_of(store), self._clock())
            except sqlite3.Error as exc:
                # The last heartbeat stands for its end: a report counts no more than that.
                log.error("history: cannot record the end of this run: %s", exc)
            store.close()
            with self._lock:
                self._lock.notify_all()

    def _loop(self, store: HistoryStore) -> None:
        # Maintenance starts with the writer: a commwatch restarted daily still gets it.
        next_maintenance = self._clock()
        steps: Generator[None, None, MaintenanceStats] | None = None
        waiters: list[concurrent.futures.Future[MaintenanceStats]] = []
        next_heartbeat = self._clock() + self._heartbeat
        while True:
            batch = self._take_batch(
                busy=steps is not None, wake_at=min(next_maintenance, next_heartbeat)
            )
            if batch is None:
                with self._lock:
                    waiters += self._maintenance_waiters
                for waiter in waiters:
                    waiter.cancel()
                return
            results, events = batch
            if results or events or self._clock() >= next_heartbeat:
                self._store(store, results, events)
                next_heartbeat = self._clock() + self._heartbeat
            with self._lock:
                if self._maintenance_requested:
                    self._maintenance_requested = False
                    waiters += self._maintenance_waiters
                    self._maintenance_waiters.clear()
                    # A cycle under way may have passed rows written since: start afresh.
                    steps = None
                    next_maintenance = self._clock()
            if steps is None and self._clock() >= next_maintenance:
                steps = store.maintenance_steps(self._clock(), self.config)
            if steps is not None:
                try:
                    next(steps)
                except StopIteration as done:
                    steps = None
                    next_maintenance = self._clock() + self._maintenance_interval
                    log.info("history: maintenance done: %s", done.value)
                    for waiter in waiters:
                        waiter.set_result(done.value)
                    waiters = []
                except sqlite3.Error as exc:
                    steps = None
                    next_maintenance = self._clock() + self._maintenance_interval
                    log.error("history: maintenance failed: %s", exc)
                    for waiter in waiters:
                        waiter.set_exception(HistoryError(f"maintenance failed: {exc}"))
                    waiters = []

    def _run_of(self, store: HistoryStore) -> int:
        if self._run_id is None:
            self._run_id = store.start_run(self._started_at, self._run_scope)
        return self._run_id

    def _take_batch(
        self, busy: bool, wake_at: float
    ) -> tuple[list[ProbeResult], list[Event]] | None:
        """The next batch to write; an empty one when maintenance or the heartbeat wants a
        turn (at `wake_at`); None to stop."""
        with self._lock:
            if not busy:
                self._lock.wait_for(
                    lambda: (
                        self._results
                        or self._events
                        or self._stopping
                        or self._maintenance_requested
                    ),
                    timeout=max(0.0, wake_at - self._clock()),
                )
            if (self._results or self._events) and not self._stopping:
                # Give a trickle up to max_delay to become a batch: one commit, not hundreds.
                self._lock.wait_for(
                    lambda: self._full_batch() or self._stopping, timeout=self._max_delay
                )
            if self._stopping and not (self._results or self._events):
                return None
            results: list[ProbeResult] = []
            events: list[Event] = []
            # In sequence order, so each commit acknowledges everything it wrote.
            while (self._results or self._events) and len(self._in_flight) < self._max_batch:
                if not self._events or (self._results and self._results[0] < self._events[0]):
                    seq, result = self._results.popleft()
                    results.append(result)
                else:
                    seq, event = self._events.popleft()
                    events.append(event)
                self._in_flight.append(seq)
            return results, events

    def _store(self, store: HistoryStore, results: list[ProbeResult], events: list[Event]) -> None:
        failing = False
        while True:
            try:
                store.write(results, events, heartbeat=(self._run_of(store), self._clock()))
                break
            except sqlite3.Error as exc:
                if not failing:
                    log.error("history: cannot write to %s (retrying): %s", store.path, exc)
                    failing = True
                # A stop request does not end the retries: close()'s timeout bounds them.
                time.sleep(self._retry_delay)
        if failing:
            log.warning("history: writing to %s again", store.path)
        with self._lock:
            self._in_flight.clear()
            waiting = [q[0][0] for q in (self._results, self._events) if q]
            self._acknowledged = min(waiting) - 1 if waiting else self._last_seq
            acknowledged = self._acknowledged
            if self._stalled and len(self._results) + len(self._events) < self._capacity // 2:
                self._stalled = False
            self._lock.notify_all()
        if self._on_acknowledged is not None:
            self._on_acknowledged(acknowledged)
