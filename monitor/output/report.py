"""`commwatch report`: availability per group, link and check, from the history store.

The states are the state engine's own: the HARD events it stored for every check, link and group
(first states included, from PENDING). So the report shows what the live view showed, judged by
the same rules (`availability_from`, `min_up`): it never works a link or group out a second time.

Only observed time counts. commwatch was watching during its runs (history records each one and
what it watched; runs from before that are learned from the results): time outside every run is
not observed, and so is time in a run before a subject's first state. At a run's start a subject
has the state it had before (the engine restores it), unless the run's first event for it comes
from PENDING: it was evaluated afresh and is not known until that event. Time in a maintenance
window (those each run had in force, and the INVENTORY's) is left out of every figure.

History written before first states were events: a subject whose first event in a run does not
come from PENDING had that event's `before` from its first result in the run (a check) or the
run's start; a check with no events at all has the state of its first result in each run.

Outages are spans in an outage state: CRIT for a check, DOWN for a link or group. One lasts from
when it began, even before the period, until the subject is seen out of it; a gap in watching
does not end it, but its duration counts observed time only, less maintenance, and one wholly
under maintenance is none. The mean time to recover averages the outages that ended in the
period. Availability is the share of observed time spent neither in an outage nor UNKNOWN.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.core.events import (
    PENDING,
    CheckStatus,
    Event,
    EventKind,
    GroupStatus,
    LinkStatus,
    Subject,
)
from monitor.core.text import duration_text, printable, spreadsheet_cell
from monitor.output.render import iso_time
from monitor.store.history import HistoryStore
from monitor.store.runs import Run, RunScope, Watched, merge_spans

SCHEMA_VERSION = 2
FORMATS = ("table", "json", "csv")
OUTAGE_STATES: Mapping[Subject, frozenset[str]] = {
    Subject.CHECK: frozenset({CheckStatus.CRIT}),
    Subject.LINK: frozenset({LinkStatus.DOWN}),
    Subject.GROUP: frozenset({GroupStatus.DOWN}),
}
# Not knowing has one word for every kind of subject (each status enum has UNKNOWN).
UNKNOWN_STATE = CheckStatus.UNKNOWN
# The order states are listed in; others (from a later state engine) follow alphabetically.
_STATE_ORDER: tuple[str, ...] = (
    *CheckStatus,
    LinkStatus.UP,
    LinkStatus.DOWN,
    GroupStatus.RESILIENT,
    GroupStatus.DEGRADED,
    GroupStatus.AT_RISK,
)
_SUBJECT_ORDER = {Subject.GROUP: 0, Subject.LINK: 1, Subject.CHECK: 2}

Span = tuple[float, float]
Key = tuple[Subject, str]


@dataclass(frozen=True)
class Outage:
    start: float  # may lie before the period
    end: float | None  # None: still going when last seen
    duration_s: float  # observed time in it, less maintenance (before the period too)


@dataclass(frozen=True)
class SubjectAvailability:
    subject: Subject
    subject_id: str
    site_id: str
    source: str  # "events", "results" or "none": where its states came from
    time_in_state: Mapping[str, float]  # observed seconds in the period, outside maintenance
    maintenance_s: float
    not_observed_s: float  # outside maintenance: commwatch not running, or no state yet
    outages: tuple[Outage, ...]
    last_state: str | None  # the last state seen in the period

    @property
    def observed_s(self) -> float:
        return sum(self.time_in_state.values())

    @property
    def outage_s(self) -> float:
        """Time in an outage state within the period."""
        outage_states = OUTAGE_STATES[self.subject]
        return sum(s for state, s in self.time_in_state.items() if state in outage_states)

    @property
    def availability_pct(self) -> float | None:
        if self.observed_s <= 0:
            return None
        unknown = self.time_in_state.get(UNKNOWN_STATE, 0.0)
        return 100.0 * (self.observed_s - self.outage_s - unknown) / self.observed_s

    @property
    def mttr_s(self) -> float | None:
        recovered = [o.duration_s for o in self.outages if o.end is not None]
        return sum(recovered) / len(recovered) if recovered else None


@dataclass(frozen=True)
class AvailabilityReport:
    generated_at: float
    since: float
    until: float
    database: str
    runs: int  # runs that watched some of the period
    watched_s: float  # how much of the period commwatch was watching
    subjects: tuple[SubjectAvailability, ...]  # per site: groups, then links, then checks


# --- intervals -----------------------------------------------------------------------------


def _covered(start: float, end: float, spans: Sequence[Span]) -> float:
    """How much of [start, end) the (merged) spans cover."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


def _outside(start: float, end: float, spans: Sequence[Span]) -> float:
    return max(0.0, end - start) - _covered(start, end, spans)


# --- timelines -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    start: float
    end: float
    state: str


@dataclass(frozen=True)
class _ScopedRun:
    start: float
    end: float
    scope: RunScope | None  # None: not known what it watched (anything with events did)
    watched: frozenset[Key] | None


def _scoped_runs(runs: Iterable[Run], inventory: RunScope | None) -> list[_ScopedRun]:
    scoped = []
    for run in runs:
        scope = RunScope.from_json(run.scope) if run.scope else None
        scope = scope or inventory  # a learned (or unreadable) run: the inventory's, if given
        watched = (
            None if scope is None else frozenset((w.subject, w.subject_id) for w in scope.subjects)
        )
        scoped.append(_ScopedRun(run.started_at, run.end, scope, watched))
    return scoped


def _timeline(
    key: Key,
    runs: Sequence[_ScopedRun],
    prior: Event | None,
    events: Sequence[Event],
    store: HistoryStore,
) -> tuple[list[_Segment], str]:
    """The subject's observed states, run by run, and where they came from."""
    subject, subject_id = key
    state = None if prior is None or prior.after == PENDING else prior.after
    segments: list[_Segment] = []
    source = "none"
    position = 0
    for run in runs:
        while position < len(events) and events[position].at < run.start:
            state = _after(events[position])  # recorded between runs (learned ones)
            position += 1
        in_run = []
        while position < len(events) and events[position].at < run.end:
            in_run.append(events[position])
            position += 1
        if run.watched is not None and key not in run.watched:
            continue
        first = in_run[0] if in_run else None
        current: str | None = None
        known_from = run.start
        if first is not None and first.before == PENDING:
            known_from = first.at  # evaluated afresh: nothing known before its first state
        elif state is not None:
            current = state  # restored, as the engine restores it
        elif first is not None:  # written before first states were events
            current = first.before
            if subject is Subject.CHECK:
                found = store.first_result(subject_id, run.start, run.end)
                known_from = run.start if found is None else found.since
        elif subject is Subject.CHECK:  # no events at all: its results say
            found = store.first_result(subject_id, run.start, run.end)
            if found is not None:
                current, known_from, source = found.severity.name, found.since, "results"
        for event in in_run:
            if current is not None and event.at > known_from:
                segments.append(_Segment(known_from, event.at, current))
            current, known_from = _after(event), max(known_from, event.at)
            source = "events"
        if current is not None and run.end > known_from:
            segments.append(_Segment(known_from, run.end, current))
        if in_run:
            state = _after(in_run[-1])
    if source == "none" and segments:
        source = "events"
    return segments, source


def _after(event: Event) -> str | None:
    return None if event.after == PENDING else event.after


def _availability(
    watched: Watched,
    segments: Sequence[_Segment],
    source: str,
    maintenance: Sequence[Span],
    since: float,
    until: float,
) -> SubjectAvailability:
    outage_states = OUTAGE_STATES[watched.subject]
    time_in_state: dict[str, float] = {}
    outages: list[Outage] = []
    outage_start: float | None = None
    outage_time = 0.0

    def close(end: float | None) -> None:
        if outage_start is not None and outage_time > 0 and (end is None or end > since):
            outages.append(Outage(outage_start, end, outage_time))

    for segment in segments:
        if segment.start >= until:
            break
        end = min(segment.end, until)
        inside = _outside(max(segment.start, since), end, maintenance)
        if inside > 0:
            time_in_state[segment.state] = time_in_state.get(segment.state, 0.0) + inside
        if segment.state in outage_states:
            if outage_start is None:
                outage_start, outage_time = segment.start, 0.0
            outage_time += _outside(segment.start, end, maintenance)
        elif outage_start is not None:
            close(segment.start)
            outage_start = None
    close(None)
    maintenance_s = _covered(since, until, maintenance)
    observed = sum(time_in_state.values())
    last = next((s.state for s in reversed(segments) if s.start < until and s.end > since), None)
    return SubjectAvailability(
        watched.subject,
        watched.subject_id,
        watched.site_id,
        source,
        time_in_state,
        maintenance_s,
        max(0.0, until - since - maintenance_s - observed),
        tuple(outages),
        last,
    )


def _read_from(store: HistoryStore, since: float) -> float:
    """How far back to read so that every outage under way at `since` is followed from when
    it began: the earliest event of its unbroken run of outage states."""
    start = since
    for last in store.last_events_before(since):
        outage_states = OUTAGE_STATES[last.subject]
        if last.after not in outage_states:
            continue
        for event in store.subject_events_before(last.subject, last.subject_id, since):
            if event.after not in outage_states:
                break
            start = min(start, event.at)
    return start


def build_report(
    store: HistoryStore,
    *,
    since: float,
    until: float,
    inventory: RunScope | None = None,
    generated_at: float | None = None,
) -> AvailabilityReport:
    """Availability in [since, until) of every subject the runs of that period watched, plus
    the inventory's (when given: its maintenance windows count too, and it stands for what a
    run learned from old results watched)."""
    start = _read_from(store, since)
    prior = {(e.subject, e.subject_id): e for e in store.last_events_before(start)}
    runs = _scoped_runs(store.runs(start, until), inventory)
    events: dict[Key, list[Event]] = {}
    for event in store.events_since(start, until, kinds=[EventKind.HARD]):
        events.setdefault((event.subject, event.subject_id), []).append(event)
    in_period = [r for r in runs if r.end > since]
    subjects: dict[Key, Watched] = {}
    for scope in [*(r.scope for r in in_period), inventory]:
        for w in scope.subjects if scope is not None else ():
            subjects.setdefault((w.subject, w.subject_id), w)
    for key, found in events.items():
        if any(e.at >= since for e in found):
            subjects.setdefault(key, Watched(*key, found[-1].site_id))
    if any(r.scope is None for r in in_period):
        # Nothing says what these runs watched: what they left behind does.
        for key, event in prior.items():
            subjects.setdefault(key, Watched(*key, event.site_id))
        for check_id, result in store.result_states(since, until).items():
            subjects.setdefault(
                (Subject.CHECK, check_id), Watched(Subject.CHECK, check_id, result.site_id)
            )
    report = []
    for key in sorted(subjects, key=lambda k: (subjects[k].site_id, _SUBJECT_ORDER[k[0]], k[1])):
        watched = subjects[key]
        segments, source = _timeline(key, runs, prior.get(key), events.get(key, []), store)
        maintenance = merge_spans(
            [
                *(
                    span
                    for run in runs
                    if run.scope is not None
                    for span in run.scope.maintenance(watched, run.start, run.end)
                ),
                *(inventory.maintenance(watched, start, until) if inventory else ()),
            ]
        )
        report.append(_availability(watched, segments, source, maintenance, since, until))
    watched_spans = merge_spans((max(r.start, since), min(r.end, until)) for r in in_period)
    return AvailabilityReport(
        until if generated_at is None else generated_at,
        since,
        until,
        str(store.path),
        len(in_period),
        _covered(since, until, watched_spans),
        tuple(report),
    )


# --- rendering -----------------------------------------------------------------------------


def span(seconds: float | None) -> str:
    """A duration for the report's tables; "-" where there is none."""
    return "-" if seconds is None else duration_text(seconds)


def _states(report: AvailabilityReport) -> list[str]:
    seen = {state for s in report.subjects for state in s.time_in_state}
    known = [state for state in _STATE_ORDER if state in seen]
    return known + sorted(seen - set(known))


def _pct(value: float | None, none: str = "no data") -> str:
    return none if value is None else f"{value:.3f}%"


def _observed_pct(report: AvailabilityReport, s: SubjectAvailability) -> float | None:
    period = report.until - report.since - s.maintenance_s
    return None if period <= 0 else 100.0 * s.observed_s / period


def render_table(report: AvailabilityReport) -> str:
    header = [
        "SUBJECT",
        "ID",
        "AVAILABLE",
        "OBSERVED",
        "OUTAGES",
        "DOWNTIME",
        "MTTR",
        "LAST",
        "TIME IN STATE",
    ]
    rows = []
    states = _states(report)
    for s in report.subjects:
        shares = ", ".join(
            f"{printable(state)} {100 * s.time_in_state[state] / s.observed_s:.1f}%"
            for state in states
            if state in s.time_in_state
        )
        rows.append(
            [
                str(s.subject),
                printable(s.subject_id),
                _pct(s.availability_pct),
                "-" if (observed := _observed_pct(report, s)) is None else f"{observed:.1f}%",
                str(len(s.outages)) + ("+" if s.outages and s.outages[-1].end is None else ""),
                span(s.outage_s),
                span(s.mttr_s),
                printable(s.last_state or "-"),
                shares,
            ]
        )
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    period = report.until - report.since
    watched = 100.0 * report.watched_s / period if period > 0 else 0.0
    lines = [
        f"Availability {iso_time(report.since)} .. {iso_time(report.until)} "
        f"({span(period)}) from {printable(report.database)}",
        f"commwatch was watching for {span(report.watched_s)} of it ({watched:.1f}%, "
        f"{report.runs} run{'' if report.runs == 1 else 's'}); the rest is not observed and "
        "counts neither for nor against anything.",
        "",
    ]
    lines += [
        "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in [header, *rows]
    ]
    if not rows:
        lines.append("(nothing recorded in this period)")
    lines += [
        "",
        "AVAILABLE: share of the observed time neither in an outage nor UNKNOWN. OBSERVED: share "
        "of the period (less maintenance) with a known state. OUTAGES: a trailing + means one is "
        "still going. MTTR: mean time to recover.",
    ]
    return "\n".join(lines)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def report_to_dict(report: AvailabilityReport) -> dict[str, Any]:
    states = _states(report)
    counts = {subject: 0 for subject in Subject}
    for s in report.subjects:
        counts[s.subject] += 1
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "availability-report",
        "generated_at": iso_time(report.generated_at),
        "since": iso_time(report.since),
        "until": iso_time(report.until),
        "window_s": _seconds(report.until - report.since),
        "database": report.database,
        "watching": {"runs": report.runs, "watched_s": _seconds(report.watched_s)},
        "summary": {
            "subjects": len(report.subjects),
            "groups": counts[Subject.GROUP],
            "links": counts[Subject.LINK],
            "checks": counts[Subject.CHECK],
            "outages": sum(len(s.outages) for s in report.subjects),
            "ongoing_outages": sum(1 for s in report.subjects for o in s.outages if o.end is None),
        },
        "subjects": [
            {
                "subject": str(s.subject),
                "id": s.subject_id,
                "site_id": s.site_id,
                "source": s.source,
                "observed_s": _seconds(s.observed_s),
                "maintenance_s": _seconds(s.maintenance_s),
                "not_observed_s": _seconds(s.not_observed_s),
                "time_in_state": {
                    state: _seconds(s.time_in_state[state])
                    for state in states
                    if state in s.time_in_state
                },
                "availability_pct": None
                if s.availability_pct is None
                else round(s.availability_pct, 4),
                "last_state": s.last_state,
                "outages": {
                    "count": len(s.outages),
                    "downtime_s": _seconds(s.outage_s),
                    "mttr_s": _seconds(s.mttr_s),
                    "list": [
                        {
                            "start": iso_time(o.start),
                            "end": None if o.end is None else iso_time(o.end),
                            "duration_s": _seconds(o.duration_s),
                        }
                        for o in s.outages
                    ],
                },
            }
            for s in report.subjects
        ],
    }


def render_csv(report: AvailabilityReport) -> str:
    states = _states(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "subject",
            "id",
            "site_id",
            "source",
            "observed_s",
            "maintenance_s",
            "not_observed_s",
            "availability_pct",
            "outages",
            "downtime_s",
            "mttr_s",
            "last_state",
            *(spreadsheet_cell(f"{state.lower().replace(' ', '_')}_s") for state in states),
        ]
    )

    def cell(value: float | None) -> str:
        return "" if value is None else f"{value:.3f}"

    for s in report.subjects:
        writer.writerow(
            [
                s.subject,
                spreadsheet_cell(s.subject_id),
                spreadsheet_cell(s.site_id),
                s.source,
                cell(s.observed_s),
                cell(s.maintenance_s),
                cell(s.not_observed_s),
                "" if s.availability_pct is None else f"{s.availability_pct:.4f}",
                len(s.outages),
                cell(s.outage_s),
                cell(s.mttr_s),
                spreadsheet_cell(s.last_state or ""),
                *(cell(s.time_in_state.get(state, 0.0)) for state in states),
            ]
        )
    return buffer.getvalue().rstrip("\n")


def render(report: AvailabilityReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report_to_dict(report), indent=2, allow_nan=False)
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)
