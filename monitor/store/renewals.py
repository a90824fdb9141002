"""Certificate renewals and issuers, as an endpoint's history tells them.

The engine remembers, per check, the leaves it has seen (monitor/store/certificates.py keeps
them across restarts) and judges each result that carries a certificate against them:

- `renewal`: WARN "renewal overdue" once more than the check's `renewal_due` fraction (two
  thirds by default, as ACME clients renew) of the served leaf's validity has passed, with
  the date it should have renewed. When a newer certificate (issued later) was seen at the
  endpoint and this one is still served, the renewal happened but did not reach every server
  behind the address, and the finding says so.
- `new_issuer`: WARN when a leaf the endpoint never served before comes from a CA it never
  used before: a CA is the issuer's organisation (O=), else its whole name, so an ACME CA
  rotating its intermediates (R10, R11 of one organisation) is not a new CA. The warning holds
  while that leaf is served within `NEW_ISSUER_DAYS` of its first sighting: long enough to be
  confirmed and alerted, then it is part of the endpoint's history. The first certificate an
  endpoint is seen with has nothing to differ from.

Both are verdicts on the result, so its severity, summary, alerts, records and the dashboard
carry them like any other. Everything is judged at the result's start, never the clock: a
backlog read late (a central catching up) is judged as it was when made.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from monitor.config.inventory import Check
from monitor.core.model import CertificateInfo, ProbeResult, Severity, Verdict
from monitor.store.certificates import KEEP, Sighting
from monitor.store.queries import HistoryReader
from monitor.store.schema import HistoryError

log = logging.getLogger(__name__)

# The verdicts judged here: the audit lists them per endpoint beside the chain's own.
CONDITIONS = frozenset({"renewal", "new_issuer"})
DAY = 86400.0
NEW_ISSUER_DAYS = 7.0
# An RFC 4514 name's attributes, split at commas no backslash escapes.
_RDN_SPLIT = re.compile(r"(?<!\\),")


def date_text(at: float) -> str:
    return datetime.datetime.fromtimestamp(at, datetime.UTC).date().isoformat()


def issuing_ca(issuer: str) -> str:
    """The CA an issuer name belongs to: its organisation (O=), else the whole name."""
    for attribute in _RDN_SPLIT.split(issuer):
        key, _, value = attribute.strip().partition("=")
        if key.upper() == "O" and value:
            return value
    return issuer


def renewal_due_at(leaf: CertificateInfo, fraction: float) -> float | None:
    """When `fraction` of the leaf's validity has passed; None when a date is unreadable."""
    if leaf.not_before is None or leaf.not_after is None:
        return None
    return leaf.not_before + fraction * (leaf.not_after - leaf.not_before)


def renewal_verdict(
    leaf: CertificateInfo, seen: Iterable[Sighting], fraction: float, at: float
) -> Verdict | None:
    """The renewal of the leaf served at `at`, given every leaf the endpoint was seen with;
    None when its dates cannot be read (the malformed finding says why)."""
    due = renewal_due_at(leaf, fraction)
    if due is None or leaf.not_before is None or leaf.not_after is None:
        return None
    severity, told, reason = Severity.OK, f"renewal due {date_text(due)}", "renewal not due yet"
    if at >= due:
        severity = Severity.WARN
        told, reason = _overdue(leaf, seen, fraction, due)
    return Verdict(
        condition="renewal",
        observation="renewal_due",
        value=date_text(due),
        threshold=f"renewed once {fraction:.0%} of its validity has passed (renewal_due)",
        severity=severity,
        finding=told,
        reason=reason,
    )


def _overdue(
    leaf: CertificateInfo, seen: Iterable[Sighting], fraction: float, due: float
) -> tuple[str, str]:
    """An overdue renewal in words: never came, or came but not to every server here."""
    days = ((leaf.not_after or 0.0) - (leaf.not_before or 0.0)) / DAY
    should = (
        f"should have renewed by {date_text(due)} ({fraction:.0%} of its {days:.0f}-day validity)"
    )
    issued = leaf.not_before or 0.0
    newer = [s for s in seen if s.not_before is not None and s.not_before > issued]
    if not newer:
        return f"renewal overdue: {should}; no newer certificate seen here", "renewal overdue"
    latest = max(newer, key=lambda s: s.not_before or 0.0)
    told = (
        f"renewal overdue here: {should}; a newer certificate ({latest.fingerprint[:16]}, "
        f"issued {date_text(latest.not_before or 0.0)}) was seen here "
        f"{date_text(latest.first_seen)}, but this one is still served"
    )
    return told, "renewal not deployed everywhere"


def new_issuer_verdict(leaf: Sighting, seen: Iterable[Sighting], at: float) -> Verdict:
    """Whether `leaf` came from a CA the endpoint had not used before it was first seen."""
    earlier = [
        s for s in seen if s.first_seen < leaf.first_seen and s.fingerprint != leaf.fingerprint
    ]
    ca = issuing_ca(leaf.issuer)
    used = sorted({issuing_ca(s.issuer) for s in earlier})
    fresh = at - leaf.first_seen <= NEW_ISSUER_DAYS * DAY
    if earlier and ca not in used and fresh:
        return Verdict(
            condition="new_issuer",
            observation="issuing_ca",
            value=ca,
            threshold=f"a CA this endpoint used before ({', '.join(used)})",
            severity=Severity.WARN,
            finding=(
                f"new issuer: a certificate never seen here ({leaf.fingerprint[:16]}, first seen "
                f"{date_text(leaf.first_seen)}) from {leaf.issuer}, a CA this endpoint never "
                f"used (before: {', '.join(used)})"
            ),
            reason="new issuer",
        )
    return Verdict(
        condition="new_issuer",
        observation="issuing_ca",
        value=ca,
        threshold="a CA this endpoint used before",
        severity=Severity.OK,
        finding=f"issued by {ca}",
        reason="known issuer",
    )


def remembered(path: Path) -> list[Sighting]:
    """The sightings the history at `path` keeps; none before it exists. Raises HistoryError
    for a file that is no history of this commwatch's."""
    if not path.is_file():
        return []
    with HistoryReader(path) as reader:
        return reader.certificates_seen()


class CertificateWatch:
    """The leaves each check was seen with (at most `KEEP`, the most recently seen), and the
    renewal and issuer verdicts each new result gets from them.

    `history`: the store to read what was seen before, at the first judgement (an engine's
    writer has created or upgraded it by then). `keep_originals`: remember which result each
    judged one was made from, for `original` (a source settles its results by identity)."""

    def __init__(self, history: Path | None = None, *, keep_originals: bool = False) -> None:
        self._seen: dict[str, dict[str, Sighting]] = {}
        self._history = history
        self._originals: dict[int, ProbeResult] | None = {} if keep_originals else None

    def load(self, sightings: Iterable[Sighting]) -> None:
        """Add what a store remembers."""
        for sighting in sightings:
            self._remember(sighting)

    def _load_history(self) -> None:
        path, self._history = self._history, None
        if path is None:
            return
        try:
            self.load(remembered(path))
        except HistoryError as exc:
            log.warning("certificates seen before are not known: %s", exc)

    def original(self, result: ProbeResult) -> ProbeResult:
        """The result `result` was judged from (itself if it was not changed), forgotten now."""
        return result if self._originals is None else self._originals.pop(id(result), result)

    def seen(self, check_id: str) -> tuple[Sighting, ...]:
        """The leaves the check was seen with, oldest sighting first."""
        return tuple(sorted(self._seen.get(check_id, {}).values(), key=lambda s: s.first_seen))

    def _remember(self, sighting: Sighting) -> Sighting:
        known = self._seen.setdefault(sighting.check_id, {})
        previous = known.get(sighting.fingerprint)
        kept = sighting if previous is None else previous.seen_again(sighting.first_seen)
        kept = kept.seen_again(sighting.last_seen)
        known[sighting.fingerprint] = kept
        if len(known) > KEEP:
            oldest = min(known.values(), key=lambda s: s.last_seen)
            del known[oldest.fingerprint]
        return kept

    def judge(self, check: Check | None, result: ProbeResult) -> ProbeResult:
        """`result` with its renewal and issuer verdicts (and its leaf remembered); as it is
        when it carries no certificate, or its check has no renewal setting."""
        judged = self._judged(check, result)
        if self._originals is not None and judged is not result:
            self._originals[id(judged)] = result
        return judged

    def _judged(self, check: Check | None, result: ProbeResult) -> ProbeResult:
        self._load_history()
        fraction = getattr(check.options, "renewal_due", None) if check is not None else None
        if not result.certificates or not isinstance(fraction, float):
            return result
        at = result.started_at
        leaf = result.certificates[0]
        earlier = self.seen(result.check.check_id)
        sighting = self._remember(Sighting.of(result.check.check_id, leaf, at))
        others = [s for s in earlier if s.fingerprint != leaf.fingerprint_sha256]
        verdicts = [new_issuer_verdict(sighting, earlier, at)]
        renewal = renewal_verdict(leaf, others, fraction, at)
        if renewal is not None:
            verdicts.insert(0, renewal)
        observations = dict(result.observations)
        observations["certificate_first_seen"] = sighting.first_seen
        due = renewal_due_at(leaf, fraction)
        if due is not None:
            observations["renewal_due_at"] = due
        return replace(
            result,
            observations=observations,
            verdicts=(*result.verdicts, *verdicts),
            severity=Severity.worst([result.severity, *(v.severity for v in verdicts)]),
        )
