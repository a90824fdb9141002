"""Runs one attempt of one check: timeout, timing, error classification and judgement.

Exceptions become `ErrorClass`es through the one table in monitor/core/failures.py; this is the
only place that applies a probe's conditions to its observations.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from monitor.config.inventory import Check
from monitor.core import logs
from monitor.core.conditions import Condition, evaluate
from monitor.core.errors import ProbeFailure
from monitor.core.failures import SEVERITY_OF_ERROR, classify, describe_error
from monitor.core.model import ErrorClass, ProbeError, ProbeResult, Severity
from probes.base import ProbeContext, ProbeKind, SharedResources

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=65536)
def _conditions(probe: ProbeKind, options: Any) -> tuple[Condition, ...]:
    """A check's conditions depend on its options alone: built once, not on every attempt."""
    return probe.conditions(options)


async def _bug_log() -> logs.BugLog:
    """One per engine run: a bug hit on every poll is logged once per interval, not per poll."""
    return logs.BugLog(log)


async def run_check(
    check: Check, shared: SharedResources, memory: dict[str, Any] | None = None
) -> ProbeResult:
    """One attempt of `check`. Never raises for anything the target or the probe does."""
    ctx = ProbeContext(
        timeout=check.timeout, shared=shared, memory=memory if memory is not None else {}
    )
    started_at = time.time()
    started = time.perf_counter()
    observations: dict[str, Any] = {}
    error: ProbeError | None = None
    try:
        async with asyncio.timeout(check.timeout):
            observations = await check.probe.measure(check.options, ctx)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error_class = classify(exc)
        if error_class is ErrorClass.INTERNAL:
            bugs = await shared.get("runner.bugs", _bug_log)
            bugs.report(f"probe {check.ref.check_id} ({check.kind}) failed", exc)
        error = ProbeError(
            error_class=error_class, message=describe_error(exc, error_class, check.timeout)
        )
        if isinstance(exc, ProbeFailure):
            observations = dict(exc.observations)
    duration_ms = (time.perf_counter() - started) * 1000
    conditions = _conditions(check.probe, check.options)
    if error is not None:
        # A failed attempt is judged only on what it did measure before failing.
        conditions = tuple(c for c in conditions if c.observation in observations)
    verdicts = evaluate(conditions, observations)
    severities = [v.severity for v in verdicts]
    if error is not None:
        severities.append(SEVERITY_OF_ERROR[error.error_class])
    return ProbeResult(
        check=check.ref,
        started_at=started_at,
        duration_ms=round(duration_ms, 3),
        severity=Severity.worst(severities),
        observations=observations,
        verdicts=verdicts,
        error=error,
        certificates=tuple(ctx.certificates),
    )
