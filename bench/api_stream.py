"""Benchmark: the served engine, 2,000 tcp checks at 500 results a second, with 10 SSE viewers.

One process runs the real engine as `commwatch run --listen` does (Monitor with history, the
feed, `GET /api/v1/events` on an aiohttp server on 127.0.0.1); real tcp checks probe listeners
of a child process on 250 loopback addresses. In one run it measures the engine process's CPU
over wall time without viewers, then with 10 viewers attached (another child process, reading
the stream with aiohttp), then without again (the two "without" phases averaged, so drift in
the machine's load falls on both sides). For each result every viewer reads: the time from
the probe's end (its `started_at` plus `duration_ms`) to the viewer having parsed the message,
history's commit included (it shows a result once stored, batching up to 200 ms), as a user of
`commwatch tui --connect` would see it; and apart, from the feed numbering it to the viewer.

    python bench/api_stream.py                   # 2,000 checks, 500/s, 10 viewers, 10 s phases
    python bench/api_stream.py --checks 5000 --rate 1000 --viewers 20 --seconds 20
    python bench/api_stream.py --smoke           # 50 checks, 50/s, 2 viewers, 1 s: no figures
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import multiprocessing
import statistics
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
from aiohttp import web
from common import (
    load_inventory,
    loopback_addresses,
    raise_open_file_limit,
    tcp_listeners,
    write_inventory,
)

from monitor.api import stream
from monitor.engine.pipeline import Monitor
from tests.sse_reader import open_stream

ADDRESSES = loopback_addresses(79, 250)
WARMUP = 3.0  # seconds after the first round has started: the store and the caches settle


@dataclass(frozen=True)
class Size:
    checks: int
    rate: int  # results per second
    viewers: int
    seconds: float  # each measured phase
    warmup: float


FULL = Size(checks=2000, rate=500, viewers=10, seconds=10.0, warmup=WARMUP)
SMOKE = Size(checks=50, rate=50, viewers=2, seconds=1.0, warmup=0.5)


@dataclass(frozen=True)
class Limits:
    max_stream_clients: int = 64
    stream_queue: int = 1000


def finished_at(result: dict[str, object]) -> float:
    started = dt.datetime.fromisoformat(str(result["started_at"])).timestamp()
    return started + float(str(result["duration_ms"])) / 1000


async def view(url: str, count: int, control: Connection) -> None:
    """`count` viewers on the stream until told to stop; then send every latency (seconds)
    and how many messages each read, and whether any stream ended early."""
    latencies: list[float] = []
    received: list[tuple[int, float]] = []
    read = [0] * count
    ended = [False] * count

    async def one(index: int, session: aiohttp.ClientSession) -> None:
        viewer = await open_stream(session, url)
        while (message := await viewer.next()) is not None:
            read[index] += 1
            if message.event == "result":
                now = time.time()
                latencies.append(now - finished_at(message.json()["result"]))
                received.append((message.seq, now))
        ended[index] = True

    async with aiohttp.ClientSession() as session:
        viewers = [asyncio.create_task(one(i, session)) for i in range(count)]
        await asyncio.to_thread(control.recv)  # stop
        for task in viewers:
            task.cancel()
        await asyncio.gather(*viewers, return_exceptions=True)
    control.send((latencies, received, read, ended))


def viewers_process(url: str, count: int, control: Connection) -> None:
    asyncio.run(view(url, count, control))


def percentile_99(ordered: list[float]) -> float:
    return ordered[math.ceil(len(ordered) * 0.99) - 1]


async def phase(seconds: float, monitor_results: list[int]) -> tuple[float, float]:
    """CPU share of this process and results per second over `seconds`."""
    wall, cpu, results = time.perf_counter(), time.process_time(), monitor_results[0]
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - wall
    return (time.process_time() - cpu) / wall, (monitor_results[0] - results) / wall


async def run(inventory_path: Path, size: Size) -> dict[str, object]:
    inventory = load_inventory(inventory_path)
    results = [0]

    def count(_result: object) -> None:
        results[0] += 1

    monitor = Monitor(
        inventory,
        inventory.checks,
        on_result=count,
        on_event=lambda _: None,
        alerts=False,
        start_spread=size.checks / size.rate,
    )
    app = web.Application()
    feed = stream.attach(app, monitor, Limits())
    published: dict[int, float] = {}  # seq -> when the feed numbered it

    def numbered(_item: object, _state: object) -> None:
        published[feed.seq] = time.time()

    monitor.watch(numbered)  # after the feed's own watcher: feed.seq is this item's
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1/events"
    running = asyncio.create_task(monitor.run())
    try:
        await asyncio.wait_for(monitor.ready.wait(), 60)
        await asyncio.sleep(size.warmup)
        cpu_alone, rate_alone = await phase(size.seconds, results)
        control, theirs = multiprocessing.Pipe()
        viewers = multiprocessing.Process(
            target=viewers_process, args=(url, size.viewers, theirs), daemon=True
        )
        viewers.start()
        async with asyncio.timeout(60):
            while len(feed.subscriptions) < size.viewers:
                await asyncio.sleep(0.05)
        await asyncio.sleep(size.warmup / 2)
        cpu_viewed, rate_viewed = await phase(size.seconds, results)
        subscriptions = feed.subscriptions
        control.send("stop")
        latencies, received, read, ended = await asyncio.to_thread(control.recv)
        viewers.join(30)
        cpu_again, rate_again = await phase(size.seconds, results)
    finally:
        await runner.cleanup()
        monitor.stop()
        await asyncio.wait_for(running, 60)
    if not latencies:
        raise SystemExit("no viewer read a result")
    ordered = sorted(latencies)
    streamed = sorted(at - published[seq] for seq, at in received)
    cpu_without = (cpu_alone + cpu_again) / 2
    return {
        "checks": size.checks,
        "rate_per_s": size.rate,
        "viewers": size.viewers,
        "seconds": size.seconds,
        "results_per_s_without": round((rate_alone + rate_again) / 2, 1),
        "results_per_s_with": round(rate_viewed, 1),
        "results_measured": len(ordered),
        "messages_per_viewer": round(statistics.mean(read)),
        "viewers_dropped": size.viewers - len(subscriptions),
        "streams_ended": sum(ended),
        "max_queue_depth": max(s.peak for s in subscriptions) if subscriptions else None,
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(percentile_99(ordered) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "published_to_viewer_median_ms": round(statistics.median(streamed) * 1000, 1),
        "published_to_viewer_p99_ms": round(percentile_99(streamed) * 1000, 1),
        "cpu_share_without": round(cpu_without, 3),
        "cpu_share_with": round(cpu_viewed, 3),
        "cpu_ratio": round(cpu_viewed / cpu_without, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=FULL.checks)
    parser.add_argument("--rate", type=int, default=FULL.rate, help="results per second")
    parser.add_argument("--viewers", type=int, default=FULL.viewers)
    parser.add_argument("--seconds", type=float, default=FULL.seconds, help="each phase")
    parser.add_argument(
        "--smoke", action="store_true", help="50 checks, 50/s, 2 viewers, 1 s: no figures"
    )
    args = parser.parse_args()
    size = (
        SMOKE
        if args.smoke
        else Size(args.checks, args.rate, args.viewers, args.seconds, FULL.warmup)
    )
    raise_open_file_limit()
    with tcp_listeners(ADDRESSES) as endpoints, tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "api.yaml"
        interval = size.checks / size.rate
        write_inventory(
            path,
            [f'kind: tcp, target: "{endpoints[i % len(endpoints)]}"' for i in range(size.checks)],
            256,
            4,
            defaults=f"interval: {interval}s, timeout: {min(2.0, interval / 2)}s",
        )
        history = Path(workdir) / "history.sqlite3"
        path.write_text(path.read_text() + f"history: {{path: {history}}}\n")
        result = asyncio.run(run(path, size))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
