"""Benchmark: a `GET /metrics` scrape of a running engine of N checks, beside the library's
full encoding of the same families.

The engine is real: a Monitor with history, N tcp checks (one in twenty refused) over sites of
two links each (100 checks a site), every check run once against listeners on loopback (a child
process, as in tcp_sweep), then scraped over real HTTP on 127.0.0.1 the way Prometheus asks
(OpenMetrics, gzip), in the text format 0.0.4 (gzip), and without gzip. The exposition is kept
between scrapes and renewed only for the checks that changed (monitor/api/exposition.py), and
between scrapes in the background while scrapes come (monitor/api/renewal.py), so a scrape is
measured in three set-ups:

- `first_scrape_ms`: the first scrape after every check reported (Prometheus' format, kept
  and renewed from the start: monitor/api/renewal.py).
- `renewed_*`: as in service. Between two scrapes a share of the checks (`--changed`, a tenth;
  1.0: every check) runs again, spread evenly over `--spread` seconds (20), while the exporter
  renews its kept lines once a second; then a scrape in each format.
- `burst_renewed_scrape_ms`: the share run again all at once, renewals on, then a scrape as
  soon as the last result was shown.
- `scrape_*` and `scrape_changed_*`: the renewals off. With nothing changed since the scrape
  before, and after the share of the checks ran again all at once just before the scrape (a
  burst in the last second: what renewing cannot spare a scrape).

The floor is prometheus-client's own encoding of the same families in one registry
(`Exporter.registry`, what every scrape cost before), timed in the same process right after
the kept one on the same scrape, both with the cyclic garbage collector paused as while a
scrape encodes: `ratio` and `changed_ratio` say what the kept encoding costs of it,
`renewed_ratio` what a whole renewed scrape over HTTP does. While each scrape runs, a ticker
measures how long the event loop was held (the encoding runs in a worker thread so that
probing goes on).

    python bench/metrics_scrape.py                  # N = 10,000 (target: scrape < 200 ms)
    python bench/metrics_scrape.py --changed 1.0 --rounds 3   # every check changed
    python bench/metrics_scrape.py --checks 1000 --checks 10000
    python bench/metrics_scrape.py --smoke          # N = 50, one round: that it runs
    python bench/metrics_scrape.py --load 500 --checks 2000   # CPU, exporter attached or not

With `--load RATE` it measures instead the engine's CPU at RATE results a second (the checks'
interval N / RATE) over four phases: without an exporter, with one attached and scraped every
5 s and renewing between scrapes, with one that does not renew, and without again (averaged):
what the exporter costs at result time, between scrapes and at scrape time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
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
from prometheus_client.exposition import choose_encoder

from monitor.api import metrics
from monitor.api.exposition import FormatCache
from monitor.core.model import ProbeResult
from monitor.engine.pipeline import Monitor

ADDRESSES = loopback_addresses(80, 250)  # a range no other benchmark uses

CHECKS_PER_SITE = 100  # 10,000 checks: 100 sites
ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
TEXT = "text/plain;version=0.0.4"  # the text format, as a scraper without OpenMetrics asks
TARGET_MS = 200
ENCODER, _ = choose_encoder(ACCEPT)  # OpenMetrics, as the scrapes over HTTP ask
SCRAPE_EVERY = 5.0  # seconds, under --load
SLICE = 0.1  # seconds between two slices of checks run again spread over time


def write_inventory(
    path: Path, n: int, endpoints: list[str], refused: str, interval: float = 3600.0
) -> None:
    lines = [
        "version: 1",
        f"history: {{path: {path.with_suffix('.sqlite3')}}}",
        f"defaults: {{interval: {interval}s, timeout: {min(10.0, interval)}s, retries: 1}}",
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


async def held_loop(during: asyncio.Future[object]) -> float:
    """The longest the event loop went without running this ticker while `during` ran (ms)."""
    loop = asyncio.get_running_loop()
    longest, last = 0.0, loop.time()
    while not during.done():
        await asyncio.sleep(0.001)
        now = loop.time()
        longest, last = max(longest, now - last), now
    return longest * 1000


async def http_scrape(
    session: aiohttp.ClientSession, url: str, gzipped: bool, accept: str = ACCEPT
) -> tuple[float, float, bytes]:
    """(seconds, the longest the loop was held in ms, the body as sent) of one scrape."""
    encoding = "gzip" if gzipped else "identity"
    started = time.perf_counter()
    request = asyncio.ensure_future(
        session.get(url, headers={"Accept": accept, "Accept-Encoding": encoding})
    )
    hold = await held_loop(request)
    async with await request as response:
        body = await response.read()
    elapsed = time.perf_counter() - started
    text = gzip.decompress(body) if gzipped else body
    if accept == ACCEPT and not text.endswith(b"# EOF\n"):
        raise SystemExit("the scrape is not a whole OpenMetrics exposition")
    if accept == TEXT and b"# EOF" in text:
        raise SystemExit("the scrape is not in the text format 0.0.4")
    return elapsed, hold, body


async def run_again(monitor: Monitor, check_ids: list[str], spread: float = 0.0) -> None:
    """Run `check_ids`, all now or in slices evenly over `spread` seconds, and return once
    each has shown its new result."""
    waiting, done = set(check_ids), asyncio.Event()

    def shown(item: object, _state: object) -> None:
        if isinstance(item, ProbeResult):
            waiting.discard(item.check.check_id)
            if not waiting:
                done.set()

    unwatch = monitor.watch(shown)
    slices = max(1, round(spread / SLICE))
    try:
        for number in range(slices):
            for check_id in check_ids[number::slices]:
                monitor.run_now(check_id)
            if number < slices - 1:
                await asyncio.sleep(spread / slices)
        async with asyncio.timeout(300):
            await done.wait()
    finally:
        unwatch()


class Figures:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def add(self, name: str, seconds: float) -> None:
        self.times.setdefault(name, []).append(seconds)

    def ms(self, name: str) -> float:
        return round(statistics.median(self.times[name]) * 1000, 1)


async def one_round(
    session: aiohttp.ClientSession,
    url: str,
    exporter: metrics.Exporter,
    kept: FormatCache,
    figures: Figures,
    label: str,
) -> tuple[bytes, bytes, float]:
    """An HTTP scrape (OpenMetrics, gzip), one in the text format 0.0.4 (gzip), one without
    gzip (nothing changed since the first), then the kept encoding and the library's full one
    of one scrape. The bodies and the loop's longest hold (ms)."""
    elapsed, hold, gzipped = await http_scrape(session, url, gzipped=True)
    figures.add(f"scrape{label}", elapsed)
    elapsed, text_hold, _ = await http_scrape(session, url, gzipped=True, accept=TEXT)
    figures.add(f"text{label}", elapsed)
    elapsed, _, plain = await http_scrape(session, url, gzipped=False)
    figures.add(f"identity{label}", elapsed)
    scrape = await exporter.scrape()
    gc.disable()  # as while a scrape encodes (monitor/api/metrics.py): no full collection
    try:
        started = time.perf_counter()
        kept.exposition(scrape, exporter.collectors)
        figures.add(f"encode{label}", time.perf_counter() - started)
        started = time.perf_counter()
        ENCODER(exporter.registry(scrape))
        figures.add(f"full{label}", time.perf_counter() - started)
    finally:
        gc.enable()
    return gzipped, plain, max(hold, text_hold)


async def renewed_rounds(
    session: aiohttp.ClientSession,
    url: str,
    monitor: Monitor,
    check_ids: list[str],
    share: int,
    spread: float,
    rounds: int,
    figures: Figures,
) -> list[float]:
    """As in service: between two scrapes (OpenMetrics, then text, both gzip) `share` checks
    run again spread evenly over `spread` seconds while the exporter renews its kept lines in
    the background. The loop's longest hold in each scrape (ms)."""
    holds = []
    for index in range(rounds):
        changing = asyncio.ensure_future(
            run_again(monitor, _nth_share(check_ids, index, share), spread)
        )
        await asyncio.sleep(spread)  # the last slice has just been started
        elapsed, hold, _ = await http_scrape(session, url, gzipped=True)
        figures.add("renewed", elapsed)
        elapsed, text_hold, _ = await http_scrape(session, url, gzipped=True, accept=TEXT)
        figures.add("renewed_text", elapsed)
        holds.append(max(hold, text_hold))
        await changing
    return holds


async def measure(
    inventory_path: Path, rounds: int, changed: float, spread: float
) -> dict[str, object]:
    monitor, runner, url, running = await engine(inventory_path)
    exporter = runner.app[metrics.EXPORTER]
    check_ids = sorted(monitor.topology.checks)
    share = max(1, round(len(check_ids) * changed))
    figures, holds = Figures(), []
    try:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            figures.add("first", (await http_scrape(session, url, gzipped=True))[0])
            # Both formats scraped twice: the exporter renews them from now on.
            for accept in (ACCEPT, TEXT, TEXT):
                await http_scrape(session, url, gzipped=True, accept=accept)
            renewed_holds = await renewed_rounds(
                session, url, monitor, check_ids, share, spread, rounds, figures
            )
            # The share run again all at once, renewals on: a scrape right after the last
            # result finds what the engine showed since the last renewal.
            for index in range(rounds):
                await run_again(monitor, _nth_share(check_ids, index, share))
                figures.add("burst_renewed", (await http_scrape(session, url, gzipped=True))[0])
            renewals = exporter.renewal.renewals
            # Then every change in a burst just before the scrape, nothing renewed between:
            # what a scrape costs when all of them fall in the last second before it.
            exporter.renewal.close()
            kept = FormatCache(ENCODER)
            kept.exposition(await exporter.scrape(), exporter.collectors)
            for index in range(rounds):
                gzipped, plain, hold = await one_round(session, url, exporter, kept, figures, "")
                holds.append(hold)
                await run_again(monitor, _nth_share(check_ids, index, share))
                *_, hold = await one_round(session, url, exporter, kept, figures, "_changed")
                holds.append(hold)
    finally:
        monitor.stop()
        await running
        await runner.cleanup()
    return {
        "checks": len(check_ids),
        "series": sum(1 for line in plain.splitlines() if not line.startswith(b"#")),
        "bytes": len(plain),
        "gzip_bytes": len(gzipped),
        "target_ms": TARGET_MS,
        "first_scrape_ms": figures.ms("first"),
        "scrape_ms": figures.ms("scrape"),
        "scrape_text_ms": figures.ms("text"),
        "scrape_identity_ms": figures.ms("identity"),
        "changed_share": changed,
        "spread_s": spread,
        "renewed_scrape_ms": figures.ms("renewed"),
        "renewed_text_scrape_ms": figures.ms("renewed_text"),
        "renewed_loop_held_max_ms": round(max(renewed_holds), 1),
        "renewals": renewals,
        "burst_renewed_scrape_ms": figures.ms("burst_renewed"),
        "scrape_changed_ms": figures.ms("scrape_changed"),
        "scrape_changed_text_ms": figures.ms("text_changed"),
        "encode_ms": figures.ms("encode"),
        "changed_encode_ms": figures.ms("encode_changed"),
        "library_full_ms": figures.ms("full"),
        "ratio": round(figures.ms("encode") / figures.ms("full"), 3),
        "changed_ratio": round(figures.ms("encode_changed") / figures.ms("full_changed"), 3),
        # A whole HTTP scrape (renewed between scrapes), against the library's encoding alone.
        "renewed_ratio": round(figures.ms("renewed") / figures.ms("full_changed"), 3),
        "loop_held_median_ms": round(statistics.median(holds), 1),
        "loop_held_max_ms": round(max(holds), 1),
        "rounds": rounds,
    }


def _nth_share(check_ids: list[str], index: int, share: int) -> list[str]:
    """The `index`th run of `share` checks, wrapping around the inventory: rounds x changed
    may exceed 1 (every check runs again in each round at --changed 1.0)."""
    return [check_ids[(index * share + offset) % len(check_ids)] for offset in range(share)]


async def cpu_share(seconds: float) -> float:
    """This process's CPU time over `seconds` of wall time (its threads' included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


async def under_load(inventory_path: Path, rate: int, seconds: float) -> dict[str, object]:
    """The engine's CPU at `rate` results a second without an exporter, with one attached and
    scraped (OpenMetrics) every SCRAPE_EVERY seconds, renewing its kept lines in between, with
    one that does not renew, then without again (the two without averaged)."""
    inventory = load_inventory(inventory_path)
    results = [0]
    monitor = Monitor(
        inventory,
        inventory.checks,
        on_result=lambda _: results.__setitem__(0, results[0] + 1),
        on_event=lambda _: None,
        alerts=False,
        start_spread=len(inventory.checks) / rate,
    )
    running = asyncio.create_task(monitor.run())
    scrapes: dict[bool, list[float]] = {True: [], False: []}

    async def scraping(exporter: metrics.Exporter, renewed: bool) -> None:
        while True:
            started = time.perf_counter()
            await exporter.exposition(ACCEPT)
            scrapes[renewed].append(time.perf_counter() - started)
            await asyncio.sleep(SCRAPE_EVERY)

    async def attached(renewed: bool) -> tuple[float, int]:
        """The CPU share with an exporter scraped all along, and the renewals it made."""
        exporter = metrics.Exporter(monitor)
        if not renewed:
            exporter.renewal.close()
        scraper = asyncio.create_task(scraping(exporter, renewed))
        # Past the first scrape, which encodes everything, and the second, which starts
        # the renewals.
        await asyncio.sleep(SCRAPE_EVERY * 1.5)
        try:
            return await cpu_share(seconds), exporter.renewal.renewals
        finally:
            scraper.cancel()
            exporter.close()

    try:
        await asyncio.wait_for(monitor.ready.wait(), 60)
        await asyncio.sleep(len(inventory.checks) / rate)  # every check has run once
        first = results[0]
        alone = await cpu_share(seconds)
        with_renewal, renewals = await attached(renewed=True)
        without_renewal, _ = await attached(renewed=False)
        again = await cpu_share(seconds)
        measured = results[0] - first
    finally:
        monitor.stop()
        await running
    without = (alone + again) / 2
    return {
        "checks": len(inventory.checks),
        "rate_per_s": rate,
        "results_per_s": round(measured / (4 * seconds + 3 * SCRAPE_EVERY), 1),
        "scrape_every_s": SCRAPE_EVERY,
        "scrape_ms_median": round(statistics.median(scrapes[True][2:]) * 1000, 1),
        "unrenewed_scrape_ms_median": round(statistics.median(scrapes[False][2:]) * 1000, 1),
        "renewals": renewals,
        "cpu_share_without": round(without, 3),
        "cpu_share_with": round(with_renewal, 3),
        "cpu_share_with_unrenewed": round(without_renewal, 3),
        "cpu_ratio": round(with_renewal / without, 2),
        "cpu_ratio_unrenewed": round(without_renewal / without, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, action="append", help="size (default 10000)")
    parser.add_argument("--rounds", type=int, default=5, help="scrapes per size (median)")
    parser.add_argument(
        "--changed", type=float, default=0.1, help="share of checks run again (default 0.1)"
    )
    parser.add_argument(
        "--spread",
        type=float,
        default=20.0,
        help="seconds over which the changed checks run again between two renewed scrapes",
    )
    parser.add_argument("--smoke", action="store_true", help="50 checks, one round")
    parser.add_argument(
        "--load",
        type=int,
        metavar="RATE",
        help="instead: the engine's CPU at RATE results/s with and without the exporter",
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="each --load phase")
    args = parser.parse_args()
    if not 0 < args.changed <= 1:
        parser.error("--changed is a share of the checks: above 0, at most 1")
    sizes, rounds = ([50], 1) if args.smoke else (args.checks or [10_000], args.rounds)
    spread = 2.0 if args.smoke else args.spread
    raise_open_file_limit()
    with tcp_listeners(ADDRESSES) as endpoints, tempfile.TemporaryDirectory() as workdir:
        refused = _refused_port()
        for n in sizes:
            path = Path(workdir) / f"metrics-{n}.yaml"
            if args.load:
                write_inventory(path, n, endpoints, refused, interval=n / args.load)
                done = asyncio.run(under_load(path, args.load, args.seconds))
            else:
                write_inventory(path, n, endpoints, refused)
                done = asyncio.run(measure(path, rounds, args.changed, spread))
            print(json.dumps(done), flush=True)


def _refused_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


if __name__ == "__main__":
    main()
