"""Benchmark: one `run --once` sweep of N tcp checks against local listeners, beside a floor.

The floor is a bare asyncio connect loop with the same concurrency cap and the same close, run
in the same process and the same run, so the ratio says what the engine costs on top of the
sockets themselves. Peak RSS is measured on the real `commwatch run --once` command.

    python bench/tcp_sweep.py                # N = 1,000 and 10,000
    python bench/tcp_sweep.py --checks 2000  # one size

Everything listens on and connects to 127.0.0.0/8 only. Listeners run in a child process so
the measured process does only the client side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.inventory import load_inventory  # noqa: E402
from monitor.scheduler import Scheduler  # noqa: E402

ADDRESSES = [f"127.0.77.{i}" for i in range(1, 251)]
GLOBAL_CAP = 256
PER_HOST_CAP = 4
RST = struct.pack("ii", 1, 0)


def serve(addresses: list[str], ready: multiprocessing.Event) -> None:
    """Accept and drop connections as fast as possible on every address (port 7070)."""
    selector = selectors.DefaultSelector()
    for address in addresses:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, 7070))
        listener.listen(4096)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
    ready.set()
    while True:
        for key, _ in selector.select():
            try:
                while True:
                    connection, _ = key.fileobj.accept()
                    # A plain close: an RST here could reach the client before its connect
                    # completes and read as a failure.
                    connection.close()
            except BlockingIOError:
                pass


def write_inventory(path: Path, n: int) -> None:
    lines = [
        "version: 1",
        "defaults: {interval: 5m, timeout: 10s}",
        f"concurrency: {{global: {GLOBAL_CAP}, per_host: {PER_HOST_CAP}}}",
        "sites:",
        "  - id: bench",
        "    links:",
        "      - id: loopback",
        "        checks:",
    ]
    lines += [
        f'          - {{id: c{i}, kind: tcp, target: "{ADDRESSES[i % len(ADDRESSES)]}:7070"}}'
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")


async def floor(targets: list[str]) -> tuple[float, int]:
    """Bare asyncio: connect, set RST-on-close, close; GLOBAL_CAP at once."""
    gate = asyncio.Semaphore(GLOBAL_CAP)
    failures = 0

    async def one(address: str) -> None:
        nonlocal failures
        async with gate:
            try:
                async with asyncio.timeout(10):
                    _, writer = await asyncio.open_connection(address, 7070)
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
                writer.close()
            except OSError:
                failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in targets))
    return time.perf_counter() - started, failures


async def engine(inventory_path: Path) -> tuple[float, int]:
    inventory = load_inventory(inventory_path)
    results = []
    scheduler = Scheduler(inventory.checks, inventory.concurrency, results.append)
    started = time.perf_counter()
    await scheduler.sweep()
    elapsed = time.perf_counter() - started
    return elapsed, sum(1 for r in results if r.error is not None)


def cli_peak_rss(inventory_path: Path) -> tuple[float, float, int]:
    """Wall time (s), peak RSS (MiB) and exit code of the real command."""
    command = [
        sys.executable,
        "-c",
        "import sys; from monitor.cli import main; sys.exit(main())",
        "run",
        "--once",
        str(inventory_path),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads(done.stdout)["summary"]
    if summary["OK"] != summary["checks"]:
        raise SystemExit(f"the command's sweep was not all OK: {summary}")
    return wall, peak_kib / 1024, done.returncode


def measure(n: int, rounds: int, workdir: Path) -> dict[str, float]:
    inventory_path = workdir / f"bench-{n}.yaml"
    write_inventory(inventory_path, n)
    targets = [ADDRESSES[i % len(ADDRESSES)] for i in range(n)]
    floors, sweeps = [], []
    for _ in range(rounds):
        # Alternate, so drift in machine load falls on both sides alike.
        floor_time, floor_failures = asyncio.run(floor(targets))
        sweep_time, sweep_failures = asyncio.run(engine(inventory_path))
        if floor_failures or sweep_failures:
            raise SystemExit(f"failures: floor {floor_failures}, sweep {sweep_failures}")
        floors.append(floor_time)
        sweeps.append(sweep_time)
    wall, peak_mib, _ = cli_peak_rss(inventory_path)
    floor_median, sweep_median = statistics.median(floors), statistics.median(sweeps)
    return {
        "checks": n,
        "floor_s": round(floor_median, 3),
        "sweep_s": round(sweep_median, 3),
        "ratio": round(sweep_median / floor_median, 2),
        "sweep_checks_per_s": round(n / sweep_median),
        "floor_checks_per_s": round(n / floor_median),
        "cli_wall_s": round(wall, 3),
        "cli_peak_rss_mib": round(peak_mib, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checks",
        type=int,
        action="append",
        help="sweep size (repeatable; default 1000 and 10000)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(ADDRESSES, ready), daemon=True)
    server.start()
    ready.wait(10)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for n in args.checks or [1000, 10000]:
                row = measure(n, args.rounds, Path(workdir))
                print(json.dumps(row), flush=True)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
