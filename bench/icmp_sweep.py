"""Benchmark: N icmp checks of 5 echo requests each against loopback, beside Debian's fping.

Both ping the same N addresses of 127.0.0.0/8 (the kernel answers for all of them) alike: 5
echo requests per target 200 ms apart, every target at once, a second for each reply. fping is
the floor, one C process and one raw socket: `fping -C 5 -p 200 -t 1000 -i 0 -q` (`-i 0`, no
pause between targets, needs root; `-i 1` otherwise, its least for a user, which paces its
5N requests a millisecond apart). commwatch is the real `commwatch run --once` of an inventory
of those N checks, in one process (`--workers 1`), `concurrency.global` N: all at once, as
fping. Both run as processes of their own, alternating round by round so that drift in machine
load falls on both; the medians of wall time and of CPU time (user and system) are compared.
Every echo must be answered on both sides, or nothing is reported.

    python bench/icmp_sweep.py               # N = 1,000, 5 rounds
    python bench/icmp_sweep.py --checks 200  # another size
    python bench/icmp_sweep.py --smoke       # N = 20, one round: that it runs, no figures

Run as root, the engine uses its shared raw socket; as a user whose group is in
net.ipv4.ping_group_range, a datagram socket per check: `socket` in the output says which.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from common import Measured, cli_sweep, measure_process, raise_open_file_limit, write_inventory

COUNT = 5
PERIOD_MS = 200
REPLY_MS = 1000


def addresses(n: int) -> list[str]:
    """N addresses of 127.100.0.0/16, none shared with another benchmark."""
    return [f"127.100.{i // 250}.{i % 250 + 1}" for i in range(n)]


def fping(targets: list[str], folder: Path) -> Measured:
    """fping's sweep, measured; every target must answer every request."""
    command = shutil.which("fping")
    if command is None:
        raise SystemExit("fping is not installed (apt-get install fping)")
    listed = folder / "targets.txt"
    listed.write_text("\n".join(targets) + "\n")
    pause = "0" if os.geteuid() == 0 else "1"
    flags = f"-C {COUNT} -p {PERIOD_MS} -t {REPLY_MS} -i {pause} -q"
    # -C writes "ADDRESS : RTT RTT ..." per target on stderr ("-": no reply): to stdout here.
    done = measure_process(["sh", "-c", f'exec "$0" {flags} -f "$1" 2>&1', command, str(listed)])
    rows = [line.split(":", 1)[1].split() for line in done.stdout.splitlines() if ":" in line]
    if len(rows) != len(targets) or any(len(r) != COUNT or "-" in r for r in rows):
        raise SystemExit(f"fping did not get every reply: {done.stdout[-500:]}")
    return done


def commwatch(inventory: Path, n: int) -> tuple[Measured, str]:
    """`commwatch run --once` in one process, measured, and the socket its checks used; every
    check must have had every reply."""
    done = cli_sweep(inventory)
    results = json.loads(done.stdout)["results"]
    received = [r["observations"].get("received") for r in results]
    if len(results) != n or received != [COUNT] * n:
        raise SystemExit(f"commwatch did not get every reply: {received[:20]} ...")
    return done, str(results[0]["observations"]["socket"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="targets and checks (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median)")
    parser.add_argument("--smoke", action="store_true", help="20 checks, one round")
    args = parser.parse_args()
    n, rounds = (20, 1) if args.smoke else (args.checks, args.rounds)
    raise_open_file_limit()
    targets = addresses(n)
    with tempfile.TemporaryDirectory() as workdir:
        folder = Path(workdir)
        inventory = folder / "icmp.yaml"
        check = f"count: {COUNT}, echo_interval: {PERIOD_MS}ms, reply_timeout: {REPLY_MS}ms"
        write_inventory(inventory, [f"kind: icmp, target: {t}, {check}" for t in targets], n, 1)
        floors: list[Measured] = []
        sweeps: list[Measured] = []
        sockets: set[str] = set()
        for _ in range(rounds):
            floors.append(fping(targets, folder))
            done, kind = commwatch(inventory, n)
            sweeps.append(done)
            sockets.add(kind)
    fping_wall = statistics.median(f.wall_s for f in floors)
    fping_cpu = statistics.median(f.cpu_s for f in floors)
    wall = statistics.median(s.wall_s for s in sweeps)
    cpu = statistics.median(s.cpu_s for s in sweeps)
    print(
        json.dumps(
            {
                "checks": n,
                "echoes_per_check": COUNT,
                "socket": "/".join(sorted(sockets)),
                "fping_wall_s": round(fping_wall, 3),
                "fping_cpu_s": round(fping_cpu, 3),
                "commwatch_wall_s": round(wall, 3),
                "commwatch_cpu_s": round(cpu, 3),
                "commwatch_peak_rss_mib": round(max(s.peak_rss_mib for s in sweeps), 1),
                "wall_ratio": round(wall / fping_wall, 2),
                "cpu_ratio": round(cpu / fping_cpu, 2) if fping_cpu else None,
                "rounds": rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
