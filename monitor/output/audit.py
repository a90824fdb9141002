"""The certificate audit: every certificate every TLS-bearing check saw, once each, and what
is wrong with each endpoint's chain.

Results come from an ordinary sweep; this module only aggregates and renders them. Expiry is a
property of a certificate: one identified by its SHA-256 fingerprint, so one wildcard served by
forty endpoints is one row that names all forty, and the same intermediate behind many leaves is
reported once. Trust, names, chain structure, malformed certificates, pins and revocation are
properties of what an endpoint serves: they are listed per endpoint, in the words of the
check's own verdicts, so the audit and the monitor never disagree. Both count in the exit code.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.config.inventory import Check
from monitor.core.model import CertificateInfo, ProbeResult, Severity
from monitor.core.text import markdown_cell, printable, spreadsheet_cell
from monitor.output.render import certificate_to_dict, colourise, iso_time
from probes.support.certificates import certificate_condition_names

SCHEMA_VERSION = 1
DEFAULT_WARN_DAYS = 30.0
DEFAULT_CRIT_DAYS = 14.0
FORMATS = ("table", "json", "csv", "markdown")


@dataclass(frozen=True)
class Endpoint:
    check_id: str
    target: str
    position: int  # where in that endpoint's served chain the certificate stood


@dataclass(frozen=True)
class AuditedCertificate:
    certificate: CertificateInfo
    endpoints: tuple[Endpoint, ...]
    days_left: float | None  # None: no parser could read its notAfter (it is malformed)
    warn_days: float
    crit_days: float
    severity: Severity

    @property
    def state(self) -> str:
        if self.days_left is not None and self.days_left < 0:
            return "EXPIRED"
        return self.severity.name


@dataclass(frozen=True)
class ChainFinding:
    """One verdict of an endpoint's certificate judgement that is not OK (expiry aside)."""

    condition: str
    severity: Severity
    reason: str  # "untrusted root"
    text: str  # "untrusted root: #1 CN=X is not in ca.pem"


@dataclass(frozen=True)
class EndpointFindings:
    check_id: str
    target: str
    findings: tuple[ChainFinding, ...]

    @property
    def severity(self) -> Severity:
        return Severity.worst(f.severity for f in self.findings)


@dataclass(frozen=True)
class FailedEndpoint:
    check_id: str
    target: str
    reason: str


@dataclass(frozen=True)
class AuditReport:
    generated_at: float
    certificates: tuple[AuditedCertificate, ...]  # every certificate seen, soonest expiry first
    failed: tuple[FailedEndpoint, ...]  # endpoints that showed no certificate at all
    endpoints_checked: int
    within_days: float | None
    # Endpoints whose served chain has findings besides expiry, worst first.
    findings: tuple[EndpointFindings, ...] = ()

    @property
    def shown(self) -> tuple[AuditedCertificate, ...]:
        """The certificates listed: those expiring within `within_days` (and those whose
        expiry cannot be read), plus the leaves of endpoints with findings."""
        if self.within_days is None:
            return self.certificates
        flagged = {f.check_id for f in self.findings}
        return tuple(
            c
            for c in self.certificates
            if c.days_left is None
            or c.days_left <= self.within_days
            or any(e.position == 0 and e.check_id in flagged for e in c.endpoints)
        )

    @property
    def exit_code(self) -> int:
        """0 all good, 1 warnings (or endpoints that could not be read), 2 critical,
        3 nothing could be checked. Expiry and endpoint findings count alike."""
        if not self.certificates:
            return Severity.UNKNOWN.value
        worst = Severity.worst(
            [c.severity for c in self.certificates] + [f.severity for f in self.findings]
        )
        if worst is Severity.OK and self.failed:
            worst = Severity.WARN
        return worst.value


def _thresholds(checks: Iterable[Check]) -> tuple[float, float]:
    """The strictest thresholds of the checks that serve a certificate."""
    warn = max(
        (getattr(c.options, "warn_days", DEFAULT_WARN_DAYS) for c in checks),
        default=DEFAULT_WARN_DAYS,
    )
    crit = max(
        (getattr(c.options, "crit_days", DEFAULT_CRIT_DAYS) for c in checks),
        default=DEFAULT_CRIT_DAYS,
    )
    return warn, crit


def _severity(days_left: float | None, warn: float, crit: float) -> Severity:
    if days_left is None:
        return Severity.UNKNOWN
    if days_left < crit:
        return Severity.CRIT
    if days_left < warn:
        return Severity.WARN
    return Severity.OK


def build_report(
    checks: Sequence[Check],
    results: Sequence[ProbeResult],
    *,
    now: float,
    warn_days: float | None = None,
    crit_days: float | None = None,
    within_days: float | None = None,
) -> AuditReport:
    by_id = {check.ref.check_id: check for check in checks}
    seen: dict[str, CertificateInfo] = {}
    endpoints: dict[str, list[Endpoint]] = {}
    serving: dict[str, list[Check]] = {}
    failed = []
    flagged = []
    for result in results:
        ref = result.check
        if not result.certificates:
            reason = result.summary() if result.error else "no certificate was presented"
            failed.append(FailedEndpoint(ref.check_id, ref.target, reason))
            continue
        found = _chain_findings(by_id[ref.check_id], result)
        if found:
            flagged.append(EndpointFindings(ref.check_id, ref.target, found))
        for certificate in result.certificates:
            fingerprint = certificate.fingerprint_sha256
            seen.setdefault(fingerprint, certificate)
            endpoints.setdefault(fingerprint, []).append(
                Endpoint(ref.check_id, ref.target, certificate.position)
            )
            serving.setdefault(fingerprint, []).append(by_id[ref.check_id])
    audited = []
    for fingerprint, certificate in seen.items():
        warn, crit = _thresholds(serving[fingerprint])
        warn = warn if warn_days is None else warn_days
        crit = crit if crit_days is None else crit_days
        days_left = certificate.days_left(now)
        audited.append(
            AuditedCertificate(
                certificate=certificate,
                endpoints=tuple(endpoints[fingerprint]),
                days_left=days_left,
                warn_days=warn,
                crit_days=crit,
                severity=_severity(days_left, warn, crit),
            )
        )
    audited.sort(key=lambda c: (c.days_left is None, c.days_left or 0.0, c.certificate.subject))
    flagged.sort(key=lambda f: (-f.severity.rank, f.check_id))
    return AuditReport(
        now, tuple(audited), tuple(failed), len(results), within_days, tuple(flagged)
    )


def _chain_findings(check: Check, result: ProbeResult) -> tuple[ChainFinding, ...]:
    """The check's own failing certificate verdicts, but expiry (judged per certificate)."""
    judged = certificate_condition_names(check.options) - {"expiry"}
    return tuple(
        ChainFinding(v.condition, v.severity, v.reason, v.finding)
        for v in result.failing()
        if v.condition in judged
    )


# --- rendering -----------------------------------------------------------------------------

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
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(_HEADER)]
    widths[3] = min(widths[3], 48)

    def line(cells: list[str]) -> str:
        return "  ".join(c[: widths[i]].ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    lines = [f"Certificates ({SCOPE}):", line(_HEADER)]
    for entry, row in zip(report.shown, rows, strict=True):
        text = line(row)
        lines.append(colourise(text[: widths[0]], entry.severity, colour) + text[widths[0] :])
    found = _finding_lines(report)
    if found:
        lines.append("\nEndpoint findings (trust, names, chain):")
        check_width = max(len(endpoint.check_id) for _, endpoint, _ in found)
        for severity, endpoint, finding in found:
            label = colourise(f"{severity.name:<7}", severity, colour)
            lines.append(
                f"  {label}  {endpoint.check_id:<{check_width}}  {endpoint.target}  "
                f"{printable(finding.text)}"
            )
    if report.failed:
        lines.append("\nEndpoints that could not be read:")
        lines.extend(f"  {f.check_id}  {f.target}  {printable(f.reason)}" for f in report.failed)
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


def render_csv(report: AuditReport) -> str:
    """One row per certificate; the endpoint findings on the row of each endpoint's leaf."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
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
        ]
    )
    for entry in report.shown:
        c = entry.certificate
        cells = [
            entry.state,
            "" if entry.days_left is None else f"{entry.days_left:.3f}",
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
        # The days left and the date stay numbers: an expired certificate's are negative.
        writer.writerow(cells[:3] + [spreadsheet_cell(cell) for cell in cells[3:]])
    return buffer.getvalue().rstrip("\n")


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
