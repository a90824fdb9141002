"""Results rendered for machines (JSON document, JSON lines, Nagios plugin line) and people.

The JSON shapes are a public interface: `monitor/output/schema/result.schema.json` describes
them and a test validates real output against it. Change them only together with SCHEMA_VERSION.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from monitor.core.events import Event
from monitor.core.model import CertificateInfo, ProbeResult, Severity, Verdict, shown_value
from monitor.core.options import format_number, is_number
from monitor.core.text import printable

SCHEMA_VERSION = 2


def iso_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    return {
        "condition": verdict.condition,
        "observation": verdict.observation,
        "value": _json_value(verdict.value),
        "unit": verdict.unit,
        "threshold": verdict.threshold,
        "warn": verdict.warn,
        "crit": verdict.crit,
        "severity": verdict.severity.name,
        "about": verdict.about,
        "finding": verdict.finding,
        "reason": verdict.reason,
    }


def certificate_to_dict(certificate: CertificateInfo, at: float) -> dict[str, Any]:
    return {
        "fingerprint_sha256": certificate.fingerprint_sha256,
        "position": certificate.position,
        "subject": certificate.subject,
        "issuer": certificate.issuer,
        "serial": certificate.serial,
        "not_before": _iso_or_none(certificate.not_before),
        "not_after": _iso_or_none(certificate.not_after),
        "days_left": _rounded_or_none(certificate.days_left(at)),
        "key_type": certificate.key_type,
        "key_bits": certificate.key_bits,
        "signature_algorithm": certificate.signature_algorithm,
        "subject_alt_names": list(certificate.subject_alt_names),
        "spki_sha256": certificate.spki_sha256,
        "self_signed": certificate.self_signed,
        "malformed": list(certificate.malformed),
    }


def _iso_or_none(timestamp: float | None) -> str | None:
    return None if timestamp is None else iso_time(timestamp)


def _rounded_or_none(days: float | None) -> float | None:
    return None if days is None else round(days, 3)


def result_to_dict(result: ProbeResult) -> dict[str, Any]:
    ref = result.check
    return {
        "check_id": ref.check_id,
        "site_id": ref.site_id,
        "link_id": ref.link_id,
        "kind": ref.kind,
        "target": ref.target,
        "tags": list(ref.tags),
        "started_at": iso_time(result.started_at),
        "duration_ms": result.duration_ms,
        "severity": result.severity.name,
        "exit_code": result.severity.value,
        "summary": result.summary(),
        "observations": {k: _json_value(v) for k, v in result.observations.items()},
        "verdicts": [verdict_to_dict(v) for v in result.verdicts],
        "error": None
        if result.error is None
        else {"class": str(result.error.error_class), "message": result.error.message},
        "certificates": [certificate_to_dict(c, result.started_at) for c in result.certificates],
    }


def worst(results: Iterable[ProbeResult]) -> Severity:
    return Severity.worst(r.severity for r in results)


def sweep_document(
    results: Sequence[ProbeResult],
    started_at: float,
    finished_at: float,
    inventory: str,
    complete: bool,
) -> dict[str, Any]:
    counts = Counter(r.severity.name for r in results)
    overall = worst(results)
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "sweep",
        "inventory": inventory,
        "started_at": iso_time(started_at),
        "finished_at": iso_time(finished_at),
        "complete": complete,
        "summary": {
            "checks": len(results),
            **{severity.name: counts.get(severity.name, 0) for severity in Severity},
            "worst": overall.name,
            "exit_code": overall.value,
        },
        "results": [result_to_dict(r) for r in results],
    }


def group_record(group: Any) -> dict[str, Any]:
    """A redundancy group's state (a `monitor.engine.pipeline.GroupSummary`): `status` is null while
    a link has none yet, and for a group the selection cannot judge (`evaluated` false: the
    checks deciding `not_evaluated` links were not selected), whose counts are null too."""
    return {
        "group_id": group.group_id,
        "name": group.name,
        "site_id": group.site_id,
        "status": None if group.status is None else str(group.status),
        "evaluated": group.evaluated,
        "not_evaluated": list(group.not_evaluated),
        "up": group.up if group.evaluated else None,
        "unknown": group.unknown if group.evaluated else None,
        "links": group.total,
        "min_up": group.min_up,
    }


def groups_table(groups: Sequence[Any]) -> str:
    # Columns as wide as their longest entry, and never narrower than the usual ones: the
    # layout only moves when a NOT EVALUATED row or a long id needs the room.
    width = max((len(g.label) for g in groups), default=0)
    id_width = max((len(g.group_id) for g in groups), default=0)
    lines = ["\nREDUNDANCY"]
    lines += [
        f"  {g.label:<{max(width, 10)}} {g.group_id:<{max(id_width, 24)}} {g.describe()}"
        for g in groups
    ]
    return "\n".join(lines)


def not_evaluated_note(groups: Sequence[Any]) -> str | None:
    """A line for people when the selection leaves groups unjudged (None when it does not)."""
    ids = [g.group_id for g in groups if not g.evaluated]
    if not ids:
        return None
    return (
        f"commwatch: redundancy not evaluated for {', '.join(ids)}: the selection leaves out"
        " checks that decide some of their links"
    )


def result_record(result: ProbeResult) -> dict[str, Any]:
    """A result standing alone: a line of the continuous stream, or `probe --format json`."""
    return {"schema_version": SCHEMA_VERSION, "type": "result", **result_to_dict(result)}


def event_record(event: Event) -> dict[str, Any]:
    """A state change, as the continuous stream carries it beside results."""
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "event",
        "event_id": event.event_id,
        "at": iso_time(event.at),
        "subject": str(event.subject),
        "subject_id": event.subject_id,
        "site_id": event.site_id,
        "kind": str(event.kind),
        "before": str(event.before),
        "after": str(event.after),
        "cause": event.cause,
        "suppressed": [str(s) for s in event.suppressed],
        "notifiable": event.notifiable,
    }


def json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def result_line(result: ProbeResult) -> str:
    return json_line(result_record(result))


# --- for people ----------------------------------------------------------------------------
# Summaries, messages and observed values quote peers (certificate subjects, DNS data, SNMP
# strings): every one goes through `printable` here, so none can drive the terminal or forge a
# line. Check ids and targets too, cheaply, whatever the inventory holds.

_COLOURS = {
    Severity.OK: "\x1b[32m",
    Severity.WARN: "\x1b[33m",
    Severity.CRIT: "\x1b[1;31m",
    Severity.UNKNOWN: "\x1b[35m",
}
_RESET = "\x1b[0m"


def use_colour(stream: TextIO) -> bool:
    """Colour only for a terminal, and never when NO_COLOR is set (no-color.org)."""
    return "NO_COLOR" not in os.environ and stream.isatty()


def colourise(text: str, severity: Severity, colour: bool) -> str:
    return f"{_COLOURS[severity]}{text}{_RESET}" if colour else text


def severity_label(severity: Severity, colour: bool) -> str:
    return colourise(f"{severity.name:<7}", severity, colour)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(results: Sequence[ProbeResult], colour: bool) -> str:
    """A fixed-column table, worst first, then by check id."""
    ordered = sorted(results, key=lambda r: (-r.severity.rank, r.check.check_id))
    shown = [(r, printable(r.check.check_id), printable(r.check.target)) for r in ordered]
    id_width = min(max((len(check_id) for _, check_id, _ in shown), default=5), 48)
    target_width = min(max((len(target) for _, _, target in shown), default=6), 40)
    lines = [
        f"{'STATE':<7}  {'CHECK':<{id_width}}  {'KIND':<5}  {'TARGET':<{target_width}}  "
        f"{'TIME':>8}  DETAIL"
    ]
    for r, check_id, target in shown:
        lines.append(
            f"{severity_label(r.severity, colour)}  {_clip(check_id, id_width):<{id_width}}"
            f"  {r.check.kind:<5}  {_clip(target, target_width):<{target_width}}"
            f"  {r.duration_ms:>6.0f}ms  {printable(r.summary())}"
        )
    counts = Counter(r.severity for r in results)
    totals = ", ".join(f"{counts.get(s, 0)} {s.name}" for s in Severity)
    lines.append(f"\n{len(results)} checks: {totals}; worst {worst(results).name}")
    return "\n".join(lines)


def verdict_list(result: ProbeResult, colour: bool) -> str:
    """The readable form of one result, for `commwatch probe`: what failed first."""
    ref = result.check
    lines = [
        f"{severity_label(result.severity, colour).rstrip()}  {ref.kind} {printable(ref.target)}"
        f"  ({result.duration_ms:.0f} ms)"
    ]
    if result.error is not None:
        lines.append(f"  error    {result.error.error_class}: {printable(result.error.message)}")
    failing_first = sorted(result.verdicts, key=lambda v: -v.severity.rank)
    lines.extend(
        f"  {severity_label(v.severity, colour)}  {printable(v.describe())}" for v in failing_first
    )
    for key, value in result.observations.items():
        lines.append(f"  observed {printable(key)} = {printable(shown_value(value))}")
    return "\n".join(lines)


# --- the monitoring-plugin line ----------------------------------------------------------------

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
        if _is_measure(v.observation, v.value) and v.observation not in metrics:
            metrics[v.observation] = _Metric(
                v.observation,
                float(v.value),  # type: ignore[arg-type]
                _UNIT_UOM.get(v.unit, ""),
                _range(v.warn, v.higher_is_worse),
                _range(v.crit, v.higher_is_worse),
            )
    for key, value in result.observations.items():
        if _is_measure(key, value) and key not in metrics:
            uom = next((u for suffix, u in _SUFFIX_UOM if key.endswith(suffix)), "")
            metrics[key] = _Metric(key, float(value), uom)  # type: ignore[arg-type]
    labels = unique_labels(list(metrics))
    return " ".join(_perf_item(label, m) for label, m in zip(labels, metrics.values(), strict=True))


def _is_measure(key: str, value: object) -> bool:
    return is_number(value) and not key.endswith(_NOT_MEASURES)


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


def write_line(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def progress(done: int, total: int, stream: TextIO = sys.stderr) -> None:
    stream.write(f"\r  {done}/{total} checks done")
    if done == total:
        stream.write("\r\x1b[K")
    stream.flush()
