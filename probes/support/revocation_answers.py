"""What a revocation check answers, in the words OCSP and CRL judgements share.

A `RevocationStatus` is the outcome of one check; `Unusable` is a fetch or an answer that
cannot be used (its message says why, and becomes part of an "unavailable" status); `Answered`
is where and when a valid answer came from, which every status read from it carries.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

# Responder and monitor clocks disagree a little; RFC 5019 deployments allow minutes.
CLOCK_SKEW = 300.0


@dataclass(frozen=True)
class RevocationStatus:
    method: str  # "ocsp", "crl" or "none"
    # "good", "revoked", "unknown" (the responder does not know the certificate), "unavailable"
    # (no valid answer could be had), "not_checked" (nothing to ask: information, not failure)
    status: str
    message: str
    revoked_at: float | None = None
    reason: str | None = None
    this_update: float | None = None
    next_update: float | None = None
    source: str | None = None


class Unusable(Exception):
    """A fetch or an answer that cannot be used; the message becomes the status message."""


@dataclass(frozen=True)
class Answered:
    """A valid answer's origin: the method, the URL it came from, and its validity."""

    method: str
    source: str
    this_update: float
    next_update: float | None

    def status(
        self,
        status: str,
        message: str,
        revoked_at: float | None = None,
        reason: str | None = None,
    ) -> RevocationStatus:
        return RevocationStatus(
            method=self.method,
            status=status,
            message=message,
            revoked_at=revoked_at,
            reason=reason,
            this_update=self.this_update,
            next_update=self.next_update,
            source=self.source,
        )

    def revoked(
        self, revoked_at: float | None, reason: str | None, signer: str = ""
    ) -> RevocationStatus:
        """The status of a revoked certificate, worded as "revoked 2025-01-02 03:04:05 UTC
        (keyCompromise) per OCSP http://..."."""
        # The time is mandatory in a revoked answer; its absence must not turn it into "good".
        since = f" {when(revoked_at)}" if revoked_at is not None else ""
        because = f" ({reason})" if reason else ""
        per = f"{self.method.upper()} {self.source}{signer}"
        return self.status("revoked", f"revoked{since}{because} per {per}", revoked_at, reason)


def unavailable(method: str, problems: list[str], source: str | None) -> RevocationStatus:
    return RevocationStatus(method, "unavailable", "; ".join(problems), source=source)


def when(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def timestamp(moment: datetime.datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def check_freshness(what: str, this_update: float, next_update: float | None, now: float) -> None:
    if this_update > now + CLOCK_SKEW:
        raise Unusable(f"{what} thisUpdate {when(this_update)} is in the future")
    if next_update is not None and next_update < now - CLOCK_SKEW:
        raise Unusable(f"{what} is stale: nextUpdate {when(next_update)} has passed")
