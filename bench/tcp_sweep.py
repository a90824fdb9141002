"""Benchmark: one `run --once` sweep of N tcp checks against local listeners, beside a floor.

The floor is a bare asyncio connect loop with the same concurrency cap and the same close, run
in the same process and the same run, so the ratio says what the engine costs on top of the
sockets themselves. Peak RSS is measured on the real `commwatch run --once` command.

    python bench/tcp_sweep.py                # N = 1,000 and 10,000
    python bench/tcp_sweep.py --checks 2000  # one size
    python bench/tcp_sweep.py --smoke        # N = 20, one round: that it runs, no figures

Listeners run in a child process (250 loopback addresses, a port the kernel picks on each, so
that two runs never collide) so the measured process does only the client side.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import tempfile
from pathlib import Path

from common import (
    alternate,
    cli_run,
    engine_sweep,
    loopback_addresses,
    raise_open_file_limit,
    report,
    tcp_listeners,
    timed_floor,
    write_inventory,
)

ADDRESSES = loopback_addresses(77, 250)
GLOBAL_CAP = 256
PER_HOST_CAP = 4
RST = struct.pack("ii", 1, 0)


async def floor(targets: list[str]) -> tuple[float, int]:
    """Bare asyncio: connect, set RST-on-close (as the probe does), close; GLOBAL_CAP at once."""

    async def connect(target: str) -> None:
        address, port = target.split(":")
        _, writer = await asyncio.open_connection(address, int(port))
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        writer.close()

    return await timed_floor(targets, connect, GLOBAL_CAP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checks",
        type=int,
        action="append",
        help="sweep size (repeatable; default 1000 and 10000)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--smoke", action="store_true", help="20 checks, one round")
    args = parser.parse_args()
    sizes, rounds = ([20], 1) if args.smoke else (args.checks or [1000, 10000], args.rounds)
    raise_open_file_limit()
    with tcp_listeners(ADDRESSES) as endpoints, tempfile.TemporaryDirectory() as workdir:
        for n in sizes:
            targets = [endpoints[i % len(endpoints)] for i in range(n)]
            inventory = Path(workdir) / f"tcp-{n}.yaml"
            write_inventory(
                inventory,
                [f'kind: tcp, target: "{t}"' for t in targets],
                GLOBAL_CAP,
                PER_HOST_CAP,
            )
            floor_s, sweep_s = alternate(
                rounds, lambda t=targets: floor(t), lambda p=inventory: engine_sweep(p)
            )
            report(n, floor_s, sweep_s, cli_run(inventory))


if __name__ == "__main__":
    main()
