"""The values that cross module boundaries: severities, verdicts and probe results.

Everything here is frozen: a result, once made by the runner, is read by the state engine and
every sink without any of them being able to change what another one sees.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from monitor.core.options import format_number, is_number

ObservationValue = int | float | str | bool | None


def as_number(value: ObservationValue) -> float | None:
    """An observation as a number, if it is one as `is_number` means it (not a boolean, not NaN)."""
    return float(value) if is_number(value) else None


class Severity(enum.IntEnum):
    """Monitoring-plugin severities; the integer value is the plugin exit code."""

    OK = 0
    WARN = 1
    CRIT = 2
    UNKNOWN = 3

    @property
    def rank(self) -> int:
        """How bad it is. A confirmed failure outranks not knowing: CRIT > UNKNOWN > WARN > OK."""
        return _RANK[self]

    @classmethod
    def worst(cls, severities: Iterable[Severity]) -> Severity:
        """The worst of an iterable of severities; OK when there are none."""
        worst = cls.OK
        for severity in severities:
            if severity.rank > worst.rank:
                worst = severity
        return worst


_RANK = {Severity.OK: 0, Severity.WARN: 1, Severity.UNKNOWN: 2, Severity.CRIT: 3}


class ErrorClass(enum.StrEnum):
    """Why a probe could not measure. The runner maps every exception to exactly one of these."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    DNS = "dns"
    TLS = "tls"
    PROTOCOL = "protocol"
    AUTH = "auth"  # the peer answered and rejected our credentials
    CONFIG = "config"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Verdict:
    """One condition judged: the observed value, what it was held against, and the outcome.

    `finding` says the outcome as a person reads it ("untrusted root: CN=X is not in ca.pem",
    "expires in 89d (#0 CN=gw)"), `reason` its gist for a narrow column ("untrusted root").
    Conditions with words of their own fill them in; any other verdict gets the plain
    "condition value" form, so every renderer can rely on both."""

    condition: str
    observation: str
    value: ObservationValue
    threshold: str
    severity: Severity
    unit: str = ""
    # Numeric bounds, for thresholds: consumers such as perfdata need them as numbers.
    warn: float | None = None
    crit: float | None = None
    higher_is_worse: bool = True
    # What the verdict is about when that varies per attempt (e.g. the certificate of a chain
    # that expires first), so the one-line summary can name it.
    about: str = ""
    finding: str = ""
    reason: str = ""
    # A passing verdict that belongs in the short line of an OK result ("TLSv1.3").
    headline: bool = False

    def __post_init__(self) -> None:
        if not self.finding:
            object.__setattr__(self, "finding", self._plain_finding())
        if not self.reason:
            object.__setattr__(self, "reason", self._plain_reason())

    def _plain_reason(self) -> str:
        shown = "not measured" if self.value is None else f"{shown_value(self.value)}{self.unit}"
        return f"{self.condition} {shown}"

    def _plain_finding(self) -> str:
        about = f" [{self.about}]" if self.about else ""
        # A failed expectation says what was expected; a threshold's bounds come with describe().
        expected = self.severity is not Severity.OK and self.warn is None and self.crit is None
        return self._plain_reason() + about + (f" ({self.threshold})" if expected else "")

    def sentence(self) -> str:
        """The finding with a threshold's bounds: the verdict in words, but for its severity."""
        bounds = f" ({self.threshold})" if self.warn is not None or self.crit is not None else ""
        return self.finding + bounds

    def describe(self) -> str:
        """The verdict as one line: its sentence and its severity."""
        return f"{self.sentence()}: {self.severity.name}"


def shown_value(value: ObservationValue) -> str:
    """A value as words for people: numbers without float noise, yes/no for booleans."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        # Plain decimals: an uptime or an OID counter read as a float must not become 1.2e+06.
        return format_number(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class ProbeError:
    """A classified failure to measure."""

    error_class: ErrorClass
    message: str


@dataclass(frozen=True, slots=True)
class CheckRef:
    """Where a check sits in the inventory, carried by every result so sinks need no lookup."""

    check_id: str
    site_id: str
    link_id: str
    kind: str
    target: str
    host: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """One certificate as a server sent it: what the audit and the dashboard show per cert."""

    fingerprint_sha256: str  # hex, of the DER encoding: the identity used to deduplicate
    position: int  # 0 is the leaf, then in the order served
    subject: str  # RFC 4514
    issuer: str
    serial: str  # hex
    # POSIX seconds; None when neither cryptography nor OpenSSL could read the date.
    not_before: float | None
    not_after: float | None
    key_type: str  # RSA, EC, Ed25519, ...
    key_bits: int
    signature_algorithm: str
    subject_alt_names: tuple[str, ...]
    spki_sha256: str  # base64, as used for pins
    self_signed: bool
    # What is wrong with its encoding, in words ("duplicate extension 2.5.29.17 ..."); a
    # malformed certificate is still shown with whatever could be read of it.
    malformed: tuple[str, ...] = ()

    def days_left(self, at: float) -> float | None:
        return None if self.not_after is None else (self.not_after - at) / 86400


def _frozen_mapping(values: Mapping[str, ObservationValue]) -> Mapping[str, ObservationValue]:
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one attempt of one check found."""

    check: CheckRef
    started_at: float
    duration_ms: float
    severity: Severity
    observations: Mapping[str, ObservationValue] = field(default_factory=dict)
    verdicts: tuple[Verdict, ...] = ()
    error: ProbeError | None = None
    certificates: tuple[CertificateInfo, ...] = ()
    # A check run from several vantage points (a central's quorum): each one's latest result,
    # in inventory order. Empty for a result of one vantage point, which is every other one.
    vantage: tuple[VantageResult, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "observations", _frozen_mapping(self.observations))

    def failing(self) -> list[Verdict]:
        """The verdicts that are not OK, worst first."""
        bad = [v for v in self.verdicts if v.severity is not Severity.OK]
        return sorted(bad, key=lambda v: -v.severity.rank)

    def summary(self) -> str:
        """One line a person can act on: the error and the verdicts that are not OK (worst
        first), else the few findings that tell what was seen (TLSv1.3, cert expires in 89d).

        A failed attempt's verdicts judge what it measured before failing: an https check
        refused for its certificate still names why ("untrusted root: ...")."""
        bad = [v.describe() for v in self.failing()]
        if self.error is not None:
            return "; ".join([f"{self.error.error_class}: {self.error.message}", *bad])
        if bad:
            return "; ".join(bad)
        measured = [v for v in self.verdicts if v.value is not None]
        told = [v.finding for v in measured if v.headline] or [v.finding for v in measured]
        return ", ".join(told) if told else "OK"


@dataclass(frozen=True, slots=True)
class VantageResult:
    """One vantage point's part in a result seen from several: its latest result (None before
    its first) and whether that was recent enough to count."""

    name: str
    result: ProbeResult | None
    fresh: bool

    @property
    def severity(self) -> Severity:
        """As the quorum counts it: its result's; UNKNOWN without a fresh one."""
        if self.result is None or not self.fresh:
            return Severity.UNKNOWN
        return self.result.severity
