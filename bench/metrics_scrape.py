"""Benchmark: a `GET /metrics` scrape of a running engine of N checks, beside a floor.

The engine is real: a Monitor with history, N tcp checks (one in twenty refused) over sites of
two links each (100 checks a site), every check run once against listeners on loopback (a child
process, as in tcp_sweep), then idle while it is scraped over real HTTP on 127.0.0.1 the way
Prometheus asks (OpenMetrics, gzip). The floor is prometheus-client itself: one plain `Gauge`
with the same four labels and as many series as the scrape has samples, in a registry of its
own, encoded by `generate_latest` in the same process, alternating with the engine's encoding.
The ratio says what commwatch's families cost over the library's own floor; the scrape time adds
OpenMetrics, HTTP and compression. While each scrape runs, a ticker measures how long the event
loop was held (the encoding runs in a worker thread so that probing goes on).

    python bench/metrics_scrape.py                  # N = 10,000 (target: scrape < 200 ms)
    python bench/metrics_scrape.py --checks 2000    # one size
    python bench/metrics_scrape.py --smoke          # N = 50, one round: that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from common import load_inventory, loopback_addresses, raise_open_file_limit, tcp_listeners
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from monitor.api import metrics
from monitor.core.model import ProbeResult
from monitor.engine.pipeline import Monitor

ADDRESSES = loopback_addresses(80, 250)  # a range no other benchmark uses

CHECKS_PER_SITE = 100  # 10,000 checks: 100 sites
ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
TARGET_MS = 200


def write_inventory(path: Path, n: int, endpoints: list[str], refused: str) -> None:
    lines = [
        "version: 1",
        f"history: {{path: {path.with_suffix('.sqlite3')}}}",
        "defaults: {interval: 1h, timeout: 10s, retries: 1}",
        "concurrency: {global: 256, per_host: 4}",
        "sites:",
    ]
    sites = max(1, n // CHECKS_PER_SITE)
    per_link = max(1, n // (sites * 2))
    made = 0
    for site in range(sites):
        lines += [f"  - id: site-{site:03}", "    links:"]
        for link in ("fibre", "lte"):
            lines += [f"      - id: {link}", "        checks:"]
            for _ in range(per_link if made + per_link <= n else n - made):
                target = refused if made % 20 == 19 else endpoints[made % len(endpoints)]
                lines.append(f'          - {{id: c{made}, kind: tcp, target: "{target}"}}')
                made += 1
            if lines[-1].endswith("checks:"):
                lines[-1] = "        checks: []"
    path.write_text("\n".join(lines) + "\n")


async def engine(inventory_path: Path) -> tuple[Monitor, web.AppRunner, str, asyncio.Task[None]]:
    """The engine running and serving, once every check has reported."""
    inventory = load_inventory(inventory_path)
    monitor = Monitor(
        inventory, inventory.checks, on_result=lambda _: None, on_event=lambda _: None
    )
    app = web.Application()
    metrics.attach(app, monitor, None)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/metrics"
    seen: set[str] = set()
    everything = asyncio.Event()

    def shown(item: object, _state: object) -> None:
        if isinstance(item, ProbeResult):
            seen.add(item.check.check_id)
            if len(seen) == len(inventory.checks):
                everything.set()

    monitor.watch(shown)
    running = asyncio.create_task(monitor.run())
    async with asyncio.timeout(600):
        await everything.wait()
    return monitor, runner, url, running


def floor_registry(series: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    gauge = Gauge(
        "bench_floor", "A plain gauge.", ("check_id", "site", "link", "kind"), registry=registry
    )
    for i in range(series):
        site = f"site-{i % 100:03}"
        gauge.labels(f"{site}/fibre/c{i}", site, f"{site}/fibre", "tcp").set(i * 0.001)
    return registry


async def held_loop(during: asyncio.Future[object]) -> float:
    """The longest the event loop went without running this ticker while `during` ran (ms)."""
    loop = asyncio.get_running_loop()
    longest, last = 0.0, loop.time()
    while not during.done():
        await asyncio.sleep(0.001)
        now = loop.time()
        longest, last = max(longest, now - last), now
    return longest * 1000


async def measure(inventory_path: Path, rounds: int) -> dict[str, object]:
    monitor, runner, url, running = await engine(inventory_path)
    exporter = runner.app[metrics.EXPORTER]
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            scrapes, holds, encodes, floors = [], [], [], []
            body = b""
            for _ in range(rounds):
                started = time.perf_counter()
                request = asyncio.ensure_future(
                    session.get(url, headers={"Accept": ACCEPT, "Accept-Encoding": "gzip"})
                )
                hold = await held_loop(request)
                async with await request as response:
                    body = await response.read()
                if not gzip.decompress(body).endswith(b"# EOF\n"):
                    raise SystemExit("the scrape is not a whole OpenMetrics exposition")
                scrapes.append(time.perf_counter() - started)
                holds.append(hold)
                started = time.perf_counter()
                text, _ = await exporter.exposition("")
                encodes.append(time.perf_counter() - started)
                series = sum(1 for line in text.splitlines() if not line.startswith(b"#"))
                registry = floor_registry(series)
                started = time.perf_counter()
                generate_latest(registry)
                floors.append(time.perf_counter() - started)
    finally:
        monitor.stop()
        await running
        await runner.cleanup()
    scrape_s, encode_s, floor_s = map(statistics.median, (scrapes, encodes, floors))
    return {
        "checks": len(monitor.topology.checks),
        "series": series,
        "scrape_ms": round(scrape_s * 1000, 1),
        "target_ms": TARGET_MS,
        "bytes": len(text),
        "gzip_bytes": len(body),
        "encode_ms": round(encode_s * 1000, 1),
        "floor_ms": round(floor_s * 1000, 1),
        "ratio": round(encode_s / floor_s, 3),
        "loop_held_median_ms": round(statistics.median(holds), 1),
        "loop_held_max_ms": round(max(holds), 1),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, action="append", help="size (default 10000)")
    parser.add_argument("--rounds", type=int, default=5, help="scrapes per size (median)")
    parser.add_argument("--smoke", action="store_true", help="50 checks, one round")
    args = parser.parse_args()
    sizes, rounds = ([50], 1) if args.smoke else (args.checks or [10_000], args.rounds)
    raise_open_file_limit()
    with tcp_listeners(ADDRESSES) as endpoints, tempfile.TemporaryDirectory() as workdir:
        refused = _refused_port()
        for n in sizes:
            path = Path(workdir) / f"metrics-{n}.yaml"
            write_inventory(path, n, endpoints, refused)
            print(json.dumps(asyncio.run(measure(path, rounds))), flush=True)


def _refused_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


if __name__ == "__main__":
    main()
