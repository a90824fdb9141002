"""Results rendered for machines (JSON document, JSON lines, Nagios plugin line) and people.

The JSON shapes are a public interface: `monitor/schema/result.schema.json` describes them and a
test validates real output against it. Change them only together with SCHEMA_VERSION.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from monitor.events import Event
from monitor.model import CertificateInfo, ProbeResult, Severity, Verdict

SCHEMA_VERSION = 1


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
    }


def certificate_to_dict(certificate: CertificateInfo, at: float) -> dict[str, Any]:
    return {
        "fingerprint_sha256": certificate.fingerprint_sha256,
        "position": certificate.position,
        "subject": certificate.subject,
        "issuer": certificate.issuer,
        "serial": certificate.serial,
        "not_before": iso_time(certificate.not_before),
        "not_after": iso_time(certificate.not_after),
        "days_left": round(certificate.days_left(at), 3),
        "key_type": certificate.key_type,
        "key_bits": certificate.key_bits,
        "signature_algorithm": certificate.signature_algorithm,
        "subject_alt_names": list(certificate.subject_alt_names),
        "spki_sha256": certificate.spki_sha256,
        "self_signed": certificate.self_signed,
    }


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
    """A redundancy group's state (a `monitor.pipeline.GroupSummary`)."""
    return {
        "group_id": group.group_id,
        "name": group.name,
        "site_id": group.site_id,
        "status": None if group.status is None else str(group.status),
        "up": group.up,
        "links": group.total,
        "min_up": group.min_up,
    }


def groups_table(groups: Sequence[Any]) -> str:
    lines = ["\nREDUNDANCY"]
    for g in groups:
        status = "UNKNOWN" if g.status is None else str(g.status)
        lines.append(
            f"  {status:<10} {g.group_id:<24} {g.up} of {g.total} links up (needs {g.min_up})"
        )
    return "\n".join(lines)


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
    id_width = min(max((len(r.check.check_id) for r in results), default=5), 48)
    target_width = min(max((len(r.check.target) for r in results), default=6), 40)
    lines = [
        f"{'STATE':<7}  {'CHECK':<{id_width}}  {'KIND':<5}  {'TARGET':<{target_width}}  "
        f"{'TIME':>8}  DETAIL"
    ]
    for r in ordered:
        lines.append(
            f"{severity_label(r.severity, colour)}  {_clip(r.check.check_id, id_width):<{id_width}}"
            f"  {r.check.kind:<5}  {_clip(r.check.target, target_width):<{target_width}}"
            f"  {r.duration_ms:>6.0f}ms  {r.summary()}"
        )
    counts = Counter(r.severity for r in results)
    totals = ", ".join(f"{counts.get(s, 0)} {s.name}" for s in Severity)
    lines.append(f"\n{len(results)} checks: {totals}; worst {worst(results).name}")
    return "\n".join(lines)


def verdict_list(result: ProbeResult, colour: bool) -> str:
    """The readable form of one result, for `commwatch probe`."""
    ref = result.check
    lines = [
        f"{severity_label(result.severity, colour).rstrip()}  {ref.kind} {ref.target}"
        f"  ({result.duration_ms:.0f} ms)"
    ]
    if result.error is not None:
        lines.append(f"  error    {result.error.error_class}: {result.error.message}")
    lines.extend(f"  {severity_label(v.severity, colour)}  {v.describe()}" for v in result.verdicts)
    for key, value in result.observations.items():
        lines.append(f"  observed {key} = {value}")
    return "\n".join(lines)


_PERF_LABEL = re.compile(r"[^A-Za-z0-9_.-]")
_PERF_UNITS = {"ms": "ms", "s": "s", "%": "%", "B": "B", "days": ""}


def nagios_line(result: ProbeResult) -> str:
    """`KIND STATE - target: summary | perfdata`, the monitoring-plugin convention."""
    judged = {v.observation for v in result.verdicts}
    perf = [
        _perf(v.observation, v.value, v.unit, _range(v.warn, v), _range(v.crit, v))
        for v in result.verdicts
        if _is_number(v.value)
    ]
    perf.extend(
        _perf(key, value, "ms" if key.endswith("_ms") else "", "", "")
        for key, value in result.observations.items()
        if key not in judged and _is_number(value)
    )
    summary = result.summary().replace("|", "/")
    line = f"{result.check.kind.upper()} {result.severity.name} - {result.check.target}: {summary}"
    return f"{line} | {' '.join(perf)}" if perf else line


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _range(bound: float | None, verdict: Verdict) -> str:
    if bound is None:
        return ""
    # Plugin ranges alert outside [start:end]: "above 200" is "200", "below 14" is "14:".
    return f"{bound:g}" if verdict.higher_is_worse else f"{bound:g}:"


def _perf(label: str, value: Any, unit: str, warn: str, crit: str) -> str:
    uom = _PERF_UNITS.get(unit, "")
    return f"'{_PERF_LABEL.sub('_', label)}'={value:g}{uom};{warn};{crit}"


def write_line(stream: TextIO, line: str) -> None:
    stream.write(line + "\n")
    stream.flush()


def progress(done: int, total: int, stream: TextIO = sys.stderr) -> None:
    stream.write(f"\r  {done}/{total} checks done")
    if done == total:
        stream.write("\r\x1b[K")
    stream.flush()
