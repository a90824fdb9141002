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
from monitor.core.options import is_number
from monitor.core.text import duration_text

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
    "expires in 9.2d"), unless a fact shown for its kind says it already: HTTP status, DNS
    rcode, interfaces down. Then those facts and SNMP uptime; the days of certificate left
    only when nothing is wrong (it is the OK state's fact, and the days judged: the first
    certificate of the chain to expire). Else the summary.
    """
    facts: list[str] = []
    shown: set[str] = set()  # the observations the facts already tell
    uptime = result.observations.get("system.uptime_s")
    if is_number(uptime):
        facts.append(f"up {duration_text(uptime)}")
    interfaces = _interfaces(result)
    if interfaces:
        down = [name for name, status in interfaces.items() if status != "up"]
        if down:
            facts.append("if " + ",".join(down) + " down")
            shown.update(f"if.{name}.{what}" for name in down for what in ("state", "admin_status"))
        else:
            facts.append(f"if {len(interfaces)}/{len(interfaces)} up")
    status = result.observations.get("status")
    if result.check.kind == "http" and isinstance(status, int):
        facts.append(f"HTTP {status}")
        shown.add("status")
    rcode = result.observations.get("rcode")
    if isinstance(rcode, str):
        facts.append(rcode)
        shown.add("rcode")
    # Two verdicts may share a reason (an incomplete chain is also an unverified one).
    parts = list(dict.fromkeys(v.reason for v in result.failing() if v.observation not in shown))
    if result.error is not None:
        parts.append(f"{result.error.error_class}: {result.error.message}")
    if not parts:
        days = _certificate_days(result, now)
        if days is not None:
            facts.insert(0, f"cert {days:.0f}d")
    return " · ".join(parts + facts) or result.summary()


def _certificate_days(result: ProbeResult, now: float) -> float | None:
    for key in ("min_days_left", "days_left"):
        value = result.observations.get(key)
        if is_number(value):
            return float(value)
    if result.certificates:
        return result.certificates[0].days_left(now)
    return None


def _interfaces(result: ProbeResult) -> dict[str, str]:
    """`if.<name>.oper_status` observations, by interface name."""
    found = {}
    for key, value in result.observations.items():
        if key.startswith("if.") and key.endswith(".oper_status"):
            found[key[3 : -len(".oper_status")]] = str(value)
    return found
