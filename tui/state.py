"""Turns a check's results into the state its dashboard row shows. Pure, no I/O, no Textual.

The severity a row shows is the confirmed (hard) one when the state engine runs (it is given
to `advance`); the raw result's otherwise. History and sparklines can start from the history
store (`preloaded`), so a restart keeps its context.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitor.core.model import ProbeResult, Severity
from probes import registry

HISTORY = 20  # results kept per check for the detail pane
TREND_POINTS = 24  # latencies kept per check for the sparkline


@dataclass(frozen=True, slots=True)
class HistoryLine:
    """One past result as the detail pane lists it (from this run or from the store)."""

    at: float  # when it finished
    severity: Severity
    summary: str


@dataclass(frozen=True, slots=True)
class AckShown:
    """An acknowledgement of a subject's problem as the dashboard shows it (the engine's:
    local, or as its API says)."""

    by: str
    expires: float  # POSIX seconds
    comment: str  # as the engine keeps it: printable


@dataclass(frozen=True, slots=True)
class RowState:
    """What is known about one check; `severity` is None until its first result."""

    severity: Severity | None = None
    result: ProbeResult | None = None
    changed_at: float | None = None  # when the severity last changed
    latencies: tuple[float | None, ...] = ()  # None: that attempt measured no latency
    history: tuple[HistoryLine, ...] = ()

    @property
    def is_problem(self) -> bool:
        """WARN, CRIT or UNKNOWN: what the problems view keeps and can be acknowledged."""
        return self.severity is not None and self.severity is not Severity.OK


def finished_at(result: ProbeResult) -> float:
    return result.started_at + result.duration_ms / 1000


def advance(previous: RowState, result: ProbeResult, severity: Severity) -> RowState:
    """The row state after `result`, showing `severity` (the confirmed one, or the result's)."""
    changed = previous.severity is not severity
    done = finished_at(result)
    return RowState(
        severity=severity,
        result=result,
        changed_at=done if changed else previous.changed_at,
        latencies=(*previous.latencies, registry.main_latency(result))[-TREND_POINTS:],
        history=(*previous.history, HistoryLine(done, result.severity, result.summary()))[
            -HISTORY:
        ],
    )


def preloaded(
    state: RowState, latencies: Sequence[float | None], history: Sequence[HistoryLine]
) -> RowState:
    """`state` with older points from the store in front of what this run has seen."""
    return replace(
        state,
        latencies=(*latencies, *state.latencies)[-TREND_POINTS:],
        history=(*history, *state.history)[-HISTORY:],
    )
