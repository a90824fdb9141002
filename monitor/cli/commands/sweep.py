"""One sweep of selected checks, as `run --once` and `audit certs` make it: progress shown on a
terminal, stopped early by SIGINT/SIGTERM, results in inventory order."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from monitor.config.inventory import Check, Inventory
from monitor.core.model import ProbeResult
from monitor.core.tasks import cancelled
from monitor.engine.scheduler import Scheduler
from monitor.output import terminal

log = logging.getLogger("commwatch.run")
T = TypeVar("T")


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGINT and SIGTERM call `stop` on the running loop, which ends the run cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


class Signalled(Exception):
    """SIGINT or SIGTERM came before the work waited for was done."""


def until_signalled(work: Coroutine[Any, Any, T]) -> Coroutine[Any, Any, T]:
    """What `work` gives, unless SIGINT or SIGTERM comes first: then `work` is cancelled and
    Signalled raised once it has ended. The signals are taken from this call on (`work`
    runs from now), before the returned coroutine is awaited."""
    task = asyncio.create_task(work)
    signalled = asyncio.Event()
    stop_on_signals(signalled.set)
    return _unless_signalled(task, signalled)


async def _unless_signalled(task: asyncio.Task[T], signalled: asyncio.Event) -> T:
    waiting = asyncio.create_task(signalled.wait())
    try:
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if not signalled.is_set():
        return task.result()
    await cancelled(task)
    raise Signalled


async def collect(
    inventory: Inventory, checks: Sequence[Check], workers: int = 1
) -> tuple[list[ProbeResult], bool]:
    """One sweep of `checks`, in `workers` processes above 1: their results in inventory order,
    and whether the sweep completed (SIGINT/SIGTERM end it early)."""
    results: list[ProbeResult] = []
    show_progress = sys.stderr.isatty()

    def collected(result: ProbeResult) -> None:
        results.append(result)
        if show_progress:
            terminal.progress(len(results), len(checks))

    if workers > 1:
        # Loaded only for a sweep that uses more than one process.
        from monitor.cluster.workers import WorkerPool

        pool = WorkerPool(inventory, checks, workers, sweep=True)
        if show_progress:
            print(f"commwatch: {pool.describe()}", file=sys.stderr, flush=True)
        else:  # a cron job's sweep says nothing unasked
            log.info("%s", pool.describe())
        stop_on_signals(pool.stop)
        await pool.run(collected)
    else:
        scheduler = Scheduler(checks, inventory.concurrency, collected)
        stop_on_signals(scheduler.stop)
        await scheduler.sweep()
    order = {check.ref.check_id: i for i, check in enumerate(checks)}
    results.sort(key=lambda r: order[r.check.check_id])
    return results, len(results) == len(checks)


def interrupted(done: int, of: int, what: str) -> None:
    print(f"commwatch: interrupted after {done} of {of} {what}", file=sys.stderr)
