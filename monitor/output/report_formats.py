"""How `commwatch report` writes an availability report: a table for people, JSON for machines
(`monitor/output/schema/report.schema.json`; change it only together with SCHEMA_VERSION), CSV
for spreadsheets. The figures themselves are `monitor.output.report`'s; the diversity section
(table and JSON; the CSV is one table of subjects) is `monitor.config.diversity`'s.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from monitor.config.diversity import GroupRisks
from monitor.core.events import CheckStatus, GroupStatus, LinkStatus, Subject
from monitor.core.text import duration_text, printable
from monitor.output import report_paths
from monitor.output.records import iso_time
from monitor.output.report import AvailabilityReport, SubjectAvailability
from monitor.output.spreadsheet import Cell, Figure, csv_text
from monitor.output.tables import column_line, column_widths

SCHEMA_VERSION = 3
FORMATS = ("table", "json", "csv")
# The order states are listed in; others (from a later state engine) follow alphabetically.
_STATE_ORDER: tuple[str, ...] = (
    *CheckStatus,
    LinkStatus.UP,
    LinkStatus.DOWN,
    GroupStatus.RESILIENT,
    GroupStatus.DEGRADED,
    GroupStatus.AT_RISK,
)


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
    widths = column_widths(header, rows)
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
    lines += [column_line(row, widths) for row in [header, *rows]]
    if not rows:
        lines.append("(nothing recorded in this period)")
    lines += [
        "",
        "AVAILABLE: share of the observed time neither in an outage nor UNKNOWN. OBSERVED: share "
        "of the period (less maintenance) with a known state. OUTAGES: a trailing + means one is "
        "still going. MTTR: mean time to recover.",
        "",
        *_diversity_lines(report.diversity),
    ]
    lines += report_paths.lines(report.paths)
    return "\n".join(lines)


def _diversity_lines(diversity: Sequence[GroupRisks] | None) -> list[str]:
    """The diversity section: per group, the single shared risks that would take it below
    min_up with every link up; then, in one line each, the groups with none to name."""
    if diversity is None:
        return ["Diversity: not judged (give the INVENTORY: the history does not hold the risks)."]
    if not any(group.declared for group in diversity):
        return ["Diversity: no risks declared (`risks:` on sites and links): nothing is known."]
    lines = ["Diversity (the risks the inventory declares, every link up):"]
    lines += [f"  {printable(f)}" for group in diversity for f in group.findings()]
    for what, groups in (
        (
            "no single shared risk takes them below min_up",
            [g for g in diversity if g.declared and not g.exposures],
        ),
        ("no risks declared, nothing known", [g for g in diversity if not g.declared]),
    ):
        if groups:
            named = ", ".join(printable(g.label) for g in groups)
            lines.append(f"  {what}: {named}")
    return lines


def _diversity_to_dict(diversity: Sequence[GroupRisks] | None) -> list[dict[str, Any]] | None:
    if diversity is None:
        return None
    return [
        {
            "group_id": g.group.id,
            "name": g.group.name,
            "site_id": g.group.site_id,
            "links": list(g.group.link_ids),
            "min_up": g.group.min_up,
            "risks_declared": g.declared,
            "exposures": [
                {"risks": list(e.risks), "links": list(e.link_ids), "left": e.left}
                for e in g.exposures
            ],
        }
        for g in diversity
    ]


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
        "paths": report_paths.to_dict(report.paths),
        "diversity": _diversity_to_dict(report.diversity),
    }


def render_csv(report: AvailabilityReport) -> str:
    states = _states(report)
    header = [
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
        *(f"{state.lower().replace(' ', '_')}_s" for state in states),
    ]
    rows: list[list[Cell]] = [
        [
            s.subject,
            s.subject_id,
            s.site_id,
            s.source,
            Figure(s.observed_s),
            Figure(s.maintenance_s),
            Figure(s.not_observed_s),
            Figure(s.availability_pct, places=4),
            Figure(len(s.outages), places=0),
            Figure(s.outage_s),
            Figure(s.mttr_s),
            s.last_state or "",
            *(Figure(s.time_in_state.get(state, 0.0)) for state in states),
        ]
        for s in report.subjects
    ]
    return csv_text(header, rows)


def render(report: AvailabilityReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report_to_dict(report), indent=2, allow_nan=False)
    if fmt == "csv":
        return render_csv(report)
    return render_table(report)
