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

Nothing is probed: the scheduler is off; the inventory's targets are loopback addresses. The
history store is off too (its writer runs in a thread of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import loopback_addresses, write_inventory

from monitor.inventory import Check, Inventory, load_inventory
from monitor.model import ErrorClass, ProbeError, ProbeResult, Severity
from monitor.pipeline import topology_of
from monitor.state import EngineState, step
from probes.tcp import latency_threshold
from tui.app import CommwatchApp, ResultArrived

WARMUP = 3.0  # seconds before measuring: the first build of the table is not the steady state
TICK = 0.01  # the feeder delivers a slice of results every 10 ms


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


def fabricate(checks: Sequence[Check], rng: random.Random) -> ProbeResult:
    check = rng.choice(checks)
    if rng.random() < 0.03:
        error = ProbeError(ErrorClass.REFUSED, "connection refused")
        return ProbeResult(check.ref, time.time(), 1.0, Severity.CRIT, error=error)
    ms = rng.lognormvariate(1.5, 0.8)
    verdict = latency_threshold("connect_ms", 0.05, 0.2).judge(ms)
    return ProbeResult(check.ref, time.time(), ms, verdict.severity, {"connect_ms": ms}, (verdict,))


async def feed(app: MeasuredApp, inventory: Inventory, rate: int, seconds: float) -> None:
    rng = random.Random(5)
    checks = inventory.checks  # a property that builds a tuple: once, not per result
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = 0
    while (elapsed := loop.time() - started) < seconds:
        due = int(elapsed * rate)
        for _ in range(due - sent):
            app.deliver(fabricate(checks, rng))
        sent = due
        await asyncio.sleep(TICK)


async def run(
    inventory: Inventory, rate: int, seconds: float, state_engine: bool
) -> dict[str, float]:
    app = MeasuredApp(inventory, state_engine)
    async with app.run_test(size=(160, 48)) as pilot:
        while len(app.dashboard.table.shown) < len(inventory.checks):
            await pilot.pause(0.05)
        rebuild_started = time.perf_counter()
        app.dashboard.rebuild()
        rebuild_ms = (time.perf_counter() - rebuild_started) * 1000
        feeder = asyncio.create_task(feed(app, inventory, rate, WARMUP + seconds))
        await asyncio.sleep(WARMUP)
        app.measuring = True
        wall, cpu = time.perf_counter(), time.process_time()
        await feeder
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        app.measuring = False
        await pilot.pause(0.5)
    ordered = sorted(app.latencies)
    return {
        "checks": len(inventory.checks),
        "state_engine": state_engine,
        "rate_per_s": rate,
        "seconds": seconds,
        "results_measured": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "cpu_share": round(cpu / wall, 3),
        "rebuild_ms": round(rebuild_ms, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=500, help="results per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument(
        "--state-engine", action="store_true", help="also run each result through the state engine"
    )
    args = parser.parse_args()
    addresses = loopback_addresses(78, 250)
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "tui.yaml"
        targets = [addresses[i % len(addresses)] for i in range(args.checks)]
        write_inventory(path, [f'kind: tcp, target: "{t}:7070"' for t in targets], 200, 4)
        inventory = load_inventory(path)
    result = asyncio.run(run(inventory, args.rate, args.seconds, args.state_engine))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
