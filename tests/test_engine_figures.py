"""The engine's figures that the metrics read: the scheduler's (in flight, queued, how late runs
start, the longest wait now, paused), and what an engine without history or alerts exports
(nothing of either, rather than zeros that would look like a healthy store)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from monitor.api.metrics import Exporter
from monitor.config.inventory import Check, Concurrency
from monitor.core.model import ProbeResult, Severity
from monitor.engine.scheduler import Scheduler
from probes.base import SharedResources
from tests.metrics_support import idle_monitor
from tests.test_scheduler import make_check

PATIENCE = 10.0


class Gate:
    """A runner that holds every check until released: what waits behind it is the point."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, check: Check, _shared: SharedResources, _memory: dict[str, Any]):
        self.entered.set()
        await self.release.wait()
        return ProbeResult(check=check.ref, started_at=0.0, duration_ms=0.0, severity=Severity.OK)


async def test_scheduler_figures_count_what_waits_and_how_late_it_starts():
    gate = Gate()
    checks = [make_check(f"c{i}") for i in range(3)]  # one host: a cap of one lets one run
    scheduler = Scheduler(
        checks,
        Concurrency(global_limit=10, per_host=1),
        lambda _: None,
        runner=gate,
        start_spread=0,  # all queued at once
    )
    before = scheduler.figures()
    assert (before.in_flight, before.queued, before.started, before.backlog) == (0, 0, 0, 0.0)
    loop = asyncio.get_running_loop()
    queued_at = loop.time()
    sweep = asyncio.create_task(scheduler.sweep())
    async with asyncio.timeout(PATIENCE):
        await gate.entered.wait()
    held = scheduler.figures()
    assert (held.in_flight, held.queued, held.started) == (1, 2, 1)
    waited = loop.time() - queued_at
    assert 0 <= held.backlog <= waited
    await asyncio.sleep(0.05)  # the two queued checks now wait 50 ms past due, at least
    later = scheduler.figures()
    assert later.backlog >= held.backlog + 0.05
    gate.release.set()
    async with asyncio.timeout(PATIENCE):
        await sweep
    done = scheduler.figures()
    assert (done.in_flight, done.queued, done.started, done.backlog) == (0, 0, 3, 0.0)
    # The two that waited started at least 50 ms late each.
    assert done.start_lag_total >= 2 * 0.05


async def test_a_paused_check_is_counted():
    checks = [make_check("a"), make_check("b")]
    scheduler = Scheduler(checks, Concurrency(), lambda _: None, runner=Gate())
    scheduler.pause("a")
    assert scheduler.figures().paused == 1
    scheduler.resume("a")
    assert scheduler.figures().paused == 0


def samples(text: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    found: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


async def test_an_engine_not_running_without_history_or_alerts_exports_neither(tmp_path):
    monitor = idle_monitor(tmp_path)
    assert monitor.figures().store_queued is None
    assert await monitor.pending_alerts() is None
    monitor.scheduler.pause("s/l/c")
    exporter = Exporter(monitor)
    body, content_type = await exporter.exposition("")
    assert content_type.startswith("text/plain; version=0.0.4")
    found = samples(body.decode())
    for absent in (
        "commwatch_store_queue_depth",
        "commwatch_store_rejected_total",
        "commwatch_alert_outbox_depth",
        "commwatch_engine_start_timestamp_seconds",
        "commwatch_check_severity",  # no result yet
        "commwatch_check_hard_severity",  # PENDING
    ):
        assert absent not in found, absent
    assert found["commwatch_engine_ready"] == {frozenset(): 0}
    assert found["commwatch_checks_paused"] == {frozenset(): 1}
    assert found["commwatch_checks"] == {frozenset({("kind", "tcp")}): 1}
    pending = frozenset({("link", "s/l"), ("site", "s"), ("status", "PENDING")})
    assert found["commwatch_link_status"][pending] == 1
    group_pending = frozenset({("group", "s"), ("site", "s"), ("status", "PENDING")})
    assert found["commwatch_group_status"][group_pending] == 1
    exporter.close()
