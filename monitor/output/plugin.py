"""Results as a monitoring plugin reports them (Nagios, Icinga, Naemon, Sensu, Checkmk):
`NAME STATE - text | perfdata`, one line, in the words and units of the plugin guidelines."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass

from monitor.core.model import ObservationValue, ProbeResult, Severity
from monitor.core.options import format_number, is_number
from monitor.core.text import printable

# The status words of the plugin guidelines, which differ from commwatch's own WARN and CRIT.
PLUGIN_STATES = {
    Severity.OK: "OK",
    Severity.WARN: "WARNING",
    Severity.CRIT: "CRITICAL",
    Severity.UNKNOWN: "UNKNOWN",
}
# Nagios strips its illegal_macro_output_chars from the output it hands to event handlers and
# notifications ("warn < 30d" arrives as "warn  30d"), so the plugin text never holds them:
# comparisons are said in words, quotes become typographic ones, the rest shows as an escape.
_MACRO_WORDS = (
    (" <= ", " at most "),
    (" >= ", " at least "),
    (" < ", " below "),
    (" > ", " above "),
)
_MACRO_CHARS = re.compile("[`~$&|'\"<>]")
_MACRO_SWAPS = {"'": "\u2019", "`": "\u2019", '"': "\u201d", "|": "/"}


def plugin_text(text: str) -> str:
    """`text` as a plugin line can carry it: one line, inert, and nothing Nagios would strip."""
    safe = printable(text)
    for sign, words in _MACRO_WORDS:
        safe = safe.replace(sign, words)
    return _MACRO_CHARS.sub(lambda m: _MACRO_SWAPS.get(m.group(), f"\\x{ord(m.group()):02x}"), safe)


def plugin_status_line(name: str, severity: Severity, text: str, perfdata: str = "") -> str:
    """`NAME STATE - text | perfdata`, the monitoring-plugin convention."""
    line = f"{name} {PLUGIN_STATES[severity]} - {plugin_text(text)}"
    return f"{line} | {perfdata}" if perfdata else line


def nagios_line(result: ProbeResult) -> str:
    """One result as a monitoring plugin reports it, perfdata after the `|`."""
    return plugin_status_line(
        result.check.kind.upper(),
        result.severity,
        f"{result.check.target}: {result.summary()}",
        perfdata(result),
    )


# --- perfdata --------------------------------------------------------------------------------

# Perfdata units (UOM) of the guidelines: s/ms/us, %, B/KB/MB/TB, c; anything else has none.
_UNIT_UOM = {"ms": "ms", "s": "s", "us": "us", "%": "%", "B": "B"}
_SUFFIX_UOM = (("_ms", "ms"), ("_s", "s"), ("_bytes", "B"), ("_pct", "%"))
_NOT_MEASURES = (".index",)  # identifiers, however numeric, are not worth a graph
RRD_LABEL_LENGTH = 19  # what RRD keeps of a label: labels stay unique within it


@dataclass(frozen=True)
class _Metric:
    name: str
    value: float
    uom: str
    warn: str = ""
    crit: str = ""


def perfdata(result: ProbeResult) -> str:
    """`label=value[UOM];[warn];[crit];[min];[max]`, space separated, in plain decimals."""
    metrics: dict[str, _Metric] = {}
    for v in result.verdicts:
        value = _measure(v.observation, v.value)
        if value is not None and v.observation not in metrics:
            metrics[v.observation] = _Metric(
                v.observation,
                value,
                _UNIT_UOM.get(v.unit, ""),
                _range(v.warn, v.higher_is_worse),
                _range(v.crit, v.higher_is_worse),
            )
    for key, observed in result.observations.items():
        value = _measure(key, observed)
        if value is not None and key not in metrics:
            uom = next((u for suffix, u in _SUFFIX_UOM if key.endswith(suffix)), "")
            metrics[key] = _Metric(key, value, uom)
    labels = unique_labels(list(metrics))
    return " ".join(_perf_item(label, m) for label, m in zip(labels, metrics.values(), strict=True))


def _measure(key: str, value: ObservationValue) -> float | None:
    """The value as a graphable number; None for text, flags, identifiers and non-finite ones."""
    return float(value) if is_number(value) and not key.endswith(_NOT_MEASURES) else None


def _range(bound: float | None, higher_is_worse: bool) -> str:
    if bound is None:
        return ""
    # Plugin ranges alert outside [start:end]: "above 200" is "200", "below 14" is "14:".
    return format_number(bound) if higher_is_worse else f"{format_number(bound)}:"


def _perf_item(label: str, metric: _Metric) -> str:
    fields = [f"{perf_label(label)}={format_number(metric.value)}{metric.uom}"]
    fields += [metric.warn, metric.crit]
    if metric.uom == "%":
        fields += ["0", "100"]
    return ";".join(fields).rstrip(";")


def perf_label(label: str) -> str:
    """A label as the guidelines want it: quoted when it holds a space, = or ', a ' doubled."""
    shown = printable(label)
    if any(c in shown for c in " ='"):
        return "'" + shown.replace("'", "''") + "'"
    return shown


def unique_labels(names: list[str]) -> list[str]:
    """`names` (unique) as labels unique within RRD's 19 characters: a name whose first 19
    characters another one shares keeps its first 14 and gets a stable 4-character digest."""
    labels = list(names)
    for salt in range(len(names) + 1):
        heads = Counter(label[:RRD_LABEL_LENGTH] for label in labels)
        clashing = [i for i, label in enumerate(labels) if heads[label[:RRD_LABEL_LENGTH]] > 1]
        if not clashing:
            return labels
        for i in clashing:
            digest = hashlib.blake2s(f"{salt}:{names[i]}".encode(), digest_size=4).hexdigest()
            labels[i] = f"{names[i][:14]}_{digest[:4]}"
    raise AssertionError("perfdata labels could not be made unique")  # pragma: no cover
