"""Benchmark: one `run --once` sweep of N tcp checks against local listeners, beside a floor.

The floor is a bare asyncio connect loop with the same concurrency cap and the same close, run
in the same process and the same run, so the ratio says what the engine costs on top of the
sockets themselves. Peak RSS is measured on the real `commwatch run --once` command.

    python bench/tcp_sweep.py                # N = 1,000 and 10,000
    python bench/tcp_sweep.py --checks 2000  # one size

Listeners run in a child process (250 loopback addresses, one port each) so the measured
process does only the client side.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import selectors
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
    timed_floor,
    write_inventory,
)

ADDRESSES = loopback_addresses(77, 250)
PORT = 7070
GLOBAL_CAP = 256
PER_HOST_CAP = 4
RST = struct.pack("ii", 1, 0)


def serve(addresses: list[str], ready: multiprocessing.Event) -> None:
    """Accept and close connections as fast as possible on every address."""
    selector = selectors.DefaultSelector()
    for address in addresses:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((address, PORT))
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


async def floor(targets: list[str]) -> tuple[float, int]:
    """Bare asyncio: connect, set RST-on-close (as the probe does), close; GLOBAL_CAP at once."""

    async def connect(address: str) -> None:
        _, writer = await asyncio.open_connection(address, PORT)
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
    args = parser.parse_args()
    raise_open_file_limit()
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=serve, args=(ADDRESSES, ready), daemon=True)
    server.start()
    ready.wait(10)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            for n in args.checks or [1000, 10000]:
                targets = [ADDRESSES[i % len(ADDRESSES)] for i in range(n)]
                inventory = Path(workdir) / f"tcp-{n}.yaml"
                write_inventory(
                    inventory,
                    [f'kind: tcp, target: "{t}:{PORT}"' for t in targets],
                    GLOBAL_CAP,
                    PER_HOST_CAP,
                )
                floor_s, sweep_s = alternate(
                    args.rounds, lambda t=targets: floor(t), lambda p=inventory: engine_sweep(p)
                )
                report(n, floor_s, sweep_s, cli_run(inventory))
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
