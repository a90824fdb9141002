"""The longest validity a publicly trusted TLS server certificate may have, by its issuance date.

The CA/Browser Forum's Baseline Requirements (section 6.3.2) as amended by Ballot SC-081v3,
"Introduce Schedule of Reducing Validity and Data Reuse Periods" (adopted April 2025): 398 days
for a certificate issued before 15 March 2026, 200 days from then, 100 days from 15 March 2027
and 47 days from 15 March 2029. The date that counts is the certificate's notBefore, and the
period runs from notBefore through notAfter inclusive, a day being 86,400 seconds and any part
of one more a day more: a certificate of exactly 200 * 86,400 seconds plus the inclusive second
is over 200 days.

Only publicly trusted certificates are bound: a private CA sets its own rules. A check says
which it judges by its trust source (see `publicly_trusted`).
"""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass

from monitor.core.model import CertificateInfo

_DAY = 86400.0
BALLOT = "CA/B Forum ballot SC-081v3"


@dataclass(frozen=True, slots=True)
class Step:
    """From `since` (UTC midnight, inclusive) on, certificates may be valid `days` at most."""

    since: datetime.date
    days: int


# The schedule, oldest first; the first step holds since before any certificate we can meet.
SCHEDULE: tuple[Step, ...] = (
    Step(datetime.date(2018, 3, 1), 825),  # ballot 193
    Step(datetime.date(2020, 9, 1), 398),  # ballot SC31
    Step(datetime.date(2026, 3, 15), 200),
    Step(datetime.date(2027, 3, 15), 100),
    Step(datetime.date(2029, 3, 15), 47),
)


def _posix(day: datetime.date) -> float:
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC).timestamp()


def maximum_days(issued: float) -> int | None:
    """The most days a certificate issued at `issued` (its notBefore, POSIX seconds) may be
    valid; None before the schedule began (older certificates had longer caps)."""
    allowed = None
    for step in SCHEDULE:
        if issued >= _posix(step.since):
            allowed = step.days
    return allowed


def validity_days(certificate: CertificateInfo) -> int | None:
    """Its validity in whole days as the Baseline Requirements count it: notBefore through
    notAfter inclusive, any part of a day a day. None when a date could not be read."""
    if certificate.not_before is None or certificate.not_after is None:
        return None
    return math.ceil((certificate.not_after - certificate.not_before + 1) / _DAY)


@dataclass(frozen=True, slots=True)
class Excess:
    """A certificate valid longer than the schedule allowed on its issuance date."""

    days: int
    allowed: int
    issued: str  # its notBefore, YYYY-MM-DD

    def sentence(self) -> str:
        """The finding, in full."""
        return (
            f"valid {self.days} days, the maximum for a certificate issued {self.issued} is "
            f"{self.allowed} ({BALLOT}): its renewal will come back shorter and the "
            "automation must cope"
        )


def excess(certificate: CertificateInfo) -> Excess | None:
    """How `certificate` exceeds the maximum in force on its notBefore, if it does."""
    days = validity_days(certificate)
    if days is None or certificate.not_before is None:
        return None
    allowed = maximum_days(certificate.not_before)
    if allowed is None or days <= allowed:
        return None
    issued = datetime.datetime.fromtimestamp(certificate.not_before, datetime.UTC)
    return Excess(days, allowed, issued.date().isoformat())


EXCEEDS = "exceeds"  # the `public_validity` observation of a leaf over the maximum
EXEMPT = "exempt"  # not publicly trusted: the schedule does not bind it
WITHIN = "within"
UNREADABLE = "unknown"  # a date no parser could read (the malformed finding says why)


def judge(certificate: CertificateInfo, publicly_trusted: bool, trusted_by: str) -> tuple[str, str]:
    """The `public_validity` observation of a leaf and the words about it. `publicly_trusted`:
    its chain was verified by the system CA store (a `ca_file` names a private CA, a pinned or
    self-signed leaf vouches for itself: none of them is bound by the schedule)."""
    if not publicly_trusted:
        return EXEMPT, f"not publicly trusted ({trusted_by}): {BALLOT} does not bind it"
    found = excess(certificate)
    if found is not None:
        return EXCEEDS, found.sentence()
    days = validity_days(certificate)
    if days is None or certificate.not_before is None:
        return UNREADABLE, "its validity dates could not be read"
    allowed = maximum_days(certificate.not_before)
    return WITHIN, f"valid {days} days" + ("" if allowed is None else f" (at most {allowed})")
