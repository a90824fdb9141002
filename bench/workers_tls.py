"""Benchmark: `commwatch run --once --workers 2` against `--workers 1` on N tls checks, the whole
process (wall time and CPU), and Prometheus' blackbox_exporter on the same targets at the same
concurrency, in one run.

nginx serves the targets as in bench/tls_sweep.py: one chain on 250 loopback addresses, session
resumption off, so every handshake is a full one. blackbox_exporter (Debian's
`prometheus-blackbox-exporter`) runs on 127.0.0.1 with a tcp module that does TLS with the same
CA and server name; the benchmark asks its /probe endpoint for every target, GLOBAL_CAP requests
at once (commwatch's global cap), and every probe must succeed, as every check must be OK.

What each figure holds: commwatch's is the command from exec to exit, its start (the
interpreter, the inventory's load, each worker's own start) included, and its CPU is that of
every process of it; the exporter is already running, and its CPU is its own over the sweep
(from /proc), beside which the CPU of this process driving it is given. Rounds alternate the
three and the medians are reported; `speedup` is one process's wall time over N processes',
`vs_blackbox` the exporter's wall time over N processes' (above 1: commwatch swept faster).

    python bench/workers_tls.py                # N = 1,000, 3 rounds
    python bench/workers_tls.py --checks 200   # a quick look
    python bench/workers_tls.py --smoke        # N = 10, one round: that it runs, no figures
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

# common puts the repository on sys.path, so it comes before the project's own imports.
from common import cli_sweep, raise_open_file_limit, write_inventory
from tls_sweep import ADDRESSES, GLOBAL_CAP, PER_HOST_CAP, SERVER_NAME, start_nginx

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
MODULE = "tls_connect"
TICKS = os.sysconf("SC_CLK_TCK")


def blackbox_config(folder: Path, ca_file: Path) -> Path:
    config = folder / "blackbox.yml"
    config.write_text(f"""\
modules:
  {MODULE}:
    prober: tcp
    timeout: 10s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: {ca_file}
        server_name: {SERVER_NAME}
""")
    return config


@contextlib.contextmanager
def running_blackbox(folder: Path, ca_file: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """blackbox_exporter on a free port of 127.0.0.1, once it answers; its base URL."""
    exporter = shutil.which("prometheus-blackbox-exporter") or BLACKBOX
    if not Path(exporter).exists():
        raise SystemExit(
            "blackbox_exporter is not installed: apt-get install prometheus-blackbox-exporter"
        )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            exporter,
            f"--config.file={blackbox_config(folder, ca_file)}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        else:
            raise SystemExit("blackbox_exporter did not start")
        yield process, url
    finally:
        process.terminate()
        process.wait(10)


def cpu_seconds(pid: int) -> float:
    """User and system CPU of process `pid` so far (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def drive_blackbox(url: str, targets: list[str]) -> tuple[float, int]:
    """Every target probed through /probe, GLOBAL_CAP at once: seconds, and probes failed."""
    failures = 0
    gate = asyncio.Semaphore(GLOBAL_CAP)
    connector = aiohttp.TCPConnector(limit=GLOBAL_CAP)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def probe(target: str) -> None:
            nonlocal failures
            async with (
                gate,
                session.get(f"{url}/probe", params={"module": MODULE, "target": target}) as answer,
            ):
                text = await answer.text()
            if answer.status != 200 or "\nprobe_success 1\n" not in f"\n{text}":
                failures += 1

        started = time.perf_counter()
        await asyncio.gather(*(probe(target) for target in targets))
        return time.perf_counter() - started, failures


def blackbox_sweep(exporter: subprocess.Popen[bytes], url: str, targets: list[str]) -> dict:
    cpu_before, driver_before = cpu_seconds(exporter.pid), time.process_time()
    wall, failures = asyncio.run(drive_blackbox(url, targets))
    if failures:
        raise SystemExit(f"blackbox_exporter: {failures} of {len(targets)} probes failed")
    return {
        "s": wall,
        "cpu_s": cpu_seconds(exporter.pid) - cpu_before,
        "driver_cpu_s": time.process_time() - driver_before,
    }


def commwatch_sweep(inventory: Path, workers: int) -> dict:
    done = cli_sweep(inventory, workers)
    return {"s": done.wall_s, "cpu_s": done.cpu_s}


def median(rounds: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in rounds), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="sweep size (default 1000)")
    parser.add_argument("--workers", type=int, default=2, help="the processes against one")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--smoke", action="store_true", help="10 checks, one round")
    args = parser.parse_args()
    n, rounds = (10, 1) if args.smoke else (args.checks, args.rounds)
    raise_open_file_limit()
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        nginx, ca_file, port = start_nginx(folder)
        try:
            targets = [f"{ADDRESSES[i % len(ADDRESSES)]}:{port}" for i in range(n)]
            inventory = folder / f"tls-{n}.yaml"
            write_inventory(
                inventory,
                [
                    f'kind: tls, target: "{t}", server_name: {SERVER_NAME}, ca_file: {ca_file}'
                    for t in targets
                ],
                GLOBAL_CAP,
                PER_HOST_CAP,
            )
            one, many, blackbox = [], [], []
            with running_blackbox(folder, ca_file) as (exporter, url):
                for _ in range(rounds):
                    one.append(commwatch_sweep(inventory, 1))
                    many.append(commwatch_sweep(inventory, args.workers))
                    blackbox.append(blackbox_sweep(exporter, url, targets))
        finally:
            nginx.terminate()
            nginx.wait(10)
    print(
        json.dumps(
            {
                "checks": n,
                "workers": args.workers,
                "cores": len(os.sched_getaffinity(0)),
                "concurrency": GLOBAL_CAP,
                "workers_1_s": median(one, "s"),
                "workers_1_cpu_s": median(one, "cpu_s"),
                "workers_n_s": median(many, "s"),
                "workers_n_cpu_s": median(many, "cpu_s"),
                "blackbox_s": median(blackbox, "s"),
                "blackbox_cpu_s": median(blackbox, "cpu_s"),
                "blackbox_driver_cpu_s": median(blackbox, "driver_cpu_s"),
                "speedup": round(median(one, "s") / median(many, "s"), 3),
                "vs_blackbox": round(median(blackbox, "s") / median(many, "s"), 3),
                "rounds": rounds,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
