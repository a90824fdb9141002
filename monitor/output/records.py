"""Results as records for machines: the sweep's JSON document, the stream's JSON lines (results
and state changes), and the redundancy groups beside them.

The shapes are a public interface: `monitor/output/schema/result.schema.json` describes them and
tests validate real output against it. Change them only together with SCHEMA_VERSION. JSON stays
exact (peer text is not escaped for people here: the encoder escapes control characters).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from monitor.core.events import Event
from monitor.core.model import (
    CertificateInfo,
    ObservationValue,
    ProbeResult,
    Severity,
    VantageResult,
    Verdict,
)

if TYPE_CHECKING:
    # Only the API's history reads stored results: `probe` and `run` never load the store.
    from monitor.store.rows import StoredResult

SCHEMA_VERSION = 2


def iso_time(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat(timespec="milliseconds")


def _json_value(value: ObservationValue) -> ObservationValue:
    # JSON has no NaN or infinity: a value that is not a number is no value.
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
        "headline": verdict.headline,
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
    record = {
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
    # Only a result seen from several vantage points has the list: any other is as it was.
    if result.vantage:
        record["vantage"] = [vantage_to_dict(part) for part in result.vantage]
    return record


def vantage_to_dict(part: VantageResult) -> dict[str, Any]:
    """One vantage point's part: its severity as the quorum counted it (UNKNOWN without a
    fresh result), and its latest result (null before its first)."""
    return {
        "name": part.name,
        "severity": part.severity.name,
        "fresh": part.fresh,
        "result": None if part.result is None else result_to_dict(part.result),
    }


def stored_result_to_dict(stored: StoredResult) -> dict[str, Any]:
    """A result as history kept it: the fields of `result_to_dict` the store has (no target,
    tags or certificates), and the latency it recorded."""
    return {
        "check_id": stored.check_id,
        "site_id": stored.site_id,
        "link_id": stored.link_id,
        "kind": stored.kind,
        "started_at": iso_time(stored.started_at),
        "duration_ms": stored.duration_ms,
        "severity": stored.severity.name,
        "exit_code": stored.severity.value,
        "summary": stored.summary,
        "latency_ms": stored.latency_ms,
        "observations": {k: _json_value(v) for k, v in stored.observations.items()},
        "verdicts": [verdict_to_dict(v) for v in stored.verdicts],
        "error": None
        if stored.error_class is None
        else {"class": stored.error_class, "message": stored.error_message},
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


class GroupView(Protocol):
    """A redundancy group as a selection of checks judged it: what the state engine's
    `GroupSummary` offers the renderers (a layer below it, they name only what they read)."""

    @property
    def group_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def site_id(self) -> str: ...
    @property
    def status(self) -> str | None: ...
    @property
    def evaluated(self) -> bool: ...
    @property
    def not_evaluated(self) -> tuple[str, ...]: ...
    @property
    def up(self) -> int: ...
    @property
    def unknown(self) -> int: ...
    @property
    def total(self) -> int: ...
    @property
    def min_up(self) -> int: ...
    @property
    def label(self) -> str: ...
    def describe(self) -> str: ...
    @property
    def converging(self) -> tuple[str, ...]: ...


def group_record(group: GroupView) -> dict[str, Any]:
    """A redundancy group's state: `status` is null while a link has none yet, and for a group
    the selection cannot judge (`evaluated` false: the checks deciding `not_evaluated` links
    were not selected), whose counts are null too."""
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
        "converging": list(group.converging),
    }


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
