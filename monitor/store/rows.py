"""Results and events as rows of the history tables, and what reads return.

A stored result is everything of a result but its certificates; its verdicts and observations
are JSON, read back leniently (rows outlive code). Event states are read back as the members
they name (monitor.core.events.state_label).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.core.events import Event, EventKind, Subject, Suppression, state_label
from monitor.core.model import ObservationValue, ProbeResult, Severity, Verdict
from probes import registry


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


def result_row(result: ProbeResult) -> tuple[Any, ...]:
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
        registry.main_latency(result),  # the kind's own, kept for sparklines and hourly figures
        json.dumps(dict(result.observations), separators=(",", ":")),
        json.dumps([_verdict_to_json(v) for v in result.verdicts], separators=(",", ":")),
    )


INSERT_RESULT = (
    "INSERT INTO results (id, check_id, site_id, link_id, kind, started_at, duration_ms, "
    "severity, summary, error_class, error_message, latency_ms, observations, verdicts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RESULT_COLUMNS = (
    "check_id, site_id, link_id, kind, started_at, duration_ms, severity, summary, error_class, "
    "error_message, latency_ms, observations, verdicts"
)


def stored_result(row: sqlite3.Row | tuple[Any, ...]) -> StoredResult:
    """A result from the columns RESULT_COLUMNS names, in that order."""
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


def event_row(event: Event) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.at,
        str(event.subject),
        event.subject_id,
        event.site_id,
        str(event.kind),
        str(event.before),
        str(event.after),
        event.cause,
        json.dumps([str(s) for s in event.suppressed]),
    )


# A replayed event (same subject, change and time) is the same event: stored once.
INSERT_EVENT = (
    "INSERT INTO events (id, event_id, at, subject, subject_id, site_id, kind, before, after, "
    "cause, suppressed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (event_id) DO NOTHING"
)
EVENT_COLUMNS = "at, subject, subject_id, site_id, kind, before, after, cause, suppressed"


def event_of_row(row: tuple[Any, ...]) -> Event:
    """An event from the columns EVENT_COLUMNS names, in that order."""
    subject = Subject(row[1])
    return Event(
        at=row[0],
        subject=subject,
        subject_id=row[2],
        site_id=row[3],
        kind=EventKind(row[4]),
        before=state_label(subject, row[5]),
        after=state_label(subject, row[6]),
        cause=row[7],
        suppressed=tuple(Suppression(s) for s in json.loads(row[8])),
    )


# The most frequent severity of an hour stands for it where one state per hour is needed.
HOURLY_SEVERITY = (
    "CASE WHEN ok >= warn AND ok >= crit AND ok >= unknown THEN 'OK' "
    "WHEN crit >= warn AND crit >= unknown THEN 'CRIT' "
    "WHEN warn >= unknown THEN 'WARN' ELSE 'UNKNOWN' END"
)
HOURLY_COLUMNS = (
    "check_id, site_id, link_id, kind, hour, ok, warn, crit, unknown, latency_count, "
    "latency_min, latency_avg, latency_max"
)


def hourly_results(row: tuple[Any, ...]) -> HourlyResults:
    """An hour of results from the columns HOURLY_COLUMNS names, in that order."""
    return HourlyResults(
        check_id=row[0],
        site_id=row[1],
        link_id=row[2],
        kind=row[3],
        hour=row[4],
        counts=dict(zip(Severity, row[5:9], strict=True)),
        latency_count=row[9],
        latency_min=row[10],
        latency_avg=row[11],
        latency_max=row[12],
    )
