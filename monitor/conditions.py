"""Conditions a probe asks the runner to judge, and the one function that judges them.

A probe declares *what* matters (latency below 200 ms, status in 200-299); the runner applies
`evaluate()` to the observations the probe made. A condition whose observation is missing yields
UNKNOWN rather than a guess.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from monitor.model import ObservationValue, Severity, Verdict
from monitor.options import format_number


@dataclass(frozen=True, slots=True)
class Threshold:
    """A numeric observation with warn/crit bounds; `higher_is_worse` for latency, not for days.

    `needs_history` marks a value derived from two polls (a counter rate): on a first poll, or
    after the counters were reset, it cannot exist yet, and its absence is OK, not UNKNOWN."""

    condition: str
    observation: str
    warn: float | None
    crit: float | None
    unit: str = ""
    higher_is_worse: bool = True
    about: str | None = None  # an observation naming what the value belongs to
    needs_history: bool = False

    def judge(self, value: ObservationValue) -> Verdict:
        severity = Severity.UNKNOWN
        if isinstance(value, int | float) and not isinstance(value, bool):
            severity = Severity.OK
            if self.warn is not None and self._breaches(value, self.warn):
                severity = Severity.WARN
            if self.crit is not None and self._breaches(value, self.crit):
                severity = Severity.CRIT
        return Verdict(
            condition=self.condition,
            observation=self.observation,
            value=value,
            threshold=self.describe(),
            severity=severity,
            unit=self.unit,
            warn=self.warn,
            crit=self.crit,
            higher_is_worse=self.higher_is_worse,
        )

    def _breaches(self, value: float, bound: float) -> bool:
        return value > bound if self.higher_is_worse else value < bound

    def describe(self) -> str:
        op = ">" if self.higher_is_worse else "<"
        parts = [
            f"{name} {op} {_number(bound)}{self.unit}"
            for name, bound in (("warn", self.warn), ("crit", self.crit))
            if bound is not None
        ]
        return ", ".join(parts) or "no threshold"


@dataclass(frozen=True, slots=True)
class Expectation:
    """An observation that must satisfy a predicate; `expected` says what in words."""

    condition: str
    observation: str
    accepts: Callable[[ObservationValue], bool]
    expected: str
    severity: Severity = Severity.CRIT
    unit: str = ""
    about: str | None = None  # an observation naming what the value belongs to

    def judge(self, value: ObservationValue) -> Verdict:
        severity = Severity.OK if self.accepts(value) else self.severity
        return Verdict(
            condition=self.condition,
            observation=self.observation,
            value=value,
            threshold=f"expected {self.expected}",
            severity=severity,
            unit=self.unit,
        )


Condition = Threshold | Expectation


def evaluate(
    conditions: tuple[Condition, ...], observations: Mapping[str, ObservationValue]
) -> tuple[Verdict, ...]:
    verdicts = []
    for condition in conditions:
        if condition.observation not in observations:
            waiting = isinstance(condition, Threshold) and condition.needs_history
            verdicts.append(
                Verdict(
                    condition=condition.condition,
                    observation=condition.observation,
                    value=None,
                    threshold="needs two polls" if waiting else "not measured",
                    severity=Severity.OK if waiting else Severity.UNKNOWN,
                    unit=condition.unit,
                )
            )
        else:
            verdict = condition.judge(observations[condition.observation])
            about = observations.get(condition.about) if condition.about else None
            if about is not None:
                verdict = dataclasses.replace(verdict, about=str(about))
            verdicts.append(verdict)
    return tuple(verdicts)


def _number(value: float) -> str:
    return format_number(value)  # plain decimals: a bound of 2000000 is not 2e+06
