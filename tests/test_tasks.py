"""monitor.core.tasks.cancelled: a task that loses a cancellation (as one inside Python 3.11's
asyncio.wait_for may, python/cpython#86296) is cancelled again until it ends."""

from __future__ import annotations

import asyncio

import pytest

from monitor.core.tasks import cancelled


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again_until_it_ends():
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed == 3:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)  # it runs, and waits
    async with asyncio.timeout(30):
        await cancelled(task)
    assert task.cancelled() and swallowed == 3


async def test_what_a_task_ended_with_is_raised_as_awaiting_it_would():
    async def failing() -> None:
        raise OSError("no route")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(OSError, match="no route"):
        await cancelled(task)


async def test_a_task_that_takes_its_cancellation_ends_at_once():
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await cancelled(task)
    assert task.cancelled()
