"""Benchmark: N tcp checks probed by local `commwatch agent`s through one nats-server into one
`commwatch central`, against one `commwatch run --workers 1` on the same inventory, in one run:
results per second reaching the engine, the latency from a probe's end to the engine taking its
result, and the peak RSS of every process.

The targets are accept-and-close listeners (a child process) on HOSTS loopback addresses,
checks spread over them round-robin, so rendezvous hashing spreads the hosts over the agents of
the pool `default`. nats-server (with JetStream, its store in a temporary folder) is started as
tests/peers/nats_peers.py starts it, on a free loopback port. The central (`--listen` on a free
port, `--no-alerts`) is started before the agents; each agent has its own spool. Then, on its
own, `commwatch run --workers 1 --no-alerts`. Both keep their history (a file each in the
temporary folder), as they would in service.

When a result reached the engine is when its JSON line arrives on the process's stdout (both
write and flush it as the engine takes the result, which with history on is once the result is
stored); the latency is that moment minus the result's finished time (`started_at` +
`duration_ms`). Every process is on this machine, so the
clocks are one. After WARMUP seconds from the first result, every result for WINDOW seconds is
counted (the first round is spread over 10 s: keep WARMUP above that); any result that is not
OK voids the run. The peak RSS is each process's VmHWM
(/proc/PID/status) at the end of the window. `throughput_ratio` is the cluster's results per
second over `run`'s, `p99_ratio` the cluster's p99 latency over `run`'s. The CPU time each
process spent within the window (user and system, /proc/PID/stat) per result counted is the
figure that varies least on a shared machine: `*_cpu_ms_per_result`.

With an INTERVAL shorter than one process can sweep N checks in, both are saturated and the
results per second are what each can do; the offered rate (N / INTERVAL) is printed beside.

    python bench/cluster_agents.py                 # N = 10,000, 4 agents
    python bench/cluster_agents.py --checks 2000   # a quick look
    python bench/cluster_agents.py --smoke         # N = 200, 2 agents, seconds: that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

# common puts the repository on sys.path, so it comes before the project's own imports.
from common import (
    installed_command,
    loopback_addresses,
    raise_open_file_limit,
    tcp_listeners,
    write_inventory,
)

from tests.peers.nats_peers import running_nats
from tests.peers.prometheus_peers import LOOPBACK

GLOBAL_CAP = 256
PER_HOST_CAP = 4
LINE_LIMIT = 1 << 20


@dataclass
class Taken:
    """What one engine's stdout said within the measured window, and the CPU seconds each
    watched process spent in it."""

    latencies_ms: list[float] = field(default_factory=list)
    not_ok: list[str] = field(default_factory=list)
    first_at: float | None = None
    cpu_s: list[float] = field(default_factory=list)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of process `pid` so far (/proc/PID/stat: utime, stime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def finished_at(record: dict[str, Any]) -> float:
    started = datetime.fromisoformat(record["started_at"]).timestamp()
    duration_ms: float = record["duration_ms"]
    return started + duration_ms / 1000


async def take_results(
    process: asyncio.subprocess.Process, warmup: float, window: float, watched: list[int]
) -> tuple[Taken, float]:
    """Read the engine's JSON lines: those of results arriving in the window after `warmup`
    seconds from the first one; the window's real length. Reads on to the end of the window
    (the process must not block on a full pipe meanwhile). `watched`: the processes whose CPU
    time in the window is measured."""
    assert process.stdout is not None
    taken = Taken()
    window_start = window_end = math.inf
    cpu_at_start: list[float] | None = None
    while True:
        line = await process.stdout.readline()
        now = time.time()
        if not line:
            raise SystemExit(f"the engine exited {await process.wait()} before the window ended")
        record = json.loads(line)
        if record.get("type") != "result":
            continue
        if taken.first_at is None:
            taken.first_at = now
            window_start, window_end = now + warmup, now + warmup + window
        if now >= window_end:
            assert cpu_at_start is not None
            taken.cpu_s = [
                cpu_seconds(pid) - at for pid, at in zip(watched, cpu_at_start, strict=True)
            ]
            return taken, now - window_start
        if now >= window_start:
            if cpu_at_start is None:
                cpu_at_start = [cpu_seconds(pid) for pid in watched]
            taken.latencies_ms.append((now - finished_at(record)) * 1000)
            if record["severity"] != "OK":
                taken.not_ok.append(record["summary"])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmHWM for process {pid}")


async def start(command: list[str], log: Path, stdout: bool) -> asyncio.subprocess.Process:
    with log.open("wb") as errors:
        return await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if stdout else asyncio.subprocess.DEVNULL,
            stderr=errors,
            limit=LINE_LIMIT,
        )


async def stop(processes: list[asyncio.subprocess.Process]) -> None:
    """SIGTERM to every one still running, SIGKILL to any not gone within 20 s."""
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            async with asyncio.timeout(20):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def started(
    folder: Path, commands: list[tuple[str, list[str], bool]]
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Each (name, command, stdout piped) started in order, its stderr in folder/NAME.log; all
    stopped at the end."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for name, command, piped in commands:
            processes.append(await start(command, folder / f"{name}.log", piped))
        yield processes
    except BaseException:
        for name, *_ in commands:
            log = folder / f"{name}.log"
            if log.exists() and log.stat().st_size:
                print(f"--- {name} stderr ends:\n{log.read_text()[-2000:]}", flush=True)
        raise
    finally:
        await stop(processes)


def judged(side: str, taken: Taken, seconds: float) -> dict[str, Any]:
    if taken.not_ok:
        raise SystemExit(f"{side}: {len(taken.not_ok)} results not OK, e.g. {taken.not_ok[0]}")
    results = len(taken.latencies_ms)
    if results < 2:
        raise SystemExit(f"{side}: {results} results in the window")
    cuts = statistics.quantiles(taken.latencies_ms, n=100)
    return {
        "results": results,
        "per_s": results / seconds,
        "p50_ms": statistics.median(taken.latencies_ms),
        "p99_ms": cuts[98],
        "cpu_ms_per_result": [cpu * 1000 / results for cpu in taken.cpu_s],
    }


async def cluster_side(
    inventory: Path, folder: Path, agents: int, args: argparse.Namespace
) -> dict[str, Any]:
    commwatch = str(installed_command())
    async with running_nats(folder / "nats") as nats:
        central = (
            "central",
            [
                *(commwatch, "central", str(inventory), "--nats", nats.url, "--name", "bench"),
                *("--no-alerts", "--listen", f"{LOOPBACK}:0"),
            ],
            True,
        )
        agent_commands = [
            (
                f"agent{i}",
                [
                    *(commwatch, "agent", str(inventory), "--name", f"agent{i}"),
                    *("--pool", "default", "--nats", nats.url),
                    *("--spool", str(folder / f"spool-{i}.sqlite3")),
                ],
                False,
            )
            for i in range(agents)
        ]
        async with started(folder, [central, *agent_commands]) as processes:
            assert nats.process is not None
            # The central, nats-server, then the agents.
            watched = [processes[0].pid, nats.process.pid, *(p.pid for p in processes[1:])]
            taken, seconds = await take_results(processes[0], args.warmup, args.window, watched)
            figures = judged("cluster", taken, seconds)
            figures["nats_rss"] = peak_rss_mib(nats.process.pid)
            figures["central_rss"] = peak_rss_mib(processes[0].pid)
            figures["agents_rss"] = [peak_rss_mib(p.pid) for p in processes[1:]]
    return figures


async def run_side(inventory: Path, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    command = [str(installed_command()), "run", str(inventory), "--workers", "1", "--no-alerts"]
    async with started(folder, [("run", command, True)]) as (process,):
        taken, seconds = await take_results(process, args.warmup, args.window, [process.pid])
        figures = judged("run", taken, seconds)
        figures["rss"] = peak_rss_mib(process.pid)
    return figures


def inventories(folder: Path, endpoints: list[str], n: int, interval: float) -> tuple[Path, Path]:
    """The same checks for the cluster and for `run`, each with its own history file."""
    checks = [f'kind: tcp, target: "{endpoints[i % len(endpoints)]}"' for i in range(n)]
    # A check must finish before it is due again.
    defaults = f"interval: {interval:g}s, timeout: {min(interval, 5.0):g}s"
    paths = []
    for side in ("cluster", "run"):
        path = folder / f"{side}.yaml"
        write_inventory(path, checks, GLOBAL_CAP, PER_HOST_CAP, defaults)
        with path.open("a") as inventory:
            inventory.write(f"history: {{path: {json.dumps(str(folder / f'{side}.sqlite3'))}}}\n")
        paths.append(path)
    return paths[0], paths[1]


def rounded(value: float) -> float:
    return round(value, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=10000, help="tcp checks (default 10000)")
    parser.add_argument("--agents", type=int, default=4, help="agents in the pool (default 4)")
    parser.add_argument("--hosts", type=int, default=100, help="loopback addresses (default 100)")
    parser.add_argument("--interval", type=float, default=2.0, help="check interval, seconds")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds not counted")
    parser.add_argument("--window", type=float, default=30.0, help="seconds counted")
    parser.add_argument("--smoke", action="store_true", help="200 checks, 2 agents, seconds")
    args = parser.parse_args()
    if args.smoke:
        args.checks, args.agents, args.hosts = 200, 2, 20
        args.interval, args.warmup, args.window = 1.0, 3.0, 3.0
    raise_open_file_limit()
    hosts = loopback_addresses(78, args.hosts)
    with tcp_listeners(hosts) as endpoints, tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        cluster_inventory, run_inventory = inventories(
            folder, endpoints, args.checks, args.interval
        )
        cluster = asyncio.run(cluster_side(cluster_inventory, folder, args.agents, args))
        alone = asyncio.run(run_side(run_inventory, folder, args))
    agents_rss = cluster["agents_rss"]
    central_cpu, nats_cpu, *agents_cpu = cluster["cpu_ms_per_result"]
    print(
        json.dumps(
            {
                "checks": args.checks,
                "agents": args.agents,
                "hosts": args.hosts,
                "interval_s": args.interval,
                "offered_per_s": round(args.checks / args.interval),
                "warmup_s": args.warmup,
                "window_s": args.window,
                "cluster_results": cluster["results"],
                "cluster_results_per_s": round(cluster["per_s"]),
                "cluster_p50_ms": rounded(cluster["p50_ms"]),
                "cluster_p99_ms": rounded(cluster["p99_ms"]),
                "run_results": alone["results"],
                "run_results_per_s": round(alone["per_s"]),
                "run_p50_ms": rounded(alone["p50_ms"]),
                "run_p99_ms": rounded(alone["p99_ms"]),
                "throughput_ratio": round(cluster["per_s"] / alone["per_s"], 3),
                "p99_ratio": round(cluster["p99_ms"] / alone["p99_ms"], 3),
                "nats_peak_rss_mib": rounded(cluster["nats_rss"]),
                "central_peak_rss_mib": rounded(cluster["central_rss"]),
                "agent_peak_rss_mib": [rounded(rss) for rss in agents_rss],
                "cluster_peak_rss_total_mib": rounded(
                    cluster["nats_rss"] + cluster["central_rss"] + sum(agents_rss)
                ),
                "run_peak_rss_mib": rounded(alone["rss"]),
                "central_cpu_ms_per_result": round(central_cpu, 3),
                "nats_cpu_ms_per_result": round(nats_cpu, 3),
                "agents_cpu_ms_per_result": round(sum(agents_cpu), 3),
                "cluster_cpu_ms_per_result": round(central_cpu + nats_cpu + sum(agents_cpu), 3),
                "run_cpu_ms_per_result": round(alone["cpu_ms_per_result"][0], 3),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
