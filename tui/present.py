"""Plain-text pieces of the dashboard: severity marks, ages, sparklines and the info column.

Pure functions over results, so the table, the detail pane and the tests agree on every string.
Meaning is carried by symbols and words; colour (added by the widgets, from the .tcss) only
repeats it, so a monochrome or NO_COLOR terminal loses nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from monitor.core.model import ProbeResult, Severity
from monitor.core.text import printable
from probes import registry
from tui.state import AckShown

SYMBOLS = {Severity.OK: "✔", Severity.WARN: "▲", Severity.CRIT: "✖", Severity.UNKNOWN: "?"}
PENDING_SYMBOL = "·"
_SHORT = {Severity.OK: "OK", Severity.WARN: "WARN", Severity.CRIT: "CRIT", Severity.UNKNOWN: "UNKN"}
_BLOCKS = "▁▂▃▄▅▆▇█"
_GAP = " "  # an attempt that measured no latency (it failed before it could)


def status_text(severity: Severity | None, acked: bool = False) -> str:
    """`✖ CRIT`, or `✖ CRIT ack` once acknowledged; `· pending` before the first result."""
    if severity is None:
        return f"{PENDING_SYMBOL} pending"
    if acked:
        return f"{SYMBOLS[severity]} {_SHORT[severity]} ack"
    return f"{SYMBOLS[severity]} {severity.name}"


# Every state label the engine uses (checks, links, redundancy groups), each with its own mark:
# the word and the symbol carry the meaning without colour.
STATE_SYMBOLS = {
    **{severity.name: symbol for severity, symbol in SYMBOLS.items()},
    "PENDING": PENDING_SYMBOL,
    "UP": "✔",
    "DOWN": "✖",
    "RESILIENT": "✔",
    "DEGRADED": "△",
    "AT RISK": "▲",
    "NOT EVALUATED": "○",
}


def state_text(label: str | None) -> str:
    """`✔ UP`, `▲ AT RISK`, `✖ CRIT`; `· pending` for None or PENDING."""
    if label is None or label == "PENDING":
        return f"{PENDING_SYMBOL} pending"
    if label == "NOT EVALUATED":  # lower case like pending: an absence of state, not a state
        return f"{STATE_SYMBOLS[label]} not evaluated"
    return f"{STATE_SYMBOLS.get(label, '?')} {label}"


def soft_text(soft: Severity, attempts: int, confirmations: int) -> str:
    """A change seen but not yet confirmed: `✖ CRIT 1/3`."""
    return f"{SYMBOLS[soft]} {_SHORT[soft]} {attempts}/{confirmations}"


def age_text(seconds: float) -> str:
    """A compact age: 12s, 5m, 3h, 2d (whole units, rounded down)."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clock_text(timestamp: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


def ack_text(ack: AckShown, now: float) -> str:
    """`acknowledged by noc until 18:00:00 (3h left): fibre cut, ticket 42`."""
    return (
        f"acknowledged by {printable(ack.by)} until {clock_text(ack.expires)} "
        f"({age_text(ack.expires - now)} left): {printable(ack.comment)}"
    )


def sparkline(values: Sequence[float | None], width: int) -> str:
    """The last `width` values as block characters, scaled between their own min and max."""
    shown = list(values)[-width:]
    measured = [v for v in shown if v is not None and math.isfinite(v)]
    if not measured:
        return _GAP * len(shown)
    low, high = min(measured), max(measured)
    span = high - low
    top = len(_BLOCKS) - 1
    return "".join(
        _GAP
        if v is None or not math.isfinite(v)
        else _BLOCKS[0 if span == 0 else round((v - low) / span * top)]
        for v in shown
    )


def info_text(result: ProbeResult, now: float) -> str:
    """The most telling facts of a result, for a narrow column.

    Why it is not OK comes first, in the words of its failing verdicts ("untrusted root",
    "expires in 9.2d"), unless a fact its kind shows says it already ("HTTP 503", "NXDOMAIN",
    "if eth1 down"). Then the facts its kind's headline names; those meant for the OK state
    (a certificate's days left) only when nothing is wrong. Else the summary.
    """
    headline = registry.headline(result, now)
    # Two verdicts may share a reason (an incomplete chain is also an unverified one).
    parts = list(
        dict.fromkeys(v.reason for v in result.failing() if v.observation not in headline.tells)
    )
    if result.error is not None:
        parts.append(f"{result.error.error_class}: {result.error.message}")
    facts = list(headline.facts) if parts else [*headline.when_ok, *headline.facts]
    return " · ".join(parts + facts) or result.summary()
