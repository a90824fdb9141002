"""Benchmark: the dashboard with 2,000 checks and results arriving at 500 a second.

A headless app (the real one, with its 100 ms coalescing and changed-cell updates) is fed by a
task in its own loop that calls the app's sink exactly as the scheduler would, with fabricated
results (a few percent of them change severity, so the event log and group rows move too). For
each result: the time from its arrival at the sink to the end of the first screen refresh after
the batch holding it was applied. Also the process's CPU time over wall time (the feeder
included), and what one full rebuild of the rows (a sort) costs.

    python bench/tui_latency.py                  # 2,000 checks, 500/s, 20 s
    python bench/tui_latency.py --checks 5000 --rate 1000 --seconds 10
    python bench/tui_latency.py --state-engine   # also the state engine, as Monitor runs it
    python bench/tui_latency.py --smoke          # 50 checks for 1 s: that it runs, no figures

The fabricated results are judged by the checks' own conditions (the inventory's latency_warn
50 ms and latency_crit 200 ms), as the runner judges a real result.

Nothing is probed: the scheduler is off; the inventory's targets are loopback addresses. The
history store is off too (its writer runs in a thread of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# common puts the repository on sys.path, so it comes before the dashboard's import.
from common import (
    Check,
    EngineState,
    ErrorClass,
    Inventory,
    ProbeError,
    ProbeResult,
    Severity,
    evaluate,
    load_inventory,
    loopback_addresses,
    step,
    topology_of,
    write_inventory,
)

from tui.app import CommwatchApp
from tui.messages import ResultArrived

TICK = 0.01  # the feeder delivers a slice of results every 10 ms
FIRST_BUILD_WAIT = 120.0  # seconds for the table's first build, however loaded the machine


@dataclass(frozen=True)
class Size:
    checks: int
    rate: int  # results per second
    seconds: float  # measured
    warmup: float  # seconds before measuring: the first build of the table is not the steady state


FULL = Size(checks=2000, rate=500, seconds=20.0, warmup=3.0)
# Enough results in 1 s that some fail (3 %) and some batches are measured: every path, no figure.
SMOKE = Size(checks=50, rate=200, seconds=1.0, warmup=0.5)


class MeasuredApp(CommwatchApp):
    def __init__(self, inventory: Inventory, state_engine: bool) -> None:
        super().__init__(inventory, engine=False, history=False)
        self.latencies: list[float] = []
        self.measuring = False
        # With the state engine: each result goes through it on arrival, as Monitor does.
        self.topology = topology_of(inventory) if state_engine else None
        self.state = EngineState()

    def deliver(self, result: ProbeResult) -> None:
        if self.topology is not None:
            self.state, events = step(self.topology, self.state, result)
            for event in events:
                self.deliver_event(event)
        super().deliver(result)

    def engine_state(self) -> EngineState | None:
        return None if self.topology is None else self.state

    def apply_arrivals(self, arrivals: Sequence[ResultArrived]) -> None:
        super().apply_arrivals(arrivals)
        if self.measuring:
            stamps = [arrival.arrived for arrival in arrivals]
            self.call_after_refresh(self._painted, stamps)

    def _painted(self, stamps: list[float]) -> None:
        now = time.perf_counter()
        self.latencies.extend(now - stamp for stamp in stamps)


class Fabricator:
    """Results as the runner makes them, without probing: a connect time (or, for 3 %, a refused
    connection) judged by the check's own conditions."""

    def __init__(self, checks: Sequence[Check]) -> None:
        self.rng = random.Random(5)
        self.checks = tuple(checks)
        self.conditions = {c.ref: c.probe.conditions(c.options) for c in self.checks}

    def __call__(self) -> ProbeResult:
        check = self.rng.choice(self.checks)
        if self.rng.random() < 0.03:
            error = ProbeError(ErrorClass.REFUSED, "connection refused")
            return ProbeResult(
                check=check.ref,
                started_at=time.time(),
                duration_ms=1.0,
                severity=Severity.CRIT,
                error=error,
            )
        ms = self.rng.lognormvariate(1.5, 0.8)
        conditions = self.conditions[check.ref]
        observations = {condition.observation: ms for condition in conditions}
        verdicts = evaluate(conditions, observations)
        severity = Severity.worst(v.severity for v in verdicts)
        return ProbeResult(
            check=check.ref,
            started_at=time.time(),
            duration_ms=ms,
            severity=severity,
            observations=observations,
            verdicts=verdicts,
        )


async def feed(app: MeasuredApp, fabricate: Fabricator, rate: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while (elapsed := loop.time() - started) < seconds:
        due = int(elapsed * rate)
        for _ in range(due - sent):
            app.deliver(fabricate())
        sent = due
        await asyncio.sleep(TICK)


async def run(inventory: Inventory, size: Size, state_engine: bool) -> dict[str, float]:
    app = MeasuredApp(inventory, state_engine)
    fabricate = Fabricator(inventory.checks)
    async with app.run_test(size=(160, 48)) as pilot:
        async with asyncio.timeout(FIRST_BUILD_WAIT):
            while len(app.dashboard.table.shown) < len(inventory.checks):
                await pilot.pause(0.05)
        rebuild_started = time.perf_counter()
        app.dashboard.rebuild()
        rebuild_ms = (time.perf_counter() - rebuild_started) * 1000
        feeder = asyncio.create_task(feed(app, fabricate, size.rate, size.warmup + size.seconds))
        await asyncio.sleep(size.warmup)
        app.measuring = True
        wall, cpu = time.perf_counter(), time.process_time()
        await feeder
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        app.measuring = False
        await pilot.pause(0.5)
    ordered = sorted(app.latencies)
    if not ordered:
        raise SystemExit("no result was measured from arrival to paint")
    return {
        "checks": len(inventory.checks),
        "state_engine": state_engine,
        "rate_per_s": size.rate,
        "seconds": size.seconds,
        "results_measured": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[math.ceil(len(ordered) * 0.99) - 1] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "cpu_share": round(cpu / wall, 3),
        "rebuild_ms": round(rebuild_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=FULL.checks)
    parser.add_argument("--rate", type=int, default=FULL.rate, help="results per second")
    parser.add_argument("--seconds", type=float, default=FULL.seconds, help="measured seconds")
    parser.add_argument(
        "--state-engine", action="store_true", help="also run each result through the state engine"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="50 checks, 200/s for 1 s: that it runs, no figures"
    )
    args = parser.parse_args()
    size = SMOKE if args.smoke else Size(args.checks, args.rate, args.seconds, FULL.warmup)
    addresses = loopback_addresses(78, 250)
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "tui.yaml"
        targets = [addresses[i % len(addresses)] for i in range(size.checks)]
        write_inventory(
            path,
            [f'kind: tcp, target: "{t}:7070"' for t in targets],
            200,
            4,
            defaults="interval: 5m, timeout: 10s, latency_warn: 50ms, latency_crit: 200ms",
        )
        inventory = load_inventory(path)
    result = asyncio.run(run(inventory, size, args.state_engine))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
