"""Downsampling and retention: raw results older than `downsample_after` fold into hourly
rows, everything older than `retention` goes (operators' controls too; the acknowledgements in
force stay, whatever their age: they end by themselves), one short transaction at a time so
that the writer's own commits interleave with maintenance and no step holds the write lock for
long."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from collections.abc import Generator
from dataclasses import dataclass

from monitor.config.inventory import HistoryConfig
from monitor.store.schema import DELETED_THROUGH_KEY, HOUR, raise_meta, transaction


@dataclass(frozen=True, slots=True)
class MaintenanceStats:
    downsampled_results: int = 0  # raw rows folded into results_hourly
    deleted_results: int = 0
    deleted_hourly: int = 0
    deleted_events: int = 0
    deleted_runs: int = 0
    deleted_controls: int = 0
    deleted_certificates: int = 0  # leaves no endpoint served within the retention


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


def maintenance_steps(
    db: sqlite3.Connection, now: float, config: HistoryConfig
) -> Generator[None, None, MaintenanceStats]:
    """Downsample then prune, one short transaction per step, so that a caller can
    interleave its own writes between steps; the generator returns what was done."""
    stats = yield from _downsample(db, now, config)
    return (yield from _prune(db, now, config, stats))


def _downsample(
    db: sqlite3.Connection, now: float, config: HistoryConfig
) -> Generator[None, None, MaintenanceStats]:
    stats = MaintenanceStats()
    # Whole hours only: an hour is folded once all of it is older than downsample_after.
    cutoff = math.floor((now - config.downsample_after) / HOUR) * HOUR
    while True:
        first = db.execute(
            "SELECT MIN(started_at) FROM results WHERE started_at < ?", (cutoff,)
        ).fetchone()[0]
        if first is None:
            return stats
        hour = math.floor(first / HOUR) * HOUR
        with transaction(db):
            db.execute(_DOWNSAMPLE, {"hour": hour, "end": hour + HOUR})
            ids = db.execute(
                "DELETE FROM results WHERE started_at >= ? AND started_at < ? RETURNING id",
                (hour, hour + HOUR),
            ).fetchall()
            _deleted(db, ids)
            folded = len(ids)
        stats = dataclasses.replace(stats, downsampled_results=stats.downsampled_results + folded)
        yield


def _deleted(db: sqlite3.Connection, ids: list[tuple[int]]) -> None:
    """Rows of the engine's stream are gone: a viewer's position before them cannot resume
    from the store (monitor.store.numbering)."""
    if ids:
        raise_meta(db, DELETED_THROUGH_KEY, max(row[0] for row in ids))


# What retention deletes: (table, what makes a row older than the cut-off, the count it adds to,
# whether its rows are items of the engine's stream).
_PRUNED = (
    ("results", "started_at < ?", "deleted_results", True),
    # An hour goes once all of it is older than the retention.
    ("results_hourly", f"hour + {HOUR} <= ?", "deleted_hourly", False),
    ("events", "at < ?", "deleted_events", True),
    ("controls", "at < ?", "deleted_controls", True),
    ("runs", "COALESCE(ended_at, last_at) < ?", "deleted_runs", False),
    # A leaf still served is seen again at every poll: only those long gone go.
    ("certificates_seen", "last_seen < ?", "deleted_certificates", False),
)


def _prune(
    db: sqlite3.Connection, now: float, config: HistoryConfig, stats: MaintenanceStats
) -> Generator[None, None, MaintenanceStats]:
    oldest = now - config.retention
    for table, condition, attribute, numbered in _PRUNED:
        deleted = _DELETE_SLICE
        while deleted == _DELETE_SLICE:
            with transaction(db):
                ids = db.execute(
                    f"DELETE FROM {table} WHERE rowid IN "
                    f"(SELECT rowid FROM {table} WHERE {condition} LIMIT {_DELETE_SLICE}) "
                    "RETURNING rowid",
                    (oldest,),
                ).fetchall()
                if numbered:
                    _deleted(db, ids)
            deleted = len(ids)
            stats = dataclasses.replace(stats, **{attribute: getattr(stats, attribute) + deleted})
            yield
    return stats
