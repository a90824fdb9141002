"""Several vantage points on one check (`vantage:` with more than one name, `quorum:`): the
latest result of each, combined into the one result the state engine judges.

CRIT when at least `quorum` vantage points' latest results are CRIT; WARN, "seen down from
psap-north only", when some are but fewer; otherwise the worst of the rest. A vantage point
whose latest result is older than 2 intervals and the timeout, or that has none yet, counts
as UNKNOWN, never as OK, and the summary says so. So a link probed from both of its ends tells
a local fault (down from one end only: WARN) from an outage (down from both: CRIT).

`combine` is pure: the check, each vantage point's latest result and the time in, the combined
result out. `Vantages` keeps the latest results of a central's checks and combines on each new
one. A check with one vantage point never comes here: its results go to the engine as they
are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from monitor.config.inventory import Check
from monitor.core.model import ProbeResult, Severity, VantageResult, Verdict
from monitor.engine.interception import interception_verdict

FRESH_INTERVALS = 2  # a result counts for this many intervals, and the timeout, after it started
_PROBLEMS = (Severity.WARN, Severity.UNKNOWN)  # of a vantage point's own, short of down


def seen_from_several(check: Check) -> bool:
    """Whether the check's results are combined: it names more than one vantage point."""
    return len(check.vantage) > 1


def freshness(check: Check) -> float:
    """How long after it started a vantage point's result still counts, in seconds."""
    return FRESH_INTERVALS * check.interval + check.timeout


def combine(check: Check, latest: Mapping[str, ProbeResult], now: float) -> ProbeResult:
    """The check's result as the latest results of its vantage points (by name; names the
    check does not have are left out) make it at `now`.

    Freshness is judged at `now` but never later than the newest of the results: a backlog
    read long after it was made (a central catching up) is judged as it was when made. The
    combined result starts when the newest started, and carries the measurements of the
    vantage point that decides it: the first, in inventory order, at the worst severity."""
    counted = {name: latest[name] for name in check.vantage if name in latest}
    if not counted:
        raise ValueError(f"no result from any vantage point of {check.ref.check_id}")
    newest = max(counted.values(), key=lambda result: result.started_at)
    at = min(now, newest.started_at)
    window = freshness(check)
    parts = tuple(_part(name, counted.get(name), at, window) for name in check.vantage)
    down = [part.name for part in parts if part.severity is Severity.CRIT]
    if len(down) >= check.quorum:
        severity = Severity.CRIT
    elif down:
        severity = Severity.WARN
    else:
        severity = Severity.worst(part.severity for part in parts)
    deciding = _deciding(parts) or newest
    verdicts = [_verdict(parts, down, check.quorum, severity)]
    # What the vantage points saw of a TLS endpoint, compared (monitor/engine/interception.py).
    compared = interception_verdict(check.ref.target, parts)
    if compared is not None:
        verdicts.append(compared)
        severity = Severity.worst([severity, compared.severity])
    return ProbeResult(
        check=check.ref,
        started_at=newest.started_at,
        duration_ms=deciding.duration_ms,
        severity=severity,
        observations=deciding.observations,
        verdicts=tuple(verdicts),
        certificates=deciding.certificates,
        vantage=parts,
    )


def _part(name: str, result: ProbeResult | None, at: float, window: float) -> VantageResult:
    return VantageResult(name, result, result is not None and at - result.started_at <= window)


def _deciding(parts: Sequence[VantageResult]) -> ProbeResult | None:
    """The result of the first vantage point at the worst severity among the fresh ones."""
    fresh = [part for part in parts if part.fresh and part.result is not None]
    if not fresh:
        return None
    worst = Severity.worst(part.severity for part in fresh)
    return next(part.result for part in fresh if part.severity is worst)


def _verdict(
    parts: Sequence[VantageResult], down: Sequence[str], quorum: int, severity: Severity
) -> Verdict:
    """The quorum in words: who sees it down, what the others see when that decides, and
    who has no fresh result."""
    findings: list[str] = []
    reasons: list[str] = []
    if down:
        only = "" if len(down) >= quorum else " only"
        findings.append(f"seen down from {_names(down)}{only}")
        reasons.append(
            f"down from {_names(down)} only" if only else f"down from {len(down)} of {len(parts)}"
        )
    if len(down) < quorum:
        for part in parts:
            if part.fresh and part.result is not None and part.severity in _PROBLEMS:
                findings.append(f"{part.name}: {_problem(part.result)}")
                reasons.append(f"{part.severity.name} from {part.name}")
    stale = [part.name for part in parts if not part.fresh]
    if stale:
        findings.append(f"no fresh result from {_names(stale)}")
        reasons.append(f"no fresh result from {_names(stale)}")
    if not findings:
        findings.append(f"OK from {_names([part.name for part in parts])}")
        reasons.append(f"OK from {len(parts)} of {len(parts)}")
    return Verdict(
        condition="quorum",
        observation="vantage_down",
        value=len(down),
        threshold=f"CRIT when down from {quorum} of {len(parts)} vantage points",
        severity=severity,
        finding="; ".join(findings),
        reason="; ".join(reasons),
    )


def _problem(result: ProbeResult) -> str:
    """What a vantage point's own result that is not OK says, without its severity words."""
    said = [v.sentence() for v in result.failing()]
    if result.error is not None:
        said.insert(0, f"{result.error.error_class}: {result.error.message}")
    return ", ".join(said) or result.severity.name


def _names(items: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


class Vantages:
    """The latest result of each vantage point of the checks seen from several, and the
    combined result each new one makes: what a central hands its engine for such a check."""

    def __init__(self) -> None:
        self._latest: dict[str, dict[str, ProbeResult]] = {}

    def take(self, check: Check, vantage: str, result: ProbeResult, now: float) -> ProbeResult:
        """The check's combined result once `vantage`'s `result` is its latest (one older than
        the latest it has changes nothing)."""
        latest = self._latest.setdefault(check.ref.check_id, {})
        known = latest.get(vantage)
        if known is None or known.started_at < result.started_at:
            latest[vantage] = result
        return combine(check, latest, now)
