"""The rules of a check's own state: confirmation (soft and hard states) and flapping.

A check's confirmed (hard) state changes only after `confirmations` agreeing results; until
then the latest result's severity is its soft state. CONFIRMATION says what each result does to
the count, FIRST_CONFIRMATIONS where a first result needs fewer. Flapping is Nagios' weighted
share of changes over the last `window` results, with hysteresis between `high` and `low`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from monitor.config.inventory import FlapPolicy
from monitor.core.events import PENDING, CheckStatus, Pending
from monitor.core.model import Severity
from monitor.engine.topology import CheckPolicy


@dataclass(frozen=True, slots=True)
class CheckState:
    hard: Severity | Pending  # the confirmed severity, PENDING before the first one
    soft: Severity  # the latest result's severity
    attempts: int  # consecutive results agreeing with `soft` while it differs from `hard`
    since: float  # when `hard` began
    last_at: float
    changes: tuple[bool, ...] = ()  # per recent result: did its severity differ from the one before
    flapping: bool = False

    @property
    def is_soft(self) -> bool:
        return self.soft is not self.hard


def status_of(severity: Severity | Pending) -> CheckStatus | Pending:
    """A check's state as events, history and every output name it."""
    return PENDING if severity is PENDING else CheckStatus.of(severity)


class _Step(enum.Enum):
    SETTLE = "settle"  # the result agrees with the confirmed state
    COUNT = "count"  # it agrees with the soft state: one more agreeing result
    RESTART = "restart"  # a new deviation: start counting again


# (result agrees with hard, result agrees with soft) -> step
CONFIRMATION: Mapping[tuple[bool, bool], _Step] = MappingProxyType(
    {
        (True, True): _Step.SETTLE,
        (True, False): _Step.SETTLE,
        (False, True): _Step.COUNT,
        (False, False): _Step.RESTART,
    }
)

# (confirmed state, result) -> agreeing results needed to confirm, where not `confirmations`:
# a first OK has nothing to be confirmed against.
FIRST_CONFIRMATIONS: Mapping[tuple[Severity | Pending, Severity], int] = MappingProxyType(
    {(PENDING, Severity.OK): 1}
)


def _flap_share(changes: tuple[bool, ...], window: int) -> float:
    """Weighted percentage of changes over the window, recent ones weighing more (0.8 oldest ..
    1.2 newest). Results not yet seen count as steady, so a new check cannot start flapping on
    its second result."""
    padded = (False,) * (window - len(changes)) + changes
    weights = _flap_weights(window)
    return 100.0 * sum(w for w, c in zip(weights, padded, strict=True) if c) / sum(weights)


@functools.cache
def _flap_weights(window: int) -> tuple[float, ...]:
    return tuple(0.8 + 0.4 * i / max(window - 1, 1) for i in range(window))


def _is_flapping(was: bool, changes: tuple[bool, ...], policy: FlapPolicy) -> bool:
    share = _flap_share(changes, policy.window)
    return share >= policy.low if was else share > policy.high


def confirm(
    previous: CheckState | None,
    severity: Severity,
    at: float,
    policy: CheckPolicy,
    flap: FlapPolicy,
) -> CheckState:
    """The check's next state after a result of `severity`."""
    hard: Severity | Pending = PENDING
    soft: Severity | Pending = PENDING
    since, attempts, was_flapping = at, 0, False
    changes: tuple[bool, ...] = ()  # a first result is no change
    if previous is not None:
        hard, soft, since, attempts = (
            previous.hard,
            previous.soft,
            previous.since,
            previous.attempts,
        )
        changes = (*previous.changes, severity is not soft)[-flap.window :]
        was_flapping = previous.flapping
    flapping = _is_flapping(was_flapping, changes, flap)
    step = CONFIRMATION[(severity is hard, severity is soft)]
    if step is _Step.SETTLE:
        attempts = 0
    else:
        attempts = attempts + 1 if step is _Step.COUNT else 1
        if attempts >= FIRST_CONFIRMATIONS.get((hard, severity), policy.confirmations):
            hard, since, attempts = severity, at, 0
    return CheckState(
        hard=hard,
        soft=severity,
        attempts=attempts,
        since=since,
        last_at=at,
        changes=changes,
        flapping=flapping,
    )
