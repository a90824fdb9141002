"""Conditions a probe asks the runner to judge, and the one function that judges them.

A probe declares *what* matters (latency below 200 ms, status in 200-299) and, where the plain
"condition value" form would not read as a sentence, the words for each outcome ("untrusted
root: ...", "name mismatch: ..."); the runner applies `evaluate()` to the observations the probe
made. A condition whose observation is missing yields UNKNOWN rather than a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from monitor.core.model import ObservationValue, Severity, Verdict
from monitor.core.options import format_number, is_number


@dataclass(frozen=True, slots=True)
class Finding:
    """An outcome in words: `reason`, the gist for a narrow column ("name mismatch"), and
    `text`, the whole sentence (the reason when left empty)."""

    reason: str
    text: str = ""


# Words for a judged value: (value, the `about` observation or "") -> the finding.
Explain = Callable[[ObservationValue, str], Finding]


def said(reason: str, detail: str = "") -> Explain:
    """Fixed words: the reason, then what the verdict is about (or `detail`) after a colon:
    "weak key: #0 CN=gw (RSA 1024 bits)"."""

    def explain(_value: ObservationValue, about: str) -> Finding:
        more = about or detail
        return Finding(reason, f"{reason}: {more}" if more else reason)

    return explain


def told_by_about(fallback: str) -> Explain:
    """Words the probe wrote itself into the `about` observation as "reason: detail"."""

    def explain(_value: ObservationValue, about: str) -> Finding:
        if not about:
            return Finding(fallback)
        return Finding(about.partition(": ")[0], about)

    return explain


def _verdict(
    condition: Condition,
    value: ObservationValue,
    threshold: str,
    severity: Severity,
    about: str,
    explain: Explain | None,
    warn: float | None = None,
    crit: float | None = None,
    higher_is_worse: bool = True,
) -> Verdict:
    finding = explain(value, about) if explain is not None else Finding("")
    return Verdict(
        condition=condition.condition,
        observation=condition.observation,
        value=value,
        threshold=threshold,
        severity=severity,
        unit=condition.unit,
        about=about,
        finding=finding.text or finding.reason,
        reason=finding.reason,
        headline=condition.headline,
        warn=warn,
        crit=crit,
        higher_is_worse=higher_is_worse,
    )


@dataclass(frozen=True, slots=True)
class Threshold:
    """A numeric observation with warn/crit bounds; `higher_is_worse` for latency, not for days.

    `needs_history` marks a value derived from two polls (a counter rate): on a first poll, or
    after the counters were reset, it cannot exist yet, and its absence is OK, not UNKNOWN.
    `magnitude` judges the value's distance from zero, its sign kept in the verdict: a clock
    offset is as wrong ahead as behind.
    `explain` words the value whatever the outcome ("expires in 9d"); `headline` puts a passing
    one in the short line of an OK result."""

    condition: str
    observation: str
    warn: float | None
    crit: float | None
    unit: str = ""
    higher_is_worse: bool = True
    about: str | None = None  # an observation naming what the value belongs to
    needs_history: bool = False
    explain: Explain | None = None
    headline: bool = False
    magnitude: bool = False

    def judge(self, value: ObservationValue, about: str = "") -> Verdict:
        severity = Severity.UNKNOWN
        explain = None
        if is_number(value):
            severity, explain = Severity.OK, self.explain
            if self.warn is not None and self._breaches(value, self.warn):
                severity = Severity.WARN
            if self.crit is not None and self._breaches(value, self.crit):
                severity = Severity.CRIT
        return _verdict(
            self,
            value,
            self.describe(),
            severity,
            about,
            explain,
            warn=self.warn,
            crit=self.crit,
            higher_is_worse=self.higher_is_worse,
        )

    def _breaches(self, value: float, bound: float) -> bool:
        if self.magnitude:
            value = abs(value)
        return value > bound if self.higher_is_worse else value < bound

    def describe(self) -> str:
        op = ">" if self.higher_is_worse else "<"
        sign = "±" if self.magnitude else ""
        parts = [
            f"{name} {op} {sign}{_number(bound)}{self.unit}"
            for name, bound in (("warn", self.warn), ("crit", self.crit))
            if bound is not None
        ]
        return ", ".join(parts) or "no threshold"


@dataclass(frozen=True, slots=True)
class Expectation:
    """An observation that must satisfy a predicate; `expected` says what in words.

    `failed` and `passed` word the outcome ("name mismatch: ...", "name matches"); without
    them the verdict reads "condition value (expected ...)", which suits values that are words
    already (an rcode, an interface state) but not booleans.

    `grade`, when given, says how bad a value that fails is, where that depends on the value
    (a SIP element that answers 404 is alive, one that answers 500 is not); `severity` is the
    failure's otherwise."""

    condition: str
    observation: str
    accepts: Callable[[ObservationValue], bool]
    expected: str
    severity: Severity = Severity.CRIT
    unit: str = ""
    about: str | None = None  # an observation naming what the value belongs to
    failed: Explain | None = None
    passed: Explain | None = None
    headline: bool = False
    grade: Callable[[ObservationValue], Severity] | None = None

    def judge(self, value: ObservationValue, about: str = "") -> Verdict:
        accepted = self.accepts(value)
        if accepted:
            severity = Severity.OK
        else:
            severity = self.severity if self.grade is None else self.grade(value)
        return _verdict(
            self,
            value,
            f"expected {self.expected}",
            severity,
            about,
            self.passed if accepted else self.failed,
        )


Condition = Threshold | Expectation


def evaluate(
    conditions: tuple[Condition, ...], observations: Mapping[str, ObservationValue]
) -> tuple[Verdict, ...]:
    verdicts = []
    for condition in conditions:
        if condition.observation not in observations:
            waiting = isinstance(condition, Threshold) and condition.needs_history
            threshold = "needs two polls" if waiting else "not measured"
            verdicts.append(
                Verdict(
                    condition=condition.condition,
                    observation=condition.observation,
                    value=None,
                    threshold=threshold,
                    severity=Severity.OK if waiting else Severity.UNKNOWN,
                    unit=condition.unit,
                    finding=f"{condition.condition} {threshold}",
                )
            )
        else:
            about = observations.get(condition.about) if condition.about else None
            verdicts.append(
                condition.judge(
                    observations[condition.observation], "" if about is None else str(about)
                )
            )
    return tuple(verdicts)


def _number(value: float) -> str:
    return format_number(value)  # plain decimals: a bound of 2000000 is not 2e+06
