"""Turns a check's results into the state its dashboard row shows.

This is the seam a state engine (soft/hard states, flapping, redundancy) will plug into: today
`advance` folds each raw result straight into a `RowState`; later the engine's output feeds the
same `RowState`, and nothing else in the dashboard changes. Pure, no I/O, no Textual.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.model import CheckRef, ProbeResult, Severity

HISTORY = 20  # results kept per check for the detail pane
TREND_POINTS = 24  # latencies kept per check for the sparkline

# Latency-like observations, most telling first: what a probe waited for on the wire.
LATENCY_KEYS = ("latency_ms", "handshake_ms", "connect_ms", "rtt_ms", "response_ms", "total_ms")


@dataclass(frozen=True, slots=True)
class RowState:
    """What is known about one check; `severity` is None until its first result."""

    severity: Severity | None = None
    result: ProbeResult | None = None
    changed_at: float | None = None  # when the severity last changed
    latencies: tuple[float | None, ...] = ()  # None: that attempt measured no latency
    history: tuple[ProbeResult, ...] = ()


@dataclass(frozen=True, slots=True)
class StateChange:
    """A check's severity moved (OK -> CRIT, ...): what the event log records."""

    check: CheckRef
    before: Severity | None
    after: Severity
    at: float
    summary: str


def finished_at(result: ProbeResult) -> float:
    return result.started_at + result.duration_ms / 1000


def latency_of(result: ProbeResult) -> float | None:
    for key in LATENCY_KEYS:
        value = result.observations.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def advance(previous: RowState, result: ProbeResult) -> tuple[RowState, StateChange | None]:
    """The row state after `result`, and the state change it made, if any. A first result that
    is OK is not news; a first result that is a problem is."""
    changed = previous.severity is not result.severity
    change = None
    if changed and not (previous.severity is None and result.severity is Severity.OK):
        change = StateChange(
            result.check, previous.severity, result.severity, finished_at(result), result.summary()
        )
    state = RowState(
        severity=result.severity,
        result=result,
        changed_at=finished_at(result) if changed else previous.changed_at,
        latencies=(*previous.latencies, latency_of(result))[-TREND_POINTS:],
        history=(*previous.history, result)[-HISTORY:],
    )
    return state, change
