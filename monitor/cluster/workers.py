"""`commwatch run --workers N`: the probes in N processes of this machine, their results fed to
the one engine here over pipes, with no NATS, so that CPU-bound probing (TLS handshakes, SNMP's
message processing) uses every core while state, history, alerts and the API stay one.

Sharding. Each check goes to the worker that wins the rendezvous hash of its target host among
the worker indexes (monitor.cluster.assignment): every check of one host is on one worker, so
the per-host cap holds as it does in one process. The global cap is divided among the workers in
proportion to their checks, each at least one, so the machine never runs more probes at once
than the inventory allows; a worker whose share is empty is not started.

Processes. A worker is forked from the pool's zygote (monitor.cluster.zygote), a fork of this
process made when the pool is, before the engine starts its threads: it has the package
imported and the checks loaded already, so a worker costs a fork, not half a second of CPU, and
runs the very checks this engine judges. Once the zygote is gone (killed), a worker is a fresh
interpreter running `python -m monitor.cluster.worker` (not a fork of this process, whose
threads, event loop, sockets and open history database stay here), importing the very package
this process runs, whatever the working directory holds; it loads the inventory itself, from
its path, and refuses a file edited since. No secret crosses a pipe. Orders go down its standard
input, results and figures come up its standard output as pickled objects
(monitor.cluster.frames: the pipe is private to this run, and a pickle gives back the very
`ProbeResult` at a fraction of a result record's cost); a result is taken only for a check of
the worker's shard. Results of one check come from one worker in the order it finished them.

Restarts. A worker that ends while the run goes on (killed, crashed, or refusing its orders) is
logged, counted and started again with its checks (in a sweep, those that have not reported),
paused ones still paused; one that dies again soon after its start waits longer each time (1 s,
doubling, up to 30 s). One that says nothing, not even its figures, for SILENT_LIMIT is stuck:
it is killed and started again. When this process ends, however it ends (SIGKILL included),
each worker sees its orders pipe close and stops: none outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monitor
from monitor.cluster import frames
from monitor.cluster.assignment import winner
from monitor.cluster.worker import READY, Orders, digest
from monitor.cluster.zygote import Forked, Zygote
from monitor.config.inventory import Check, Concurrency, Inventory
from monitor.core.logs import Throttle
from monitor.core.model import ProbeResult
from monitor.engine.scheduler import SchedulerFigures

log = logging.getLogger("commwatch.workers")

SILENT_LIMIT = 30.0  # seconds without a line (a worker writes its figures every second): stuck
STOP_WAIT = 10.0  # seconds a stopping worker has to end before it is killed
QUICK_DEATH = 10.0  # seconds: a worker that ends sooner after its start has not really run
RESTART_FIRST, RESTART_LAST = 1.0, 30.0  # the wait before starting one that died quickly
_LOG_EVERY = 60.0
_NO_FIGURES = SchedulerFigures(0, 0, 0, 0, 0.0, 0.0)

WorkerProcess = Forked | asyncio.subprocess.Process


@dataclass(frozen=True, slots=True)
class Shard:
    """One worker's share: its checks and its part of the global cap."""

    worker: int
    checks: tuple[Check, ...]
    concurrency: Concurrency


def shard(checks: Sequence[Check], concurrency: Concurrency, workers: int) -> tuple[Shard, ...]:
    """The non-empty shards of `checks` among `workers` workers (at most one per unit of the
    global cap: each worker needs room for one probe), in worker order."""
    count = max(1, min(workers, concurrency.global_limit))
    names = [str(index) for index in range(count)]
    owner: dict[str, int] = {}
    shares: list[list[Check]] = [[] for _ in names]
    for check in checks:
        host = check.ref.host
        if host not in owner:
            chosen = winner(host, names)
            assert chosen is not None  # there is always a worker 0
            owner[host] = int(chosen)
        shares[owner[host]].append(check)
    taken = [(index, tuple(share)) for index, share in enumerate(shares) if share]
    limits = divide(concurrency.global_limit, [len(share) for _, share in taken])
    return tuple(
        Shard(index, share, Concurrency(global_limit=limit, per_host=concurrency.per_host))
        for (index, share), limit in zip(taken, limits, strict=True)
    )


def divide(total: int, sizes: Sequence[int]) -> list[int]:
    """`total` in whole parts, one per size and at least 1 each, in proportion to the sizes
    beyond that (largest remainders first): they add up to `total`. `total` >= len(sizes)."""
    spare = total - len(sizes)
    whole = sum(sizes)
    exact = [spare * size / whole for size in sizes]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: parts[i] - exact[i])
    for i in by_remainder[: spare - sum(parts)]:
        parts[i] += 1
    return [1 + part for part in parts]


def worker_command(worker: int) -> tuple[list[str], dict[str, str]]:
    """Worker `worker`'s command line (its index shown, for ps) and environment: this
    interpreter, and this process's own package first on the path (-P: not the working
    directory's, which may hold another)."""
    root = str(Path(monitor.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    command = [sys.executable, "-P", "-m", "monitor.cluster.worker", str(worker)]
    return command, {**os.environ, "PYTHONPATH": path}


class WorkerPool:
    """A `ResultSource` and the `Steering` of a `Monitor` (both: `Monitor(source=pool,
    steering=pool)`), or a one-off sweep's (`sweep=True`: `run` returns once every check has
    reported, or at `stop()`)."""

    def __init__(
        self,
        inventory: Inventory,
        checks: Sequence[Check],
        workers: int,
        *,
        sweep: bool = False,
        start_spread: float | None = None,
    ) -> None:
        self._path = os.path.abspath(inventory.path)
        self._digest = digest(self._path)  # the file as this process loaded it, just before
        self.sweep = sweep
        self._start_spread = start_spread
        self.slots = [_Slot(self, s) for s in shard(checks, inventory.concurrency, workers)]
        # Now, before the engine starts its threads: see monitor.cluster.zygote.
        self._zygote = Zygote.fork({check.ref.check_id: check for check in checks})
        self._owner = {c.ref.check_id: slot for slot in self.slots for c in slot.shard.checks}
        self._paused: set[str] = set()
        self.stopping = False
        self._stopped = asyncio.Event()
        self.restarts = 0  # workers started again since the pool began
        self.refused = 0  # lines from workers that were not what a worker writes
        self._throttle = Throttle(_LOG_EVERY)

    def describe(self) -> str:
        """The pool in a few words, for the line a run starts with."""
        shares = ", ".join(
            f"worker {slot.shard.worker}: {len(slot.checks)} checks, "
            f"{slot.shard.concurrency.global_limit} at once"
            for slot in self.slots
        )
        return f"probing in {len(self.slots)} processes ({shares})"

    # --- ResultSource ---------------------------------------------------------------------

    async def run(self, take: Callable[[ProbeResult], None]) -> None:
        """Start the workers and hand every result to `take` until `stop()` (a sweep: until all
        reported). An exception from `take` stops the workers and ends the run with it."""
        if self.stopping:
            return
        tasks = [asyncio.create_task(slot.supervise(take)) for slot in self.slots]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self.stop()
            for task in tasks:
                task.cancel()  # those still waiting: each kills its worker
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._zygote is not None:
                await self._zygote.close()
        if self.restarts or self.refused:
            log.warning(
                "probe workers stopped: %d restarts, %d lines from them ignored, in this run",
                self.restarts,
                self.refused,
            )
        for task in tasks:
            if not task.cancelled() and (failure := task.exception()) is not None:
                raise failure

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self._stopped.set()
        for slot in self.slots:
            slot.stop()

    def settled(self, result: ProbeResult) -> None:
        """Nothing to acknowledge: a result in a pipe when this process dies is lost, as one in
        flight in a single process is."""

    # --- Steering ---------------------------------------------------------------------------

    def run_now(self, check_id: str) -> None:
        self._owner[check_id].order({"op": "run_now", "check": check_id})

    def repoll(self, check_id: str) -> None:
        self._owner[check_id].order({"op": "repoll", "check": check_id})

    def expedite(self, check_id: str, delay: float) -> None:
        self._owner[check_id].order({"op": "expedite", "check": check_id, "delay": delay})

    def pause(self, check_id: str) -> None:
        self._paused.add(check_id)
        self._owner[check_id].order({"op": "pause", "check": check_id})

    def resume(self, check_id: str) -> None:
        if check_id in self._paused:
            self._paused.discard(check_id)
            self._owner[check_id].order({"op": "resume", "check": check_id})

    def is_paused(self, check_id: str) -> bool:
        return check_id in self._paused

    def figures(self) -> SchedulerFigures:
        """The workers' figures added up, as of each one's last report (once a second)."""
        now = [slot.figures for slot in self.slots]
        return SchedulerFigures(
            in_flight=sum(f.in_flight for f in now),
            queued=sum(f.queued for f in now),
            paused=len(self._paused),
            # Counters: what a slot's processes before a restart counted stays counted.
            started=sum(s.started_before + s.figures.started for s in self.slots),
            start_lag_total=sum(s.lag_before + s.figures.start_lag_total for s in self.slots),
            backlog=max((f.backlog for f in now), default=0.0),
        )

    # --- for the slots ----------------------------------------------------------------------

    def orders(self, slot: _Slot, checks: Sequence[Check]) -> Orders:
        concurrency = slot.shard.concurrency
        ids = tuple(check.ref.check_id for check in checks)
        return Orders(
            inventory=self._path,
            digest=self._digest,
            worker=slot.shard.worker,
            checks=ids,
            global_limit=concurrency.global_limit,
            per_host=concurrency.per_host,
            sweep=self.sweep,
            paused=tuple(sorted(self._paused.intersection(ids))),
            start_spread=self._start_spread,
        )

    async def start_worker(self, worker: int) -> WorkerProcess:
        """Worker `worker`, forked from the zygote, or a fresh interpreter once it is gone."""
        if self._zygote is not None and not self._zygote.gone:
            with contextlib.suppress(OSError):  # gone meanwhile: it says so
                return await self._zygote.start(worker)
        command, env = worker_command(worker)
        return await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            process_group=0,  # see monitor.cluster.worker: Ctrl-C is the parent's
        )

    def refuse(self, slot: _Slot, what: str) -> None:
        self.refused += 1
        held = self._throttle.let_through(("refused", slot.shard.worker))
        if held is not None:
            log.error(
                "probe worker %d wrote %s; ignored (%d more since the last line)",
                slot.shard.worker,
                what,
                held,
            )

    async def pause_before_restart(self, seconds: float) -> None:
        """Wait `seconds`, or less if the pool stops meanwhile."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()


class _Slot:
    """One worker's place in the pool: its shard, and the process serving it now, if any."""

    def __init__(self, pool: WorkerPool, shard: Shard) -> None:
        self.pool = pool
        self.shard = shard
        self.checks = {check.ref.check_id: check for check in shard.checks}
        self.process: WorkerProcess | None = None
        self.figures = _NO_FIGURES
        self.started_before = 0  # runs the slot's earlier processes started
        self.lag_before = 0.0
        self.reported: set[str] = set()  # a sweep's checks that have reported
        self._ready = False

    async def supervise(self, take: Callable[[ProbeResult], None]) -> None:
        """Keep a worker running the shard until the pool stops (a sweep: until every check of
        the shard has reported)."""
        loop = asyncio.get_running_loop()
        quick_deaths = 0
        while not self.pool.stopping:
            pending = self.shard.checks
            if self.pool.sweep:  # what is left of the sweep
                pending = tuple(c for c in pending if c.ref.check_id not in self.reported)
                if not pending:
                    return
            started = loop.time()
            ended = await self._serve(pending, take)
            if self.pool.stopping or (self.pool.sweep and len(self.reported) == len(self.checks)):
                continue  # the loop ends
            ran = self._ready and loop.time() - started >= QUICK_DEATH
            quick_deaths = 0 if ran else quick_deaths + 1
            wait = 0.0 if ran else min(RESTART_FIRST * 2 ** (quick_deaths - 1), RESTART_LAST)
            self.pool.restarts += 1
            log.error(
                "probe worker %d (%d checks) %s; starting it again%s (restart %d of this run)",
                self.shard.worker,
                len(self.shard.checks),
                ended,
                f" in {wait:g} s" if wait else "",
                self.pool.restarts,
            )
            await self.pool.pause_before_restart(wait)

    async def _serve(self, checks: Sequence[Check], take: Callable[[ProbeResult], None]) -> str:
        """One worker process over `checks`, until it ends; how it ended, in words."""
        self._ready = False
        try:
            process = await self.pool.start_worker(self.shard.worker)
        except OSError as exc:  # no process or descriptor left on the machine
            return f"could not be started ({exc.strerror or type(exc).__name__})"
        self.process = process
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(self.pool.orders(self, checks).line())
            if self.pool.stopping:
                self.order({"op": "stop"})
            why = await self._read(process.stdout, take)
            code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            self.process = None
            self.started_before += self.figures.started
            self.lag_before += self.figures.start_lag_total
            self.figures = _NO_FIGURES
        if why is not None:
            return why
        if code is None:
            return "ended (how is not known: the zygote that forked it is gone)"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"ended with exit status {code}"

    async def _read(
        self, stdout: asyncio.StreamReader, take: Callable[[ProbeResult], None]
    ) -> str | None:
        """Every message until the worker closes its end; why it was killed instead, if it was."""
        while True:
            try:
                async with asyncio.timeout(SILENT_LIMIT):
                    message = await frames.read(stdout)
            except TimeoutError:
                self.kill()
                return f"said nothing for {SILENT_LIMIT:g} s and was killed"
            except frames.FrameError as exc:  # out of step with it: nothing after can be read
                self.kill()
                return f"wrote {exc} and was killed"
            if message is None:
                return None
            self._message(message, take)

    def _message(self, message: object, take: Callable[[ProbeResult], None]) -> None:
        if isinstance(message, ProbeResult):
            self._result(message, take)
        elif isinstance(message, SchedulerFigures):
            self.figures = message
        elif message == READY:
            self._ready = True
        else:
            self.pool.refuse(self, f"a message of no known kind ({type(message).__name__})")

    def _result(self, result: ProbeResult, take: Callable[[ProbeResult], None]) -> None:
        check = self.checks.get(result.check.check_id)
        if check is None or result.check != check.ref:
            self.pool.refuse(self, "a result of a check it was not given")
            return
        self.reported.add(check.ref.check_id)
        take(result)

    def order(self, command: dict[str, Any]) -> None:
        """Send a command to the worker running now; with none running, nothing: a worker
        starting again takes the pool's pauses with its orders and runs each check soon."""
        process = self.process
        if process is None or process.returncode is not None or process.stdin is None:
            return
        if process.stdin.is_closing():
            return
        process.stdin.write((json.dumps(command) + "\n").encode())

    def stop(self) -> None:
        self.order({"op": "stop"})
        process = self.process
        if process is not None:
            asyncio.get_running_loop().call_later(STOP_WAIT, self._kill_if, process)

    def kill(self) -> None:
        if self.process is not None:
            self._kill_if(self.process)

    @staticmethod
    def _kill_if(process: WorkerProcess) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
