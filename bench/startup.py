"""Benchmark: what a command costs before it does anything, whole process, against bare Python.

A monitoring plugin is started thousands of times an hour, so its start-up is the product's
cost. Each command is run as its own process (the installed `commwatch` console script),
alternating with the baseline `python -c "import asyncio, argparse, json"` so that drift in
machine load falls on both, and the medians are compared:

    python bench/startup.py              # 21 rounds, a 10,000-check inventory
    python bench/startup.py --smoke      # 1 round, 200 checks: that it runs, no figures judged

Targets (issue 10): `commwatch --version` within 1.5x and `commwatch probe tcp HOST:PORT` within
2.5x of the baseline; `commwatch check` of 10,000 checks under 1 s of load time
(`check_load_s`: that command's median less the one of `--version`). Every command must exit 0
(the probe's target is a listener of this process on 127.0.0.1), or nothing is reported.

Each row also has the command's median CPU seconds (user + system), what a monitoring system
pays per check whatever else the machine is doing, and `probe_tcp_peak_rss_mib` is the peak
memory of one `probe tcp`.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from common import installed_command, measure_process, write_inventory

BASELINE = (sys.executable, "-c", "import asyncio, argparse, json")


def accept_forever(listener: socket.socket) -> None:
    while True:
        connection, _ = listener.accept()
        connection.close()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of `command`, which must exit 0."""
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}"
        )
    return elapsed, _children_cpu_s() - cpu_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--checks", type=int, default=10_000, help="checks in the inventory")
    parser.add_argument("--smoke", action="store_true", help="1 round, 200 checks")
    args = parser.parse_args()
    rounds, checks = (1, 200) if args.smoke else (args.rounds, args.checks)
    commwatch = str(installed_command())

    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=accept_forever, args=(listener,), daemon=True).start()
    target = f"127.0.0.1:{listener.getsockname()[1]}"

    with tempfile.TemporaryDirectory() as folder:
        inventory = Path(folder) / "inventory.yaml"
        write_inventory(inventory, [f'kind: tcp, target: "{target}"'] * checks, 256, 4)
        commands = {
            "version": (commwatch, "--version"),
            "help": (commwatch, "--help"),
            "probe_tcp": (commwatch, "probe", "tcp", target),
            "check": (commwatch, "check", str(inventory)),
        }
        times: dict[str, list[tuple[float, float]]] = {"baseline": []}
        for _ in range(rounds):
            for name, command in commands.items():
                times["baseline"].append(timed(BASELINE))
                times.setdefault(name, []).append(timed(command))
        probe = measure_process(commands["probe_tcp"])
        if probe.returncode != 0:
            raise SystemExit(f"probe tcp exited {probe.returncode} when measured alone")
    medians = {
        name: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in times.items()
    }
    baseline = medians["baseline"][0]
    rows = {
        name: {
            "s": round(medians[name][0], 4),
            "ratio": round(medians[name][0] / baseline, 2),
            "cpu_s": round(medians[name][1], 4),
        }
        for name in commands
    }
    check_load_s = round(medians["check"][0] - medians["version"][0], 3)
    print(
        json.dumps(
            {
                "rounds": rounds,
                "checks": checks,
                "baseline_s": round(baseline, 4),
                "baseline_cpu_s": round(medians["baseline"][1], 4),
                **rows,
                "check_load_s": check_load_s,
                "probe_tcp_peak_rss_mib": round(probe.peak_rss_mib, 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
