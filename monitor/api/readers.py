"""What a viewer reads back from the engine's JSON: result and event records (the shapes of
`monitor/output/records.py`) as `ProbeResult` and `Event`, and the state document's
`inventory` as an `Inventory` the dashboard can show.

The engine is a peer like any other: a record that is not what the schema says raises
`RecordError` (a `ValueError`), never a `KeyError` or `TypeError` from deep inside.

A threshold's direction, which a record does not carry, is read from its words ("warn < 30d"
is lower-is-worse, as `Threshold.describe` writes it). Which verdicts an OK result's summary
headlines each verdict's `headline` says; a record of an engine before that field (schema
version 2 without it) has them inferred from the summary itself. So a result read back renders
as the engine's did: the same summary, the same plugin line and perfdata.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from monitor.config.inventory import (
    Check,
    Concurrency,
    Group,
    Inventory,
    Link,
    Resilience,
    Site,
    site_group,
)
from monitor.core.events import Event, EventKind, Subject, Suppression, state_label
from monitor.core.model import (
    CertificateInfo,
    CheckRef,
    ErrorClass,
    ObservationValue,
    ProbeError,
    ProbeResult,
    Severity,
    VantageResult,
    Verdict,
)
from monitor.core.yamlnodes import Location
from probes.base import ProbeKind
from probes.registry import REGISTRY

T = TypeVar("T")


class RecordError(ValueError):
    """A record or document from the engine that is not what the schema says."""


def _read(what: str, read: Callable[[], T]) -> T:
    try:
        return read()
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        if isinstance(exc, RecordError):
            raise
        raise RecordError(f"the engine sent a {what} this viewer cannot read ({exc!r})") from None


def timestamp(text: Any) -> float:
    """An ISO 8601 time with its offset (as `iso_time` writes it) as POSIX seconds."""
    moment = dt.datetime.fromisoformat(_str(text))
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return moment.timestamp()


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _strs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return tuple(_str(item) for item in value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _scalar(value: Any) -> ObservationValue:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise TypeError(f"expected a scalar, got {type(value).__name__}")


# --- results ---------------------------------------------------------------------------------


def result_from_record(record: Mapping[str, Any], ref: CheckRef | None = None) -> ProbeResult:
    """A result record as the engine's `ProbeResult`; `ref` (from the inventory the viewer
    read) supplies what the record leaves out, the check's host."""
    return _read("result", lambda: _result(record, ref))


def _result(
    record: Mapping[str, Any], ref: CheckRef | None, *, nested: bool = False
) -> ProbeResult:
    check_id = _str(record["check_id"])
    if ref is None or ref.check_id != check_id:
        ref = CheckRef(
            check_id=check_id,
            site_id=_str(record["site_id"]),
            link_id=_str(record["link_id"]),
            kind=_str(record["kind"]),
            target=_str(record["target"]),
            host="",
            tags=_strs(record["tags"]),
        )
    error = record["error"]
    started_at = timestamp(record["started_at"])
    verdict_records = record["verdicts"]
    verdicts = tuple(_verdict(v) for v in verdict_records)
    result = ProbeResult(
        check=ref,
        started_at=started_at,
        duration_ms=_number(record["duration_ms"]),
        severity=Severity[_str(record["severity"])],
        observations={_str(k): _scalar(v) for k, v in dict(record["observations"]).items()},
        verdicts=verdicts,
        error=None
        if error is None
        else ProbeError(ErrorClass(_str(error["class"])), _str(error["message"])),
        certificates=tuple(_certificate(c) for c in record["certificates"]),
        # A vantage point's own result has no vantage points of its own: not read, however
        # deep a peer nests them.
        vantage=() if nested else tuple(_vantage(v, ref) for v in record.get("vantage", [])),
    )
    summary = _str(record["summary"])
    if all("headline" in v for v in verdict_records):
        return result  # the writer said which verdicts are headlines: nothing to infer
    return _with_headlines(result, summary)


def _vantage(record: Mapping[str, Any], ref: CheckRef) -> VantageResult:
    result = record["result"]
    return VantageResult(
        name=_str(record["name"]),
        result=None if result is None else _result(result, ref, nested=True),
        fresh=_bool(record["fresh"]),
    )


def _verdict(record: Mapping[str, Any]) -> Verdict:
    threshold = _str(record["threshold"])
    return Verdict(
        condition=_str(record["condition"]),
        observation=_str(record["observation"]),
        value=_scalar(record["value"]),
        threshold=threshold,
        severity=Severity[_str(record["severity"])],
        unit=_str(record["unit"]),
        warn=_optional_number(record["warn"]),
        crit=_optional_number(record["crit"]),
        # Threshold.describe: "warn > 200ms" for higher-is-worse, "warn < 30d" for the others.
        higher_is_worse=not threshold.startswith(("warn < ", "crit < ")),
        about=_str(record.get("about", "")),
        finding=_str(record["finding"]),
        reason=_str(record["reason"]),
        headline=_bool(record.get("headline", False)),
    )


def _with_headlines(result: ProbeResult, summary: str) -> ProbeResult:
    """The result with the verdicts its OK summary names marked as headlines, when that is
    what makes its summary the engine's."""
    if result.summary() == summary:
        return result
    named = set(summary.split(", "))
    verdicts = tuple(
        replace(v, headline=v.value is not None and v.finding in named) for v in result.verdicts
    )
    marked = replace(result, verdicts=verdicts)
    return marked if marked.summary() == summary else result


def _certificate(record: Mapping[str, Any]) -> CertificateInfo:
    not_before, not_after = record["not_before"], record["not_after"]
    return CertificateInfo(
        fingerprint_sha256=_str(record["fingerprint_sha256"]),
        position=int(record["position"]),
        subject=_str(record["subject"]),
        issuer=_str(record["issuer"]),
        serial=_str(record["serial"]),
        not_before=None if not_before is None else timestamp(not_before),
        not_after=None if not_after is None else timestamp(not_after),
        key_type=_str(record["key_type"]),
        key_bits=int(record["key_bits"]),
        signature_algorithm=_str(record["signature_algorithm"]),
        subject_alt_names=_strs(record["subject_alt_names"]),
        spki_sha256=_str(record["spki_sha256"]),
        self_signed=bool(record["self_signed"]),
        malformed=_strs(record.get("malformed", [])),
    )


# --- events ----------------------------------------------------------------------------------


def event_from_record(record: Mapping[str, Any]) -> Event:
    """A state-change record as the engine's `Event`. (Its `event_id` is made from the time
    to the microsecond, which the record keeps to the millisecond: use the record's id.)"""
    return _read("event", lambda: _event(record))


def _event(record: Mapping[str, Any]) -> Event:
    subject = Subject(_str(record["subject"]))
    return Event(
        at=timestamp(record["at"]),
        subject=subject,
        subject_id=_str(record["subject_id"]),
        site_id=_str(record["site_id"]),
        kind=EventKind(_str(record["kind"])),
        before=state_label(subject, _str(record["before"])),
        after=state_label(subject, _str(record["after"])),
        cause=_str(record["cause"]),
        suppressed=tuple(Suppression(_str(s)) for s in record["suppressed"]),
    )


# --- the inventory of the state document -----------------------------------------------------


def inventory_from_document(document: Mapping[str, Any], source: str) -> Inventory:
    """The `inventory` of a state document as an `Inventory` to show (not to run: its checks
    have no options, and a kind this commwatch does not know gets a placeholder that cannot
    measure). `source` (the engine's URL) stands where a file location would."""
    return _read("state document", lambda: _inventory(document["inventory"], source))


def _inventory(record: Mapping[str, Any], source: str) -> Inventory:
    sites = tuple(_site(s, source) for s in record["sites"])
    site_groups = tuple(site_group(site) for site in sites)
    site_ids = {site.id for site in sites}
    named = tuple(
        Group(
            id=_str(g["id"]),
            name=_str(g["name"]),
            site_id="",
            link_ids=_strs(g["links"]),
            min_up=int(g["min_up"]),
        )
        for g in record["groups"]
        if g["id"] not in site_ids  # a site's own group, should the engine list it too
    )
    return Inventory(
        path=source,
        sites=sites,
        concurrency=Concurrency(),
        resilience=Resilience(groups=site_groups + named),
    )


def _site(record: Mapping[str, Any], source: str) -> Site:
    site_id = _str(record["id"])
    return Site(
        id=site_id,
        name=_str(record["name"]),
        tags=_strs(record["tags"]),
        links=tuple(_link(link, site_id, source) for link in record["links"]),
        min_up=int(record["min_up"]),
        risks=_strs(record.get("risks", [])),
    )


def _link(record: Mapping[str, Any], site_id: str, source: str) -> Link:
    link_id = _str(record["id"]).removeprefix(f"{site_id}/")
    return Link(
        id=link_id,
        site_id=site_id,
        name=_str(record["name"]),
        role=_str(record["role"]),
        medium=_str(record["medium"]),
        tags=_strs(record["tags"]),
        checks=tuple(_check(c, site_id, link_id, source) for c in record["checks"]),
        depends_on=_strs(record["depends_on"]),
        availability_from=_strs(record["availability_from"]),
        risks=_strs(record.get("risks", [])),  # an engine before risks lists none
    )


def _check(record: Mapping[str, Any], site_id: str, link_id: str, source: str) -> Check:
    kind = _str(record["kind"])
    check_id = _str(record["id"])
    if "/" not in check_id:
        check_id = f"{site_id}/{link_id}/{check_id}"
    return Check(
        ref=CheckRef(
            check_id=check_id,
            site_id=site_id,
            link_id=link_id,
            kind=kind,
            target=_str(record["target"]),
            host=_str(record["host"]),
            tags=_strs(record["tags"]),
        ),
        probe=REGISTRY[kind] if kind in REGISTRY else _foreign_kind(kind),
        options=None,
        interval=_number(record["interval"]),
        timeout=_number(record["timeout"]),
        retries=int(record["retries"]),
        retry_interval=_number(record["retry_interval"]),
        description=_str(record["description"]),
        location=Location(source, 0, 0),
        depends_on=_strs(record["depends_on"]),
        # Not in the documents of engines before schema version 2: none, as they had none.
        vantage=_strs(record.get("vantage", [])),
        quorum=int(record.get("quorum", 1)),
    )


def _foreign_kind(kind: str) -> ProbeKind:
    """A kind the engine knows and this viewer does not (the engine is newer): shown, with no
    headline and no trend, and never run (the viewer runs no probe at all)."""

    async def cannot_measure(_options: Any, _context: Any) -> Any:
        raise RuntimeError(f"kind {kind} is the engine's: a viewer does not probe")

    return ProbeKind(
        kind=kind,
        target_help="",
        options=type(None),
        measure=cannot_measure,
        conditions=lambda _options: (),
        target=lambda _options: "",
        host=lambda _options: "",
    )
