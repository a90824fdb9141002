"""Ending an asyncio task that must end: cancelled again until it has.

On Python 3.11 `asyncio.wait_for` can swallow a cancellation that comes as what it waits for
ends (python/cpython#86296): the task goes on as if never cancelled. nats-py makes its
connection attempts through `wait_for`, in a loop that retries forever, so one cancellation of
a connection still being tried may be lost, and whoever awaits the task then waits forever.
"""

from __future__ import annotations

import asyncio
from typing import Any

CANCEL_AGAIN = 0.2  # seconds between two cancellations of a task that took none


async def cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel `task` until it has ended. An exception it ended with (not its cancellation) is
    raised here, as awaiting it would raise it."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN)
    if not task.cancelled() and (failure := task.exception()) is not None:
        raise failure
