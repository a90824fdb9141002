"""The scheduler's checks replaced while it runs, as an agent's share changes when agents join
and leave: gone checks start no more (a run in progress finishes and reports), new ones start
at once, kept ones go on undisturbed."""

from __future__ import annotations

import asyncio
import itertools

from monitor.config.inventory import Concurrency
from monitor.core.model import ProbeResult
from monitor.engine.scheduler import SWEEP_SPREAD, Scheduler
from tests.test_scheduler import Recorder, make_check


async def test_replaced_checks_stop_new_ones_start_and_kept_ones_go_on():
    recorder = Recorder(delay=0.2)
    results: list[str] = []
    kept = make_check("kept", interval=0.5, timeout=0.4)
    gone, new = make_check("gone"), make_check("new")
    scheduler = Scheduler(
        [kept, gone],
        Concurrency(),
        lambda r: results.append(r.check.check_id),
        start_spread=0,
        runner=recorder,
    )
    running = asyncio.create_task(scheduler.run())
    try:
        await recorder.wait_for(lambda r: r.running["gone"] == 1 and r.running["kept"] == 1)
        scheduler.replace_checks([kept, new])
        loop = asyncio.get_running_loop()
        replaced_at = loop.time()
        await recorder.wait_for(lambda r: "new" in r.started)
        assert recorder.started_at["new"][0] - replaced_at < SWEEP_SPREAD
        # The run of "gone" under way finishes and reports; "kept" is not started again early.
        await recorder.wait_for(lambda r: r.started.count("kept") >= 3)
        assert "gone" in results
        assert recorder.started.count("gone") == 1
        starts = recorder.started_at["kept"]
        assert all(b - a >= 0.5 - 0.01 for a, b in itertools.pairwise(starts))
        assert set(scheduler.checks) == {"kept", "new"}
    finally:
        scheduler.stop()
        await running


async def test_a_queued_check_that_is_replaced_never_starts():
    """Waiting behind the per-host cap when it goes: it is taken out of its host's queue."""
    recorder = Recorder(delay=0.3)
    first = make_check("first", interval=0.5, timeout=0.4)
    waiting = make_check("waiting")
    other = make_check("other", host="127.0.0.2")
    scheduler = Scheduler(
        [first, waiting],
        Concurrency(per_host=1),
        lambda r: None,
        start_spread=0,
        runner=recorder,
    )
    running = asyncio.create_task(scheduler.run())
    try:
        await recorder.wait_for(lambda r: r.running["first"] == 1)
        assert scheduler.figures().queued == 1
        scheduler.replace_checks([first, other])
        assert scheduler.figures().queued == 0
        await recorder.wait_for(lambda r: r.started.count("first") >= 2 and "other" in r.started)
        assert "waiting" not in recorder.started
    finally:
        scheduler.stop()
        await running


async def test_a_check_replaced_during_the_first_round_is_not_started_by_it():
    recorder = Recorder(delay=0.01)
    checks = [make_check(f"c{i}", host=f"127.0.0.{i + 1}") for i in range(20)]
    scheduler = Scheduler(checks, Concurrency(), lambda r: None, start_spread=2.0, runner=recorder)
    running = asyncio.create_task(scheduler.run())
    try:
        await recorder.wait_for(lambda r: len(r.started) >= 2)
        scheduler.replace_checks(checks[:5])
        await recorder.wait_for(lambda r: {f"c{i}" for i in range(5)} <= set(r.started))
        await asyncio.sleep(1.5)  # past the rest of the first round (20 starts, 0.05 s apart)
        assert not {f"c{i}" for i in range(5, 20)} & set(recorder.started)
    finally:
        scheduler.stop()
        await running


async def test_replacing_before_the_run_starts_runs_the_new_checks():
    recorder = Recorder(delay=0.01)
    scheduler = Scheduler(
        [make_check("old")], Concurrency(), lambda r: None, start_spread=0, runner=recorder
    )
    scheduler.replace_checks([make_check("a"), make_check("b")])
    running = asyncio.create_task(scheduler.run())
    try:
        await recorder.wait_for(lambda r: {"a", "b"} <= set(r.started))
        assert "old" not in recorder.started
    finally:
        scheduler.stop()
        await running


async def test_a_check_replaced_as_its_run_is_being_started_runs_once_and_fails_nothing():
    """Taken from its host's queue (its task made, not yet running) in the same moment as it
    goes: that run goes ahead, as one under way does, and the scheduler runs on. It used to
    look up the gone check's memory and end the whole run with a KeyError."""
    recorder = Recorder(delay=0.05)
    first = make_check("first", interval=0.5, timeout=0.4)
    second = make_check("second", interval=0.5, timeout=0.4)
    scheduler: Scheduler | None = None
    loop = asyncio.get_running_loop()

    def sink(result: ProbeResult) -> None:
        # "first" done: its run's end starts "second" (waiting behind the per-host cap), after
        # this call is queued, so "second" is gone before its run's first step.
        if result.check.check_id == "first" and recorder.started == ["first"]:
            assert scheduler is not None
            loop.call_soon(scheduler.replace_checks, [first])

    scheduler = Scheduler(
        [first, second], Concurrency(per_host=1), sink, start_spread=0, runner=recorder
    )
    running = asyncio.create_task(scheduler.run())
    try:
        await recorder.wait_for(lambda r: r.started.count("first") >= 3)
        assert not running.done(), running
        assert recorder.started.count("second") == 1
        assert set(scheduler.checks) == {"first"}
    finally:
        scheduler.stop()
        await running
