"""What every benchmark shares: the inventory it writes, the alternating floor-versus-engine
rounds, the peak RSS of the real `commwatch run --once` command, and the engine's modules.

Benchmarks run by hand (`python bench/NAME.py`) and print one JSON line per measurement. Each
has a `--smoke` size, the smallest that takes every code path in seconds; the test suite runs
those (tests/test_bench_smoke.py) so that a refactor that breaks a benchmark fails, and judges
no figure: timings on a shared machine would be flaky. Every target they use is on 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The engine as the benchmarks see it: every import of the engine's modules is here, so that
# moving one of them touches this block alone. (They cost nothing more than the two a sweep
# needs, which import the rest. The dashboard, which would put Textual in every benchmark's
# process, and the peers in tests/peers/ are imported where they are used.)
from monitor.config.inventory import Check, Inventory  # noqa: E402
from monitor.config.loader import load_inventory  # noqa: E402
from monitor.core.conditions import evaluate  # noqa: E402
from monitor.core.model import ErrorClass, ProbeError, ProbeResult, Severity  # noqa: E402
from monitor.engine.scheduler import Scheduler  # noqa: E402
from monitor.engine.state import EngineState  # noqa: E402
from monitor.engine.step import step  # noqa: E402
from monitor.engine.views import topology_of  # noqa: E402

__all__ = [
    "REPO",
    "Check",
    "EngineState",
    "ErrorClass",
    "Inventory",
    "ProbeError",
    "ProbeResult",
    "Severity",
    "alternate",
    "cli_run",
    "cli_sweep",
    "engine_sweep",
    "evaluate",
    "installed_command",
    "load_inventory",
    "loopback_addresses",
    "measure_process",
    "raise_open_file_limit",
    "report",
    "step",
    "tcp_listeners",
    "timed_floor",
    "topology_of",
    "write_inventory",
]


def raise_open_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def loopback_addresses(third_octet: int, count: int) -> list[str]:
    return [f"127.0.{third_octet}.{i}" for i in range(1, count + 1)]


def serve_tcp(addresses: list[str], endpoints: Connection) -> None:
    """Accept and close connections as fast as possible on every address; send the endpoints
    ("address:port") once they all listen."""
    selector = selectors.DefaultSelector()
    listening = []
    for address in addresses:
        listener = socket.socket()
        listener.bind((address, 0))
        listener.listen(4096)
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ)
        listening.append(f"{address}:{listener.getsockname()[1]}")
    endpoints.send(listening)
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


@contextlib.contextmanager
def tcp_listeners(addresses: list[str]) -> Iterator[list[str]]:
    """`serve_tcp` in a child process (so the measured process does only the client side);
    the endpoints ("address:port") once they all listen."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=serve_tcp, args=(addresses, sender), daemon=True)
    server.start()
    try:
        if not receiver.poll(30):
            raise SystemExit("the listeners did not start within 30 s")
        yield receiver.recv()
    finally:
        server.terminate()


def write_inventory(
    path: Path,
    checks: Sequence[str],
    global_cap: int,
    per_host: int,
    defaults: str = "interval: 5m, timeout: 10s",
) -> None:
    """`checks` and `defaults` are the insides of YAML flow mappings, e.g. `kind: tcp, target:
    "a:1"` (a check without its id)."""
    lines = [
        "version: 1",
        f"defaults: {{{defaults}}}",
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


# The installed command, as users run it: the console script beside this interpreter.
COMMWATCH = Path(sys.executable).with_name("commwatch")

# Where the console script's module is found, asked of a Python that sees neither this
# repository's folder nor the environment's variables: what the command really runs.
_INSTALLED_FROM = """
import importlib.metadata, importlib.util
(entry,) = importlib.metadata.entry_points(group="console_scripts", name="commwatch")
print(importlib.util.find_spec(entry.module).origin)
"""


def installed_command() -> Path:
    """The console script, once it is known to run this repository's code (an environment of
    another checkout would measure that one without a word)."""
    if not COMMWATCH.exists():
        raise SystemExit(
            f"{COMMWATCH} does not exist: run the benchmark with the Python of an environment "
            "where commwatch is installed (pip install -e .), e.g. .venv/bin/python"
        )
    found = subprocess.run(
        [sys.executable, "-I", "-c", _INSTALLED_FROM],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    module = Path(found.stdout.strip())
    if not module.is_relative_to(REPO):
        raise SystemExit(
            f"{COMMWATCH} runs {module}, not this repository's code ({REPO}): run the benchmark "
            "with the Python of this checkout's environment (pip install -e . there)"
        )
    return COMMWATCH


# Runs argv[2:] and writes its wall seconds, peak RSS (KiB) and CPU seconds (user and system) to
# the descriptor argv[1]. A child started from a large process inherits that process's RSS as its
# own high-water mark (Linux records it at exec), so the measured command must start from this
# small one. The CPU is the command's and that of every process it waited for (its workers); the
# peak is the largest one process reached, not their sum.
_MEASURE = """
import os, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[2:]).returncode
wall = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
os.write(int(sys.argv[1]), f"{wall} {usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}".encode())
sys.exit(code)
"""


@dataclass(frozen=True)
class Measured:
    returncode: int
    stdout: str
    wall_s: float
    peak_rss_mib: float
    cpu_s: float


def measure_process(command: Sequence[str], env: Mapping[str, str] | None = None) -> Measured:
    """Wall seconds and peak RSS of `command` alone, run from the repository; its stderr is
    passed on."""
    reading, writing = os.pipe()
    with os.fdopen(reading) as figures:
        try:
            done = subprocess.run(
                [sys.executable, "-c", _MEASURE, str(writing), *command],
                cwd=REPO,
                env=env,
                pass_fds=(writing,),
                capture_output=True,
                text=True,
            )
        finally:
            os.close(writing)
        written = figures.read().split()
    sys.stderr.write(done.stderr)
    if len(written) != 3:
        raise SystemExit(f"{' '.join(command)} could not be run")
    wall, peak_kib, cpu = written
    return Measured(done.returncode, done.stdout, float(wall), int(peak_kib) / 1024, float(cpu))


def cli_sweep(inventory_path: Path, workers: int = 1) -> Measured:
    """The real `commwatch run --once --workers N`, measured; checks it all passed. One process
    by default: the sweep benchmarks' figures (and their peak RSS) are of one process, as they
    were before `--workers` existed; bench/workers_tls.py measures more."""
    command = [str(installed_command()), "run", "--once", "--workers", str(workers)]
    done = measure_process([*command, str(inventory_path)])
    summary = json.loads(done.stdout)["summary"] if done.stdout else None
    if done.returncode != 0 or summary is None or summary["OK"] != summary["checks"]:
        raise SystemExit(f"the command's sweep was not all OK (exit {done.returncode}): {summary}")
    return done


def cli_run(inventory_path: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of the real `commwatch run --once`, in one process."""
    done = cli_sweep(inventory_path)
    return done.wall_s, done.peak_rss_mib


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
