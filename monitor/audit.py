"""The certificate-expiry audit: every certificate every TLS-bearing check saw, once each.

Results come from an ordinary sweep; this module only aggregates and renders them. A certificate
is identified by its SHA-256 fingerprint, so one wildcard served by forty endpoints is one row
that names all forty, and the same intermediate behind many leaves is reported once.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.inventory import Check
from monitor.model import CertificateInfo, ProbeResult, Severity
from monitor.output import certificate_to_dict, colourise, iso_time

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
    days_left: float
    warn_days: float
    crit_days: float
    severity: Severity

    @property
    def state(self) -> str:
        return "EXPIRED" if self.days_left < 0 else self.severity.name


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

    @property
    def shown(self) -> tuple[AuditedCertificate, ...]:
        if self.within_days is None:
            return self.certificates
        return tuple(c for c in self.certificates if c.days_left <= self.within_days)

    @property
    def exit_code(self) -> int:
        """0 all good, 1 warnings (or endpoints that could not be read), 2 critical,
        3 nothing could be checked."""
        if not self.certificates:
            return Severity.UNKNOWN.value
        worst = Severity.worst(c.severity for c in self.certificates)
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


def _severity(days_left: float, warn: float, crit: float) -> Severity:
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
    for result in results:
        ref = result.check
        if not result.certificates:
            reason = result.summary() if result.error else "no certificate was presented"
            failed.append(FailedEndpoint(ref.check_id, ref.target, reason))
            continue
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
    audited.sort(key=lambda c: (c.days_left, c.certificate.subject))
    return AuditReport(now, tuple(audited), tuple(failed), len(results), within_days)


# --- rendering -----------------------------------------------------------------------------


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


def _date(timestamp: float) -> str:
    return iso_time(timestamp)[:10]


def _summary_line(report: AuditReport) -> str:
    counts = {s: 0 for s in ("EXPIRED", "CRIT", "WARN", "OK")}
    for entry in report.certificates:
        counts[entry.state] += 1
    parts = [f"{n} {state}" for state, n in counts.items()]
    line = (
        f"{len(report.certificates)} certificates on {report.endpoints_checked} endpoints: "
        + ", ".join(parts)
    )
    if report.failed:
        count = len(report.failed)
        line += f"; {count} endpoint{'s' if count != 1 else ''} could not be read"
    hidden = len(report.certificates) - len(report.shown)
    if hidden:
        line += f"; {hidden} expiring after {report.within_days:g} days not listed"
    return line


def _rows(report: AuditReport) -> list[list[str]]:
    return [
        [
            entry.state,
            f"{entry.days_left:.1f}",
            _date(entry.certificate.not_after),
            entry.certificate.subject,
            _role(entry),
            _endpoints_text(entry),
        ]
        for entry in report.shown
    ]


_HEADER = ["STATE", "DAYS", "NOT AFTER", "SUBJECT", "ROLE", "ENDPOINTS"]


def render_table(report: AuditReport, colour: bool) -> str:
    rows = _rows(report)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(_HEADER)]
    widths[3] = min(widths[3], 48)

    def line(cells: list[str]) -> str:
        return "  ".join(c[: widths[i]].ljust(widths[i]) for i, c in enumerate(cells)).rstrip()

    lines = [line(_HEADER)]
    for entry, row in zip(report.shown, rows, strict=True):
        text = line(row)
        lines.append(colourise(text[: widths[0]], entry.severity, colour) + text[widths[0] :])
    if report.failed:
        lines.append("\nEndpoints that could not be read:")
        lines.extend(f"  {f.check_id}  {f.target}  {f.reason}" for f in report.failed)
    lines.append("\n" + _summary_line(report))
    return "\n".join(lines)


def render_markdown(report: AuditReport) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        f"# Certificate audit, {iso_time(report.generated_at)}",
        "",
        "| " + " | ".join(_HEADER) + " |",
        "|" + "---|" * len(_HEADER),
    ]
    lines.extend("| " + " | ".join(cell(c) for c in row) + " |" for row in _rows(report))
    if report.failed:
        lines += ["", "## Endpoints that could not be read", ""]
        lines.extend(f"- `{f.check_id}` {cell(f.target)}: {cell(f.reason)}" for f in report.failed)
    lines += ["", _summary_line(report)]
    return "\n".join(lines)


def render_csv(report: AuditReport) -> str:
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
        ]
    )
    for entry in report.shown:
        c = entry.certificate
        writer.writerow(
            [
                entry.state,
                f"{entry.days_left:.3f}",
                iso_time(c.not_after),
                c.subject,
                c.issuer,
                c.serial,
                c.fingerprint_sha256,
                f"{c.key_type}-{c.key_bits}",
                c.signature_algorithm,
                _role(entry),
                " ".join(sorted({e.target for e in entry.endpoints})),
            ]
        )
    return buffer.getvalue().rstrip("\n")


def report_to_dict(report: AuditReport) -> dict[str, Any]:
    states = [entry.state for entry in report.certificates]
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "cert-audit",
        "generated_at": iso_time(report.generated_at),
        "within_days": report.within_days,
        "summary": {
            "certificates": len(report.certificates),
            "listed": len(report.shown),
            **{state: states.count(state) for state in ("OK", "WARN", "CRIT", "EXPIRED")},
            "endpoints_checked": report.endpoints_checked,
            "endpoints_failed": len(report.failed),
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
