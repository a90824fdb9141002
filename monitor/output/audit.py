"""The certificate audit: every certificate every TLS-bearing check saw, once each, and what
is wrong with each endpoint's chain.

Results come from an ordinary sweep; this module only aggregates and renders them. Expiry is a
property of a certificate: one identified by its SHA-256 fingerprint, so one wildcard served by
forty endpoints is one row that names all forty, and the same intermediate behind many leaves is
reported once. Trust, names, chain structure, malformed certificates, pins and revocation are
properties of what an endpoint serves: they are listed per endpoint, in the words of the
check's own verdicts, so the audit and the monitor never disagree. Both count in the exit code.

How the audit is written out (table, Markdown, CSV, JSON) is `monitor.output.audit_formats`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from monitor.config.inventory import Check
from monitor.core.model import CertificateInfo, ProbeResult, Severity
from monitor.store import renewals
from probes.support.certificates import certificate_condition_names

DEFAULT_WARN_DAYS = 30.0
DEFAULT_CRIT_DAYS = 14.0


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
    """The check's own failing certificate verdicts, but expiry (judged per certificate), and
    what the history says of its renewal and issuer."""
    judged = (certificate_condition_names(check.options) - {"expiry"}) | renewals.CONDITIONS
    return tuple(
        ChainFinding(v.condition, v.severity, v.reason, v.finding)
        for v in result.failing()
        if v.condition in judged
    )
