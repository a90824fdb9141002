"""One probe process of `commwatch run --workers N`, forked by its parent's zygote
(monitor.cluster.zygote: `serve` with the parent's checks) or, once that is gone, started as
`python -m monitor.cluster.worker INDEX` (the index is for `ps`; its orders say the rest);
either way named `commwatch-wINDEX` for ps and top: the scheduler and the runner over its
share of the checks, every result sent back to the parent. No state engine, history or alerts
here: the parent's one engine judges what every worker finds.

Started, it loads the inventory itself, from the path its orders name: the secrets the
inventory points at are read here, where they are used, as in one process, and none crosses a
pipe. It refuses to run when the file is not the one the parent loaded (edited since): the
parent would judge results of checks it does not know as checks it does. Forked, it has the
parent's checks already, and no secret crosses a pipe either.

Its orders come from the parent only, one JSON object a line on its standard input, the first
one what it runs (`Orders`), then commands: `{"op": "run_now" | "repoll" | "pause" | "resume",
"check": ID}` (repoll: a trap's news, monitor.engine.traps), `{"op": "expedite", "check": ID,
"delay": SECONDS}`, `{"op": "stop"}`. It writes on the descriptor that was its standard
output, as messages of monitor.cluster.frames (the objects themselves, pickled): READY once its
checks are loaded, each `ProbeResult` and, every FIGURES_EVERY seconds and at the end, its
scheduler's `SchedulerFigures`. Descriptor 1 is pointed at standard error, so that a library
printing something cannot break a message.

The end of its standard input stops it: the parent closed it, or died (SIGKILL included, the
kernel closes the pipe), so no worker outlives its parent. It runs in a process group of its own,
so a terminal's Ctrl-C reaches the parent alone, which stops its workers in order; SIGTERM or
SIGINT sent to a worker stops it, and a parent still running starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.cluster import frames
from monitor.config.inventory import Check, Concurrency, InventoryErrors
from monitor.config.loader import load_inventory
from monitor.core import logs
from monitor.core.model import ProbeResult
from monitor.engine.scheduler import Scheduler

log = logging.getLogger("commwatch.worker")

FIGURES_EVERY = 1.0  # seconds; the parent takes a worker silent for much longer as stuck
ORDERS_LIMIT = 16 * 1024 * 1024  # bytes in one line of orders: the check ids of a large shard
EXIT_REFUSED = 3  # the orders could not be carried out (the inventory changed, a check is gone)
READY = "ready"  # the message that says its checks are loaded


@dataclass(frozen=True, slots=True)
class Orders:
    """What a worker runs, as its parent's first line says."""

    inventory: str  # the inventory's path
    digest: str  # SHA-256 of the file the parent loaded, hex
    worker: int  # the worker's index, for its log lines
    checks: tuple[str, ...]  # the ids of its checks
    global_limit: int  # its share of the global cap
    per_host: int
    sweep: bool  # one sweep (run --once), else continuously
    paused: tuple[str, ...] = ()
    start_spread: float | None = None

    def line(self) -> bytes:
        return (json.dumps(dataclasses.asdict(self)) + "\n").encode()

    @classmethod
    def read(cls, line: bytes) -> Orders:
        fields = json.loads(line)
        fields["checks"], fields["paused"] = tuple(fields["checks"]), tuple(fields["paused"])
        return cls(**fields)


def digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Refused(Exception):
    """The orders cannot be carried out; the message says why, for the log."""


def checks_of(orders: Orders) -> tuple[Check, ...]:
    """The checks the orders name, from the inventory loaded here."""
    try:
        if digest(orders.inventory) != orders.digest:
            raise Refused(
                f"{orders.inventory} changed since commwatch started: restart commwatch to "
                "run the inventory as it is now"
            )
        inventory = load_inventory(orders.inventory)
    except OSError as exc:
        raise Refused(f"cannot read {orders.inventory} ({exc.strerror})") from None
    except InventoryErrors:
        raise Refused(f"{orders.inventory} does not load any more") from None
    return _named(orders, {check.ref.check_id: check for check in inventory.checks})


def _named(orders: Orders, by_id: Mapping[str, Check]) -> tuple[Check, ...]:
    missing = [check_id for check_id in orders.checks if check_id not in by_id]
    if missing:
        raise Refused(f"{orders.inventory} has no check {missing[0]!r} any more")
    return tuple(by_id[check_id] for check_id in orders.checks)


class Worker:
    """The scheduler over the checks of `orders`, its results and figures written to `out`."""

    def __init__(self, orders: Orders, checks: tuple[Check, ...], out: asyncio.WriteTransport):
        self.orders = orders
        self._out = out
        concurrency = Concurrency(global_limit=orders.global_limit, per_host=orders.per_host)
        self.scheduler = Scheduler(
            checks, concurrency, self._finished, start_spread=orders.start_spread
        )
        for check_id in orders.paused:
            self.scheduler.pause(check_id)

    def _finished(self, result: ProbeResult) -> None:
        self._out.write(frames.encode(result))

    def _figures(self) -> None:
        self._out.write(frames.encode(self.scheduler.figures()))

    async def run(self, orders_in: asyncio.StreamReader) -> None:
        self._out.write(frames.encode(READY))
        commands = asyncio.create_task(self._commands(orders_in))
        figures = asyncio.create_task(self._report_figures())
        try:
            if self.orders.sweep:
                await self.scheduler.sweep()
            else:
                await self.scheduler.run()
        finally:
            for task in (commands, figures):
                task.cancel()
            await asyncio.gather(commands, figures, return_exceptions=True)
        self._figures()

    async def _report_figures(self) -> None:
        while True:
            self._figures()
            await asyncio.sleep(FIGURES_EVERY)

    async def _commands(self, orders_in: asyncio.StreamReader) -> None:
        while line := await orders_in.readline():
            try:
                command = json.loads(line)
                self._obey(command["op"], command)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("worker %d: a command it cannot read (%s)", self.orders.worker, exc)
        self.scheduler.stop()  # the parent closed the pipe, or died

    def _obey(self, op: str, command: dict[str, Any]) -> None:
        scheduler = self.scheduler
        if op == "stop":
            scheduler.stop()
            return
        check_id = command["check"]
        if check_id not in scheduler.checks:
            raise KeyError(check_id)
        if op == "run_now":
            scheduler.run_now(check_id)
        elif op == "repoll":
            scheduler.repoll(check_id)
        elif op == "pause":
            scheduler.pause(check_id)
        elif op == "resume":
            scheduler.resume(check_id)
        elif op == "expedite":
            scheduler.expedite(check_id, float(command["delay"]))
        else:
            raise ValueError(f"no command {op!r}")


class _Lines(asyncio.Protocol):
    """The protocol's pipe up to the parent: written without waiting (the transport buffers
    what the pipe does not take yet); `closed` once a close has written all of it, or the pipe
    broke."""

    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def serve(orders_fd: int, out_fd: int, loaded: Mapping[str, Check] | None = None) -> int:
    """Run the orders that come in on `orders_fd`, writing to `out_fd`: with the checks of the
    inventory loaded here, or `loaded`, the parent's own (a worker forked from it)."""
    loop = asyncio.get_running_loop()
    orders_in = asyncio.StreamReader(limit=ORDERS_LIMIT, loop=loop)
    orders_pipe = os.fdopen(orders_fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(orders_in), orders_pipe)
    out, lines = await loop.connect_write_pipe(_Lines, os.fdopen(out_fd, "wb", buffering=0))
    first = await orders_in.readline()
    if not first:
        return 0  # the parent went before it said anything
    orders = Orders.read(first)
    try:
        checks = checks_of(orders) if loaded is None else _named(orders, loaded)
    except Refused as exc:
        log.error("worker %d: %s; not started", orders.worker, exc)
        return EXIT_REFUSED
    worker = Worker(orders, checks, out)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.scheduler.stop)
    await worker.run(orders_in)
    # Every line written before the end: what the pipe has not taken yet is still in the
    # transport's buffer, and the loop's end would drop it (and with it the sweep's last results).
    out.close()
    await lines.closed
    return 0


def name_process(worker: int) -> None:
    """`commwatch-wN` for ps and top (a forked worker's command line is its parent's)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(f"commwatch-w{worker}")


def main() -> int:
    logs.configure()
    name_process(int(sys.argv[1]))
    # The protocol gets a descriptor of its own; 1 becomes standard error (see the docstring).
    out_fd = os.dup(1)
    os.dup2(2, 1)
    return asyncio.run(serve(0, out_fd))


if __name__ == "__main__":
    sys.exit(main())
