"""The runner's own contract with a probe (monitor/engine/runner.py): what the probe is given,
how long the attempt took, and that a probe returning without an observation its conditions
judge is UNKNOWN, never OK. Probes written wrong on purpose, as in tests/test_runner.py."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from monitor.core.model import Severity
from monitor.engine.runner import run_check
from tests.test_runner import _with_measure


async def test_a_probe_is_given_its_options_timeout_shared_resources_and_memory(shared):
    seen = {}

    async def records(options, ctx):
        seen.update(options=options, timeout=ctx.timeout, shared=ctx.shared)
        ctx.memory["polls"] = 1  # no memory passed: a fresh one for this attempt
        return {"connect_ms": 1.0}

    check = _with_measure(records)
    result = await run_check(check, shared)
    assert result.error is None
    assert seen == {"options": check.options, "timeout": 0.3, "shared": shared}


async def test_a_probe_that_returns_without_a_judged_observation_is_unknown_not_ok(shared):
    async def forgets(options, ctx):
        return {}

    result = await run_check(_with_measure(forgets), shared)
    assert result.error is None
    assert [(v.observation, v.severity) for v in result.verdicts] == [
        ("connect_ms", Severity.UNKNOWN)
    ]
    assert result.severity is Severity.UNKNOWN


async def test_the_duration_is_the_probes_time_in_milliseconds_to_the_microsecond(shared):
    inner = {}

    async def takes_a_while(options, ctx):
        inner["start"] = time.perf_counter()
        await asyncio.sleep(0.2)
        inner["end"] = time.perf_counter()
        return {"connect_ms": 1.0}

    check = dataclasses.replace(_with_measure(takes_a_while), timeout=5.0)
    before = time.perf_counter()
    result = await run_check(check, shared)
    after = time.perf_counter()
    assert isinstance(result.duration_ms, float)
    assert round(result.duration_ms, 3) == result.duration_ms
    # At least what the probe itself took, at most what the whole call took (rounding aside).
    assert (inner["end"] - inner["start"]) * 1000 - 0.001 <= result.duration_ms
    assert result.duration_ms <= (after - before) * 1000 + 0.001
