"""Delivery of the outbox's rows: due ones are sent through a caller-supplied `send` coroutine,
at most a notifier's `concurrency` at a time, and each outcome is recorded with backoff.

The dispatcher knows nothing of HTTP (that is `monitor.alerts.delivery`), only of outcomes, the
retry policy and per-notifier concurrency. Delivery is at least once; the idempotency key every
message carries makes it exactly once for a receiver that honours it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from monitor.alerts.outbox import Outbox, OutboxRow, RowStatus
from monitor.config.alerts import RetryPolicy

log = logging.getLogger("commwatch.alerts")


class Delivery(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # worth trying again later
    FAILED = "failed"  # permanent: the receiver rejected the message itself


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to. `detail` is printable: it never carries a URL's path or query."""

    delivery: Delivery
    detail: str
    retry_after: float | None = None


Sender = Callable[[OutboxRow], Awaitable[Outcome]]


class Dispatcher:
    """Sends due outbox rows, at most `limits[notifier]` at a time per notifier, and records
    each outcome. Rows of notifiers missing from `limits` are left alone."""

    def __init__(
        self,
        outbox: Outbox,
        send: Sender,
        limits: Mapping[str, int],
        policy: RetryPolicy,
        *,
        describe: Callable[[str], str] = str,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float],
    ) -> None:
        self._outbox = outbox
        self._send = send
        self._limits = dict(limits)
        self._policy = policy
        self._describe = describe
        self._clock = clock
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._busy: dict[str, int] = dict.fromkeys(self._limits, 0)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="commwatch-alert-delivery")

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self, grace: float = 2.0) -> None:
        """Stop sending. Deliveries in flight get `grace` seconds to finish, so a receiver that
        answered is not sent the message again by the next process; ones cut short stay
        pending: delivery is at least once, and the idempotency key makes it exactly once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        in_flight = list(self._in_flight.values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=grace)
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_due = await self._start_due()
            except sqlite3.Error:
                # The rows are safe on disk; look again shortly rather than stop delivering.
                log.exception("cannot read the alert outbox; retrying")
                next_due = self._clock() + 1.0
            timeout = None if next_due is None else max(0.0, next_due - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _start_due(self) -> float | None:
        """Start what is due and has room; return when the next waiting row falls due (None
        when only a finishing delivery or a new message can change anything)."""
        next_due: float | None = None
        now = self._clock()
        for notifier, limit in self._limits.items():
            room = limit - self._busy[notifier]
            if room <= 0:
                continue
            for row in await self._outbox.pending(notifier, limit + self._busy[notifier]):
                if row.id in self._in_flight:
                    continue
                if row.next_attempt_at > now:
                    due = row.next_attempt_at
                    next_due = due if next_due is None else min(next_due, due)
                    break
                if room <= 0:
                    break
                room -= 1
                self._busy[notifier] += 1
                self._in_flight[row.id] = asyncio.create_task(self._deliver(row))
        return next_due

    async def _deliver(self, row: OutboxRow) -> None:
        try:
            try:
                outcome = await self._send(row)
            except Exception as exc:
                # A bug in a sender must not stop delivery; the type alone is printed because an
                # HTTP library's message may carry the URL.
                outcome = Outcome(Delivery.RETRY, f"internal error: {type(exc).__name__}")
            try:
                await self._record(row, outcome)
            except sqlite3.Error:
                # Unrecorded, the row stays pending: it is sent again, and the key dedupes it.
                log.exception("cannot record the outcome of message %s", row.key)
        finally:
            self._busy[row.notifier_id] -= 1
            del self._in_flight[row.id]
            self._wake.set()

    async def _record(self, row: OutboxRow, outcome: Outcome) -> None:
        now, attempt = self._clock(), row.attempts + 1
        where = f"notifier {row.notifier_id} ({self._describe(row.notifier_id)})"
        if outcome.delivery is Delivery.DELIVERED:
            await self._outbox.record(row.id, RowStatus.DELIVERED, None, now, now)
            if row.attempts:
                log.info("%s: message %s delivered on attempt %d", where, row.key, attempt)
            return
        if outcome.delivery is Delivery.RETRY and now - row.created_at > self._policy.give_up_after:
            outcome = Outcome(
                Delivery.FAILED, f"{outcome.detail}; gave up after {attempt} attempts"
            )
        if outcome.delivery is Delivery.FAILED:
            await self._outbox.record(row.id, RowStatus.FAILED, outcome.detail, now, now)
            log.error("%s: message %s not delivered: %s", where, row.key, outcome.detail)
            return
        delay = self._policy.delay(attempt, self._jitter())
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, self._policy.backoff_cap))
        await self._outbox.record(row.id, RowStatus.PENDING, outcome.detail, now + delay, now)
        log.warning(
            "%s: message %s attempt %d failed: %s; retrying in %.3gs",
            where,
            row.key,
            attempt,
            outcome.detail,
            delay,
        )
