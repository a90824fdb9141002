"""What every sweep benchmark shares: the inventory it writes, the alternating floor-versus-engine
rounds, and the peak RSS of the real `commwatch run --once` command.

Benchmarks run by hand (`python bench/NAME.py`) and print one JSON line per size; they never run
in the test suite, where timings would be flaky. Every target they use is on 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from monitor.inventory import load_inventory  # noqa: E402
from monitor.scheduler import Scheduler  # noqa: E402


def raise_open_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loopback_addresses(third_octet: int, count: int) -> list[str]:
    return [f"127.0.{third_octet}.{i}" for i in range(1, count + 1)]


def write_inventory(path: Path, checks: Sequence[str], global_cap: int, per_host: int) -> None:
    """`checks` are YAML flow mappings without the id, e.g. `kind: tcp, target: "a:1"`."""
    lines = [
        "version: 1",
        "defaults: {interval: 5m, timeout: 10s}",
        f"concurrency: {{global: {global_cap}, per_host: {per_host}}}",
        "sites:",
        "  - id: bench",
        "    links:",
        "      - id: loopback",
        "        checks:",
    ]
    lines += [f"          - {{id: c{i}, {body}}}" for i, body in enumerate(checks)]
    path.write_text("\n".join(lines) + "\n")


async def engine_sweep(inventory_path: Path) -> tuple[float, int]:
    """Seconds for one Scheduler sweep of the inventory (loading excluded), and its failures."""
    inventory = load_inventory(inventory_path)
    results = []
    scheduler = Scheduler(inventory.checks, inventory.concurrency, results.append)
    started = time.perf_counter()
    await scheduler.sweep()
    elapsed = time.perf_counter() - started
    failures = [r for r in results if r.error is not None]
    if failures:
        print(f"  first failure: {failures[0].summary()}", file=sys.stderr)
    return elapsed, len(failures)


async def timed_floor(
    targets: Sequence[str], attempt: Callable[[str], Awaitable[None]], cap: int
) -> tuple[float, int]:
    """The floor's shape, shared by every benchmark: `attempt` each target, `cap` at once, each
    within 10 s; seconds for all of them, and how many failed."""
    gate = asyncio.Semaphore(cap)
    failures = 0

    async def one(target: str) -> None:
        nonlocal failures
        async with gate:
            try:
                async with asyncio.timeout(10):
                    await attempt(target)
            except OSError:  # refused, reset, TLS failures and timeouts are all OSErrors
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in targets))
    return time.perf_counter() - started, failures


def alternate(
    rounds: int,
    floor: Callable[[], Awaitable[tuple[float, int]]],
    sweep: Callable[[], Awaitable[tuple[float, int]]],
) -> tuple[float, float]:
    """Median seconds of floor and sweep over alternating rounds, so drift in machine load falls
    on both alike. Any failure on either side voids the run."""
    floors, sweeps = [], []
    for _ in range(rounds):
        floor_time, floor_failures = asyncio.run(floor())
        sweep_time, sweep_failures = asyncio.run(sweep())
        if floor_failures or sweep_failures:
            raise SystemExit(f"failures: floor {floor_failures}, sweep {sweep_failures}")
        floors.append(floor_time)
        sweeps.append(sweep_time)
    return statistics.median(floors), statistics.median(sweeps)


def cli_run(inventory_path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the real `commwatch run --once`; checks it all passed."""
    command = [
        sys.executable,
        "-c",
        "import sys; from monitor.cli import main; sys.exit(main())",
        "run",
        "--once",
        str(inventory_path),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads(done.stdout)["summary"]
    if summary["OK"] != summary["checks"]:
        raise SystemExit(f"the command's sweep was not all OK: {summary}")
    if peak_kib <= before:
        print("  (peak RSS not above an earlier, larger child's)", file=sys.stderr)
    return wall, peak_kib / 1024


def report(n: int, floor_s: float, sweep_s: float, cli: tuple[float, float]) -> None:
    wall, peak = cli
    print(
        json.dumps(
            {
                "checks": n,
                "floor_s": round(floor_s, 3),
                "sweep_s": round(sweep_s, 3),
                "ratio": round(sweep_s / floor_s, 3),
                "sweep_checks_per_s": round(n / sweep_s),
                "floor_checks_per_s": round(n / floor_s),
                "cli_wall_s": round(wall, 3),
                "cli_peak_rss_mib": round(peak, 1),
            }
        ),
        flush=True,
    )
