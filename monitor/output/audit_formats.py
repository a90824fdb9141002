"""How `commwatch audit certs` writes its report: a table for people, Markdown for a ticket or
a wiki, CSV for spreadsheets, JSON for machines (`monitor/output/schema/audit.schema.json`;
change it only together with SCHEMA_VERSION). What is judged is `monitor.output.audit`'s.
"""

from __future__ import annotations

import json
from typing import Any

from monitor.core.model import Severity
from monitor.core.text import markdown_cell, printable
from monitor.output.audit import AuditedCertificate, AuditReport, ChainFinding, EndpointFindings
from monitor.output.records import certificate_to_dict, iso_time
from monitor.output.spreadsheet import Cell, Figure, csv_text
from monitor.output.tables import column_line, column_widths
from monitor.output.terminal import colourise

SCHEMA_VERSION = 1
FORMATS = ("table", "json", "csv", "markdown")

# Every text for people says what is judged where, so no reader takes the table for the whole.
SCOPE = "expiry per certificate; trust, names and chain per endpoint"
_STATES = ("EXPIRED", "CRIT", "WARN", "UNKNOWN", "OK")


def _role(entry: AuditedCertificate) -> str:
    positions = {e.position for e in entry.endpoints}
    if positions == {0}:
        return "leaf"
    if 0 in positions:
        return "leaf+chain"
    return "chain"


def _endpoints_text(entry: AuditedCertificate, limit: int = 2) -> str:
    targets = sorted({e.target for e in entry.endpoints})
    shown = ", ".join(targets[:limit])
    return shown + (f" +{len(targets) - limit} more" if len(targets) > limit else "")


def _date(timestamp: float | None) -> str:
    return "unreadable" if timestamp is None else iso_time(timestamp)[:10]


def _days(entry: AuditedCertificate) -> str:
    return "?" if entry.days_left is None else f"{entry.days_left:.1f}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _summary_line(report: AuditReport) -> str:
    counts = {s: 0 for s in _STATES}
    for entry in report.certificates:
        counts[entry.state] += 1
    parts = [f"{n} {state}" for state, n in counts.items() if n or state != "UNKNOWN"]
    line = (
        f"{_plural(len(report.certificates), 'certificate')} on "
        f"{_plural(report.endpoints_checked, 'endpoint')}: " + ", ".join(parts)
    )
    if report.findings:
        by_severity = {s: 0 for s in (Severity.CRIT, Severity.UNKNOWN, Severity.WARN)}
        for endpoint in report.findings:
            by_severity[endpoint.severity] += 1
        severities = ", ".join(f"{n} {s.name}" for s, n in by_severity.items() if n)
        line += f"; {_plural(len(report.findings), 'endpoint')} with findings ({severities})"
    else:
        line += "; no endpoint with findings"
    if report.failed:
        line += f"; {_plural(len(report.failed), 'endpoint')} could not be read"
    hidden = len(report.certificates) - len(report.shown)
    if hidden:
        line += f"; {hidden} expiring after {report.within_days:g} days not listed"
    return line


def _rows(report: AuditReport) -> list[list[str]]:
    return [
        [
            entry.state,
            _days(entry),
            _date(entry.certificate.not_after),
            printable(entry.certificate.subject),
            _role(entry),
            _endpoints_text(entry),
        ]
        for entry in report.shown
    ]


def _finding_lines(report: AuditReport) -> list[tuple[Severity, EndpointFindings, ChainFinding]]:
    return [(f.severity, endpoint, f) for endpoint in report.findings for f in endpoint.findings]


_HEADER = ["STATE", "DAYS", "NOT AFTER", "SUBJECT", "ROLE", "ENDPOINTS"]


def render_table(report: AuditReport, colour: bool) -> str:
    rows = [[printable(cell) for cell in row] for row in _rows(report)]
    widths = column_widths(_HEADER, rows, caps={3: 48})
    lines = [f"Certificates ({SCOPE}):", column_line(_HEADER, widths)]
    for entry, row in zip(report.shown, rows, strict=True):
        text = column_line(row, widths)
        lines.append(colourise(text[: widths[0]], entry.severity, colour) + text[widths[0] :])
    found = _finding_lines(report)
    if found:
        lines.append("\nEndpoint findings (trust, names, chain, renewal):")
        check_width = max(len(printable(endpoint.check_id)) for _, endpoint, _ in found)
        for severity, endpoint, finding in found:
            label = colourise(f"{severity.name:<7}", severity, colour)
            lines.append(
                f"  {label}  {printable(endpoint.check_id):<{check_width}}"
                f"  {printable(endpoint.target)}  {printable(finding.text)}"
            )
    if report.failed:
        lines.append("\nEndpoints that could not be read:")
        lines.extend(
            f"  {printable(f.check_id)}  {printable(f.target)}  {printable(f.reason)}"
            for f in report.failed
        )
    lines.append("\n" + _summary_line(report))
    return "\n".join(lines)


def render_markdown(report: AuditReport) -> str:
    lines = [
        f"# Certificate audit, {iso_time(report.generated_at)}",
        "",
        f"Judged: {SCOPE}.",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + "---|" * len(_HEADER),
    ]
    lines.extend("| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in _rows(report))
    found = _finding_lines(report)
    if found:
        lines += [
            "",
            "## Endpoint findings",
            "",
            "| STATE | CHECK | TARGET | FINDING |",
            "|---|---|---|---|",
        ]
        lines.extend(
            f"| {severity.name} | `{endpoint.check_id}` | {markdown_cell(endpoint.target)} "
            f"| {markdown_cell(finding.text)} |"
            for severity, endpoint, finding in found
        )
    if report.failed:
        lines += ["", "## Endpoints that could not be read", ""]
        lines.extend(
            f"- `{f.check_id}` {markdown_cell(f.target)}: {markdown_cell(f.reason)}"
            for f in report.failed
        )
    lines += ["", _summary_line(report)]
    return "\n".join(lines)


def _leaf_findings(report: AuditReport, entry: AuditedCertificate) -> str:
    """The findings of the endpoints this certificate is the leaf of, for its CSV row."""
    leaf_of = {e.check_id for e in entry.endpoints if e.position == 0}
    return "; ".join(
        f"{endpoint.check_id}: {finding.text}"
        for endpoint in report.findings
        if endpoint.check_id in leaf_of
        for finding in endpoint.findings
    )


_CSV_HEADER = (
    "state",
    "days_left",
    "not_after",
    "subject",
    "issuer",
    "serial",
    "fingerprint_sha256",
    "key",
    "signature_algorithm",
    "role",
    "endpoints",
    "malformed",
    "endpoint_findings",
)


def render_csv(report: AuditReport) -> str:
    """One row per certificate; the endpoint findings on the row of each endpoint's leaf."""
    return csv_text(_CSV_HEADER, [_csv_row(report, entry) for entry in report.shown])


def _csv_row(report: AuditReport, entry: AuditedCertificate) -> list[Cell]:
    c = entry.certificate
    return [
        entry.state,
        Figure(entry.days_left),  # a number: an expired certificate's is negative
        "" if c.not_after is None else iso_time(c.not_after),
        c.subject,
        c.issuer,
        c.serial,
        c.fingerprint_sha256,
        f"{c.key_type}-{c.key_bits}",
        c.signature_algorithm,
        _role(entry),
        " ".join(sorted({e.target for e in entry.endpoints})),
        "; ".join(c.malformed),
        _leaf_findings(report, entry),
    ]


def report_to_dict(report: AuditReport) -> dict[str, Any]:
    states = [entry.state for entry in report.certificates]
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "cert-audit",
        "generated_at": iso_time(report.generated_at),
        "within_days": report.within_days,
        "judged": SCOPE,
        "summary": {
            "certificates": len(report.certificates),
            "listed": len(report.shown),
            **{state: states.count(state) for state in _STATES},
            "endpoints_checked": report.endpoints_checked,
            "endpoints_failed": len(report.failed),
            "endpoints_with_findings": len(report.findings),
            "exit_code": report.exit_code,
        },
        "certificates": [
            {
                **certificate_to_dict(entry.certificate, report.generated_at),
                "state": entry.state,
                "severity": entry.severity.name,
                "warn_days": entry.warn_days,
                "crit_days": entry.crit_days,
                "endpoints": [
                    {"check_id": e.check_id, "target": e.target, "position": e.position}
                    for e in entry.endpoints
                ],
            }
            for entry in report.shown
        ],
        "findings": [
            {
                "check_id": endpoint.check_id,
                "target": endpoint.target,
                "severity": endpoint.severity.name,
                "findings": [
                    {
                        "condition": f.condition,
                        "severity": f.severity.name,
                        "reason": f.reason,
                        "finding": f.text,
                    }
                    for f in endpoint.findings
                ],
            }
            for endpoint in report.findings
        ],
        "failed": [
            {"check_id": f.check_id, "target": f.target, "reason": f.reason} for f in report.failed
        ],
    }


def render(report: AuditReport, fmt: str, colour: bool) -> str:
    if fmt == "json":
        return json.dumps(report_to_dict(report), indent=2, allow_nan=False)
    if fmt == "csv":
        return render_csv(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_table(report, colour)
