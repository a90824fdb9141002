"""`commwatch report`: availability per check, link and group, from the history store.

Time in each state comes from the stored HARD events of each subject: the state at the start of
the window is the `after` of its last event before the window, else the `before` of its first
event in the window (unless that is a first state, from PENDING: then nothing is known before
it); a check (or link) with no events at all takes the state its stored results
show. Time under maintenance is left out of every figure.

Outages are spans in an outage state: CRIT for a check, DOWN for a group, and for a link either
(its state is the worst severity of its checks by default, or DOWN). Their duration runs from
when they began, even before the window, to recovery, less any maintenance; the mean time to
recover averages the outages that recovered within the window. Availability is the share of the
observed time (not under maintenance, state known) spent neither in an outage nor UNKNOWN:
not knowing is not counted as being available.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.events import PENDING, Event, EventKind, Subject
from monitor.history import HistoryStore, ResultState
from monitor.model import Severity
from monitor.output import iso_time
from monitor.text import printable, spreadsheet_cell

SCHEMA_VERSION = 1
FORMATS = ("table", "json", "csv")
OUTAGE_STATES: Mapping[Subject, frozenset[str]] = {
    Subject.CHECK: frozenset({"CRIT"}),
    Subject.LINK: frozenset({"CRIT", "DOWN"}),
    Subject.GROUP: frozenset({"DOWN"}),
}
UNKNOWN_STATE = Severity.UNKNOWN.name
# The order states are listed in; others (from a later state engine) follow alphabetically.
_STATE_ORDER = ("OK", "WARN", "CRIT", "UNKNOWN", "RESILIENT", "DEGRADED", "AT RISK", "DOWN")
_SUBJECT_ORDER = {Subject.GROUP: 0, Subject.LINK: 1, Subject.CHECK: 2}

# (subject_id, start, end): the caller's maintenance windows, already resolved to intervals.
MaintenanceWindow = tuple[str, float, float]


@dataclass(frozen=True)
class Outage:
    start: float  # may lie before the window
    end: float | None  # None: still going at the end of the window
    duration_s: float  # start to end (or the window's end), less maintenance


@dataclass(frozen=True)
class SubjectAvailability:
    subject: Subject
    subject_id: str
    site_id: str
    source: str  # "events", "results" or "none": where its states came from
    time_in_state: Mapping[str, float]  # seconds in the window, outside maintenance
    maintenance_s: float
    no_data_s: float  # before anything was known about it
    outages: tuple[Outage, ...]
    state_at_end: str | None

    @property
    def observed_s(self) -> float:
        return sum(self.time_in_state.values())

    @property
    def outage_s(self) -> float:
        """Time in an outage state within the window."""
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
    subjects: tuple[SubjectAvailability, ...]  # groups, then links, then checks


# --- intervals -----------------------------------------------------------------------------


def _merge(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _covered(start: float, end: float, intervals: Sequence[tuple[float, float]]) -> float:
    """How much of [start, end) the (merged) intervals cover."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in intervals)


def _outside(start: float, end: float, intervals: Sequence[tuple[float, float]]) -> float:
    return max(0.0, end - start) - _covered(start, end, intervals)


# --- building ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timeline:
    source: str
    known_from: float  # when the first state begins (the window's start, or later)
    initial: str | None
    outage_began: float | None  # when an outage under way at known_from began, if known
    changes: tuple[tuple[float, str], ...]  # (at, state after) within the window


def _timeline(
    subject: Subject,
    site_link: tuple[str, str] | None,
    subject_id: str,
    prior: Event | None,
    events: Sequence[Event],
    results: Mapping[str, ResultState],
    since: float,
) -> _Timeline:
    changes = tuple((e.at, e.after) for e in events)
    if prior is not None:
        return _Timeline("events", since, prior.after, prior.at, changes)
    if events and events[0].before == PENDING:  # nothing was known before its first state
        return _Timeline("events", events[0].at, events[0].after, None, changes[1:])
    if events:
        return _Timeline("events", since, events[0].before, None, changes)
    if subject is Subject.CHECK:
        members = [results[subject_id]] if subject_id in results else []
    elif subject is Subject.LINK and site_link is not None:
        # A link's default rule: the worst severity of its checks.
        members = [r for r in results.values() if (r.site_id, r.link_id) == site_link]
    else:
        members = []
    if not members:
        return _Timeline("none", since, None, None, ())
    worst = Severity.worst(r.severity for r in members)
    return _Timeline("results", max(since, min(r.since for r in members)), worst.name, None, ())


def _availability(
    subject: Subject,
    subject_id: str,
    site_id: str,
    timeline: _Timeline,
    maintenance: Sequence[tuple[float, float]],
    since: float,
    until: float,
) -> SubjectAvailability:
    window_maintenance = _covered(since, until, maintenance)
    if timeline.initial is None:
        return SubjectAvailability(
            subject,
            subject_id,
            site_id,
            timeline.source,
            {},
            window_maintenance,
            _outside(since, until, maintenance),
            (),
            None,
        )
    outage_states = OUTAGE_STATES[subject]
    time_in_state: dict[str, float] = {}
    outages: list[Outage] = []
    state = timeline.initial
    began = timeline.known_from
    outage_start = (
        (timeline.outage_began or timeline.known_from) if state in outage_states else None
    )

    def close_outage(end: float | None) -> None:
        assert outage_start is not None
        duration = _outside(outage_start, until if end is None else end, maintenance)
        if duration > 0:  # an outage wholly under maintenance is not one
            outages.append(Outage(outage_start, end, duration))

    for at, after in (*timeline.changes, (until, None)):
        time_in_state[state] = time_in_state.get(state, 0.0) + _outside(began, at, maintenance)
        if after is None:
            break
        if outage_start is None and after in outage_states:
            outage_start = at
        elif outage_start is not None and after not in outage_states:
            close_outage(at)
            outage_start = None
        state, began = after, at
    if outage_start is not None:
        close_outage(None)
    return SubjectAvailability(
        subject,
        subject_id,
        site_id,
        timeline.source,
        {s: t for s, t in time_in_state.items() if t > 0},
        window_maintenance,
        _outside(since, timeline.known_from, maintenance),
        tuple(outages),
        state,
    )


def build_report(
    store: HistoryStore,
    *,
    since: float,
    until: float,
    maintenance: Iterable[MaintenanceWindow] = (),
    subjects: Iterable[tuple[Subject, str, str]] = (),
    generated_at: float | None = None,
) -> AvailabilityReport:
    """Availability of every subject with stored events or results in [since, until), plus
    `subjects` ((subject, subject_id, site_id), e.g. from the inventory) that have none."""
    events = store.events_since(since, until, kinds=[EventKind.HARD])
    prior = {(e.subject, e.subject_id): e for e in store.last_events_before(since)}
    results = store.result_states(since, until)
    by_subject: dict[tuple[Subject, str], list[Event]] = {}
    sites: dict[tuple[Subject, str], str] = {}
    for event in (*prior.values(), *events):
        sites[(event.subject, event.subject_id)] = event.site_id
    for event in events:
        by_subject.setdefault((event.subject, event.subject_id), []).append(event)
    links: dict[str, tuple[str, str]] = {}
    for check_id, state in results.items():
        sites.setdefault((Subject.CHECK, check_id), state.site_id)
        link_id = f"{state.site_id}/{state.link_id}"
        sites.setdefault((Subject.LINK, link_id), state.site_id)
        links[link_id] = (state.site_id, state.link_id)
    for subject, subject_id, site_id in subjects:
        sites.setdefault((subject, subject_id), site_id)
    windows: dict[str, list[tuple[float, float]]] = {}
    for subject_id, start, end in maintenance:
        windows.setdefault(subject_id, []).append((start, end))
    report = []
    for key in sorted(sites, key=lambda k: (sites[k], _SUBJECT_ORDER[k[0]], k[1])):
        subject, subject_id = key
        timeline = _timeline(
            subject,
            links.get(subject_id),
            subject_id,
            prior.get(key),
            by_subject.get(key, []),
            results,
            since,
        )
        report.append(
            _availability(
                subject,
                subject_id,
                sites[key],
                timeline,
                _merge(windows.get(subject_id, [])),
                since,
                until,
            )
        )
    return AvailabilityReport(
        until if generated_at is None else generated_at,
        since,
        until,
        str(store.path),
        tuple(report),
    )


# --- rendering -----------------------------------------------------------------------------


def span(seconds: float | None) -> str:
    """A duration a person reads at a glance: 45s, 12m05s, 3h02m, 2d04h."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _states(report: AvailabilityReport) -> list[str]:
    seen = {state for s in report.subjects for state in s.time_in_state}
    known = [state for state in _STATE_ORDER if state in seen]
    return known + sorted(seen - set(known))


def _pct(value: float | None) -> str:
    return "no data" if value is None else f"{value:.3f}%"


def render_table(report: AvailabilityReport) -> str:
    header = ["SUBJECT", "ID", "AVAILABLE", "OUTAGES", "DOWNTIME", "MTTR", "NOW", "TIME IN STATE"]
    rows = []
    for s in report.subjects:
        shares = ", ".join(
            f"{state} {100 * s.time_in_state[state] / s.observed_s:.1f}%"
            for state in _states(report)
            if state in s.time_in_state
        )
        rows.append(
            [
                str(s.subject),
                # From the history database: not necessarily written by this inventory.
                printable(s.subject_id),
                _pct(s.availability_pct),
                str(len(s.outages)) + ("+" if s.outages and s.outages[-1].end is None else ""),
                span(s.outage_s),
                span(s.mttr_s),
                s.state_at_end or "-",
                shares,
            ]
        )
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines = [
        f"Availability {iso_time(report.since)} .. {iso_time(report.until)} "
        f"({span(report.until - report.since)}) from {report.database}",
        "",
    ]
    lines += [
        "  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in [header, *rows]
    ]
    if not rows:
        lines.append("(nothing recorded in this period)")
    lines += ["", "OUTAGES: a trailing + means one is still going. MTTR: mean time to recover."]
    return "\n".join(lines)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


def report_to_dict(report: AvailabilityReport) -> dict[str, Any]:
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
                "no_data_s": _seconds(s.no_data_s),
                "time_in_state": {
                    state: _seconds(s.time_in_state[state])
                    for state in _states(report)
                    if state in s.time_in_state
                },
                "availability_pct": None
                if s.availability_pct is None
                else round(s.availability_pct, 4),
                "state_at_end": s.state_at_end,
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
            "no_data_s",
            "availability_pct",
            "outages",
            "downtime_s",
            "mttr_s",
            "state_at_end",
            *(f"{state.lower().replace(' ', '_')}_s" for state in states),
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
                cell(s.no_data_s),
                "" if s.availability_pct is None else f"{s.availability_pct:.4f}",
                len(s.outages),
                cell(s.outage_s),
                cell(s.mttr_s),
                s.state_at_end or "",
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
