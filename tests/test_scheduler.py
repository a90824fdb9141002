"""The scheduler: caps, fairness, no self-overlap, commands, and clean shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config.checks import adhoc_check
from monitor.config.inventory import Check, Concurrency
from monitor.core.model import ProbeResult, Severity
from monitor.engine.runner import run_check
from monitor.engine.scheduler import MAX_HOLD, START_GAP, SWEEP_SPREAD, Scheduler
from tests.peers.tcp_peers import accepting_listener, blackhole_port


def make_check(name: str, host: str = "127.0.0.1", port: int = 9, **values) -> Check:
    check = adhoc_check("tcp", {"target": f"{host}:{port}", **values})
    return dataclasses.replace(check, ref=dataclasses.replace(check.ref, check_id=name))


# However loaded the machine, what a test waits for happens well within this: a bound that only
# a hang reaches, never a slow run.
PATIENCE = 10.0


async def until(condition: Callable[[], bool], changed: asyncio.Event) -> None:
    """Wait until `condition` holds, looking again whenever `changed` is set; a hang fails
    after PATIENCE."""
    async with asyncio.timeout(PATIENCE):
        while not condition():
            changed.clear()
            await changed.wait()


class Recorder:
    """A runner that records concurrency instead of touching the network: these tests are about
    when checks start, not what they find (the probes have their own tests against real peers)."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.running: Counter[str] = Counter()
        self.running_hosts: Counter[str] = Counter()
        self.max_total = 0
        self.max_per_host = 0
        self.max_per_check = 0
        self.started: list[str] = []
        self.started_at: dict[str, list[float]] = {}
        self.finished: list[str] = []
        self.changed = asyncio.Event()  # set whenever a check starts or finishes

    async def wait_for(self, condition: Callable[[Recorder], bool]) -> None:
        await until(lambda: condition(self), self.changed)

    async def __call__(self, check, shared, memory) -> ProbeResult:
        cid, host = check.ref.check_id, check.ref.host
        self.started.append(cid)
        self.started_at.setdefault(cid, []).append(asyncio.get_running_loop().time())
        self.changed.set()
        self.running[cid] += 1
        self.running_hosts[host] += 1
        self.max_total = max(self.max_total, sum(self.running.values()))
        self.max_per_host = max(self.max_per_host, self.running_hosts[host])
        self.max_per_check = max(self.max_per_check, self.running[cid])
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.running[cid] -= 1
            self.running_hosts[host] -= 1
            self.finished.append(cid)
            self.changed.set()
        return ProbeResult(
            check=check.ref, started_at=0.0, duration_ms=self.delay * 1000, severity=Severity.OK
        )


async def test_sweep_runs_every_check_once_within_the_global_cap():
    checks = [make_check(f"c{i}", host=f"127.0.1.{i}") for i in range(30)]
    recorder, results = Recorder(), []
    # All at once (start_spread=0): the caps, not the first round's pacing, must hold it back.
    await Scheduler(
        checks, Concurrency(5, 4), results.append, runner=recorder, start_spread=0
    ).sweep()
    assert sorted(r.check.check_id for r in results) == sorted(c.ref.check_id for c in checks)
    assert recorder.max_total == 5


async def test_per_host_cap_holds_while_other_hosts_use_the_free_slots():
    busy = [make_check(f"busy{i}", host="127.0.2.1") for i in range(12)]
    others = [make_check(f"other{i}", host=f"127.0.3.{i}") for i in range(6)]
    recorder = Recorder()
    await Scheduler(
        busy + others, Concurrency(8, 2), lambda r: None, runner=recorder, start_spread=0
    ).sweep()
    assert recorder.max_per_host == 2
    # Round robin over hosts: the other hosts do not wait behind the busy host's queue.
    assert all(recorder.started.index(f"other{i}") < 12 for i in range(6))


async def test_a_hung_host_does_not_delay_the_others():
    results: list[ProbeResult] = []
    finished_at: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    def sink(result: ProbeResult) -> None:
        results.append(result)
        finished_at[result.check.check_id] = loop.time()

    with blackhole_port("127.0.4.1") as dead_port:
        async with accepting_listener("127.0.4.2") as live_port:
            hung = [make_check(f"hung{i}", "127.0.4.1", dead_port, timeout="1s") for i in range(4)]
            live = [make_check(f"live{i}", "127.0.4.2", live_port) for i in range(20)]
            started = loop.time()
            await Scheduler(hung + live, Concurrency(6, 4), sink).sweep()
    assert all(finished_at[f"live{i}"] - started < 0.5 for i in range(20))
    assert {r.error.error_class.value for r in results if r.check.check_id.startswith("hung")} == {
        "timeout"
    }


async def test_continuous_runs_never_overlap_a_check_with_itself():
    """A run longer than the interval: the next one waits for it to finish, then starts at
    once (it is overdue)."""
    recorder = Recorder(delay=0.25)
    checks = [make_check("slow", interval="100ms", timeout="100ms")]
    scheduler = Scheduler(
        checks, Concurrency(10, 10), lambda r: None, runner=recorder, start_spread=0
    )
    task = asyncio.create_task(scheduler.run())
    await recorder.wait_for(lambda r: len(r.started) >= 4)
    scheduler.stop()
    await task
    assert recorder.max_per_check == 1
    gaps = [b - a for a, b in itertools.pairwise(recorder.started_at["slow"])]
    assert all(gap >= recorder.delay for gap in gaps), gaps


async def test_checks_repeat_on_their_interval():
    """Each run starts an interval after the one before it started: never sooner."""
    recorder = Recorder(delay=0.001)
    checks = [make_check("fast", interval="100ms", timeout="50ms")]
    scheduler = Scheduler(
        checks, Concurrency(10, 10), lambda r: None, runner=recorder, start_spread=0
    )
    task = asyncio.create_task(scheduler.run())
    await recorder.wait_for(lambda r: len(r.started) >= 6)
    scheduler.stop()
    await task
    gaps = [b - a for a, b in itertools.pairwise(recorder.started_at["fast"])]
    # The loop's timers may fire a hair early (its clock resolution), never an interval early.
    assert all(gap >= 0.1 - 0.005 for gap in gaps), gaps
    assert len(recorder.started) == 6  # stopped: nothing starts after stop()


async def test_pause_resume_and_run_now():
    recorder = Recorder(delay=0.001)
    checks = [make_check("a", interval="1h"), make_check("b", host="127.0.0.2", interval="1h")]
    scheduler = Scheduler(
        checks, Concurrency(10, 10), lambda r: None, runner=recorder, start_spread=0
    )
    task = asyncio.create_task(scheduler.run())
    await recorder.wait_for(lambda r: sorted(r.finished) == ["a", "b"])
    scheduler.pause("a")
    assert scheduler.is_paused("a")
    scheduler.run_now("b")
    await recorder.wait_for(lambda r: r.started.count("b") == 2)
    assert recorder.started.count("a") == 1
    scheduler.resume("a")
    assert not scheduler.is_paused("a")
    await recorder.wait_for(lambda r: r.started.count("a") == 2)
    scheduler.stop()
    await task
    assert sorted(recorder.started) == ["a", "a", "b", "b"]


class Started:
    """The real runner, noting each start: a test waits for checks to be in flight."""

    def __init__(self) -> None:
        self.check_ids: list[str] = []
        self.changed = asyncio.Event()

    async def __call__(self, check, shared, memory) -> ProbeResult:
        self.check_ids.append(check.ref.check_id)
        self.changed.set()
        return await run_check(check, shared, memory)


async def test_stop_cancels_in_flight_checks_and_leaves_no_tasks():
    started = Started()
    with blackhole_port() as port:
        checks = [make_check(f"h{i}", port=port, timeout="30s", interval="1m") for i in range(5)]
        scheduler = Scheduler(
            checks, Concurrency(10, 10), lambda r: None, start_spread=0, runner=started
        )
        task = asyncio.create_task(scheduler.run())
        await until(lambda: len(started.check_ids) == 5, started.changed)
        scheduler.stop()
        # Far less than the checks' 30 s timeout: they are cancelled, not waited for.
        await asyncio.wait_for(task, PATIENCE)
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_stop_before_the_run_starts_ends_it_at_once():
    """As a SIGTERM while history and alerting are still starting: the run must not start."""
    recorder = Recorder(delay=0.001)
    scheduler = Scheduler(
        [make_check("c")], Concurrency(10, 10), lambda r: None, runner=recorder, start_spread=0
    )
    scheduler.stop()
    await asyncio.wait_for(scheduler.run(), PATIENCE)
    assert recorder.started == []


async def test_a_sink_that_fails_ends_the_run_with_its_error():
    def broken_sink(result: ProbeResult) -> None:
        raise BrokenPipeError("reader went away")

    recorder = Recorder(delay=0.001)
    checks = [make_check(f"c{i}", interval="100ms", timeout="50ms") for i in range(3)]
    scheduler = Scheduler(checks, Concurrency(10, 10), broken_sink, runner=recorder, start_spread=0)
    with pytest.raises(BrokenPipeError):
        await asyncio.wait_for(scheduler.run(), 1.0)


async def test_shared_resources_are_closed_after_a_sweep():
    closed = []

    async def runner(check, shared, memory):
        async def make():
            return object()

        async def close(item):
            closed.append(item)

        await shared.get("thing", make, close)
        return await run_check(check, shared, memory)

    checks = [make_check(f"c{i}") for i in range(3)]
    await Scheduler(checks, Concurrency(10, 10), lambda r: None, runner=runner).sweep()
    assert len(closed) == 1


def _sockets_to(ports: set[int]) -> int:
    """This process's TCP sockets connected (or connecting) to one of `ports`: the checks'
    own. The peers' ends of the same connections (a silent service holds every one it
    accepted) are not the checks' to close."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].rsplit(":", 1)[1], 16) in ports:
            inodes.add(fields[9])
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor listdir itself used
            continue
        count += target.startswith("socket:") and target[len("socket:[") : -1] in inodes
    return count


async def test_stop_leaves_no_sockets_behind():
    async with accepting_listener("127.0.0.2") as live_port:
        with blackhole_port() as dead_port:
            ports = {live_port, dead_port}
            before = _sockets_to(ports)  # the blackhole's own fillers
            checks = [
                make_check(f"d{i}", port=dead_port, timeout="30s", interval="1m") for i in range(4)
            ]
            checks += [
                make_check(
                    f"l{i}", host="127.0.0.2", port=live_port, interval="100ms", timeout="100ms"
                )
                for i in range(4)
            ]
            started = Started()
            scheduler = Scheduler(
                checks, Concurrency(20, 10), lambda r: None, start_spread=0, runner=started
            )
            task = asyncio.create_task(scheduler.run())
            await until(lambda: started.check_ids.count("l0") >= 2, started.changed)
            assert _sockets_to(ports) >= before + 4  # the hung connects are in flight
            scheduler.stop()
            await asyncio.wait_for(task, PATIENCE)
            await asyncio.sleep(0)
            assert _sockets_to(ports) == before


async def test_expedite_brings_the_next_run_forward():
    """An hour-long interval, expedited twice: from inside the sink, as the state layer does,
    and while the check waits on its timer. Each next run comes after the delay asked for, and
    long before the hour."""
    recorder = Recorder(delay=0.001)
    checks = [make_check("unsure", interval="1h", timeout="1s")]
    loop = asyncio.get_running_loop()
    reported: list[float] = []
    reported_changed = asyncio.Event()

    def sink(result: ProbeResult) -> None:
        reported.append(loop.time())
        reported_changed.set()
        if len(reported) == 1:
            scheduler.expedite("unsure", 0.2)

    scheduler = Scheduler(checks, Concurrency(10, 10), sink, runner=recorder, start_spread=0)
    task = asyncio.create_task(scheduler.run())
    await until(lambda: len(reported) == 2, reported_changed)
    await asyncio.sleep(0)  # the run that reported has scheduled its next (hour-long) timer
    asked = loop.time()
    scheduler.expedite("unsure", 0.05)
    await until(lambda: len(reported) == 3, reported_changed)
    scheduler.stop()
    await task
    starts = recorder.started_at["unsure"]
    assert len(starts) == 3
    tolerance = 0.005  # the loop's timers may fire a hair early (its clock resolution)
    assert starts[1] - reported[0] >= 0.2 - tolerance
    assert starts[2] - asked >= 0.05 - tolerance
    assert starts[2] - starts[0] < PATIENCE  # not the hour


# --- the first round's pacing ------------------------------------------------------------------


async def test_a_sweep_starts_fast_checks_one_after_another_and_still_ends_promptly():
    recorder = Recorder(delay=0.005)
    checks = [make_check(f"c{i}", host=f"127.0.5.{i}") for i in range(20)]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await Scheduler(checks, Concurrency(200, 4), lambda r: None, runner=recorder).sweep()
    # Each starts once the one before has finished: no probe shares the CPU with a burst.
    assert recorder.max_total == 1
    assert recorder.started == [c.ref.check_id for c in checks]
    # Not START_GAP each: the next one starts as soon as the previous has finished.
    assert loop.time() - started < len(checks) * START_GAP


async def test_a_slow_check_holds_the_next_start_up_by_the_gap_at_most():
    recorder = Recorder(delay=0.6)
    checks = [make_check(f"slow{i}", host=f"127.0.6.{i}") for i in range(8)]
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    runner = recorder.__call__

    async def timed(check, shared, memory):
        starts.append(loop.time())
        return await runner(check, shared, memory)

    began = loop.time()
    await Scheduler(checks, Concurrency(200, 4), lambda r: None, runner=timed).sweep()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(START_GAP * 0.8 <= gap < START_GAP * 4 for gap in gaps), gaps
    assert recorder.max_total > 1  # slow ones overlap: the pacing does not serialise them
    assert loop.time() - began < 0.6 + 8 * START_GAP + 0.5


async def test_a_large_sweep_starts_everything_within_the_spread():
    recorder = Recorder(delay=0.3)
    checks = [make_check(f"n{i}", host=f"127.0.7.{i % 250}") for i in range(400)]
    loop = asyncio.get_running_loop()
    last_start = 0.0
    runner = recorder.__call__

    async def timed(check, shared, memory):
        nonlocal last_start
        last_start = loop.time()
        return await runner(check, shared, memory)

    began = loop.time()
    await Scheduler(checks, Concurrency(1000, 4), lambda r: None, runner=timed).sweep()
    assert last_start - began < SWEEP_SPREAD + 0.5
    assert len(recorder.started) == 400


async def test_a_continuous_run_staggers_its_first_round_and_keeps_the_stagger():
    recorder = Recorder(delay=0.001)
    checks = [
        make_check(f"r{i}", host=f"127.0.8.{i}", interval="400ms", timeout="100ms")
        for i in range(5)
    ]
    loop = asyncio.get_running_loop()
    starts: dict[str, list[float]] = {}
    runner = recorder.__call__

    async def timed(check, shared, memory):
        starts.setdefault(check.ref.check_id, []).append(loop.time())
        return await runner(check, shared, memory)

    scheduler = Scheduler(checks, Concurrency(10, 10), lambda r: None, runner=timed)
    task = asyncio.create_task(scheduler.run())
    await recorder.wait_for(
        lambda r: all(len(r.started_at.get(f"r{i}", ())) >= 2 for i in range(5))
    )
    scheduler.stop()
    await task
    assert recorder.max_total == 1
    for round_number in (0, 1):
        times = [starts[f"r{i}"][round_number] for i in range(5)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(START_GAP * 0.8 <= gap < START_GAP * 3 for gap in gaps), (round_number, gaps)


async def test_the_next_start_waits_while_this_process_keeps_the_cpu_busy():
    """As SNMP's message processing, or a lab in the same process, does: each later start
    waits for the CPU to calm down (MAX_HOLD gaps at most), not only START_GAP."""
    loop = asyncio.get_running_loop()
    starts: dict[str, float] = {}
    burn_ended = 0.0

    async def runner(check, shared, memory):
        nonlocal burn_ended
        starts[check.ref.check_id] = loop.time()
        if check.ref.check_id == "busy":
            began = time.process_time()
            while time.process_time() - began < 0.12:  # in slices: the loop keeps turning
                slice_end = time.process_time() + 0.005
                while time.process_time() < slice_end:
                    pass
                await asyncio.sleep(0)
            burn_ended = loop.time()
            await asyncio.sleep(0.3)  # then waits on the network, using no CPU
        return ProbeResult(check=check.ref, started_at=0.0, duration_ms=1.0, severity=Severity.OK)

    checks = [make_check("busy", host="127.0.9.1"), make_check("next", host="127.0.9.2")]
    await Scheduler(checks, Concurrency(10, 10), lambda r: None, runner=runner).sweep()
    held = starts["next"] - starts["busy"]
    assert held >= min(burn_ended - starts["busy"], MAX_HOLD * START_GAP) - 0.01, held
    assert held < MAX_HOLD * START_GAP + 0.1, held
