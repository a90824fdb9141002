"""Benchmark: SNMP traps into a real `commwatch run` at a steady rate: none lost, and the CPU
the engine's process spends on them.

The device is a TCP listener on 127.0.0.1 that the inventory's one tcp check watches, so every
trap from 127.0.0.1 is a watched device's: decoded, matched, recorded as a trap event, stored in
the history and printed as a JSON line. Each trap is net-snmp's own datagram: snmptrap is run
once to a capture socket for an enterprise trap carrying an 8-digit sequence number, and the
bench sends copies with the number rewritten in place (a v2c datagram is not signed). Running
one snmptrap process per trap would not do: a process costs about 5 ms of CPU, 1,000 a second
five cores. The traps are paced in bursts every 10 ms; the run's JSON lines are read and each
sequence number counted once, so a trap lost (by the kernel, the receiver or the store) is one
missing number. The receiver's rates are set above the offered rate: this measures what it
can take, not what it refuses.

    python bench/traps.py                  # 1,000 traps/s for 10 s
    python bench/traps.py --rate 2000 --seconds 5
    python bench/traps.py --smoke          # 100/s for 1 s: that it runs, no figures

Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, tcp_listeners

COMMUNITY = "bench-trap-community-8c1d"
SEQUENCE_OID = "1.3.6.1.4.1.8072.9999.1"
TRAP_OID = "1.3.6.1.4.1.8072.9999.0.1"
MARK = b"00000000"  # the sequence number's place in the captured datagram


def captured_trap() -> bytes:
    """net-snmp's datagram for the bench's trap, its sequence number MARK."""
    snmptrap = shutil.which("snmptrap")
    if snmptrap is None:
        raise SystemExit("snmptrap is not installed (Debian: apt-get install snmp)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as capture:
        capture.bind(("127.0.0.1", 0))
        capture.settimeout(10)
        port = capture.getsockname()[1]
        trap = ["", TRAP_OID, SEQUENCE_OID, "s", MARK.decode()]
        subprocess.run(
            [snmptrap, "-v", "2c", "-c", COMMUNITY, f"127.0.0.1:{port}", *trap],
            env={"MIBS": "", "SNMP_PERSISTENT_DIR": tempfile.gettempdir()},
            check=True,
            timeout=30,
        )
        datagram = capture.recv(65536)
    if datagram.count(MARK) != 1:
        raise SystemExit("the captured trap does not hold its sequence number once")
    return datagram


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(datagram: bytes, port: int, rate: int, seconds: float) -> int:
    """`rate` traps a second for `seconds`, in bursts every 10 ms; how many were sent."""
    at = datagram.index(MARK)
    total = int(rate * seconds)
    burst = max(1, rate // 100)
    sent = 0
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        while sent < total:
            for _ in range(min(burst, total - sent)):
                sent += 1
                number = f"{sent:08d}".encode()
                sender.sendto(
                    datagram[:at] + number + datagram[at + len(MARK) :], ("127.0.0.1", port)
                )
            pause = started + sent / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    return sent


def inventory(folder: Path, device: str, port: int, rate: int) -> Path:
    path = folder / "inventory.yaml"
    path.write_text(f"""\
version: 1
history: {{path: {folder / "history.sqlite3"}}}
traps:
  listen: "127.0.0.1:{port}"
  communities: [{{community_env: BENCH_TRAP_COMMUNITY}}]
  per_source_rate: {rate * 4}
  total_rate: {rate * 4}
sites:
  - id: site
    links:
      - id: link
        checks:
          - {{id: device, kind: tcp, target: "{device}", interval: 1h}}
""")
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure(rate: int, seconds: float) -> dict[str, object]:
    datagram = captured_trap()
    with (
        tempfile.TemporaryDirectory(prefix="commwatch-bench-traps-") as folder,
        tcp_listeners(["127.0.0.1"]) as (device,),
    ):
        port = free_udp_port()
        path = inventory(Path(folder), device, port, rate)
        run = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", str(path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "BENCH_TRAP_COMMUNITY": COMMUNITY},
        )
        assert run.stdout is not None and run.stderr is not None
        seen: set[int] = set()
        results = threading.Event()

        def read() -> None:
            assert run.stdout is not None
            for line in run.stdout:
                record = json.loads(line)
                if record["type"] == "result":
                    results.set()
                elif record["kind"] == "trap":
                    number = record["cause"].split(f"{SEQUENCE_OID}=", 1)[1].split()[0]
                    seen.add(int(number))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if not results.wait(60):
                raise SystemExit(f"commwatch run did not start: {run.stderr.read1().decode()}")
            cpu_before, started = cpu_seconds(run.pid), time.monotonic()
            sent = send(datagram, port, rate, seconds)
            # Until every trap is in, or nothing new came for 3 s (the rest are lost).
            last, since = len(seen), time.monotonic()
            while len(seen) < sent and time.monotonic() - since < 3:
                time.sleep(0.05)
                if len(seen) != last:
                    last, since = len(seen), time.monotonic()
            wall = time.monotonic() - started
            cpu = cpu_seconds(run.pid) - cpu_before
        finally:
            run.terminate()
            run.wait(30)
        reader.join(10)
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "sent": sent,
        "received": len(seen),
        "lost": sent - len(seen),
        "wall_s": round(wall, 3),
        "receiver_cpu_s": round(cpu, 3),
        "receiver_cpu_share": round(cpu / wall, 3),
        "cpu_ms_per_trap": round(cpu / max(1, len(seen)) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="traps a second (1000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="for how long (10)")
    parser.add_argument("--smoke", action="store_true", help="100/s for 1 s: that it runs")
    args = parser.parse_args()
    rate, seconds = (100, 1.0) if args.smoke else (args.rate, args.seconds)
    print(json.dumps(measure(rate, seconds)), flush=True)


if __name__ == "__main__":
    main()
